#!/usr/bin/env bash
# User-space instructions per HTTP request, gatewayd against the bare hyper hello, counted by
# callgrind while wrk loads each server; then gatewayd's own behind nginx, over FastCGI (kept
# connections) and SCGI. Wall-clock numbers on a noisy VM move by ±15% between
# identical runs; instruction counts move by well under 1%, so this is how a change to the
# request path is judged before bench/run.sh measures it for real.
#
# Every server answers GET / with 200, text/plain and "Hello, World!\n" (the bench's targets).
# Under callgrind a server runs on one core, about 50 times slower: the counts are what matter.
#
# Usage: bench/instructions.sh       (installs valgrind and wrk when missing)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null && command -v wrk >/dev/null && command -v nginx >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind wrk nginx
}
cargo build --release -q --bin gatewayd --example hyper-hello
work=$(mktemp -d)
trap 'pkill -f "$work" 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/gatewayd.toml" <<'TOML'
[[listen]]
protocol = "http"
address = "127.0.0.1:18491"
[[listen]]
protocol = "fastcgi"
address = "127.0.0.1:18493"
[[listen]]
protocol = "scgi"
address = "127.0.0.1:18494"
TOML
mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
$( ((EUID == 0)) && echo "user root;")
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream fastcgi { server 127.0.0.1:18493; keepalive 32; }
  server {
    listen 127.0.0.1:18495;
    location / { include /etc/nginx/fastcgi_params; fastcgi_keep_conn on; fastcgi_pass fastcgi; }
  }
  server {
    listen 127.0.0.1:18496;
    location / { include /etc/nginx/scgi_params; scgi_pass 127.0.0.1:18494; }
  }
}
NGINX
cat bench/peers/hello.toml >> "$work/gatewayd.toml"

count() { # NAME PORT [LOAD-PORT] COMMAND...: prints NAME and its instructions per request,
  # loading PORT (or LOAD-PORT, nginx in front of it)
  local name=$1 port=$2 load=$2
  shift 2
  [[ $1 =~ ^[0-9]+$ ]] && { load=$1; shift; }
  RUST_LOG=info,gatewayd::access=off valgrind --tool=callgrind \
    --callgrind-out-file="$work/$name.out" "$@" > "$work/$name.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$load/" >/dev/null 2>&1 && break; sleep 0.2; done
  wrk -t1 -c50 -d2s "http://127.0.0.1:$load/" > /dev/null # warm up, then count from zero
  callgrind_control -z "$pid" > /dev/null 2>&1
  local requests
  requests=$(wrk -t1 -c50 -d4s "http://127.0.0.1:$load/" | awk '/requests in/ { print $1 }')
  callgrind_control -d "$pid" > /dev/null 2>&1
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  local total
  total=$(callgrind_annotate "$work/$name.out.1" 2>/dev/null |
    awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
  printf '%-50s %8d instructions per request (%d requests)\n' "$name" $((total / requests)) "$requests"
}

count gatewayd 18491 target/release/gatewayd serve --config "$work/gatewayd.toml"
count hyper 18492 target/release/examples/hyper-hello 127.0.0.1:18492
nginx -c "$work/nginx/nginx.conf" &
count "gatewayd behind nginx, FastCGI (kept connections)" 18491 18495 \
  target/release/gatewayd serve --config "$work/gatewayd.toml"
count "gatewayd behind nginx, SCGI" 18491 18496 \
  target/release/gatewayd serve --config "$work/gatewayd.toml"
kill "$(cat "$work/nginx/nginx.pid")" 2>/dev/null || true
