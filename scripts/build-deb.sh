#!/usr/bin/env bash
# Builds the Debian package target/debian/gatewayd_<version>_<arch>.deb and prints its path.
# Usage: scripts/build-deb.sh [extra cargo build arguments]
# Environment:
#   GATEWAYD_DEB_VERSION  the package version (default: the crate's, e.g. 0.1.0); the
#                         upgrade test of scripts/deb-test.sh builds a second, higher one
#   GATEWAYD_DEB_BIN      package this binary instead of building the static one
#
# Installed with `apt install ./target/debian/gatewayd_*.deb` (or `dpkg -i`), it enables and
# starts nothing: `systemctl enable --now gatewayd.socket` does.
#
# Why dpkg-deb and not cargo-deb: dpkg-deb is part of dpkg, on every Debian machine, so CI
# builds the package without compiling a packaging tool first (`cargo install cargo-deb` is
# minutes of compile on each fresh machine), and the maintainer scripts, which must be written
# by hand either way (purge has to remove /etc/gatewayd), stay in plain sight below. The tree is
# staged under target/debian/ and built with --root-owner-group, so no fakeroot is needed.
#
# The binary is the static build (scripts/build-static.sh), as the README advises for CGI, the
# one use where start-up time counts: no dynamic loader, no Depends on a glibc version. The man
# pages and completions are written by that same binary (`gatewayd generate`), from its clap
# definition and its config table, so they describe exactly what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bin=${GATEWAYD_DEB_BIN:-$(scripts/build-static.sh "$@")}
version_line=$("$bin" --version) # "gatewayd 0.1.0 (commit abc1234)"
crate_version=$(sed -n 's/^gatewayd \([^ ]*\) .*/\1/p' <<<"$version_line")
commit=$(sed -n 's/.*(commit \([^)]*\)).*/\1/p' <<<"$version_line")
version=${GATEWAYD_DEB_VERSION:-$crate_version}
arch=$(dpkg --print-architecture)
name="gatewayd_${version}_${arch}"
out=target/debian
stage=$out/$name
rm -rf "$stage" "$out/$name.deb"
mkdir -p "$stage/DEBIAN"

put() { # put MODE SOURCE DEST
  install -D -m "$1" "$2" "$stage/$3"
}

# The daemon, stripped as dh_strip would.
put 0755 "$bin" usr/bin/gatewayd
strip --strip-unneeded "$stage/usr/bin/gatewayd"

# systemd units: /usr/lib/systemd/system, where systemd reads vendor units (on Debian 12 /lib
# is a link to /usr/lib).
for unit in gatewayd.service gatewayd.socket gatewayd@.service; do
  put 0644 "configs/$unit" "usr/lib/systemd/system/$unit"
done

# Conffiles: the safe default config and the nginx snippets (every configs/nginx-*.conf, so a
# new front-end's snippet ships once it exists).
put 0644 configs/deb/gatewayd.toml etc/gatewayd/gatewayd.toml
for snippet in configs/nginx-*.conf; do
  put 0644 "$snippet" "etc/gatewayd/$(basename "$snippet")"
done

# Man pages and completions, from the binary itself.
gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
"$stage/usr/bin/gatewayd" generate man "$gen/man" >/dev/null
"$stage/usr/bin/gatewayd" generate completions "$gen/completions" >/dev/null
gzip -9n "$gen/man/gatewayd.8" "$gen/man/gatewayd.toml.5"
put 0644 "$gen/man/gatewayd.8.gz" usr/share/man/man8/gatewayd.8.gz
put 0644 "$gen/man/gatewayd.toml.5.gz" usr/share/man/man5/gatewayd.toml.5.gz
put 0644 "$gen/completions/gatewayd.bash" usr/share/bash-completion/completions/gatewayd
put 0644 "$gen/completions/_gatewayd" usr/share/zsh/vendor-completions/_gatewayd
put 0644 "$gen/completions/gatewayd.fish" usr/share/fish/vendor_completions.d/gatewayd.fish

