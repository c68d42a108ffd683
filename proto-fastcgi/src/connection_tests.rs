//! The connection's rules on fake time: no sockets, no sleeps, no tasks.

use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::{Abortable, Aborted};
use tokio_util::codec::Decoder as _;

use super::*;
use crate::budget::BodyBudget;
use crate::client::{self, Replies};
use crate::codec::{RecordDecoder, put_stream, put_stream_end};

const HEAD: Duration = Duration::from_secs(10);
const KEEPALIVE: Duration = Duration::from_secs(20);

fn cfg(max_requests: usize) -> Arc<FastCgiConfig> {
    Arc::new(FastCgiConfig {
        max_requests,
        max_connections: 7,
        header_read_timeout: HEAD,
        keepalive_timeout: KEEPALIVE,
        ..FastCgiConfig::default()
    })
}

/// A connection, and the fake clock's zero.
fn open(max_requests: usize) -> (Connection, Instant) {
    let t0 = Instant::now();
    (Connection::new(cfg(max_requests), t0), t0)
}

fn feed(conn: &mut Connection, mut wire: BytesMut, now: Instant) {
    while let Some(record) = RecordDecoder.decode(&mut wire).expect("valid records") {
        conn.handle_record(record, now);
    }
    assert!(wire.is_empty());
}

/// What the connection wrote, as a web server reads it, and whether it half-closed.
fn written(conn: &mut Connection) -> (Replies, bool) {
    let mut wire = BytesMut::new();
    let mut half_closed = false;
    while let Some(t) = conn.poll_transmit() {
        match t {
            Transmit::Data(buf) => {
                assert!(!half_closed, "data after the half-close");
                wire.extend_from_slice(&buf);
            }
            Transmit::HalfClose => half_closed = true,
        }
    }
    let mut replies = Replies::default();
    while let Some(record) = RecordDecoder.decode(&mut wire).expect("valid records") {
        replies.push(record);
    }
    (replies, half_closed)
}

struct Started {
    id: u16,
    env: Environ,
    body: Body,
    stdin: StdinWatch,
    abort: AbortRegistration,
}

fn started(conn: &mut Connection) -> Vec<Started> {
    std::iter::from_fn(|| conn.poll_event())
        .map(|event| match event {
            Event::Start {
                id,
                env,
                body,
                stdin,
                abort,
            } => Started {
                id,
                env,
                body,
                stdin,
                abort,
            },
        })
        .collect()
}

fn begin(id: u16, keep_conn: bool) -> BytesMut {
    let mut wire = BytesMut::new();
    client::put_begin(&mut wire, id, Role::Responder, keep_conn);
    wire
}

fn head(id: u16, keep_conn: bool, uri: &str, content_length: Option<u64>) -> BytesMut {
    let mut wire = begin(id, keep_conn);
    let len = content_length.map(|n| n.to_string());
    let mut params: Vec<(&[u8], &[u8])> = vec![
        (b"REQUEST_METHOD", b"POST"),
        (b"REQUEST_URI", uri.as_bytes()),
    ];
    if let Some(len) = &len {
        params.push((b"CONTENT_LENGTH", len.as_bytes()));
    }
    client::put_params(&mut wire, id, &params);
    wire
}

fn stdin_record(id: u16, data: &[u8]) -> BytesMut {
    let mut wire = BytesMut::new();
    match data.is_empty() {
        true => put_stream_end(&mut wire, RecordType::Stdin, id),
        false => put_stream(&mut wire, RecordType::Stdin, id, data),
    }
    wire
}

fn request(id: u16, keep_conn: bool, body: &[u8]) -> BytesMut {
    let mut wire = head(id, keep_conn, "/r", Some(body.len() as u64));
    if !body.is_empty() {
        wire.extend_from_slice(&stdin_record(id, body));
    }
    wire.extend_from_slice(&stdin_record(id, b""));
    wire
}

/// What a finished app call hands back: the end of its STDOUT.
fn done(id: u16, text: &str) -> Done {
    let mut tail = BytesMut::new();
    put_stream(
        &mut tail,
        RecordType::Stdout,
        id,
        format!("Status: 200 OK\r\n\r\n{text}").as_bytes(),
    );
    put_stream_end(&mut tail, RecordType::Stdout, id);
    Done {
        id,
        tail: Some(tail),
    }
}

fn body_now(body: Body) -> Result<Bytes, gateway_core::BodyError> {
    body.to_bytes()
        .now_or_never()
        .expect("the body is all here")
}

