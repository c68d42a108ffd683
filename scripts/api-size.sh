#!/usr/bin/env bash
# The size of each crate's interface and code: public items (`pub` declarations, not
# `pub(crate)`/`pub(super)`), names re-exported at the crate root (`pub use`), and lines of Rust
# under src/. Usage: scripts/api-size.sh [GIT-REV]   (default: the work tree)
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:-}
files() { # crate-dir
  if [[ -n $rev ]]; then git ls-tree -r --name-only "$rev" -- "$1/src" | grep '\.rs$' || true
  else (cd "$1" && find src -name "*.rs" | sort | sed "s|^|$1/|; s|^\./||"); fi
}
show() { if [[ -n $rev ]]; then git show "$rev:$1"; else cat "$1"; fi; }
printf '| crate | public items | root re-exports | lines |\n|---|--:|--:|--:|\n'
for crate in gateway-core proto-http proto-fastcgi proto-scgi proto-cgi proto-uwsgi gateway-wsgi .; do
  [[ -n $(files "$crate" 2>/dev/null) ]] || continue
  name=$(show "$crate/Cargo.toml" | awk -F'"' '/^name *=/ {print $2; exit}')
  items=0 lines=0
  for f in $(files "$crate"); do
    [[ $crate == . && $f != src/* ]] && continue
    text=$(show "$f")
    # Test modules are not interface.
    body=$(awk '/^#\[cfg\(test\)\]/ {exit} {print}' <<<"$text")
    n=$(grep -cE '^\s*pub (async fn|fn|struct|enum|trait|type|const|static|mod|union) ' <<<"$body" || true)
    items=$((items + n))
    lines=$((lines + $(wc -l <<<"$text")))
  done
  root=$(show "$crate/src/lib.rs" | awk '/^pub use/,/;/' | tr -d '\n' | sed 's/;/;\n/g' |
    awk '{ if (match($0, /\{.*\}/)) { s = substr($0, RSTART + 1, RLENGTH - 2); n = split(s, a, ","); c = 0;
             for (i = 1; i <= n; i++) if (a[i] ~ /[A-Za-z_]/) c++; t += c } else if ($0 ~ /pub use/) t += 1 }
         END { print t + 0 }')
  printf '| %s | %d | %d | %d |\n' "$name" "$items" "$root" "$lines"
done
