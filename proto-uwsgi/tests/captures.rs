//! The requests real web servers sent (the fuzz seeds `fuzz/capture-seeds.sh uwsgi` captured
//! from nginx 1.22's stock uwsgi_params, Apache 2.4 mod_proxy_uwsgi and lighttpd 1.4
//! `scgi.protocol = "uwsgi"`) parse whole, with the body after them.

use bytes::Bytes;

#[test]
fn every_captured_request_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/uwsgi");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let wire = Bytes::from(std::fs::read(&path).unwrap());
        let head = proto_uwsgi::parse(&wire, 64 << 10)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .unwrap_or_else(|| panic!("{name}: incomplete"));
        let body = &wire[head.len..];
        assert_eq!(body.len() as u64, head.content_length, "{name}");
        let env = &head.environ;
        match env.method() {
            "GET" => {
                assert_eq!(env.path_info(), b"/get", "{name}");
                assert_eq!(env.query_string(), b"x=1&y=%20", "{name}");
                assert_eq!(env.header("cookie"), Some(&b"a=1"[..]), "{name}");
            }
            "POST" => {
                assert_eq!(env.path_info(), b"/post", "{name}");
                assert_eq!(body, b"name=gatewayd&lang=rust", "{name}");
            }
            other => panic!("{name}: {other}"),
        }
        seen.push(name);
    }
    seen.sort();
    for peer in ["apache", "lighttpd", "nginx"] {
        assert_eq!(
            seen.iter().filter(|n| n.starts_with(peer)).count(),
            2,
            "{seen:?}"
        );
    }
}
