#!/usr/bin/env bash
# The Debian package, tested as an operator meets it: build it, `dpkg -i` it, check every file,
# run the installed binary on the installed config through socket activation with real nginx in
# front (the installed snippet included verbatim), upgrade over an edited conffile, then remove
# and purge and check that nothing is left. Needs root (CI runs as root) and installs nothing
# beyond nginx, systemd, man-db and curl (scripts/test.sh installs the first two).
# Usage: scripts/deb-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { printf '\n== deb-test: %s\n' "$*"; }
fail() {
  printf 'deb-test: FAILED: %s\n' "$*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || fail "run as root: it installs and purges the package"
missing=()
for p in nginx systemd man-db curl; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
if dpkg -s gatewayd >/dev/null 2>&1; then
  echo "deb-test: a gatewayd package is installed (a run that stopped midway?): purging it"
  dpkg -P gatewayd >/dev/null
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# What the system holds before: after the purge it must hold exactly this again. /var/lib/dpkg
# (dpkg's own records, checked by `dpkg -s` below) and caches are left out.
snapshot() {
  find /etc /usr /var/lib -xdev \( -path /var/lib/dpkg -o -path /var/lib/apt \) -prune \
    -o -print 2>/dev/null | sort
}
snapshot >"$tmp/before"

step "build the package, and a second one with a higher version for the upgrade"
deb=$(scripts/build-deb.sh)
version=$(dpkg-deb -f "$deb" Version)
deb2=$(GATEWAYD_DEB_VERSION="$version+upgrade1" GATEWAYD_DEB_BIN="$(dirname "$deb")/gatewayd_${version}_$(dpkg --print-architecture)/usr/bin/gatewayd" scripts/build-deb.sh)
ls -l "$deb" "$deb2"
dpkg-deb --info "$deb"

step "install"
dpkg -i "$deb" </dev/null
[ "$(dpkg-query -W -f='${Status}' gatewayd)" = "install ok installed" ] || fail "not installed"

step "every file where it should be"
expect=(
  /usr/bin/gatewayd
  /usr/lib/systemd/system/gatewayd.service
  /usr/lib/systemd/system/gatewayd.socket
  /usr/lib/systemd/system/gatewayd@.service
  /etc/gatewayd/gatewayd.toml
  /etc/gatewayd/nginx-fastcgi.conf
  /etc/gatewayd/nginx-scgi.conf
  /etc/gatewayd/nginx-uwsgi.conf
  /usr/share/man/man8/gatewayd.8.gz
  /usr/share/man/man5/gatewayd.toml.5.gz
  /usr/share/bash-completion/completions/gatewayd
  /usr/share/zsh/vendor-completions/_gatewayd
  /usr/share/fish/vendor_completions.d/gatewayd.fish
  /usr/share/doc/gatewayd/README.md.gz
  /usr/share/doc/gatewayd/copyright
  /usr/share/doc/gatewayd/changelog.gz
)
for f in "${expect[@]}"; do
  [ -f "$f" ] || fail "$f is missing"
  dpkg -S "$f" >/dev/null || fail "$f is not the package's"
done
for f in configs/nginx-*.conf; do
  cmp "$f" "/etc/gatewayd/$(basename "$f")" || fail "/etc/gatewayd/$(basename "$f") differs from $f"
done
cmp configs/deb/gatewayd.toml /etc/gatewayd/gatewayd.toml
conffiles=$(dpkg-query -W -f='${Conffiles}\n' gatewayd | awk 'NF {print $1}' | sort)
[ "$conffiles" = "$(find /etc/gatewayd -type f | sort)" ] ||
  fail "conffiles are not every file of /etc/gatewayd: $conffiles"
[ "$(stat -c %a /usr/bin/gatewayd)" = 755 ] || fail "/usr/bin/gatewayd mode"
if command -v file >/dev/null; then
  file_out=$(file -L /usr/bin/gatewayd)
  grep -Eq 'static-pie linked|statically linked' <<<"$file_out" || fail "not static: $file_out"
fi
dpkg -L gatewayd | grep -vx "/\." | sort >"$tmp/owned"
/usr/bin/gatewayd --version
/usr/bin/gatewayd --version | grep -Eq "^gatewayd ${version%%+*} \(commit [0-9a-f]+\)$" ||
  fail "--version does not name the version and commit"
if git rev-parse --short HEAD >/dev/null 2>&1; then
  /usr/bin/gatewayd --version | grep -q "(commit $(git rev-parse --short HEAD))" ||
    fail "--version names another commit than HEAD"
fi
grep -q 'License: MIT' /usr/share/doc/gatewayd/copyright || fail "no MIT licence text"

step "man pages"
[ "$(man -w gatewayd)" = /usr/share/man/man8/gatewayd.8.gz ] || fail "man -w gatewayd: $(man -w gatewayd)"
[ "$(man -w gatewayd.toml)" = /usr/share/man/man5/gatewayd.toml.5.gz ] || fail "man -w gatewayd.toml"
warnings=$(MANWIDTH=80 man --warnings gatewayd.toml 2>&1 >/dev/null; MANWIDTH=80 man --warnings gatewayd 2>&1 >/dev/null)
[ -z "$warnings" ] || fail "groff warnings: $warnings"
MANWIDTH=80 man gatewayd.toml 2>/dev/null | grep -q 'max_body_size' || fail "gatewayd.toml(5) lacks max_body_size"
MANWIDTH=80 man gatewayd 2>/dev/null | grep -q 'gatewayd check --config' || fail "gatewayd(8) lacks check"

step "completions load"
bash -c 'source /usr/share/bash-completion/completions/gatewayd && complete -p gatewayd' ||
  fail "bash completion does not load"
# What bash offers after "gatewayd ": the subcommands, from the clap definition.
offered=$(bash -c 'source /usr/share/bash-completion/completions/gatewayd
  COMP_WORDS=(gatewayd ""); COMP_CWORD=1; COMP_LINE="gatewayd "; COMP_POINT=9
  _gatewayd gatewayd "" gatewayd; printf "%s\n" "${COMPREPLY[@]}"')
for sub in serve check cgi; do
  grep -qx "$sub" <<<"$offered" || fail "bash does not complete $sub: $offered"
done
if command -v zsh >/dev/null; then zsh -n /usr/share/zsh/vendor-completions/_gatewayd; fi
if command -v fish >/dev/null; then fish -n /usr/share/fish/vendor_completions.d/gatewayd.fish; fi

step "the installed config checks, the installed units verify"
gatewayd check --config /etc/gatewayd/gatewayd.toml
systemd-analyze verify /usr/lib/systemd/system/gatewayd.socket \
  /usr/lib/systemd/system/gatewayd.service /usr/lib/systemd/system/gatewayd@.service
grep -q 'systemd:fastcgi' /etc/gatewayd/gatewayd.toml || fail "the config does not use the socket unit's socket"
if grep -Eq 'httpbin|^address = "[0-9[]' /etc/gatewayd/gatewayd.toml; then
  fail "the default config serves httpbin or a TCP port"
fi

step "nothing enabled or started by the maintainer scripts"
if find /etc/systemd/system -lname '*gatewayd*' 2>/dev/null | grep -q .; then
  fail "the package enabled a unit: $(find /etc/systemd/system -lname '*gatewayd*')"
fi
if pgrep -x gatewayd >/dev/null; then fail "a gatewayd runs after install"; fi

step "run as installed: systemd-socket-activate with the socket gatewayd.socket describes, nginx in front"
unit=/usr/lib/systemd/system/gatewayd.socket
listen=$(sed -n 's/^ListenStream=//p' "$unit")
fdname=$(sed -n 's/^FileDescriptorName=//p' "$unit")
mode=$(sed -n 's/^SocketMode=//p' "$unit")
group=$(sed -n 's/^SocketGroup=//p' "$unit")
dirmode=$(sed -n 's/^DirectoryMode=//p' "$unit")
# The unit's own path when its directory is free (as on a fresh CI machine); otherwise, say
# under a running systemd that owns /run/gatewayd, a socket of the same name in a temp dir.
sock=$listen
made_run_dir=""
if [ -e "$(dirname "$listen")" ]; then
  sock=$tmp/run/$(basename "$listen")
  echo "$(dirname "$listen") exists: using $sock instead"
else
  made_run_dir=$(dirname "$listen")
fi
mkdir -p -m "$dirmode" "$(dirname "$sock")"
systemd-socket-activate -l "$sock" --fdname="$fdname" -E RUST_LOG=info \
  /usr/bin/gatewayd serve --config /etc/gatewayd/gatewayd.toml \
  >"$tmp/gatewayd.out" 2>"$tmp/gatewayd.log" &
pids+=($!)
activator=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || fail "systemd-socket-activate did not bind $sock"
# What systemd does for the unit: the socket's group and mode.
chgrp "$group" "$sock"
chmod "$mode" "$sock"

mkdir -p "$tmp/nginx"
cp /etc/nginx/fastcgi_params /etc/nginx/scgi_params "$tmp/nginx/"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
  echo 18089)
cat >"$tmp/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
error_log $tmp/nginx/error.log info;
pid $tmp/nginx/nginx.pid;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  scgi_temp_path $tmp/nginx/scgi;
  proxy_temp_path $tmp/nginx/proxy;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  upstream gatewayd { server unix:$sock; }
  server {
    listen 127.0.0.1:$port;
    include /etc/gatewayd/nginx-fastcgi.conf;
  }
}
EOF
nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" &
pids+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.05; done
pong=$(curl -sS "http://127.0.0.1:$port/-/ping") ||
  fail "no answer through nginx: $(cat "$tmp/nginx/error.log" "$tmp/gatewayd.log")"
