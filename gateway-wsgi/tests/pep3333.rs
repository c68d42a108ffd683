//! Each PEP 3333 rule against its own app (tests/apps/rules.py), called as a gatewayd app with
//! no gateway in between; and each app again under `wsgiref.validate`.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use gateway_core::{App, Body, Environ, Protocol, Response};
use gateway_wsgi::{WsgiApp, WsgiConfig};

const APPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps");

fn load(module: &str) -> WsgiApp {
    let cfg = WsgiConfig::new(module).python_path([APPS]).threads(2);
    WsgiApp::load("test", &cfg).unwrap_or_else(|e| panic!("{module}: {e}"))
}

/// One app per callable, loaded once per test binary.
fn app(callable: &str) -> &'static WsgiApp {
    static APPS: OnceLock<std::sync::Mutex<Vec<(String, &'static WsgiApp)>>> = OnceLock::new();
    let mut apps = APPS.get_or_init(Default::default).lock().unwrap();
    if let Some((_, a)) = apps.iter().find(|(n, _)| n == callable) {
        return a;
    }
    let a: &'static WsgiApp = Box::leak(Box::new(load(callable)));
    apps.push((callable.to_string(), a));
    a
}

fn environ(path: &[u8], query: &str) -> Environ {
    environ_for(Protocol::Http, path, query)
}

fn environ_for(protocol: Protocol, path: &[u8], query: &str) -> Environ {
    let mut env = Environ::new(protocol);
    for (k, v) in [
        ("REQUEST_METHOD", "GET"),
        ("SCRIPT_NAME", ""),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REMOTE_ADDR", "127.0.0.1"),
    ] {
        env.insert(k, v);
    }
    env.insert("PATH_INFO", path.to_vec());
    env.insert("QUERY_STRING", query.to_string());
    env
}

async fn call(callable: &str, query: &str, body: Body) -> Response {
    app(callable).call(environ(b"/", query), body).await
}

/// Status and whole body; `Err` when the body was cut.
async fn fetch(callable: &str) -> (u16, Result<Bytes, String>) {
    // The query string keeps apart the close() counts of the validated runs.
    let query = if callable.starts_with("validated:") {
        "validated"
    } else {
        ""
    };
    let res = call(callable, query, Body::empty()).await;
    (
        res.status,
        res.body.to_bytes().await.map_err(|e| e.to_string()),
    )
}

async fn closes(name: &str) -> u64 {
    let res = call("rules:closes", name, Body::empty()).await;
    let body = res.body.to_bytes().await.unwrap();
    String::from_utf8_lossy(&body).parse().unwrap()
}

