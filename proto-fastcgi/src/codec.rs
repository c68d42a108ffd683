//! Records on the wire: a [`Decoder`] and an [`Encoder`] over `BytesMut`, for both sides.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::record::{HEADER_LEN, MAX_CONTENT, RecordType, VERSION};

/// One record, its padding stripped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The type.
    pub kind: RecordType,
    /// The request id; 0 for management records.
    pub id: u16,
    /// The content, at most 65,535 bytes.
    pub content: Bytes,
}

impl Record {
    /// A record of `kind` for request `id`.
    pub fn new(kind: RecordType, id: u16, content: impl Into<Bytes>) -> Self {
        Record {
            kind,
            id,
            content: content.into(),
        }
    }
}

/// Input that is not FastCGI.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The version byte is not 1.
    #[error("FastCGI version {0} (only 1 exists)")]
    Version(u8),
    /// The connection failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Splits a byte stream into records. It never buffers more than one record (at most
/// 8 + 65,535 + 255 bytes) ahead: lengths on the wire are 16 and 8 bits, so a hostile peer
/// cannot make it allocate more.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordDecoder;

impl Decoder for RecordDecoder {
    type Item = Record;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Record>, DecodeError> {
        let Some(head) = src.get(..HEADER_LEN) else {
            src.reserve(HEADER_LEN);
            return Ok(None);
        };
        if head[0] != VERSION {
            return Err(DecodeError::Version(head[0]));
        }
        let kind = RecordType::from(head[1]);
        let id = u16::from_be_bytes([head[2], head[3]]);
        let content_len = usize::from(u16::from_be_bytes([head[4], head[5]]));
        let padding = usize::from(head[6]);
        let total = HEADER_LEN + content_len + padding;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        let content = src.split_to(content_len).freeze();
        src.advance(padding);
        Ok(Some(Record { kind, id, content }))
    }
}

/// Writes records, padded to a multiple of 8 as the spec recommends.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordEncoder;

impl Encoder<Record> for RecordEncoder {
    type Error = std::io::Error;

    fn encode(&mut self, record: Record, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        if record.content.len() > MAX_CONTENT {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a FastCGI record holds at most 65,535 bytes",
            ));
        }
        put_record(dst, record.kind, record.id, &record.content);
        Ok(())
    }
}

/// Appends one record of at most 65,535 bytes, padded to 8.
pub fn put_record(dst: &mut BytesMut, kind: RecordType, id: u16, content: &[u8]) {
    debug_assert!(content.len() <= MAX_CONTENT);
    let len = content.len().min(MAX_CONTENT);
    let padding = (8 - len % 8) % 8;
    dst.reserve(HEADER_LEN + len + padding);
    dst.put_slice(&[VERSION, kind.to_u8()]);
    dst.put_u16(id);
    dst.put_u16(len as u16);
    dst.put_slice(&[padding as u8, 0]);
    dst.put_slice(&content[..len]);
    dst.put_bytes(0, padding);
}

/// Appends `data` as a stream of records of `kind` (STDOUT, STDIN, PARAMS...), each at most
/// 65,535 bytes. Empty data appends nothing: the end of a stream is [`put_stream_end`].
pub fn put_stream(dst: &mut BytesMut, kind: RecordType, id: u16, data: &[u8]) {
    for chunk in data.chunks(MAX_CONTENT) {
        put_record(dst, kind, id, chunk);
    }
}

/// Appends the empty record that ends a stream.
pub fn put_stream_end(dst: &mut BytesMut, kind: RecordType, id: u16) {
    put_record(dst, kind, id, &[]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_padding_and_content() {
        let mut buf = BytesMut::new();
        put_record(&mut buf, RecordType::Stdout, 258, b"hello");
        assert_eq!(&buf[..8], &[1, 6, 1, 2, 0, 5, 3, 0]);
        assert_eq!(buf.len(), 16);
        let rec = RecordDecoder.decode(&mut buf).unwrap().unwrap();
        assert_eq!(rec, Record::new(RecordType::Stdout, 258, &b"hello"[..]));
        assert!(buf.is_empty());
    }

    #[test]
    fn any_padding_is_skipped() {
        let mut buf = BytesMut::from(&[1, 5, 0, 1, 0, 2, 255, 0][..]);
        buf.extend_from_slice(b"ab");
        buf.extend_from_slice(&[0xAA; 255]);
        buf.extend_from_slice(&[1, 5, 0, 1, 0, 0, 0, 0]);
        let a = RecordDecoder.decode(&mut buf).unwrap().unwrap();
        let b = RecordDecoder.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&a.content[..], b"ab");
        assert!(b.content.is_empty());
        assert!(RecordDecoder.decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn bad_version_is_an_error() {
        let mut buf = BytesMut::from(&[2, 1, 0, 1, 0, 0, 0, 0][..]);
        assert!(matches!(
            RecordDecoder.decode(&mut buf),
            Err(DecodeError::Version(2))
        ));
    }

    #[test]
    fn long_streams_split_at_65535() {
        let mut buf = BytesMut::new();
        put_stream(&mut buf, RecordType::Stdout, 1, &vec![7u8; 150_000]);
        let mut sizes = Vec::new();
        while let Some(r) = RecordDecoder.decode(&mut buf).unwrap() {
            sizes.push(r.content.len());
        }
        assert_eq!(sizes, [65_535, 65_535, 18_930]);
    }

    /// A stream as nginx sends it: every split of it decodes to the same records.
    #[test]
    fn a_request_split_at_every_byte_decodes_the_same() {
        let mut wire = BytesMut::new();
        let long = vec![b'v'; 300];
        crate::client::put_request(
            &mut wire,
            1,
            true,
            &[
                (b"SCRIPT_NAME", b"/x"),
                (b"HTTP_LONG", &long),
                (b"CONTENT_LENGTH", b"5"),
            ],
            b"hello",
        );
        let whole = decode_all(&mut wire.clone());
        assert_eq!(whole.len(), 5); // BEGIN, PARAMS, end of PARAMS, STDIN, end of STDIN
        for cut in 0..=wire.len() {
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for part in [&wire[..cut], &wire[cut..]] {
                buf.extend_from_slice(part);
                got.extend(decode_all(&mut buf));
            }
            assert_eq!(got, whole, "split at {cut}");
        }
    }

    fn decode_all(buf: &mut BytesMut) -> Vec<Record> {
        std::iter::from_fn(|| RecordDecoder.decode(buf).unwrap()).collect()
    }

    proptest::proptest! {
        #[test]
        fn records_round_trip(
            kind in 0u8..=255,
            id in proptest::prelude::any::<u16>(),
            content in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000),
        ) {
            let rec = Record::new(RecordType::from(kind), id, content);
            let mut buf = BytesMut::new();
            RecordEncoder.encode(rec.clone(), &mut buf).unwrap();
            proptest::prop_assert_eq!(buf.len() % 8, 0);
            proptest::prop_assert_eq!(RecordDecoder.decode(&mut buf).unwrap(), Some(rec));
            proptest::prop_assert!(buf.is_empty());
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = RecordDecoder.decode(&mut buf) {}
        }
    }

    #[test]
    fn oversized_records_are_refused_by_the_encoder() {
        let rec = Record::new(RecordType::Stdout, 1, vec![0u8; 65_536]);
        assert!(RecordEncoder.encode(rec, &mut BytesMut::new()).is_err());
    }
}
