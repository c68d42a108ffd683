//! The web server's side of the codec: encode a request, collect a response. Tests and
//! benchmarks use it to play nginx; it shares the record and pair code with the server side.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};

use crate::codec::{Record, put_record, put_stream, put_stream_end};
use crate::params::put_pair;
use crate::record::{BeginRequest, EndRequest, RecordType, Role};

/// Appends a whole RESPONDER request as a web server sends it: BEGIN_REQUEST, the params in
/// PARAMS records, an empty PARAMS, the body in STDIN records, and an empty STDIN.
///
/// ```
/// use proto_fastcgi::{RecordDecoder, RecordType, client};
/// use tokio_util::codec::Decoder as _;
///
/// let mut wire = bytes::BytesMut::new();
/// client::put_request(&mut wire, 1, true, &[(&b"REQUEST_METHOD"[..], &b"GET"[..])], b"");
/// let first = RecordDecoder.decode(&mut wire).unwrap().unwrap();
/// assert_eq!(first.kind, RecordType::BeginRequest);
/// ```
pub fn put_request(
    dst: &mut BytesMut,
    id: u16,
    keep_conn: bool,
    params: &[(&[u8], &[u8])],
    stdin: &[u8],
) {
    put_begin(dst, id, Role::Responder, keep_conn);
    put_params(dst, id, params);
    put_stream(dst, RecordType::Stdin, id, stdin);
    put_stream_end(dst, RecordType::Stdin, id);
}

/// Appends BEGIN_REQUEST.
pub fn put_begin(dst: &mut BytesMut, id: u16, role: Role, keep_conn: bool) {
    let begin = BeginRequest {
        role,
        flags: u8::from(keep_conn),
    };
    put_record(dst, RecordType::BeginRequest, id, &begin.to_bytes());
}

/// Appends the params as PARAMS records and the empty PARAMS that ends them.
pub fn put_params(dst: &mut BytesMut, id: u16, params: &[(&[u8], &[u8])]) {
    let mut pairs = BytesMut::new();
    for (name, value) in params {
        put_pair(&mut pairs, name, value);
    }
    put_stream(dst, RecordType::Params, id, &pairs);
    put_stream_end(dst, RecordType::Params, id);
}

/// What came back for one request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reply {
    /// STDOUT, concatenated: the CGI response.
    pub stdout: BytesMut,
    /// STDERR, concatenated.
    pub stderr: BytesMut,
    /// Whether the empty STDOUT that ends the stream came.
    pub stdout_closed: bool,
    /// END_REQUEST, once it came.
    pub end: Option<EndRequest>,
}

impl Reply {
    /// The status from the `Status:` line (200 when there is none, as CGI says).
    pub fn status(&self) -> Option<u16> {
        let head = self.head()?;
        let line = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("status:"));
        match line {
            Some(l) => l[7..].trim().get(..3)?.parse().ok(),
            None => Some(200),
        }
    }

    /// The response head as text (up to the blank line).
    pub fn head(&self) -> Option<String> {
        let end = self.stdout.windows(4).position(|w| w == b"\r\n\r\n")?;
        Some(String::from_utf8_lossy(&self.stdout[..end]).into_owned())
    }

    /// The body after the head.
    pub fn body(&self) -> Bytes {
        let end = self.stdout.windows(4).position(|w| w == b"\r\n\r\n");
        end.map_or_else(Bytes::new, |e| {
            Bytes::copy_from_slice(&self.stdout[e + 4..])
        })
    }
}

/// Collects the records of any number of requests by id; management records (id 0) are kept
/// apart in order.
#[derive(Debug, Default)]
pub struct Replies {
    /// Per request id.
    pub by_id: HashMap<u16, Reply>,
    /// Records on id 0 (GET_VALUES_RESULT, UNKNOWN_TYPE).
    pub management: Vec<Record>,
}

impl Replies {
    /// Files one record.
    pub fn push(&mut self, record: Record) {
        if record.id == 0 {
            self.management.push(record);
            return;
        }
        let reply = self.by_id.entry(record.id).or_default();
        match record.kind {
            RecordType::Stdout if record.content.is_empty() => reply.stdout_closed = true,
            RecordType::Stdout => reply.stdout.extend_from_slice(&record.content),
            RecordType::Stderr => reply.stderr.extend_from_slice(&record.content),
            RecordType::EndRequest => reply.end = EndRequest::parse(&record.content),
            _ => {}
        }
    }

    /// Whether END_REQUEST came for `id`.
    pub fn ended(&self, id: u16) -> bool {
        self.by_id.get(&id).is_some_and(|r| r.end.is_some())
    }
}