fn status(replies: &Replies, id: u16) -> Option<ProtocolStatus> {
    replies.by_id.get(&id)?.end.map(|end| end.protocol_status)
}

#[test]
fn a_request_starts_its_app_and_ends_once_it_finishes() {
    let (mut conn, t0) = open(1);
    feed(&mut conn, request(1, true, b"hello"), t0);
    let [call] = started(&mut conn).try_into().ok().expect("one call");
    assert_eq!(call.id, 1);
    assert_eq!(call.env.request_uri(), Some(&b"/r"[..]));
    assert_eq!(body_now(call.body).unwrap(), "hello");
    assert!(call.stdin.mismatch().is_none());
    assert_eq!(
        written(&mut conn).0.by_id.len(),
        0,
        "nothing before the app ends"
    );
    conn.handle_finished(done(1, "hi"), t0);
    let (replies, half_closed) = written(&mut conn);
    assert_eq!(status(&replies, 1), Some(ProtocolStatus::RequestComplete));
    assert_eq!(&replies.by_id[&1].body()[..], b"hi");
    assert!(!half_closed && !conn.is_done(), "KEEP_CONN: kept");
}

#[test]
fn interleaved_requests_are_multiplexed() {
    let (mut conn, t0) = open(8);
    let mut wire = head(1, true, "/one", Some(6));
    wire.extend_from_slice(&head(2, true, "/two", Some(6)));
    for (id, part) in [(2, "two-"), (1, "one-"), (1, "1!"), (2, "2!")] {
        wire.extend_from_slice(&stdin_record(id, part.as_bytes()));
    }
    wire.extend_from_slice(&stdin_record(2, b""));
    wire.extend_from_slice(&stdin_record(1, b""));
    feed(&mut conn, wire, t0);
    let calls = started(&mut conn);
    assert_eq!(calls.iter().map(|c| c.id).collect::<Vec<_>>(), [1, 2]);
    let mut bodies = calls.into_iter().map(|c| body_now(c.body).unwrap());
    assert_eq!(bodies.next().unwrap(), "one-1!");
    assert_eq!(bodies.next().unwrap(), "two-2!");
    // They end in the order their apps finish.
    conn.handle_finished(done(2, "b"), t0);
    let (replies, _) = written(&mut conn);
    assert!(replies.ended(2) && !replies.ended(1));
    conn.handle_finished(done(1, "a"), t0);
    let (replies, _) = written(&mut conn);
    assert_eq!(&replies.by_id[&1].body()[..], b"a");
    assert!(!conn.is_done());
}

#[test]
fn abort_cancels_the_call_fails_the_body_and_ends_the_request_once() {
    let (mut conn, t0) = open(8);
    feed(&mut conn, head(1, true, "/r", None), t0);
    let [call] = started(&mut conn).try_into().ok().expect("one call");
    let mut abort = BytesMut::new();
    put_record(&mut abort, RecordType::AbortRequest, 1, &[]);
    feed(&mut conn, abort.clone(), t0);
    let (replies, _) = written(&mut conn);
    assert_eq!(status(&replies, 1), Some(ProtocolStatus::RequestComplete));
    let cancelled = Abortable::new(std::future::pending::<()>(), call.abort);
    assert_eq!(cancelled.now_or_never(), Some(Err(Aborted)));
    assert!(body_now(call.body).is_err(), "the app's read fails");
    // A late finish of the aborted call, and a second abort: nothing more.
    conn.handle_finished(done(1, "late"), t0);
    feed(&mut conn, abort, t0);
    assert!(written(&mut conn).0.by_id.is_empty());
    // An abort during PARAMS ends the request too; one on an unknown id is ignored.
    feed(&mut conn, begin(2, true), t0);
    let mut aborts = BytesMut::new();
    put_record(&mut aborts, RecordType::AbortRequest, 2, &[]);
    put_record(&mut aborts, RecordType::AbortRequest, 9, &[]);
    feed(&mut conn, aborts, t0);
    let (replies, _) = written(&mut conn);
    assert!(replies.ended(2) && !replies.by_id.contains_key(&9));
    assert!(started(&mut conn).is_empty() && !conn.is_done());
}

#[test]
fn abort_without_keep_conn_closes() {
    let (mut conn, t0) = open(1);
    feed(&mut conn, head(1, false, "/r", None), t0);
    let mut abort = BytesMut::new();
    put_record(&mut abort, RecordType::AbortRequest, 1, &[]);
    feed(&mut conn, abort, t0);
    assert!(written(&mut conn).0.ended(1));
    assert!(conn.is_done());
}

