//! The driver over real loopback sockets, one protocol rule per test: multiplexing,
//! GET_VALUES, UNKNOWN_TYPE, UNKNOWN_ROLE, aborts, KEEP_CONN, limits and malformed input.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use gateway_core::{App, Body, Environ, Response};
use proto_fastcgi::client::{self, Replies};
use proto_fastcgi::{
    BodyBudget, FastCgiConfig, ProtocolStatus, Record, RecordDecoder, RecordType, Role,
    decode_pairs, put_pair, put_record, serve_connection,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

/// The app under the driver: its path picks a behaviour.
struct TestApp {
    /// Told when a `/wait` call is dropped (cancelled).
    dropped: mpsc::UnboundedSender<()>,
}

struct OnDrop(mpsc::UnboundedSender<()>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

impl App for TestApp {
    async fn call(&self, env: Environ, mut body: Body) -> Response {
        match env.path_info() {
            b"/echo" => match body.to_bytes().await {
                Ok(data) => Response::new(200)
                    .with_header("X-Len", data.len().to_string())
                    .with_body(data),
                Err(e) => e.into(),
            },
            b"/env" => {
                let mut text = String::new();
                for (n, v) in env.iter() {
                    text.push_str(&format!(
                        "{}={}\n",
                        String::from_utf8_lossy(n),
                        String::from_utf8_lossy(v)
                    ));
                }
                Response::text(200, text)
            }
            b"/slow" => {
                tokio::time::sleep(Duration::from_millis(700)).await;
                Response::text(200, "slow")
            }
            b"/slow-reader" => {
                let mut total = 0;
                loop {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    match body.chunk().await {
                        Ok(Some(c)) => total += c.len(),
                        Ok(None) => break,
                        Err(e) => return e.into(),
                    }
                }
                Response::text(200, total.to_string())
            }
            b"/wait" => {
                let _guard = OnDrop(self.dropped.clone());
                std::future::pending::<()>().await;
                Response::new(200)
            }
            b"/big" => Response::new(200).with_body(vec![b'x'; 200_000]),
            b"/stream" => Response::new(200).with_body(Body::from_stream(
                futures_util::stream::iter(["one", "two", "three"].map(Ok::<_, std::io::Error>)),
            )),
            b"/stream-empty" => Response::new(200).with_body(Body::from_stream(
                futures_util::stream::iter(["one", "", "two"].map(Ok::<_, std::io::Error>)),
            )),
            _ => Response::error(404),
        }
    }
}

struct Server {
    addr: std::net::SocketAddr,
    dropped: mpsc::UnboundedReceiver<()>,
}

async fn server(cfg: FastCgiConfig) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, dropped) = mpsc::unbounded_channel();
    let app = Arc::new(TestApp { dropped: tx });
    let cfg = Arc::new(cfg);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(serve_connection(
                stream,
                app.clone(),
                cfg.clone(),
                CancellationToken::new(),
            ));
        }
    });
    Server { addr, dropped }
}

/// A raw client connection.
struct Conn {
    write: tokio::net::tcp::OwnedWriteHalf,
    frames: FramedRead<tokio::net::tcp::OwnedReadHalf, RecordDecoder>,
    replies: Replies,
}

impl Conn {
    async fn open(addr: std::net::SocketAddr) -> Conn {
        let (read, write) = TcpStream::connect(addr).await.unwrap().into_split();
        Conn {
            write,
            frames: FramedRead::new(read, RecordDecoder),
            replies: Replies::default(),
        }
    }

    async fn send(&mut self, buf: &[u8]) {
        self.write.write_all(buf).await.unwrap();
    }

    /// Reads records until `done` holds; panics after 5 s.
    async fn until(&mut self, done: impl Fn(&Replies) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done(&self.replies) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.frames.next()).await {
                Ok(Some(Ok(r))) => self.replies.push(r),
                Ok(other) => panic!("connection ended early: {other:?} with {:?}", self.replies),
                Err(_) => panic!("timed out with {:?}", self.replies),
            }
        }
    }

    /// Whether the server closes the connection within 2 s (records before that are kept).
    async fn closed(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.frames.next()).await {
                Ok(Some(Ok(r))) => self.replies.push(r),
                Ok(None) | Ok(Some(Err(_))) => return true,
                Err(_) => return false,
            }
        }
    }
}

