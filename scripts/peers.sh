#!/usr/bin/env bash
# Installs what the build and the tests need from Debian, in one apt-get, when missing.
# Run by scripts/test.sh, and first of all by .ci/run (its lints build the workspace too).
set -euo pipefail

# python3-dev: the `wsgi` app type links Debian's libpython3.11 (see .cargo/config.toml).
# The peers the end-to-end tests start themselves (real peers, never mocks): the HTTP tests need
# none beyond the toolchain; the FastCGI, SCGI, uwsgi and CGI front-ends add nginx, lighttpd,
# Apache (with mod_proxy_uwsgi) and HAProxy; Flask and Django are the frameworks the WSGI tests
# run (tests/wsgi_gateways.rs); man-db and curl are for the package test that .ci/run runs after
# the tests (scripts/deb-test.sh), so that CI installs everything in one go.
packages=(python3-dev nginx lighttpd libfcgi-bin apache2 libapache2-mod-proxy-uwsgi haproxy systemd man-db curl python3-flask python3-django)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