#[test]
fn keep_conn_zero_closes_after_the_request_and_one_keeps() {
    let (mut conn, t0) = open(1);
    feed(&mut conn, request(1, false, b"x"), t0);
    started(&mut conn);
    assert!(!conn.is_done(), "not before the request ends");
    conn.handle_finished(done(1, "bye"), t0);
    let (replies, half_closed) = written(&mut conn);
    assert!(replies.ended(1));
    assert!(!half_closed, "STDIN had ended: the connection just closes");
    assert!(conn.is_done());

    let (mut conn, t0) = open(1);
    for round in 0..3 {
        feed(&mut conn, request(1, true, b"x"), t0);
        assert_eq!(started(&mut conn).len(), 1, "round {round}");
        conn.handle_finished(done(1, "ok"), t0);
        assert!(written(&mut conn).0.ended(1));
        assert!(!conn.is_done());
    }
}

#[test]
fn ending_before_stdin_does_half_closes_and_reads_the_rest() {
    let (mut conn, t0) = open(1);
    feed(&mut conn, head(1, false, "/r", Some(10)), t0);
    feed(&mut conn, stdin_record(1, b"01234"), t0);
    let [call] = started(&mut conn).try_into().ok().expect("one call");
    drop(call.body); // the app answered without reading
    conn.handle_finished(done(1, "early"), t0);
    let (replies, half_closed) = written(&mut conn);
    assert!(replies.ended(1) && half_closed);
    assert!(!conn.is_done(), "the rest of STDIN is still coming");
    feed(&mut conn, stdin_record(1, b"56789"), t0);
    feed(&mut conn, stdin_record(1, b""), t0);
    assert!(conn.is_done());
    assert!(written(&mut conn).0.by_id.is_empty(), "ended exactly once");
}

#[test]
fn get_values_reports_the_configured_limits() {
    let (mut conn, t0) = open(4);
    let mut names = BytesMut::new();
    for name in [
        "FCGI_MAX_CONNS",
        "FCGI_MAX_REQS",
        "FCGI_MPXS_CONNS",
        "FCGI_OTHER",
    ] {
        put_pair(&mut names, name.as_bytes(), b"");
    }
    let mut wire = BytesMut::new();
    put_record(&mut wire, RecordType::GetValues, 0, &names);
    feed(&mut conn, wire, t0);
    let (replies, _) = written(&mut conn);
    let [result] = &replies.management[..] else {
        panic!("one reply: {:?}", replies.management);
    };
    assert_eq!(result.kind, RecordType::GetValuesResult);
    let pairs = decode_pairs(result.content.clone()).unwrap();
    let pairs: Vec<(&[u8], &[u8])> = pairs.iter().map(|(n, v)| (&n[..], &v[..])).collect();
    assert_eq!(
        pairs,
        [
            (&b"FCGI_MAX_CONNS"[..], &b"7"[..]),
            (b"FCGI_MAX_REQS", b"4"),
            (b"FCGI_MPXS_CONNS", b"1"),
        ]
    );
    assert!(!conn.is_done());
    // Off id 0 it is ignored; malformed, it closes the connection.
    let mut wire = BytesMut::new();
    put_record(&mut wire, RecordType::GetValues, 3, &names);
    feed(&mut conn, wire, t0);
    assert!(written(&mut conn).0.management.is_empty() && !conn.is_done());
    let mut wire = BytesMut::new();
    put_record(&mut wire, RecordType::GetValues, 0, &[5, 0, b'x']);
    feed(&mut conn, wire, t0);
    assert!(conn.is_done());
}

#[test]
fn unknown_types_get_unknown_type() {
    let (mut conn, t0) = open(1);
    let mut wire = BytesMut::new();
    put_record(&mut wire, RecordType::Other(42), 0, b"??");
    feed(&mut conn, wire, t0);
    let (replies, _) = written(&mut conn);
    let [reply] = &replies.management[..] else {
        panic!("one reply");
    };
    assert_eq!(reply.kind, RecordType::UnknownType);
    assert_eq!(&reply.content[..], &[42, 0, 0, 0, 0, 0, 0, 0]);
    assert!(!conn.is_done());
}