[ "$pong" = pong ] || fail "got '$pong' through nginx, not pong: $(cat "$tmp/gatewayd.log")"
echo "GET /-/ping through nginx and the installed snippet: $pong"
curl -sS "http://127.0.0.1:$port/-/status?format=prometheus" | grep -q '^gatewayd_requests_total{protocol="fastcgi",status="2xx"} [1-9]' ||
  fail "no Prometheus counters from the status app"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/get")" = 404 ] ||
  fail "the default config serves more than ping and status"
# The SCGI snippet, included verbatim, is valid nginx too.
sed -e "s|fastcgi.conf;|scgi.conf;|" -e "s|listen 127.0.0.1:$port|listen 127.0.0.1:1|" \
  "$tmp/nginx/nginx.conf" >"$tmp/nginx/scgi.conf"
nginx -t -q -p "$tmp/nginx" -c "$tmp/nginx/scgi.conf" -e "$tmp/nginx/error.log" ||
  fail "nginx refuses the SCGI snippet"
kill -TERM "$activator"
wait "$activator" || fail "gatewayd did not drain and exit 0 on SIGTERM: $(cat "$tmp/gatewayd.log")"
kill -TERM "${pids[-1]}"
wait "${pids[-1]}" 2>/dev/null || true
rm -f "$sock"
[ -z "$made_run_dir" ] || rmdir "$made_run_dir" || fail "$made_run_dir is not empty"

