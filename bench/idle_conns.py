"""Opens N keep-alive connections to an HTTP server, makes one request on each and holds them
idle, then prints the server's RSS: `NAME idle_conns_kib RSS` (and `idle_conns N`).

Usage: idle_conns.py HOST:PORT N PID NAME
"""
import resource
import socket
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def request(sock):
    sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("closed before the head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(4096)


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    n, pid, name = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, n + 100)), hard))
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, int(port)))
        request(s)
        socks.append(s)
    time.sleep(0.5)
    print(f"{name} idle_conns {n}")
    print(f"{name} idle_conns_kib {rss_kib(pid)}")
    for s in socks:
        s.close()


main()
