"""A plain WSGI app (PEP 3333, no framework): what gatewayd's `wsgi` type runs.

Run it: cargo run --release -- serve --config configs/wsgi.toml
        curl 127.0.0.1:8082/app/            the page, its links under the mount
        curl -d 'hello' 127.0.0.1:8082/app/echo
        curl 127.0.0.1:8082/app/stream      a generator, sent as it yields
"""

import json
import threading

_lock = threading.Lock()
_entries = []


def application(environ, start_response):
    path = environ.get("PATH_INFO", "") or "/"
    base = environ.get("SCRIPT_NAME", "")
    if path == "/":
        with _lock:
            items = "".join(f"<li>{e}</li>" for e in _entries[-20:])
        body = (
            f"<h1>Guestbook</h1><ul>{items}</ul>"
            f'<p><a href="{base}/environ">environ</a> '
            f'<a href="{base}/stream">stream</a></p>'
        ).encode()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/echo":
        data = environ["wsgi.input"].read()
        with _lock:
            _entries.append(data.decode("utf-8", "replace")[:200])
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [data]
    if path == "/environ":
        env = {k: v for k, v in environ.items() if isinstance(v, (str, bool, tuple))}
        body = json.dumps(env, indent=1, sort_keys=True).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (f"line {i}\n".encode() for i in range(5))
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]