/// Waits for the app's thread to have closed the result (it does so after the last send).
async fn closed_once(name: &str) {
    for _ in 0..200 {
        if closes(name).await >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(closes(name).await, 1, "{name}: close() calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_data_goes_before_the_iterables() {
    let (status, body) = fetch("rules:write").await;
    assert_eq!(
        (status, body.unwrap()),
        (200, Bytes::from("written-1;written-2;iterated"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exc_info_replaces_a_head_not_yet_sent() {
    let (status, body) = fetch("rules:exc_info_replace").await;
    assert_eq!((status, body.unwrap()), (503, Bytes::from("replaced")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exc_info_after_the_head_reraises_and_cuts_the_response() {
    let res = call("rules:exc_info_after_head", "", Body::empty()).await;
    assert_eq!(res.status, 200);
    assert!(
        res.body.to_bytes().await.is_err(),
        "the body must end in an error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_start_response_without_exc_info_is_an_error() {
    assert_eq!(fetch("rules:second_start_without_exc_info").await.0, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_response_may_come_during_the_first_iteration() {
    let (status, body) = fetch("rules:late_start").await;
    assert_eq!((status, body.unwrap()), (201, Bytes::from("late start")));
    closed_once("late_start").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iterable_streams_and_is_closed_once() {
    let (status, body) = fetch("rules:generator_close").await;
    assert_eq!((status, body.unwrap()), (200, Bytes::from("abc")));
    closed_once("generator_close").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exception_mid_stream_cuts_the_response_and_closes() {
    let res = call("rules:raise_in_iteration", "", Body::empty()).await;
    assert_eq!(res.status, 200);
    assert!(res.body.to_bytes().await.is_err());
    closed_once("raise_in_iteration").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exception_before_the_first_item_is_a_500_and_closes() {
    assert_eq!(fetch("rules:raise_before_first").await.0, 500);
    closed_once("raise_before_first").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_stream_gets_the_result_closed() {
    let mut res = call("rules:slow_stream", "", Body::empty()).await;
    assert_eq!(res.status, 200);
    assert!(res.body.chunk().await.unwrap().is_some());
    drop(res);
    closed_once("slow_stream").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exception_before_the_head_is_a_500_without_its_details() {
    let (status, body) = fetch("rules:raise_before_head").await;
    assert_eq!(status, 500);
    assert!(!String::from_utf8_lossy(&body.unwrap()).contains("secret-detail"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_wrapper_sends_the_file_from_its_position_up_to_content_length() {
    let res = call("rules:file_wrapper", "", Body::empty()).await;
    assert_eq!(res.status, 200);
    let body = res.body.to_bytes().await.unwrap();
    assert_eq!(body.len(), 50_000);
    assert_eq!(&body[..], "0123456789".repeat(5000).as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_wrapper_of_a_file_like_object_reads_it_and_closes_it() {
    let (status, body) = fetch("rules:file_wrapper_filelike").await;
    assert_eq!(
        (status, body.unwrap()),
        (200, Bytes::from("abc".repeat(1000)))
    );
    // Closed by the app's thread after its last send, which may come after the body ends here.
    closed_once("file_wrapper_filelike").await;
}

fn chunked(chunks: &[&'static str]) -> Body {
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        chunks.iter().map(|c| Ok(Bytes::from(*c))).collect();
    Body::from_stream(futures_util::stream::iter(chunks))
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wsgi_input_reads_lines_sizes_and_iterates() {
    // Chunks that split lines, so reads cross chunk boundaries.
    let body = chunked(&[
        "ab",
        "cdef\nli",
        "ne2\nline3\n",
        "wxyz",
        "tail1\ntail2\n",
        "end",
    ]);
    let res = call("rules:readline", "", body).await;
    assert_eq!(
        json(&res.body.to_bytes().await.unwrap()),
        serde_json::json!([
            ["abc"],
            ["def\n"],
            ["line2\n"],
            ["line"],
            ["3\n", "wxyztail1\n", "tail2\n", "end"],
            [""],
            [""]
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_streams_through_bounded_reads() {
    const MIB: usize = 1 << 20;
    let chunks = (0..64u8).map(|i| Ok::<_, std::io::Error>(Bytes::from(vec![i; MIB])));
    let body = Body::from_stream(futures_util::stream::iter(chunks));
    let res = call("rules:read_all", "", body).await;
    let text = res.body.to_bytes().await.unwrap();
    let text = String::from_utf8_lossy(&text);
    assert!(text.starts_with(&format!("{} ", 64 * MIB)), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_round_trip_through_latin1_strings() {
    let mut env = environ(b"/caf\xc3\xa9/\xff", "");
    env.insert("HTTP_X_RAW", &b"\xe9\x80 ok"[..]);
    let res = app("rules:latin1").call(env, Body::empty()).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("x-latin1"), Some(&b"caf\xe9"[..]));
    let body = res.body.to_bytes().await.unwrap();
    assert_eq!(&body[..], b"/caf\xc3\xa9/\xff|\xe9\x80 ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environ_has_the_wsgi_keys() {
    for (protocol, run_once) in [(Protocol::Http, false), (Protocol::Cgi, true)] {
        let env = environ_for(protocol, b"/", "");
        let res = app("rules:environ_keys").call(env, Body::empty()).await;
        let keys = json(&res.body.to_bytes().await.unwrap());
        assert_eq!(keys["wsgi.version"], serde_json::json!([1, 0]));
        assert_eq!(keys["wsgi.url_scheme"], "http");
        assert_eq!(keys["wsgi.multithread"], true);
        assert_eq!(keys["wsgi.multiprocess"], false);
        assert_eq!(keys["wsgi.run_once"], run_once);
        assert_eq!(keys["wsgi.input_terminated"], true);
        assert_eq!(keys["wsgi.file_wrapper"], "type");
        assert_eq!(keys["wsgi.errors"], "Errors");
        assert_eq!(
            keys["wsgi.input.methods"],
            serde_json::json!(["read", "readline", "readlines", "__iter__"])
        );
        assert_eq!(keys["REQUEST_METHOD"], "GET");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_or_body_against_the_pep_is_a_500() {
    for app in [
        "bad_status",
        "hop_by_hop",
        "bad_header_type",
        "str_body",
        "no_start",
    ] {
        assert_eq!(fetch(&format!("rules:{app}")).await.0, 500, "{app}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_iterable_sends_the_head_alone() {
    let (status, body) = fetch("rules:empty_generator").await;
    assert_eq!((status, body.unwrap()), (204, Bytes::new()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_is_sent_whole_with_its_length() {
    let res = call("rules:many_items", "", Body::empty()).await;
    assert_eq!(res.body.exact_len(), Some(7010));
    let body = res.body.to_bytes().await.unwrap();
    assert_eq!(
        body,
        ["a".repeat(2000), "b".repeat(10), "c".repeat(5000)].concat()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_app_passes_wsgiref_validate() {
    for (name, status, body) in [
        ("write", 200, Some("written-1;written-2;iterated")),
        ("late_start", 201, Some("late start")),
        ("generator_close", 200, Some("abc")),
        ("file_wrapper", 200, None),
        ("file_wrapper_filelike", 200, None),
        ("exc_info_replace", 503, Some("replaced")),
        ("empty_generator", 204, Some("")),
        ("many_items", 200, None),
        ("environ_keys", 200, None),
    ] {
        let (got, data) = fetch(&format!("validated:{name}")).await;
        assert_eq!(got, status, "{name}");
        let data = data.unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Some(body) = body {
            assert_eq!(data, body, "{name}");
        }
    }
    let mut env = environ(b"/caf\xc3\xa9/\xff", "");
    env.insert("HTTP_X_RAW", &b"\xe9"[..]);
    assert_eq!(
        app("validated:latin1")
            .call(env, Body::empty())
            .await
            .status,
        200
    );
    let body = chunked(&["some ", "body"]);
    let res = call("validated:read_all", "", body).await;
    assert_eq!(res.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_does_not_hold_up_the_others() {
    let slow = tokio::spawn(call("rules:sleep", "2", Body::empty()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fast = fetch("rules:pid").await;
    assert_eq!(fast.0, 200);
    assert!(
        !slow.is_finished(),
        "the fast request waited for the slow one"
    );
    assert_eq!(slow.await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503() {
    let mut cfg = WsgiConfig::new("rules:sleep")
        .python_path([APPS])
        .threads(1);
    cfg.queue = 1;
    let app = std::sync::Arc::new(WsgiApp::load("queue", &cfg).unwrap());
    let env = || {
        let mut e = environ(b"/", "0.5");
        e.insert("QUERY_STRING", "0.5");
        e
    };
    let busy = tokio::spawn({
        let app = app.clone();
        async move { app.call(env(), Body::empty()).await.status }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let queued = tokio::spawn({
        let app = app.clone();
        async move { app.call(env(), Body::empty()).await.status }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(app.call(env(), Body::empty()).await.status, 503);
    assert_eq!((busy.await.unwrap(), queued.await.unwrap()), (200, 200));
}

#[test]
fn load_errors_name_the_cause_with_the_traceback() {
    let err = |module: &str| match WsgiApp::load("t", &WsgiConfig::new(module).python_path([APPS]))
    {
        Ok(_) => panic!("{module} loaded"),
        Err(e) => e.to_string(),
    };
    let e = err("no_such_module");
    assert!(e.starts_with("module \"no_such_module\" not found"), "{e}");
    assert!(e.contains("ModuleNotFoundError"), "{e}");
    let e = err("rules:no_such_app");
    assert!(
        e.starts_with("module \"rules\" has no attribute \"no_such_app\""),
        "{e}"
    );
    assert!(e.contains("AttributeError"), "{e}");
    let e = err("not_callable");
    assert_eq!(e, "not_callable:application is a int, not a callable");
    let e = err("broken_import");
    assert!(
        e.starts_with("importing module \"broken_import\" raised an exception"),
        "{e}"
    );
    assert!(e.contains("Traceback (most recent call last)"), "{e}");
    assert!(
        e.contains("RuntimeError: this module fails on import"),
        "{e}"
    );
    assert!(err("a:b:c").contains("is not"), "a:b:c");
}
