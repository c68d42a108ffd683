"""One WSGI app per PEP 3333 rule that gateway-wsgi's tests check (tests/pep3333.rs).

`closes` answers how many times each app's result was closed, so a test can check that
close() ran exactly once.
"""

import io
import json
import os
import sys
import tempfile
import threading
import time

CLOSED = {}
_lock = threading.Lock()


def _closed(name):
    """Counts a close() of `name`; a test that runs the app under wsgiref.validate too tells
    the two apart by its query string."""
    with _lock:
        CLOSED[name] = CLOSED.get(name, 0) + 1


class Result:
    """An iterable result with close(), as PEP 3333 describes."""

    def __init__(self, environ, name, items, start_response=None, status=None, fail_at=None,
                 slow=0):
        self.name, self.items = f"{name}?{environ.get('QUERY_STRING', '')}", items
        self.start_response, self.status = start_response, status
        self.fail_at, self.slow = fail_at, slow

    def __iter__(self):
        for i, item in enumerate(self.items):
            if i == 0 and self.start_response is not None:
                self.start_response(self.status, [("Content-Type", "text/plain")])
            if self.fail_at == i:
                raise RuntimeError(f"failing at item {i}")
            if self.slow:
                time.sleep(self.slow)
            yield item

    def close(self):
        _closed(self.name)


def closes(environ, start_response):
    name = environ.get("QUERY_STRING", "")
    body = json.dumps(CLOSED.get(name + "?", 0)).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def write(environ, start_response):
    """write() data goes before the iterable's."""
    w = start_response("200 OK", [("Content-Type", "text/plain")])
    w(b"written-1;")
    w(b"written-2;")
    return [b"iterated"]


def exc_info_replace(environ, start_response):
    """An error before the head is sent: the new head replaces the pending one."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("oops")
    except ValueError:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")],
                       sys.exc_info())
    return [b"replaced"]


def exc_info_after_head(environ, start_response):
    """An error after the head is sent: start_response re-raises, the connection is cut."""
    w = start_response("200 OK", [("Content-Type", "text/plain")])
    w(b"partial")
    try:
        raise ValueError("late")
    except ValueError:
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")],
                       sys.exc_info())
    return [b"never"]


def second_start_without_exc_info(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"never"]


def late_start(environ, start_response):
    """start_response during the first iteration (CKAN does this)."""
    return Result(environ, "late_start", [b"late ", b"start"], start_response, "201 Created")


def generator_close(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Result(environ, "generator_close", [b"a", b"", b"b", b"c"])


def raise_in_iteration(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Result(environ, "raise_in_iteration", [b"first", b"second"], fail_at=1)


def raise_before_first(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Result(environ, "raise_before_first", [b"x"], fail_at=0)


def slow_stream(environ, start_response):
    """Many items, slowly: a client that leaves mid-stream must still close() it."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Result(environ, "slow_stream", [b"x" * 1000] * 1000, slow=0.01)


def raise_before_head(environ, start_response):
    raise KeyError("secret-detail")


def file_wrapper(environ, start_response):
    """A real file, from its current position, cut at Content-Length."""
    f = tempfile.TemporaryFile()
    f.write(b"skip:" + b"0123456789" * 10000)
    f.seek(5)
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", "50000")])
    return environ["wsgi.file_wrapper"](f, 4096)


class _Closing(io.BytesIO):
    name = "file_wrapper_filelike"

    def close(self):
        _closed(self.name)
        super().close()


def file_wrapper_filelike(environ, start_response):
    """A file-like object with no descriptor: read in blksize chunks, closed once."""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    f = _Closing(b"abc" * 1000)
    f.name = f"file_wrapper_filelike?{environ.get('QUERY_STRING', '')}"
    return environ["wsgi.file_wrapper"](f, 7)


def readline(environ, start_response):
    """readline(size), readline(), readlines(hint), read(n), read() and iteration, in turn."""
    inp = environ["wsgi.input"]
    parts = [[inp.readline(3)], [inp.readline()], inp.readlines(1), [inp.read(4)]]
    rest = list(inp)
    parts += [rest, [inp.read()], [inp.readline()]]
    body = json.dumps([[p.decode("latin-1") for p in part] for part in parts]).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def read_all(environ, start_response):
    """The whole body in bounded reads; answers its length and a checksum."""
    import hashlib

    h, n = hashlib.sha256(), 0
    while True:
        chunk = environ["wsgi.input"].read(65536)
        if not chunk:
            break
        h.update(chunk)
        n += len(chunk)
    body = f"{n} {h.hexdigest()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def latin1(environ, start_response):
    """Every environ value is a str whose latin-1 encoding is the bytes that came in."""
    assert all(isinstance(k, str) and (isinstance(v, str) or k.startswith("wsgi."))
               for k, v in environ.items())
    raw = environ["PATH_INFO"].encode("latin-1") + b"|" + environ["HTTP_X_RAW"].encode("latin-1")
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("X-Latin1", "caf\u00e9")])
    return [raw]


def environ_keys(environ, start_response):
    keys = {k: (v if isinstance(v, (str, bool, int, tuple)) else type(v).__name__)
            for k, v in environ.items()}
    keys["wsgi.input.methods"] = [m for m in ("read", "readline", "readlines", "__iter__")
                                  if hasattr(environ["wsgi.input"], m)]
    environ["wsgi.errors"].write("a line for the log\n")
    environ["wsgi.errors"].writelines(["two ", "parts\n"])
    environ["wsgi.errors"].flush()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(keys).encode()]


def bad_status(environ, start_response):
    start_response("200", [])
    return [b""]


def hop_by_hop(environ, start_response):
    start_response("200 OK", [("Connection", "close")])
    return [b""]


def bad_header_type(environ, start_response):
    start_response("200 OK", [("X-A", 1)])
    return [b""]


def str_body(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["not bytes"]


def no_start(environ, start_response):
    return [b"no head"]


def empty_generator(environ, start_response):
    start_response("204 No Content", [])
    return iter([])


def many_items(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"a" * 2000, b"b" * 10, b"", b"c" * 5000]


def sleep(environ, start_response):
    time.sleep(float(environ.get("QUERY_STRING") or "1"))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"slept"]


def pid(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]


def iter_with_length(environ, start_response):
    """An iterable (as Flask and Django return) whose Content-Length the head gives."""
    parts = [b"hello ", b"world"] if environ.get("QUERY_STRING") == "two" else [b"hello world"]
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "11")])
    return iter(parts)


def slow_first(environ, start_response):
    """A body whose first item takes 2 s: past a 1 s request_timeout the client has its 504,
    and the result must still be closed once the thread gets there."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Result(environ, "slow_first", [b"late"], slow=2)


def segfault(environ, start_response):
    """A C extension that crashes: the process dies by SIGSEGV."""
    import ctypes

    ctypes.string_at(0)


def exit_now(environ, start_response):
    """os._exit: the process ends without unwinding."""
    os._exit(1)


def printing(environ, start_response):
    """print() from an app: to the log, never into the response (CGI's stdout)."""
    print("printed by the app")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"answer"]
