#!/usr/bin/env bash
# Time per request of gatewayd as a CGI program, against the C hello CGI program, in one quick
# run (bench/run.sh measures the same inside the whole benchmark). Every program answers GET
# with 200, text/plain and "Hello, World!\n".
# Usage: bench/cgi-startup.sh        (installs hyperfine and gcc when missing)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null && command -v gcc >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine gcc
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release -q --bin gatewayd
static=$(scripts/build-static.sh -q)
gcc -O2 -o "$work/hello-c" bench/peers/hello_cgi.c
cp bench/peers/hello.toml "$work/gatewayd.toml"
export GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=GET SCRIPT_NAME=/cgi-bin/hello PATH_INFO= \
  QUERY_STRING= SERVER_NAME=localhost SERVER_PORT=80 SERVER_PROTOCOL=HTTP/1.1 REMOTE_ADDR=127.0.0.1 \
  GATEWAYD_CONFIG="$work/gatewayd.toml"
hyperfine -N --warmup 100 --runs 2000 --export-markdown "$work/result.md" \
  -n "C hello" "$work/hello-c" \
  -n "gatewayd (default build)" "target/release/gatewayd" \
  -n "gatewayd (static build)" "$static"
cat "$work/result.md"