#[test]
fn other_roles_get_unknown_role_and_the_connection_lives() {
    let (mut conn, t0) = open(1);
    let mut wire = BytesMut::new();
    client::put_begin(&mut wire, 1, Role::Authorizer, true);
    feed(&mut conn, wire, t0);
    assert_eq!(
        status(&written(&mut conn).0, 1),
        Some(ProtocolStatus::UnknownRole)
    );
    assert!(started(&mut conn).is_empty() && !conn.is_done());
    feed(&mut conn, request(1, true, b""), t0);
    assert_eq!(started(&mut conn).len(), 1, "the id is free again");
}

#[test]
fn over_the_request_cap_is_cant_mpx_conn_or_overloaded() {
    let (mut conn, t0) = open(1);
    feed(&mut conn, head(1, true, "/r", None), t0);
    feed(&mut conn, begin(2, true), t0);
    assert_eq!(
        status(&written(&mut conn).0, 2),
        Some(ProtocolStatus::CantMpxConn)
    );
    let (mut conn, t0) = open(2);
    for id in 1..=2 {
        feed(&mut conn, head(id, true, "/r", None), t0);
    }
    feed(&mut conn, begin(3, true), t0);
    let (replies, _) = written(&mut conn);
    assert_eq!(status(&replies, 3), Some(ProtocolStatus::Overloaded));
    assert!(!replies.ended(1) && !replies.ended(2));
    assert_eq!(started(&mut conn).len(), 2);
    assert!(!conn.is_done());
}

#[test]
fn an_ended_requests_id_may_be_reused_an_active_one_may_not() {
    let (mut conn, t0) = open(1);
    // Ended before its STDIN did: the id waits for the rest, or for a new BEGIN_REQUEST.
    feed(&mut conn, head(1, true, "/old", Some(4)), t0);
    started(&mut conn);
    conn.handle_finished(done(1, "old"), t0);
    assert!(written(&mut conn).0.ended(1));
    feed(&mut conn, request(1, true, b"new!"), t0);
    let [call] = started(&mut conn)
        .try_into()
        .ok()
        .expect("the new request runs");
    assert_eq!(call.env.request_uri(), Some(&b"/r"[..]));
    assert_eq!(body_now(call.body).unwrap(), "new!");
    assert!(!conn.is_done());
    // BEGIN_REQUEST on a running id is a protocol error.
    feed(&mut conn, begin(1, true), t0);
    assert!(conn.is_done());
}

#[test]
fn stdin_before_the_end_of_params_is_a_400() {
    for (stream, ends) in [(&b"early"[..], false), (&b""[..], true)] {
        let (mut conn, t0) = open(1);
        feed(&mut conn, begin(1, true), t0);
        feed(&mut conn, stdin_record(1, stream), t0);
        let (replies, _) = written(&mut conn);
        assert_eq!(replies.by_id[&1].status(), Some(400));
        assert_eq!(status(&replies, 1), Some(ProtocolStatus::RequestComplete));
        assert!(started(&mut conn).is_empty());
        // Until its STDIN ends, the ended request stays on the head timer.
        let timer = conn.poll_timeout();
        match ends {
            true => assert_eq!(timer, Some(t0 + KEEPALIVE), "idle at once"),
            false => assert_eq!(timer, Some(t0 + HEAD), "still reading STDIN"),
        }
    }
}

#[test]
fn stdin_longer_or_shorter_than_content_length_fails_the_body() {
    let (mut conn, t0) = open(1);
    feed(&mut conn, head(1, true, "/r", Some(3)), t0);
    feed(&mut conn, stdin_record(1, b"four"), t0);
    let [call] = started(&mut conn).try_into().ok().expect("one call");
    assert_eq!(body_now(call.body).unwrap_err().status(), 400);
    assert!(call.stdin.mismatch().is_some(), "the answer becomes a 400");

    let (mut conn, t0) = open(1);
    feed(&mut conn, head(1, true, "/r", Some(10)), t0);
    feed(&mut conn, stdin_record(1, b"short"), t0);
    feed(&mut conn, stdin_record(1, b""), t0);
    let [call] = started(&mut conn).try_into().ok().expect("one call");
    assert_eq!(body_now(call.body).unwrap_err().status(), 400);
    assert!(call.stdin.mismatch().is_some());
}