step "upgrade over the installed package keeps an edited conffile"
printf '\n# edited by the operator\n' >>/etc/gatewayd/gatewayd.toml
cp /etc/gatewayd/gatewayd.toml "$tmp/edited.toml"
dpkg -i "$deb2" </dev/null
[ "$(dpkg-query -W -f='${Version}' gatewayd)" = "$version+upgrade1" ] || fail "not upgraded"
cmp /etc/gatewayd/gatewayd.toml "$tmp/edited.toml" || fail "the upgrade replaced the edited conffile"
gatewayd check --config /etc/gatewayd/gatewayd.toml

step "upgrade to a package whose default config changed too: the operator's is kept, the new one lands beside it"
stage3=$tmp/stage3
cp -a "${deb2%.deb}" "$stage3"
sed -i "s/^Version: .*/Version: $version+upgrade2/" "$stage3/DEBIAN/control"
printf '\n# a newer default\n' >>"$stage3/etc/gatewayd/gatewayd.toml"
deb3=$tmp/gatewayd_$version+upgrade2.deb
dpkg-deb --root-owner-group --build "$stage3" "$deb3" >/dev/null
# Non-interactive, as apt runs under unattended upgrades: keep the local file (confold).
dpkg -i --force-confdef --force-confold "$deb3" </dev/null
[ "$(dpkg-query -W -f='${Version}' gatewayd)" = "$version+upgrade2" ] || fail "not upgraded to upgrade2"
cmp /etc/gatewayd/gatewayd.toml "$tmp/edited.toml" || fail "the upgrade replaced the edited conffile"
cmp /etc/gatewayd/gatewayd.toml.dpkg-dist "$stage3/etc/gatewayd/gatewayd.toml" ||
  fail "the new default is not beside it as gatewayd.toml.dpkg-dist"

step "remove keeps the conffiles"
dpkg -r gatewayd </dev/null
[ "$(dpkg-query -W -f='${Status}' gatewayd)" = "deinstall ok config-files" ] || fail "status after remove"
cmp /etc/gatewayd/gatewayd.toml "$tmp/edited.toml" || fail "remove lost the edited conffile"
[ -f /etc/gatewayd/nginx-fastcgi.conf ] || fail "remove lost a conffile"
[ ! -e /usr/bin/gatewayd ] || fail "/usr/bin/gatewayd is still there"

step "purge leaves the system as it was"
dpkg -P gatewayd </dev/null
if dpkg -s gatewayd >/dev/null 2>&1; then fail "dpkg still knows gatewayd"; fi
[ ! -e /etc/gatewayd ] || fail "/etc/gatewayd is still there"
left=$(while read -r f; do [ -e "$f" ] && ! grep -qx "$f" "$tmp/before" && echo "$f"; done <"$tmp/owned" || true)
[ -z "$left" ] || fail "files of the package left after purge: $left"
ls /var/lib/dpkg/info/gatewayd.* >/dev/null 2>&1 && fail "dpkg info files left"
snapshot >"$tmp/after"
if ! diff "$tmp/before" "$tmp/after" >"$tmp/diff"; then
  cat "$tmp/diff"
  fail "the system differs from before the install"
fi

printf '\ndeb-test: ok (%ss)\n' "$(($(date +%s) - start))"
