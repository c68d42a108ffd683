#!/usr/bin/env bash
# The test command: installs the peers the tests drive, then runs every test of the workspace.
# Usage: scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the end-to-end tests start themselves (real peers, never mocks). The HTTP
# tests need none beyond the toolchain; the FastCGI, SCGI, uwsgi and CGI front-ends add nginx,
# lighttpd, Apache (with mod_proxy_uwsgi) and HAProxy here; Flask and Django are the frameworks
# the WSGI tests run (tests/wsgi_gateways.rs); man-db and curl are for the package test that
# .ci/run runs next (scripts/deb-test.sh), so that CI installs its peers in one go.
packages=(nginx lighttpd libfcgi-bin apache2 libapache2-mod-proxy-uwsgi haproxy systemd man-db curl python3-flask python3-django)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

# Builds the examples too: the end-to-end tests run them. The last line totals every test
# binary, since cargo's own last line is that of whichever crate came last.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { p += $4; f += $6 } END { printf "total: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