fn request(id: u16, keep_conn: bool, path: &str, body: &[u8]) -> BytesMut {
    let mut buf = BytesMut::new();
    let len = body.len().to_string();
    let params: Vec<(&[u8], &[u8])> = vec![
        (b"REQUEST_METHOD", b"POST"),
        (b"REQUEST_URI", path.as_bytes()),
        (b"SCRIPT_NAME", path.as_bytes()),
        (b"CONTENT_LENGTH", len.as_bytes()),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    ];
    client::put_request(&mut buf, id, keep_conn, &params, body);
    buf
}

/// A multiplexing listener.
fn mux() -> FastCgiConfig {
    FastCgiConfig {
        max_requests: 16,
        ..FastCgiConfig::default()
    }
}

fn complete(replies: &Replies, id: u16) -> bool {
    replies.by_id[&id].end.map(|e| e.protocol_status) == Some(ProtocolStatus::RequestComplete)
}

#[tokio::test]
async fn a_request_gets_stdout_then_end_request() {
    let s = server(FastCgiConfig::default()).await;
    let mut c = Conn::open(s.addr).await;
    c.send(&request(1, true, "/echo", b"hello")).await;
    c.until(|r| r.ended(1)).await;
    let reply = &c.replies.by_id[&1];
    assert_eq!(reply.status(), Some(200));
    assert!(reply.head().unwrap().contains("X-Len: 5"));
    assert_eq!(&reply.body()[..], b"hello");
    assert!(reply.stdout_closed, "an empty STDOUT ends the stream");
    let end = reply.end.unwrap();
    assert_eq!(
        (end.app_status, end.protocol_status),
        (0, ProtocolStatus::RequestComplete)
    );
}

#[tokio::test]
async fn stdout_records_hold_at_most_65535_bytes() {
    let s = server(FastCgiConfig::default()).await;
    let mut c = Conn::open(s.addr).await;
    c.send(&request(1, true, "/big", b"")).await;
    let mut sizes = Vec::new();
    loop {
        let r = c.frames.next().await.unwrap().unwrap();
        if r.kind == RecordType::Stdout {
            sizes.push(r.content.len());
        }
        if r.kind == RecordType::EndRequest {
            break;
        }
    }
    assert!(sizes.iter().all(|&n| n <= 65_535), "{sizes:?}");
    assert!(sizes.iter().sum::<usize>() > 200_000);
    assert_eq!(sizes.last(), Some(&0));
}

#[tokio::test]
async fn streamed_bodies_arrive_in_order() {
    let s = server(FastCgiConfig::default()).await;
    let mut c = Conn::open(s.addr).await;
    c.send(&request(1, true, "/stream", b"")).await;
    c.until(|r| r.ended(1)).await;
    assert_eq!(&c.replies.by_id[&1].body()[..], b"onetwothree");
}

#[tokio::test]
async fn an_empty_chunk_in_a_streamed_body_is_not_the_end() {
    let s = server(FastCgiConfig::default()).await;
    let mut c = Conn::open(s.addr).await;
    c.send(&request(1, true, "/stream-empty", b"")).await;
    c.until(|r| r.ended(1)).await;
    assert_eq!(&c.replies.by_id[&1].body()[..], b"onetwo");
    assert!(!c.closed().await, "kept open");
}

#[tokio::test]
async fn params_straddling_records_and_repeated_headers() {
    let s = server(FastCgiConfig::default()).await;
    let mut c = Conn::open(s.addr).await;
    let mut pairs = BytesMut::new();
    put_pair(&mut pairs, b"REQUEST_URI", b"/env?q=1");
    put_pair(&mut pairs, b"CONTENT_TYPE", b"");
    put_pair(&mut pairs, b"HTTP_X_REPEAT", b"a");
    put_pair(&mut pairs, b"HTTP_X_REPEAT", b"b");
    put_pair(&mut pairs, b"HTTP_LONG", &[b'z'; 300]);
    let mut buf = BytesMut::new();
    client::put_begin(&mut buf, 1, Role::Responder, true);
    for byte in pairs.chunks(1) {
        put_record(&mut buf, RecordType::Params, 1, byte); // every pair straddles records
    }
    put_record(&mut buf, RecordType::Params, 1, &[]);
    put_record(&mut buf, RecordType::Stdin, 1, &[]);
    c.send(&buf).await;
    c.until(|r| r.ended(1)).await;
    let body = String::from_utf8(c.replies.by_id[&1].body().to_vec()).unwrap();
    assert!(body.contains("HTTP_X_REPEAT=a, b\n"), "{body}");
    assert!(
        body.contains(&format!("HTTP_LONG={}\n", "z".repeat(300))),
        "{body}"
    );
    assert!(body.contains("PATH_INFO=/env\n"), "{body}");
    assert!(body.contains("SCRIPT_NAME=\n"), "{body}");
    assert!(
        !body.contains("CONTENT_TYPE"),
        "an empty CONTENT_TYPE is absent: {body}"
    );
}

