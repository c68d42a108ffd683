#!/usr/bin/env bash
# What the access log costs: gatewayd's HTTP listener serving the `hello` app with the log on
# (RUST_LOG=info, stderr to a file, the default config) and off (RUST_LOG=warn), loaded with
# `wrk -t2 -c50 -d5s`, rounds interleaved so that a noisy machine hits both alike.
#
# Usage: bench/log-cost.sh [BINARY...]   (default: target/release/gatewayd; several binaries,
#        a before and an after say, are measured in the same interleaved rounds)
# Knobs: BENCH_DURATION (5s), BENCH_ROUNDS (3), BENCH_CONNS (50), BENCH_PORT (18290).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${BENCH_DURATION:-5s}
rounds=${BENCH_ROUNDS:-3}
conns=${BENCH_CONNS:-50}
port=${BENCH_PORT:-18290}
bins=("$@")
((${#bins[@]})) || bins=(target/release/gatewayd)
command -v wrk >/dev/null || { echo "bench/log-cost.sh needs wrk" >&2; exit 1; }

tmp=$(mktemp -d)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
{
  printf '[[listen]]\nprotocol = "http"\naddress = "127.0.0.1:%s"\n\n' "$port"
  cat bench/peers/hello.toml
} >"$tmp/hello.toml"

# One measurement: prints requests per second.
measure() { # binary level
  RUST_LOG=$2 "$1" serve --config "$tmp/hello.toml" >/dev/null 2>"$tmp/stderr.log" &
  pid=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/" >/dev/null 2>&1 && break
    sleep 0.05
  done
  wrk -t2 -c"$conns" -d"$duration" "http://127.0.0.1:$port/" | awk '/Requests\/sec/ {print $2}'
  kill -TERM "$pid"
  wait "$pid" || true
  pid=
}

declare -A sum
for ((r = 1; r <= rounds; r++)); do
  for bin in "${bins[@]}"; do
    for level in info warn; do
      rps=$(measure "$bin" "$level")
      lines=$(grep -c 'gatewayd::access' "$tmp/stderr.log" || true)
      printf 'round %d  %-40s %-4s %10s req/s  (%s access lines)\n' "$r" "$bin" "$level" "$rps" "$lines"
      sum[$bin $level]=$(echo "${sum[$bin $level]:-0} + $rps" | bc -l)
    done
  done
done
echo
for bin in "${bins[@]}"; do
  on=$(echo "${sum[$bin info]} / $rounds" | bc -l)
  off=$(echo "${sum[$bin warn]} / $rounds" | bc -l)
  printf '%-40s log on %9.0f  log off %9.0f  on/off %.3f\n' "$bin" "$on" "$off" "$(echo "$on / $off" | bc -l)"
done
