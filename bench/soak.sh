#!/usr/bin/env bash
# Soak: mixed load on gatewayd for a while (10 minutes by default), directly over HTTP and
# through nginx over FastCGI, sampling the daemon's RSS and open fds every 5 s. Not run in CI.
# Passes when RSS grows less than 10% between the first sample under load and the last, and
# the fd count ends where it started.
# Usage: bench/soak.sh [seconds]     (installs wrk and nginx when missing)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
command -v wrk >/dev/null && command -v nginx >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx
}
cargo build --release -q
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/g.toml" <<TOML
[server]
max_body_size = "1MiB"
[[listen]]
protocol = "http"
address = "127.0.0.1:18181"
[[listen]]
protocol = "fastcgi"
address = "unix:$work/fcgi.sock"
[apps.bin]
type = "httpbin"
[[mount]]
path = "/"
app = "bin"
TOML
target/release/gatewayd serve --config "$work/g.toml" > "$work/g.out" 2> /dev/null &
pid=$!
cp /etc/nginx/fastcgi_params "$work/"
cat > "$work/nginx.conf" <<NGINX
daemon off; master_process off; error_log $work/error.log; pid $work/nginx.pid;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $work/b; fastcgi_temp_path $work/f;
  upstream gatewayd { server unix:$work/fcgi.sock; }
  server { listen 127.0.0.1:18182; include $PWD/configs/nginx-fastcgi.conf; } }
NGINX
sleep 0.5
nginx -e "$work/error.log" -p "$work" -c "$work/nginx.conf" &
sleep 0.5
# Mixed requests: small and large bodies out, a form in, streams, and a 404 on purpose (wrk
# counts those as non-2xx).
cat > "$work/mix.lua" <<'LUA'
local paths = { "/get", "/environ/a%20b?x=1", "/bytes/20000", "/stream-bytes/30000?chunk_size=4000", "/status/404", "/headers" }
local n = 0
request = function()
  n = n + 1
  if n % 7 == 0 then
    return wrk.format("POST", "/post", { ["Content-Type"] = "application/x-www-form-urlencoded" }, "a=1&b=" .. string.rep("x", 2000))
  end
  return wrk.format("GET", paths[(n % #paths) + 1])
end
LUA
sample() { echo "$(date +%s) $(awk '/VmRSS/ {print $2}' /proc/$pid/status) $(ls /proc/$pid/fd | wc -l)"; }
fds_idle=$(ls /proc/$pid/fd | wc -l)
wrk -t1 -c20 -d"${seconds}s" -s "$work/mix.lua" http://127.0.0.1:18181/ > "$work/direct.txt" &
direct=$!
wrk -t1 -c20 -d"${seconds}s" -s "$work/mix.lua" http://127.0.0.1:18182/ > "$work/nginx.txt" &
through=$!
sleep 5
: > "$work/samples"
while kill -0 "$direct" 2>/dev/null || kill -0 "$through" 2>/dev/null; do sample >> "$work/samples"; sleep 5; done
wait "$direct" "$through" || true
sleep 2
fds_after=$(ls /proc/$pid/fd | wc -l)
first=$(head -1 "$work/samples" | cut -d' ' -f2); last=$(tail -1 "$work/samples" | cut -d' ' -f2)
max_fds=$(cut -d' ' -f3 "$work/samples" | sort -n | tail -1)
echo "direct:"; grep -E "Requests/sec|requests in|Non-2xx|Socket errors" "$work/direct.txt" || true
echo "through nginx:"; grep -E "Requests/sec|requests in|Non-2xx|Socket errors" "$work/nginx.txt" || true
growth=$(( (last - first) * 100 / first ))
echo "RSS under load: first ${first} KiB, last ${last} KiB (${growth}%); fds idle ${fds_idle}, peak ${max_fds}, after ${fds_after}"
[ "$growth" -lt 10 ] && [ "$fds_after" -le "$fds_idle" ] && echo "soak: passed" || { echo "soak: FAILED"; exit 1; }
