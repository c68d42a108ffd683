#!/usr/bin/env bash
# Builds every fuzz target and runs each for a short while (20 s by default) from its seeds:
# what CI does. Longer runs: FUZZ_SECONDS=600 scripts/fuzz-smoke.sh
# cargo fuzz runs on stable with --sanitizer none. Among them http_sniff, the differential one:
# the smuggling guard against hyper's own server (a failure there is a request hyper would
# serve past the guard's watch).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-20}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo fuzz build --sanitizer none -O
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo fuzz list); do
  mkdir -p "$scratch/$target"
  echo "fuzzing $target for ${seconds}s"
  cargo fuzz run "$target" --sanitizer none -O "$scratch/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 2>&1 | grep -E "stat::number_of_executed_units|Done|ERROR|panicked" || true
  if [ -n "$(ls -A "fuzz/artifacts/$target" 2>/dev/null)" ]; then
    echo "fuzz target $target found a crash: fuzz/artifacts/$target" >&2
    exit 1
  fi
done