#[tokio::test]
async fn interleaved_requests_are_multiplexed() {
    let s = server(mux()).await;
    let mut c = Conn::open(s.addr).await;
    let a = request(1, true, "/slow", b"");
    let b = request(2, true, "/echo", b"second");
    let d = request(3, true, "/echo", b"third");
    // Interleave the three requests record by record.
    let split = |buf: &BytesMut| -> Vec<Record> {
        let mut buf = buf.clone();
        std::iter::from_fn(|| {
            tokio_util::codec::Decoder::decode(&mut RecordDecoder, &mut buf).unwrap()
        })
        .collect()
    };
    let (ra, rb, rd) = (split(&a), split(&b), split(&d));
    let mut wire = BytesMut::new();
    for i in 0..ra.len().max(rb.len()) {
        for rec in [ra.get(i), rb.get(i), rd.get(i)].into_iter().flatten() {
            put_record(&mut wire, rec.kind, rec.id, &rec.content);
        }
    }
    c.send(&wire).await;
    c.until(|r| r.ended(2) && r.ended(3)).await;
    assert!(
        !c.replies.ended(1),
        "the slow request did not hold up the others"
    );
    assert_eq!(&c.replies.by_id[&2].body()[..], b"second");
    assert_eq!(&c.replies.by_id[&3].body()[..], b"third");
    c.until(|r| r.ended(1)).await;
    assert_eq!(&c.replies.by_id[&1].body()[..], b"slow");
}

#[tokio::test]
async fn a_slow_body_reader_does_not_stall_its_neighbours() {
    let s = server(mux()).await;
    let mut c = Conn::open(s.addr).await;
    // Request 1's app reads 2 MB at one 64 KB chunk per 50 ms; request 2 comes after it.
    let big = vec![1u8; 2 << 20];
    let mut wire = request(1, true, "/slow-reader", &big);
    wire.extend_from_slice(&request(2, true, "/echo", b"quick"));
    let start = Instant::now();
    c.send(&wire).await;
    c.until(|r| r.ended(2)).await;
    assert!(
        start.elapsed() < Duration::from_millis(1000),
        "request 2 waited {:?}",
        start.elapsed()
    );
    assert!(!c.replies.ended(1));
    c.until(|r| r.ended(1)).await;
    assert_eq!(
        &c.replies.by_id[&1].body()[..],
        (2 << 20).to_string().as_bytes()
    );
}