# /usr/share/doc/gatewayd: the README, a changelog and the copyright file with the licences.
doc=$stage/usr/share/doc/gatewayd
mkdir -p "$doc"
gzip -9n <README.md >"$doc/README.md.gz"
date=$(git log -1 --format=%aD 2>/dev/null || date -R)
printf 'gatewayd (%s) unstable; urgency=medium\n\n  * Built from commit %s.\n\n -- gatewayd maintainers <gatewayd@users.noreply.github.com>  %s\n' \
  "$version" "$commit" "$date" | gzip -9n >"$doc/changelog.gz"
{
  cat <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: gatewayd
Source: https://github.com/gatewayd/gatewayd

Files: *
Copyright: the gatewayd contributors
License: MIT or Apache-2.0
Comment: /usr/bin/gatewayd is a static executable. Besides gatewayd's own code it holds the
 Rust standard library (MIT or Apache-2.0), the crates listed below, each under the licence
 its authors give, and the GNU C Library (LGPL-2.1+, see /usr/share/common-licenses/LGPL-2.1;
 its source is Debian's glibc source package, the version named in this package's Built-Using
 field).
 .
 Crates linked into the binary (name version: licence):
EOF
  cargo tree -p gatewayd -e normal --prefix none --format '{p}: {l}' 2>/dev/null |
    grep -v '(proc-macro)' | sed 's/ (\*)$//; s/ ([^)]*)//' | sort -u | sed 's/^/  /'
  cat <<'EOF'

License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a copy of this
 software and associated documentation files (the "Software"), to deal in the Software
 without restriction, including without limitation the rights to use, copy, modify, merge,
 publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons
 to whom the Software is furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in all copies or
 substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED,
 INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR
 PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE
 FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
 OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER
 DEALINGS IN THE SOFTWARE.

License: Apache-2.0
 On Debian systems, the full text of the Apache License, Version 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF
} >"$doc/copyright"
chmod 0644 "$doc"/*

# Maintainer scripts. Nothing is enabled or started on install: the package needs configuring
# first, and `systemctl enable --now gatewayd.socket` is the operator's decision. An upgrade
# restarts only what was already running (socket activation keeps the socket open meanwhile,
# and the old process drains); removal stops it; purge removes the conffiles, /etc/gatewayd
# when nothing else is left in it, the state directories and leftover enablement links.
cat >"$stage/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
    if [ -n "$2" ]; then
        systemctl --system try-restart gatewayd.service 'gatewayd@*.service' >/dev/null || true
    fi
fi
exit 0
EOF
cat >"$stage/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl --system stop gatewayd.socket gatewayd.service 'gatewayd@*.service' >/dev/null || true
fi
exit 0
EOF
cat >"$stage/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = purge ]; then
    rm -f /etc/gatewayd/*.dpkg-old /etc/gatewayd/*.dpkg-dist /etc/gatewayd/*.dpkg-new \
        /etc/gatewayd/*.dpkg-tmp /etc/gatewayd/*.dpkg-bak
    if [ -d /etc/gatewayd ] && ! rmdir /etc/gatewayd 2>/dev/null; then
        echo "gatewayd: /etc/gatewayd still holds files of yours; left in place" >&2
    fi
    # Links left by `systemctl enable` of units that are gone now.
    if [ -d /etc/systemd/system ]; then
        find /etc/systemd/system -xtype l \( -name gatewayd.socket -o -name gatewayd.service \
            -o -name 'gatewayd@*.service' \) -delete
    fi
    rm -rf /var/lib/gatewayd /var/lib/private/gatewayd /var/lib/gatewayd-* \
        /var/lib/private/gatewayd-*
fi
exit 0
EOF
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"

(cd "$stage" && find etc -type f | sed 's|^|/|' | sort) >"$stage/DEBIAN/conffiles"
(cd "$stage" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"

built_using=$(dpkg-query -W -f='${source:Package} (= ${source:Version})' libc6-dev 2>/dev/null || true)
installed_size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
{
  echo "Package: gatewayd"
  echo "Version: $version"
  echo "Architecture: $arch"
  echo "Maintainer: gatewayd maintainers <gatewayd@users.noreply.github.com>"
  echo "Installed-Size: $installed_size"
  [ -z "$built_using" ] || echo "Built-Using: $built_using"
  echo "Suggests: nginx | lighttpd | apache2 | haproxy"
  echo "Section: httpd"
  echo "Priority: optional"
  echo "Homepage: https://github.com/gatewayd/gatewayd"
  echo "Description: one app interface, every gateway: HTTP, FastCGI, SCGI and CGI"
  echo " gatewayd serves Rust web apps, written once against one interface, over plain"
  echo " HTTP, FastCGI, SCGI or CGI, behind nginx, lighttpd, Apache or HAProxy."
  echo " ."
  echo " This package holds the daemon (a static executable), hardened systemd units"
  echo " with socket activation (gatewayd.socket, gatewayd.service, and gatewayd@.service"
  echo " for more instances), a default config serving only a health check and a status"
  echo " page, nginx snippets, man pages and shell completions. Nothing is enabled on"
  echo " install."
} >"$stage/DEBIAN/control"

dpkg-deb --root-owner-group --build "$stage" "$out/$name.deb" >/dev/null
echo "$root/$out/$name.deb"