#[test]
fn limits_are_answered_without_the_app() {
    let cfg = Arc::new(FastCgiConfig {
        max_params_size: 64,
        max_body_size: 100,
        ..FastCgiConfig::default()
    });
    let t0 = Instant::now();
    let mut conn = Connection::new(cfg, t0);
    let mut wire = begin(1, true);
    client::put_params(&mut wire, 1, &[(b"HTTP_X", &[b'a'; 100])]);
    feed(&mut conn, wire, t0);
    feed(&mut conn, head(2, true, "/r", Some(101)), t0);
    assert!(started(&mut conn).is_empty());
    let (replies, _) = written(&mut conn);
    assert_eq!(replies.by_id[&1].status(), Some(431));
    assert!(replies.ended(1));
    assert_eq!(replies.by_id[&2].status(), Some(413));
    assert!(replies.ended(2));
}

#[test]
fn a_silent_connection_times_out_after_the_head_timeout() {
    let (mut conn, t0) = open(1);
    assert_eq!(conn.poll_timeout(), Some(t0 + HEAD));
    conn.handle_timeout(t0 + HEAD - Duration::from_millis(1));
    assert!(!conn.is_done());
    conn.handle_timeout(t0 + HEAD);
    assert!(conn.is_done() && conn.poll_timeout().is_none());
}

#[test]
fn a_stalled_head_times_out_and_a_complete_one_stops_the_timer() {
    let (mut conn, t0) = open(8);
    let t1 = t0 + Duration::from_secs(3);
    feed(&mut conn, begin(1, true), t1);
    let t2 = t0 + Duration::from_secs(5);
    feed(&mut conn, begin(2, true), t2);
    assert_eq!(conn.poll_timeout(), Some(t1 + HEAD), "the oldest head");
    let mut end = BytesMut::new();
    client::put_params(&mut end, 1, &[(b"REQUEST_URI", b"/")]);
    feed(&mut conn, end, t2);
    assert_eq!(
        conn.poll_timeout(),
        Some(t2 + HEAD),
        "a running request has none"
    );
    conn.handle_timeout(t1 + HEAD);
    assert!(!conn.is_done());
    conn.handle_timeout(t2 + HEAD);
    assert!(conn.is_done());
}

#[test]
fn a_kept_connection_times_out_after_the_keepalive_timeout() {
    let (mut conn, t0) = open(1);
    feed(&mut conn, request(1, true, b""), t0);
    started(&mut conn);
    assert_eq!(
        conn.poll_timeout(),
        None,
        "a running app has all the time it needs"
    );
    let t1 = t0 + Duration::from_secs(100);
    conn.handle_finished(done(1, "ok"), t1);
    assert_eq!(conn.poll_timeout(), Some(t1 + KEEPALIVE));
    // A new request stops the wait; its end starts a new one.
    let t2 = t1 + Duration::from_secs(15);
    feed(&mut conn, request(1, true, b""), t2);
    started(&mut conn);
    conn.handle_timeout(t1 + KEEPALIVE);
    assert!(!conn.is_done());
    conn.handle_finished(done(1, "ok"), t2);
    conn.handle_timeout(t2 + KEEPALIVE - Duration::from_millis(1));
    assert!(!conn.is_done());
    conn.handle_timeout(t2 + KEEPALIVE);
    assert!(conn.is_done());
}

#[test]
fn ended_requests_still_reading_their_stdin_are_bounded() {
    let (mut conn, t0) = open(8);
    for id in 1..=MAX_FINISHING as u16 {
        let mut wire = head(id, true, "/r", Some(1));
        wire.extend_from_slice(&stdin_record(id, b"too long"));
        feed(&mut conn, wire, t0);
        let [call] = started(&mut conn).try_into().ok().expect("one call");
        assert!(call.stdin.mismatch().is_some());
        conn.handle_finished(done(id, "400"), t0);
    }
    let (replies, _) = written(&mut conn);
    assert_eq!(replies.by_id.len(), MAX_FINISHING);
    assert!(started(&mut conn).is_empty());
    feed(&mut conn, begin(100, true), t0);
    assert_eq!(
        status(&written(&mut conn).0, 100),
        Some(ProtocolStatus::Overloaded)
    );
    feed(&mut conn, stdin_record(1, b""), t0);
    feed(&mut conn, request(101, true, b"hi"), t0);
    assert_eq!(started(&mut conn).len(), 1);
}

#[test]
fn a_broken_response_closes_without_end_request() {
    let (mut conn, t0) = open(1);
    feed(&mut conn, request(1, true, b""), t0);
    started(&mut conn);
    conn.handle_finished(Done { id: 1, tail: None }, t0);
    assert!(conn.is_done());
    assert!(!written(&mut conn).0.ended(1), "the web server sees a cut");
}

