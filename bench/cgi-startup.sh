#!/usr/bin/env bash
# Time per request of gatewayd as a CGI program, against a C hello CGI program, in one run.
# Both answer GET with 200, text/plain and "Hello, World!\n".
# Usage: bench/cgi-startup.sh        (installs hyperfine and gcc when missing)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null && command -v gcc >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine gcc
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release -q
# The same binary linked statically and without PIE: no dynamic relocations or symbol
# lookups at exec, which is most of a CGI process's fixed cost. It needs an explicit --target
# (crt-static cannot build the proc-macros otherwise).
target=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
  cargo build --release -q --target "$target" --target-dir target/static
cat > "$work/hello.c" <<'C'
#include <stdio.h>
int main(void) {
    fputs("Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, World!\n", stdout);
    return 0;
}
C
gcc -O2 -o "$work/hello-c" "$work/hello.c"
cat > "$work/gatewayd.toml" <<'TOML'
[apps.hello]
type = "hello"

[[mount]]
path = "/"
app = "hello"
TOML
export GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=GET SCRIPT_NAME=/cgi-bin/hello PATH_INFO= \
  QUERY_STRING= SERVER_NAME=localhost SERVER_PORT=80 SERVER_PROTOCOL=HTTP/1.1 REMOTE_ADDR=127.0.0.1 \
  GATEWAYD_CONFIG="$work/gatewayd.toml"
hyperfine -N --warmup 100 --runs 2000 --export-markdown "$work/result.md" \
  -n "C hello" "$work/hello-c" \
  -n "gatewayd (CGI)" "target/release/gatewayd" \
  -n "gatewayd (CGI, static)" "target/static/$target/release/gatewayd"
cat "$work/result.md"
