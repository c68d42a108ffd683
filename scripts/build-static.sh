#!/usr/bin/env bash
# The release binary to deploy, linked statically (glibc included): no dynamic loader at start,
# which is most of what a CGI request costs (BENCHMARKS.md: 1.2-1.55x a C hello instead of 1.7-2.1x), and
# one file that runs on any Linux of the same architecture.
# Usage: scripts/build-static.sh [extra cargo build arguments]; prints the binary's path.
#
# crt-static needs an explicit --target, so that proc-macros (built for the host) stay dynamic.
# It stays position-independent: `-C relocation-model=static` starts about 8% faster still (no
# self-relocation), but would give up address randomisation of the code of a program that
# faces the network.
# User and group names in `socket_owner`/`socket_group` resolve through glibc's built-in
# `files` NSS (/etc/passwd, /etc/group); with LDAP or sssd, give numeric ids.
# The `wsgi` app type is left out: it links libpython dynamically (a Python app runs as a
# daemon, not as a CGI program started per request).
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --release --target "$host" --bin gatewayd --no-default-features --features httpbin "$@" >&2
echo "$PWD/target/$host/release/gatewayd"