/// Past the body budget a connection stops reading, but a request whose app waits for its
/// body still gets it: an app that never reads cannot stall one that does.
#[tokio::test]
async fn a_full_budget_stalls_no_app_that_reads() {
    let budget = Arc::new(BodyBudget::new(256 << 10));
    let s = server(FastCgiConfig {
        body_budget: budget.clone(),
        ..mux()
    })
    .await;
    // /wait never reads: four such bodies, each holding its share, fill the budget, and their
    // connections pause.
    let mut hogs = Vec::new();
    for _ in 0..4 {
        let mut hog = Conn::open(s.addr).await;
        let wire = request(1, true, "/wait", &vec![0u8; 1 << 20]);
        hogs.push(tokio::spawn(async move {
            let _ = hog.write.write_all(&wire).await;
            hog
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while budget.used() < 128 << 10 {
        assert!(
            Instant::now() < deadline,
            "the budget never filled: {}",
            budget.used()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A body eight times the budget, to an app that reads it, on another connection.
    let mut c = Conn::open(s.addr).await;
    let big = vec![7u8; 2 << 20];
    let wire = request(1, true, "/echo", &big);
    let (read, mut write) = (&mut c.frames, c.write);
    // The write half stays open (a FIN would say the web server is gone).
    let writer = tokio::spawn(async move { write.write_all(&wire).await.map(|()| write) });
    let mut replies = Replies::default();
    let done = tokio::time::timeout(Duration::from_secs(5), async {
        while !replies.ended(1) {
            replies.push(read.next().await.unwrap().unwrap());
        }
    })
    .await;
    assert!(
        done.is_ok(),
        "the reading app was stalled by the full budget"
    );
    let _write = writer.await.unwrap().unwrap();
    assert_eq!(replies.by_id[&1].body().len(), 2 << 20);
    assert!(
        budget.used() <= (256 << 10) + (64 << 10),
        "{}",
        budget.used()
    );
    drop(hogs);
}

/// One upload whose app does not read holds at most a quarter of the budget: the rest stays
/// for the other connections' bodies.
#[tokio::test]
async fn one_unread_body_holds_at_most_its_share() {
    let budget = Arc::new(BodyBudget::new(1 << 20));
    let s = server(FastCgiConfig {
        body_budget: budget.clone(),
        ..mux()
    })
    .await;
    let mut hog = Conn::open(s.addr).await;
    let wire = request(1, true, "/wait", &vec![0u8; 4 << 20]);
    let hog_write = tokio::spawn(async move {
        let _ = hog.write.write_all(&wire).await;
        hog
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let used = budget.used();
    assert!(used > 0 && used <= (256 << 10) + (16 << 10), "{used}");
    drop(hog_write);
}

/// A connection paused on the budget still drives its own apps: one that reads slowly frees
/// room for the rest of its body, and the requests behind it are served.
#[tokio::test]
async fn a_paused_connection_still_drives_its_apps() {
    let budget = Arc::new(BodyBudget::new(128 << 10));
    let s = server(FastCgiConfig {
        body_budget: budget.clone(),
        ..mux()
    })
    .await;
    let mut c = Conn::open(s.addr).await;
    let mut wire = request(1, true, "/slow-reader", &vec![1u8; 1 << 20]);
    wire.extend_from_slice(&request(2, true, "/echo", b"behind"));
    let (frames, mut write) = (&mut c.frames, c.write);
    // The write half stays open (a FIN would say the web server is gone).
    let writer = tokio::spawn(async move { write.write_all(&wire).await.map(|()| write) });
    let mut replies = Replies::default();
    let mut peak = 0;
    let done = tokio::time::timeout(Duration::from_secs(5), async {
        while !(replies.ended(1) && replies.ended(2)) {
            peak = peak.max(budget.used());
            replies.push(frames.next().await.unwrap().unwrap());
        }
    })
    .await;
    assert!(done.is_ok(), "stalled with {replies:?}");
    writer.await.unwrap().unwrap();
    assert_eq!(
        &replies.by_id[&1].body()[..],
        (1 << 20).to_string().as_bytes()
    );
    assert_eq!(&replies.by_id[&2].body()[..], b"behind");
    assert!(peak <= (128 << 10) + (64 << 10), "{peak} bytes held");
}

/// A body refused for disagreeing with CONTENT_LENGTH is still read to its end before the
/// connection closes, so that the web server, still sending, meets no reset.
#[tokio::test]
async fn a_refused_body_is_read_to_its_end() {
    let s = server(FastCgiConfig::default()).await;
    let c = Conn::open(s.addr).await;
    let mut wire = BytesMut::new();
    client::put_begin(&mut wire, 1, Role::Responder, false);
    client::put_params(
        &mut wire,
        1,
        &[(b"REQUEST_URI", b"/echo"), (b"CONTENT_LENGTH", b"10")],
    );
    // More than the kernel's socket buffers hold: the server must read it.
    proto_fastcgi::put_stream(&mut wire, RecordType::Stdin, 1, &vec![0u8; 40 << 20]);
    proto_fastcgi::put_stream_end(&mut wire, RecordType::Stdin, 1);
    let (mut frames, mut write) = (c.frames, c.write);
    let reader = tokio::spawn(async move {
        let mut replies = Replies::default();
        loop {
            match frames.next().await {
                Some(Ok(r)) => replies.push(r),
                None => return replies,
                Some(Err(e)) => panic!("{e} after {replies:?}"),
            }
        }
    });
    let sent = tokio::time::timeout(Duration::from_secs(5), write.write_all(&wire)).await;
    assert!(matches!(sent, Ok(Ok(()))), "{sent:?}");
    let replies = reader.await.unwrap();
    assert_eq!(replies.by_id[&1].status(), Some(400));
    assert!(replies.ended(1));
}

#[tokio::test]
async fn without_multiplexing_a_slow_app_pushes_back_on_the_web_server() {
    let s = server(FastCgiConfig::default()).await;
    let mut c = Conn::open(s.addr).await;
    // /wait never reads its body: the server must stop reading, so the client's write blocks
    // once the kernel's socket buffers (a few MB on loopback) are full.
    let body = vec![0u8; 40 << 20];
    let wire = request(1, true, "/wait", &body);
    let write = tokio::time::timeout(Duration::from_secs(2), c.write.write_all(&wire)).await;
    assert!(
        write.is_err(),
        "40 MB went through: the server buffered instead of pushing back"
    );
}

#[tokio::test]
async fn over_the_request_cap_is_overloaded_or_cant_mpx() {
    let s = server(FastCgiConfig {
        max_requests: 2,
        ..FastCgiConfig::default()
    })
    .await;
    let mut c = Conn::open(s.addr).await;
    let mut wire = BytesMut::new();
    for id in 1..=3 {
        client::put_begin(&mut wire, id, Role::Responder, true);
    }
    c.send(&wire).await;
    c.until(|r| r.ended(3)).await;
    assert_eq!(
        c.replies.by_id[&3].end.unwrap().protocol_status,
        ProtocolStatus::Overloaded
    );

    let s = server(FastCgiConfig {
        max_requests: 1,
        ..FastCgiConfig::default()
    })
    .await;
    let mut c = Conn::open(s.addr).await;
    let mut wire = BytesMut::new();
    client::put_begin(&mut wire, 1, Role::Responder, true);
    client::put_begin(&mut wire, 2, Role::Responder, true);
    c.send(&wire).await;
    c.until(|r| r.ended(2)).await;
    assert_eq!(
        c.replies.by_id[&2].end.unwrap().protocol_status,
        ProtocolStatus::CantMpxConn
    );
}

#[tokio::test]
async fn get_values_reports_the_configured_limits() {
    let cfg = FastCgiConfig {
        max_requests: 7,
        max_connections: 99,
        ..FastCgiConfig::default()
    };
    let s = server(cfg).await;
    let mut c = Conn::open(s.addr).await;
    let mut names = BytesMut::new();
    for name in [
        "FCGI_MAX_CONNS",
        "FCGI_MAX_REQS",
        "FCGI_MPXS_CONNS",
        "FCGI_UNHEARD_OF",
    ] {
        put_pair(&mut names, name.as_bytes(), b"");
    }
    let mut wire = BytesMut::new();
    put_record(&mut wire, RecordType::GetValues, 0, &names);
    c.send(&wire).await;
    c.until(|r| !r.management.is_empty()).await;
    let rec = &c.replies.management[0];
    assert_eq!((rec.kind, rec.id), (RecordType::GetValuesResult, 0));
    let pairs = decode_pairs(rec.content.clone()).unwrap();
    let b = |s: &'static str| Bytes::from_static(s.as_bytes());
    assert_eq!(
        pairs,
        [
            (b("FCGI_MAX_CONNS"), b("99")),
            (b("FCGI_MAX_REQS"), b("7")),
            (b("FCGI_MPXS_CONNS"), b("1"))
        ]
    );
}

#[tokio::test]
async fn unknown_types_get_unknown_type() {
    let s = server(FastCgiConfig::default()).await;
    let mut c = Conn::open(s.addr).await;
    let mut wire = BytesMut::new();
    put_record(&mut wire, RecordType::Other(42), 0, b"??");
    c.send(&wire).await;
    c.until(|r| !r.management.is_empty()).await;
    let rec = &c.replies.management[0];
    assert_eq!((rec.kind, rec.id), (RecordType::UnknownType, 0));
    assert_eq!(&rec.content[..], &[42, 0, 0, 0, 0, 0, 0, 0]);
}

#[tokio::test]
async fn other_roles_get_unknown_role_and_the_connection_lives() {
    let s = server(FastCgiConfig::default()).await;
    let mut c = Conn::open(s.addr).await;
    for (id, role) in [(1, Role::Authorizer), (2, Role::Filter)] {
        let mut wire = BytesMut::new();
        client::put_begin(&mut wire, id, role, true);
        c.send(&wire).await;
        c.until(|r| r.ended(id)).await;
        assert_eq!(
            c.replies.by_id[&id].end.unwrap().protocol_status,
            ProtocolStatus::UnknownRole
        );
    }
    c.send(&request(3, true, "/echo", b"still here")).await;
    c.until(|r| r.ended(3)).await;
    assert_eq!(&c.replies.by_id[&3].body()[..], b"still here");
}

#[tokio::test]
async fn abort_request_cancels_the_app_and_ends_the_request() {
    let mut s = server(FastCgiConfig::default()).await;
    let mut c = Conn::open(s.addr).await;
    c.send(&request(1, true, "/wait", b"")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut wire = BytesMut::new();
    put_record(&mut wire, RecordType::AbortRequest, 1, &[]);
    c.send(&wire).await;
    c.until(|r| r.ended(1)).await;
    assert!(complete(&c.replies, 1));
    tokio::time::timeout(Duration::from_secs(2), s.dropped.recv())
        .await
        .expect("app call dropped");
    // The id is free again and the connection serves on.
    c.replies = Replies::default();
    c.send(&request(1, true, "/echo", b"again")).await;
    c.until(|r| r.ended(1)).await;
    assert_eq!(&c.replies.by_id[&1].body()[..], b"again");
}

#[tokio::test]
async fn a_lost_connection_cancels_the_app() {
    let mut s = server(FastCgiConfig::default()).await;
    let mut c = Conn::open(s.addr).await;
    c.send(&request(1, true, "/wait", b"")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(c);
    tokio::time::timeout(Duration::from_secs(2), s.dropped.recv())
        .await
        .expect("app call dropped");
}

#[tokio::test]
async fn keep_conn_zero_closes_and_one_keeps() {
    let s = server(FastCgiConfig::default()).await;
    let mut c = Conn::open(s.addr).await;
    c.send(&request(1, false, "/echo", b"bye")).await;
    assert!(c.closed().await, "closed after END_REQUEST");
    assert!(complete(&c.replies, 1));
    assert_eq!(&c.replies.by_id[&1].body()[..], b"bye");

    let mut c = Conn::open(s.addr).await;
    for round in 0..3 {
        c.replies = Replies::default();
        c.send(&request(
            1,
            true,
            "/echo",
            format!("round {round}").as_bytes(),
        ))
        .await;
        c.until(|r| r.ended(1)).await;
    }
    assert!(!c.closed().await, "kept open");
}

#[tokio::test]
async fn malformed_input_closes_only_its_connection() {
    let s = server(FastCgiConfig::default()).await;
    let mut good = Conn::open(s.addr).await;
    let mut bad = Conn::open(s.addr).await;
    bad.send(&[9, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0])
        .await; // version 9
    assert!(bad.closed().await);
    let mut bad = Conn::open(s.addr).await;
    let mut wire = BytesMut::new();
    client::put_begin(&mut wire, 1, Role::Responder, true);
    client::put_begin(&mut wire, 1, Role::Responder, true); // an active id again
    bad.send(&wire).await;
    assert!(bad.closed().await);
    let mut bad = Conn::open(s.addr).await;
    bad.send(&[1, 1, 0, 1, 0, 2, 0, 0, 0, 1]).await; // BEGIN_REQUEST too short
    assert!(bad.closed().await);
    good.send(&request(1, true, "/echo", b"fine")).await;
    good.until(|r| r.ended(1)).await;
    assert_eq!(&good.replies.by_id[&1].body()[..], b"fine");
}

#[tokio::test]
async fn limits_have_clear_outcomes() {
    let cfg = FastCgiConfig {
        max_params_size: 1024,
        max_body_size: 1000,
        ..mux()
    };
    let s = server(cfg).await;
    let mut c = Conn::open(s.addr).await;
    // PARAMS over the cap: 431.
    let mut wire = BytesMut::new();
    let huge = vec![b'h'; 2000];
    client::put_begin(&mut wire, 1, Role::Responder, true);
    client::put_params(
        &mut wire,
        1,
        &[(b"REQUEST_URI", b"/echo"), (b"HTTP_HUGE", &huge)],
    );
    client::put_request(&mut wire, 2, true, &[(b"REQUEST_URI", b"/echo")], b"");
    put_record(&mut wire, RecordType::Stdin, 1, &[]);
    c.send(&wire).await;
    c.until(|r| r.ended(1) && r.ended(2)).await;
    assert_eq!(c.replies.by_id[&1].status(), Some(431));
    assert_eq!(c.replies.by_id[&2].status(), Some(200));
    // A declared body over the cap: 413 without the app; the body is still read and dropped.
    c.replies = Replies::default();
    c.send(&request(1, true, "/echo", &[0u8; 1500])).await;
    c.until(|r| r.ended(1)).await;
    assert_eq!(c.replies.by_id[&1].status(), Some(413));
    // An undeclared body over the cap: the app's read fails with 413.
    c.replies = Replies::default();
    let mut wire = BytesMut::new();
    client::put_request(
        &mut wire,
        1,
        true,
        &[(b"REQUEST_URI", b"/echo")],
        &[0u8; 1500],
    );
    c.send(&wire).await;
    c.until(|r| r.ended(1)).await;
    assert_eq!(c.replies.by_id[&1].status(), Some(413));
    // Truncated params: 400.
    c.replies = Replies::default();
    let mut wire = BytesMut::new();
    client::put_begin(&mut wire, 1, Role::Responder, true);
    put_record(&mut wire, RecordType::Params, 1, &[5, 5, b'A']);
    put_record(&mut wire, RecordType::Params, 1, &[]);
    put_record(&mut wire, RecordType::Stdin, 1, &[]);
    c.send(&wire).await;
    c.until(|r| r.ended(1)).await;
    assert_eq!(c.replies.by_id[&1].status(), Some(400));
}

#[tokio::test]
async fn a_silent_connection_or_stalled_head_times_out() {
    let cfg = FastCgiConfig {
        header_read_timeout: Duration::from_millis(300),
        ..FastCgiConfig::default()
    };
    let s = server(cfg).await;
    let mut silent = TcpStream::connect(s.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), silent.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "closed");
    let mut stalled = Conn::open(s.addr).await;
    let mut wire = BytesMut::new();
    client::put_begin(&mut wire, 1, Role::Responder, true);
    stalled.send(&wire).await;
    assert!(stalled.closed().await);
}

#[tokio::test]
async fn ended_requests_still_reading_their_stdin_are_bounded() {
    let s = server(mux()).await;
    let mut c = Conn::open(s.addr).await;
    // Each request sends more STDIN than its CONTENT_LENGTH and never ends the stream: it is
    // answered 400 and ended, and its id then waits for the rest of its STDIN.
    for id in 1..=80u16 {
        let mut wire = BytesMut::new();
        client::put_begin(&mut wire, id, Role::Responder, true);
        client::put_params(
            &mut wire,
            id,
            &[(b"REQUEST_URI", b"/echo"), (b"CONTENT_LENGTH", b"1")],
        );
        proto_fastcgi::put_stream(&mut wire, RecordType::Stdin, id, b"too long");
        c.send(&wire).await;
        c.until(|r| r.ended(id)).await;
    }
    let status = |id: u16| c.replies.by_id[&id].end.unwrap().protocol_status;
    assert_eq!(status(1), ProtocolStatus::RequestComplete);
    assert_eq!(c.replies.by_id[&1].status(), Some(400));
    // Past the bound, new requests are refused until those streams end.
    assert_eq!(status(80), ProtocolStatus::Overloaded);
    let mut wire = BytesMut::new();
    proto_fastcgi::put_stream_end(&mut wire, RecordType::Stdin, 1);
    wire.extend_from_slice(&request(81, true, "/echo", b"hi"));
    c.send(&wire).await;
    c.until(|r| r.ended(81)).await;
    assert!(complete(&c.replies, 81));
}