#[test]
fn shutdown_waits_for_requests_in_flight() {
    let (mut conn, t0) = open(1);
    feed(&mut conn, request(1, true, b""), t0);
    started(&mut conn);
    conn.handle_shutdown();
    assert!(conn.is_draining() && !conn.is_done());
    conn.handle_finished(done(1, "ok"), t0);
    assert!(written(&mut conn).0.ended(1));
    assert!(conn.is_done());
}

#[test]
fn a_connection_whose_request_comes_after_the_shutdown_is_served() {
    // Accepted as the listener stopped (or taken from its backlog): nginx has connected and
    // its request is on the way. Closing now was a close before any header (a 502, or a
    // retry that marks the instance failed).
    let (mut conn, t0) = open(1);
    conn.handle_shutdown();
    assert!(
        !conn.is_done(),
        "waits for the request the web server is sending"
    );
    // It comes in pieces: each is taken, none ends the wait.
    feed(&mut conn, begin(1, false), t0);
    assert!(!conn.is_done());
    let mut rest = head(1, false, "/r", Some(0));
    let _ = rest.split_to(16); // BEGIN_REQUEST, fed above
    feed(&mut conn, rest, t0);
    feed(&mut conn, stdin_record(1, b""), t0);
    assert_eq!(started(&mut conn).len(), 1);
    assert!(!conn.is_done());
    conn.handle_finished(done(1, "ok"), t0);
    assert!(written(&mut conn).0.ended(1), "answered");
    assert!(conn.is_done(), "then closed");
}

#[test]
fn a_silent_connection_drains_on_the_head_timeout() {
    let (mut conn, t0) = open(1);
    conn.handle_shutdown();
    assert_eq!(conn.poll_timeout(), Some(t0 + HEAD));
    conn.handle_timeout(t0 + HEAD);
    assert!(conn.is_done());
}

#[test]
fn an_idle_kept_connection_closes_at_the_shutdown() {
    let (mut conn, t0) = open(1);
    feed(&mut conn, request(1, true, b""), t0);
    started(&mut conn);
    conn.handle_finished(done(1, "ok"), t0);
    assert!(written(&mut conn).0.ended(1));
    assert!(!conn.is_done(), "kept for the next request");
    conn.handle_shutdown();
    assert!(conn.is_done());
}

#[test]
fn a_full_stdin_queue_pauses_reading_until_the_app_reads() {
    let (mut conn, t0) = open(1);
    feed(&mut conn, head(1, true, "/r", None), t0);
    let [call] = started(&mut conn).try_into().ok().expect("one call");
    let record = vec![0u8; 60_000];
    let mut pushed = 0;
    while conn.read_gate().is_none() {
        feed(&mut conn, stdin_record(1, &record), t0);
        pushed += 1;
        assert!(pushed < 100, "the queue never filled");
    }
    let gate = conn.read_gate().expect("paused");
    let mut gate = Box::pin(gate);
    assert!((&mut gate).now_or_never().is_none());
    let mut body = call.body;
    while (&mut gate).now_or_never().is_none() {
        body.chunk().now_or_never().expect("queued").unwrap();
    }
    assert!(conn.read_gate().is_none(), "reading goes on");
}

#[test]
fn past_the_body_budget_a_record_is_held_until_there_is_room() {
    let record = vec![0u8; 65535];
    let cfg = Arc::new(FastCgiConfig {
        max_requests: 8,
        // Room for one record: the second of the other request waits.
        body_budget: Arc::new(BodyBudget::new(record.len() as u64 + 64)),
        ..FastCgiConfig::default()
    });
    let t0 = Instant::now();
    let mut conn = Connection::new(cfg, t0);
    feed(&mut conn, head(1, true, "/r", None), t0);
    feed(&mut conn, head(2, true, "/r", None), t0);
    let mut calls = started(&mut conn).into_iter();
    let (mut one, _two) = (calls.next().unwrap().body, calls.next().unwrap().body);
    feed(&mut conn, stdin_record(1, &record), t0);
    assert!(conn.read_gate().is_none());
    feed(&mut conn, stdin_record(2, &record), t0);
    let mut gate = Box::pin(conn.read_gate().expect("held"));
    assert!((&mut gate).now_or_never().is_none());
    one.chunk().now_or_never().expect("queued").unwrap();
    assert!(gate.now_or_never().is_some(), "room once request 1 read");
    assert!(conn.read_gate().is_none(), "the held record is queued");
}
