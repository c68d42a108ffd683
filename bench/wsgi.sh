#!/usr/bin/env bash
# gatewayd's `wsgi` app type against the Python WSGI servers people run, in one run on this
# machine: over HTTP directly, and behind nginx over FastCGI, SCGI and uwsgi.
#
# Two apps, both in bench/peers/: wsgi_hello.py ("Hello, World!\n", text/plain) and
# wsgi_json.py (about 10 KB of JSON built once at import). Every server runs the same module on
# Debian's CPython 3.11 (/usr/bin/python3; the peers from pip in a venv made with it, so that
# they run on the interpreter gatewayd embeds), ONE process each (plus its master, if it has
# one), 8 threads where the server has threads:
#   gatewayd   [apps] type = "wsgi", threads = 8, default [server] (runtime threads: one per core)
#   granian    --interface wsgi --workers 1 --blocking-threads 8 (runtime threads: its default 1)
#   gunicorn   --worker-class gthread --workers 1 --threads 8
#   uWSGI      --master --processes 1 --threads 8 (--http-socket, as users run it, and
#              --http11-socket, its keep-alive variant; --fastcgi-socket, --scgi-socket and
#              --uwsgi-socket behind nginx)
#   bjoern     bjoern.run (one thread: it has no others)
# Behind nginx (one nginx, its own config, access_log off), gatewayd and uWSGI are reached over
# unix sockets (BENCH_TCP=1 adds the same chains over loopback TCP); FastCGI with
# `fastcgi_keep_conn on` and an upstream keepalive, as bench/run.sh's keep-conn rows (SCGI and
# uwsgi have no kept connections). gatewayd runs with its access log off, as every peer's is, and
# also as users run it by default, log on (to a file), on HTTP: the row "gatewayd (log on)".
#
# Each target's response is checked first (status, Content-Type, the exact body). Then each is
# loaded with `wrk -t1 -c50 -d5s` for 3 rounds, interleaved (A B C ... then ... C B A) so that a
# slow phase of a noisy machine hits every target alike. Memory is every server's RSS from /proc,
# per process (the worker, and the master if any), idle and 3 seconds after the load.
#
# Everything runs from private configs in a temp dir, on loopback ports 18500-18599. The results
# go to BENCHMARKS.md, between its wsgi-bench markers (section "Python WSGI apps").
#
# Usage: bench/wsgi.sh            (as root: it installs its Debian packages with one apt-get, and
#        the peers with pip into a venv under /var/cache/gatewayd-bench, reused by later runs)
# Knobs: BENCH_DURATION (5s), BENCH_ROUNDS (3), BENCH_CONNS (50),
#        BENCH_ONLY (a regex over app, server and chain names, to measure a few while working),
#        BENCH_SMOKE=1 (start everything, check that each selected target answers once, and
#        stop: no load, no report), BENCH_TCP=1 (the nginx chains over TCP as well),
#        BENCH_CACHE (/var/cache/gatewayd-bench: where the venv lives).
# If the gatewayd build has no `wsgi` app type yet (`gatewayd check` refuses the config), the
# peers are measured alone and gatewayd's rows say "not measured".
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
duration=${BENCH_DURATION:-5s}
rounds=${BENCH_ROUNDS:-3}
conns=${BENCH_CONNS:-50}
only=${BENCH_ONLY:-}
threads=8
py=/usr/bin/python3 # Debian's CPython, the one gatewayd embeds (not a pyenv python on PATH)
cache=${BENCH_CACHE:-/var/cache/gatewayd-bench}
venv=$cache/wsgi-venv
# Pinned, so that a reused venv and a new one run the same peers.
pip_peers=(granian==2.8.9 gunicorn==27.0.1 uWSGI==2.0.31 bjoern==3.2.2)

log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

# --- Packages ------------------------------------------------------------------------------
packages=(nginx wrk curl procps python3 python3-venv python3-dev libpython3.11-dev libev-dev
  build-essential)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[[ $($py -c 'import sys; print("%d.%d" % sys.version_info[:2])') == 3.11 ]] ||
  { echo "bench/wsgi.sh needs $py to be CPython 3.11" >&2; exit 1; }

# The peers from pip (uWSGI and bjoern are built against this python and libev), in a venv of
# Debian's python: made once, and remade only if it is not the pinned set on that python.
venv_ok() {
  [[ -x $venv/bin/python && -x $venv/bin/uwsgi && -x $venv/bin/granian && -x $venv/bin/gunicorn ]] &&
    [[ $("$venv/bin/python" -c 'import sys; print(sys.base_prefix)') == /usr ]] &&
    "$venv/bin/python" - "${pip_peers[@]}" <<'PY'
import sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    if version(name) != want:
        sys.exit(1)
import bjoern  # its C extension loads (libev)
PY
}
if ! venv_ok 2>/dev/null; then
  log "making $venv (pip: ${pip_peers[*]}; uWSGI and bjoern compile, a few minutes)"
  rm -rf "$venv"
  mkdir -p "$cache"
  $py -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "${pip_peers[@]}"
  venv_ok || { echo "the venv in $venv does not hold ${pip_peers[*]}" >&2; exit 1; }
fi

# --- Build ---------------------------------------------------------------------------------
log "building gatewayd (release)"
# PyO3 links the python it is shown: Debian's, whatever python3 comes first on PATH.
PYO3_PYTHON=${PYO3_PYTHON:-$py} cargo build --release -q --bin gatewayd --bin gatewayd-wsgi
gatewayd=$repo/target/release/gatewayd

work=$(mktemp -d /tmp/gatewayd-wsgi-bench.XXXXXX)
chmod 755 "$work"
pids=()
running() { # PID...: those still running (a zombie waiting to be reaped is not)
  local pid
  for pid in "$@"; do
    [[ -r /proc/$pid/stat && $(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$pid/stat" 2>/dev/null) != Z ]] &&
      echo "$pid"
  done
  return 0
}
stop_all() { # every server this script started, and their children (workers), by process id
  local pid all=() left
  for pid in "${pids[@]}"; do all+=("$pid" $(pgrep -P "$pid" 2>/dev/null || true)); done
  ((${#all[@]})) || return 0
  kill -TERM "${all[@]}" 2>/dev/null || true
  for _ in $(seq 50); do
    left=$(running "${all[@]}")
    [[ -z $left ]] && break
    sleep 0.1
  done
  # shellcheck disable=SC2086 # a list of pids
  [[ -z $left ]] || kill -KILL $left 2>/dev/null || true
  wait 2>/dev/null || true
}
cleanup() {
  stop_all
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$work/app" "$work/nginx"
cp bench/peers/wsgi_hello.py bench/peers/wsgi_json.py "$work/app/"
# What each app must answer: its body, made by the module itself.
for app in hello json; do
  $py -c "import sys; sys.path.insert(0, '$work/app'); import wsgi_$app as m; sys.stdout.buffer.write(m.BODY)" \
    > "$work/expected-$app"
done
content_type_hello=text/plain
content_type_json=application/json
cat > "$work/bjoern_run.py" <<'PY'
# bjoern_run.py DIR MODULE HOST PORT: bjoern serving DIR/MODULE.py's application.
import sys
import bjoern
sys.path.insert(0, sys.argv[1])
module = __import__(sys.argv[2])
bjoern.run(module.application, sys.argv[3], int(sys.argv[4]))
PY
ulimit -n 65536 2>/dev/null || true

# --- Servers -------------------------------------------------------------------------------
servers=() # NAME|APP|PID, for the memory table
start() { # NAME APP COMMAND...: runs a server in the background, its output in $work/NAME-APP.log
  local name=$1 app=$2; shift 2
  "$@" > "$work/$name-$app.log" 2>&1 &
  pids+=($!)
  servers+=("$name|$app|$!")
  eval "pid_${name//[^a-zA-Z0-9]/_}_$app=$!"
}
pid_of() { local v="pid_${1//[^a-zA-Z0-9]/_}_$2"; echo "${!v:-}"; }

gw_config() { # APP HTTP-PORT [nginx]: a wsgi app behind one HTTP listener (and the nginx ones)
  printf '[[listen]]\nprotocol = "http"\naddress = "127.0.0.1:%s"\n' "$2"
  if [[ ${3:-} == nginx ]]; then
    local proto
    for proto in fastcgi scgi uwsgi; do
      printf '[[listen]]\nprotocol = "%s"\naddress = "unix:%s"\nsocket_mode = "0666"\n' \
        "$proto" "$work/gw-$proto-$1.sock"
      [[ -z ${BENCH_TCP:-} ]] ||
        printf '[[listen]]\nprotocol = "%s"\naddress = "127.0.0.1:%s"\n' "$proto" "$(tcp_port gw "$proto" "$1")"
    done
  fi
  cat <<TOML
[apps.py]
type = "wsgi"
module = "wsgi_$1:application"
python_path = ["$work/app"]
threads = $threads

[[mount]]
path = "/"
app = "py"
TOML
}
# Ports: hello 18510-18529, json 18530-18549 (direct HTTP and TCP backends), nginx 18560-18599.
base_hello=18510 base_json=18530
port() { # APP OFFSET
  local b="base_$1"
  echo $((${!b} + $2))
}
tcp_port() { # gw|uw PROTOCOL APP: the backend's TCP port for BENCH_TCP=1
  local o
  case $1-$2 in
    gw-fastcgi) o=10 ;; gw-scgi) o=11 ;; gw-uwsgi) o=12 ;;
    uw-fastcgi) o=13 ;; uw-scgi) o=14 ;; uw-uwsgi) o=15 ;;
  esac
  port "$3" "$o"
}

gatewayd_ok=1
gw_config hello "$(port hello 0)" nginx > "$work/wsgi-check.toml"
if ! "$gatewayd" check --config "$work/wsgi-check.toml" > "$work/gatewayd-check.txt" 2>&1; then
  gatewayd_ok=
  log "gatewayd has no wsgi app type here: its rows are not measured ($(head -1 "$work/gatewayd-check.txt"))"
fi

for app in hello json; do
  if [[ -n $gatewayd_ok ]]; then
    gw_config "$app" "$(port "$app" 0)" nginx > "$work/gatewayd-$app.toml"
    gw_config "$app" "$(port "$app" 1)" > "$work/gatewayd-log-$app.toml"
    # The access log is off, as it is for every peer: the bench measures the server.
    RUST_LOG=info,gatewayd::access=off start gatewayd "$app" "$gatewayd" serve --config "$work/gatewayd-$app.toml"
    # And on, to a file, as the default config runs.
    RUST_LOG=info start gatewayd_log "$app" "$gatewayd" serve --config "$work/gatewayd-log-$app.toml"
  fi
  start granian "$app" "$venv/bin/granian" --interface wsgi --host 127.0.0.1 --port "$(port "$app" 2)" \
    --workers 1 --blocking-threads "$threads" --no-ws --log-level warning --working-dir "$work/app" \
    "wsgi_$app:application"
  start gunicorn "$app" "$venv/bin/gunicorn" --worker-class gthread --workers 1 --threads "$threads" \
    --bind "127.0.0.1:$(port "$app" 3)" --chdir "$work/app" --log-level warning "wsgi_$app:application"
  uw_sockets=(--http-socket "127.0.0.1:$(port "$app" 4)" --http11-socket "127.0.0.1:$(port "$app" 5)")
  for proto in fastcgi scgi uwsgi; do
    uw_sockets+=("--$proto-socket" "$work/uw-$proto-$app.sock")
    [[ -z ${BENCH_TCP:-} ]] || uw_sockets+=("--$proto-socket" "127.0.0.1:$(tcp_port uw "$proto" "$app")")
  done
  start uwsgi "$app" "$venv/bin/uwsgi" --master --die-on-term --processes 1 --threads "$threads" \
    --disable-logging --need-app --chdir "$work/app" --wsgi-file "$work/app/wsgi_$app.py" \
    --chmod-socket=666 "${uw_sockets[@]}"
  start bjoern "$app" "$venv/bin/python" "$work/bjoern_run.py" "$work/app" "wsgi_$app" 127.0.0.1 "$(port "$app" 6)"
done

# --- Targets: app, server, chain, URL, and the server's pid; nginx in front of some ---------
t_apps=() t_names=() t_chains=() t_urls=() t_pids=()
target() { t_apps+=("$1"); t_names+=("$2"); t_chains+=("$3"); t_urls+=("$4"); t_pids+=("${5:-}"); }
: > "$work/not-measured"
not_measured() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$work/not-measured"; }
next_port=18560
upstreams=0
nginx_servers=$work/nginx/servers.conf
: > "$nginx_servers"
via_nginx() { # APP NAME CHAIN PID LOCATION-BODY
  local p=$((next_port++))
  printf 'server { listen 127.0.0.1:%s; location / { %s } }\n' "$p" "$5" >> "$nginx_servers"
  target "$1" "$2" "$3" "http://127.0.0.1:$p/" "$4"
}
backend() { # gw|uw PROTOCOL APP unix|TCP: where nginx reaches a server
  if [[ $4 == unix ]]; then echo "unix:$work/$1-$2-$3.sock"; else echo "127.0.0.1:$(tcp_port "$1" "$2" "$3")"; fi
}
behind_nginx() { # APP NAME PID gw|uw unix|TCP: FastCGI (keep-conn), SCGI, uwsgi
  local app=$1 name=$2 pid=$3 who=$4 kind=$5 up
  up=up$((upstreams++))
  printf 'upstream %s { server %s; keepalive 32; }\n' "$up" "$(backend "$who" fastcgi "$app" "$kind")" \
    >> "$nginx_servers"
  via_nginx "$app" "$name" "nginx → FastCGI ($kind, keep-conn)" "$pid" \
    "include /etc/nginx/fastcgi_params; fastcgi_keep_conn on; fastcgi_pass $up;"
  via_nginx "$app" "$name" "nginx → SCGI ($kind)" "$pid" \
    "include /etc/nginx/scgi_params; scgi_pass $(backend "$who" scgi "$app" "$kind");"
  via_nginx "$app" "$name" "nginx → uwsgi ($kind)" "$pid" \
    "include /etc/nginx/uwsgi_params; uwsgi_pass $(backend "$who" uwsgi "$app" "$kind");"
}
for app in hello json; do
  if [[ -n $gatewayd_ok ]]; then
    target "$app" gatewayd "HTTP direct" "http://127.0.0.1:$(port "$app" 0)/" "$(pid_of gatewayd "$app")"
    target "$app" "gatewayd (log on)" "HTTP direct" "http://127.0.0.1:$(port "$app" 1)/" \
      "$(pid_of gatewayd_log "$app")"
  else
    not_measured "$app" gatewayd "HTTP direct"
    not_measured "$app" "gatewayd (log on)" "HTTP direct"
  fi
  target "$app" granian "HTTP direct" "http://127.0.0.1:$(port "$app" 2)/" "$(pid_of granian "$app")"
  target "$app" "gunicorn (gthread)" "HTTP direct" "http://127.0.0.1:$(port "$app" 3)/" "$(pid_of gunicorn "$app")"
  target "$app" "uWSGI (--http-socket)" "HTTP direct" "http://127.0.0.1:$(port "$app" 4)/" "$(pid_of uwsgi "$app")"
  target "$app" "uWSGI (--http11-socket)" "HTTP direct" "http://127.0.0.1:$(port "$app" 5)/" "$(pid_of uwsgi "$app")"
  target "$app" bjoern "HTTP direct" "http://127.0.0.1:$(port "$app" 6)/" "$(pid_of bjoern "$app")"
  kinds=(unix)
  [[ -z ${BENCH_TCP:-} ]] || kinds+=(TCP)
  for kind in "${kinds[@]}"; do
    if [[ -n $gatewayd_ok ]]; then
      behind_nginx "$app" gatewayd "$(pid_of gatewayd "$app")" gw "$kind"
    else
      for c in "FastCGI ($kind, keep-conn)" "SCGI ($kind)" "uwsgi ($kind)"; do
        not_measured "$app" gatewayd "nginx → $c"
      done
    fi
    behind_nginx "$app" uWSGI "$(pid_of uwsgi "$app")" uw "$kind"
  done
done

cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes auto;
$( ((EUID == 0)) && echo "user root;")
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  scgi_temp_path $work/nginx/scgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  include /etc/nginx/mime.types;
  include $nginx_servers;
}
NGINX
# Not through start: nginx is in no row of the memory table.
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" > "$work/nginx.log" 2>&1 &
pid_nginx=$!
pids+=("$pid_nginx")

# --- Every target must answer its app's response before it is measured ----------------------
check() { # URL APP: 200, the app's Content-Type, the app's exact body
  local head ct="content_type_$2"
  head=$(curl -sS -D - -o "$work/body" --max-time 5 "$1" 2>/dev/null) || return 1
  [[ $head == HTTP/1.1\ 200* ]] && grep -qi "^content-type: ${!ct}" <<<"$head" &&
    cmp -s "$work/body" "$work/expected-$2"
}
selected() {
  [[ -z $only ]] || [[ ${t_apps[$1]} =~ $only ]] || [[ ${t_names[$1]} =~ $only ]] ||
    [[ ${t_chains[$1]} =~ $only ]]
}
log "waiting for ${#t_names[@]} targets"
for i in "${!t_names[@]}"; do
  selected "$i" || continue
  for _ in $(seq 150); do check "${t_urls[$i]}" "${t_apps[$i]}" && continue 2; sleep 0.1; done
  echo "${t_names[$i]} on ${t_chains[$i]} (${t_urls[$i]}) does not answer the ${t_apps[$i]} response:" >&2
  curl -sS -i --max-time 5 "${t_urls[$i]}" 2>&1 | head -c 600 >&2 || true
  tail -n 5 "$work"/*.log "$work/nginx/error.log" >&2
  exit 1
done
if [[ -n ${BENCH_SMOKE:-} ]]; then # every selected target answered once: done
  for i in "${!t_names[@]}"; do
    selected "$i" && echo "ok  ${t_apps[$i]}: ${t_names[$i]} on ${t_chains[$i]} (${t_urls[$i]})"
  done
  while IFS=$'\t' read -r app name chain; do echo "not measured  $app: $name on $chain"; done < "$work/not-measured"
  exit 0
fi

rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
memory() { # WHEN: the RSS of each server's processes, main (master) and children (workers)
  local s name app pid child
  for s in "${servers[@]}"; do
    IFS='|' read -r name app pid <<<"$s"
    echo "$1 $app $name main $pid $(rss "$pid")"
    for child in $(pgrep -P "$pid" || true); do echo "$1 $app $name child $child $(rss "$child")"; done
  done
}
tick=$(getconf CLK_TCK)
ticks() { # PID...: "user system" clock ticks of the processes and their children
  local pid all=()
  for pid in "$@"; do all+=("$pid" $(pgrep -P "$pid" || true)); done
  for pid in "${all[@]}"; do cat "/proc/$pid/stat" 2>/dev/null || true; done |
    awk '{ sub(/^.*\) /, ""); u += $12 + $14; s += $13 + $15 } END { printf "%d %d\n", u, s }'
}
memory idle > "$work/memory"
load_before=$(cut -d' ' -f1 /proc/loadavg)

# --- Load ------------------------------------------------------------------------------------
: > "$work/results.tsv"
: > "$work/failures"
order=("${!t_names[@]}")
for i in "${order[@]}"; do # warm-up: one second each, not recorded
  selected "$i" && { wrk -t1 -c"$conns" -d1s "${t_urls[$i]}" > /dev/null 2>&1 || true; }
done
for round in $(seq "$rounds"); do
  if ((round % 2 == 0)); then seq=$(printf '%s\n' "${order[@]}" | tac); else seq=${order[*]}; fi
  for i in $seq; do
    selected "$i" || continue
    log "round $round/$rounds: ${t_apps[$i]}: ${t_names[$i]} on ${t_chains[$i]}"
    read -r bu0 bs0 < <(ticks "${t_pids[$i]}")
    # shellcheck disable=SC2046 # word splitting of the pid list is wanted
    read -r nu0 ns0 < <(ticks $(pgrep -P "$pid_nginx"))
    if ! wrk -t1 -c"$conns" -d"$duration" --latency "${t_urls[$i]}" > "$work/wrk.txt" 2>&1; then
      # A round that fails counts as 0 req/s, and is listed under the tables with what the
      # server's log said last: one target down does not end the run.
      log "wrk failed: $(head -1 "$work/wrk.txt")"
      for s in "${servers[@]}"; do
        [[ ${s##*|} == "${t_pids[$i]}" ]] || continue
        IFS='|' read -r sname sapp _ <<<"$s"
        tail -n 20 "$work/$sname-$sapp.log" >&2 || true
      done
      printf '%s\t%s\t%s\t%s\t%s; the server %s\n' "${t_apps[$i]}" "${t_names[$i]}" "${t_chains[$i]}" \
        "$round" "$(head -1 "$work/wrk.txt")" \
        "$([[ -n $(running "${t_pids[$i]}") ]] && echo 'was still running' || echo 'had exited')" \
        >> "$work/failures"
    fi
    read -r bu1 bs1 < <(ticks "${t_pids[$i]}")
    # shellcheck disable=SC2046
    read -r nu1 ns1 < <(ticks $(pgrep -P "$pid_nginx"))
    awk -v app="${t_apps[$i]}" -v name="${t_names[$i]}" -v chain="${t_chains[$i]}" -v round="$round" \
      -v bu=$((bu1 - bu0)) -v bs=$((bs1 - bs0)) -v ng=$((nu1 + ns1 - nu0 - ns0)) -v tick="$tick" '
      /requests in/ { n = $1 }
      /Requests\/sec/ { rps = $2 }
      $1 == "99%" { p99 = $2 }
      /Non-2xx/ { errors += $NF }
      /Socket errors/ { gsub(/,/, ""); errors += $4 + $6 + $8 + $10 }
      END {
        us = 1e6 / tick / (n ? n : 1)
        printf "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%.1f\t%.1f\t%.1f\n", app, name, chain, round, rps, p99,
          errors, bu * us, bs * us, ng * us
      }
    ' "$work/wrk.txt" | tee -a "$work/results.tsv" >&2
  done
done
sleep 3 # as bench/run.sh: gatewayd hands freed memory back a quiet second after a burst
memory after_load >> "$work/memory"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- Versions, settings and report -------------------------------------------------------------
pip_version() { "$venv/bin/python" -c "from importlib.metadata import version; print(version('$1'))"; }
{
  echo "machine|$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r); load average $load_before before the load, $load_after (1, 5, 15 min) after it"
  echo "Python|CPython $($py -c 'import platform; print(platform.python_version())') (Debian's $py, libpython3.11 $(dpkg-query -W -f '${Version}' libpython3.11)), for gatewayd and every peer"
  echo "gatewayd|$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!BENCHMARKS.md' || echo ' (modified)'), $(rustc --version | cut -d' ' -f1-2), PyO3 $(sed -n '/^name = "pyo3"$/{n;s/version = "\(.*\)"/\1/p}' Cargo.lock | head -1)$([[ -n $gatewayd_ok ]] || echo '; no wsgi app type in this build: not measured')"
  echo "granian|$(pip_version granian) (pip)"
  echo "gunicorn|$(pip_version gunicorn) (pip)"
  echo "uWSGI|$(pip_version uWSGI) (pip)"
  echo "bjoern|$(pip_version bjoern) (pip), libev $(dpkg-query -W -f '${Version}' libev-dev)"
  echo "nginx|$(nginx -v 2>&1 | sed 's/.*nginx\///')"
  echo "wrk|$(dpkg-query -W -f '${Version}' wrk)"
} > "$work/versions"
{
  echo "gatewayd|one process: \`type = \"wsgi\"\`, \`threads = $threads\`, default \`[server]\` (runtime threads: one per core); access log off (\`RUST_LOG=info,gatewayd::access=off\`), and on for \"gatewayd (log on)\" (\`RUST_LOG=info\`, to a file)"
  echo "granian|\`--interface wsgi --workers 1 --blocking-threads $threads\` (runtime threads: its default, 1), access log off (its default)"
  echo "gunicorn|\`--worker-class gthread --workers 1 --threads $threads\`, no access log (its default)"
  echo "uWSGI|\`--master --processes 1 --threads $threads --disable-logging\`, one instance per app serving \`--http-socket\` (no keep-alive: it closes the connection after each response, which wrk counts as a read error, and reconnects), \`--http11-socket\` (keep-alive), \`--fastcgi-socket\`, \`--scgi-socket\` and \`--uwsgi-socket\`"
  echo "bjoern|\`bjoern.run\`: one process, one thread (it has no other mode)"
  echo "nginx|\`worker_processes auto\`, \`access_log off\`; FastCGI with \`fastcgi_keep_conn on\` and \`keepalive 32\` to the upstream; SCGI and uwsgi open a connection per request"
} > "$work/settings"

REPORT_DURATION=$duration REPORT_ROUNDS=$rounds REPORT_CONNS=$conns \
  $py - "$work" "$repo/BENCHMARKS.md" <<'PY'
import os
import statistics
import sys
from collections import OrderedDict
from pathlib import Path

BEGIN, END = "<!-- wsgi-bench:start -->", "<!-- wsgi-bench:end -->"
work, doc = Path(sys.argv[1]), Path(sys.argv[2])


def millis(text):
    for unit, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1e3), ("m", 6e4)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float("nan")


rows = OrderedDict()  # (app, chain, name) -> row
for line in (work / "results.tsv").read_text().splitlines():
    app, name, chain, _round, rps, p99, errors, user, sys_, ng = line.split("\t")
    r = rows.setdefault((app, chain, name), {"rps": [], "p99": [], "errors": 0, "user": [],
                                             "sys": [], "nginx": []})
    r["rps"].append(float(rps or 0))
    r["p99"].append(millis(p99 or "nan"))
    r["errors"] += int(errors or 0)
    for k, v in (("user", user), ("sys", sys_), ("nginx", ng)):
        r[k].append(float(v))
for r in rows.values():
    r["median"] = statistics.median(r["rps"])
    r["p99"] = [v for v in r["p99"] if v == v] or [float("nan")]  # a failed round has none
    for k in ("p99", "user", "sys", "nginx"):
        r[k] = statistics.median(r[k])
missing = [tuple(line.split("\t")) for line in (work / "not-measured").read_text().splitlines()]
for app, name, chain in missing:
    rows[(app, chain, name)] = None
# Keep the order: per app, HTTP direct first, then each nginx chain.
order = {"HTTP direct": 0}
rows = OrderedDict(sorted(rows.items(), key=lambda kv: (
    kv[0][0] != "hello", order.get(kv[0][1], 1), kv[0][1],
    not kv[0][2].startswith("gatewayd"), kv[0][2] != "gatewayd")))


def reference(app, chain):
    """The peer a row is compared with: granian over HTTP, uWSGI on the same nginx chain."""
    r = rows.get((app, chain, "granian" if chain == "HTTP direct" else "uWSGI"))
    return r["median"] if r else None


apps = {"hello": "hello (`Hello, World!\\n`, text/plain, 14 bytes)",
        "json": "json (about 10 KB of JSON, application/json)"}
out = []
env = os.environ
out.append(f"Load: `wrk -t1 -c{env['REPORT_CONNS']} -d{env['REPORT_DURATION']}` per target and "
           f"round, {env['REPORT_ROUNDS']} round{'' if env['REPORT_ROUNDS'] == '1' else 's'} in alternating order (A B C … C B A …), after a "
           "1 s warm-up each; the tables give the median of the rounds and their spread. One "
           "process per server (plus its master, if any). Ratios compare medians: HTTP direct "
           "with granian, each nginx chain with uWSGI on that chain.")
out.append("")
out.append("| app | chain | server | req/s (median) | spread (min–max) | p99 | ratio | errors"
           " | server CPU µs/req (user + sys) | nginx µs/req |")
out.append("|---|---|---|--:|--:|--:|--:|--:|--:|--:|")
for (app, chain, name), r in rows.items():
    label = f"**{name}**" if name.startswith("gatewayd") else name
    if r is None:
        out.append(f"| {app} | {chain} | {label} | not measured | – | – | – | – | – | – |")
        continue
    ref = reference(app, chain)
    ratio = f"{r['median'] / ref:.2f}×" if ref else "–"
    ng = f"{r['nginx']:.1f}" if chain != "HTTP direct" else "–"
    out.append(f"| {app} | {chain} | {label} | {r['median']:,.0f} | {min(r['rps']):,.0f}–"
               f"{max(r['rps']):,.0f} | {r['p99']:.2f} ms | {ratio} | {r['errors']} | "
               f"{r['user']:.1f} + {r['sys']:.1f} | {ng} |")
failures = [line.split("\t") for line in (work / "failures").read_text().splitlines()]
if failures:
    out.append("")
    out.append("Failed rounds (counted as 0 req/s in the medians above):")
    out.append("")
    for app, name, chain, rnd, what in failures:
        out.append(f"- {app}, {name} on {chain}, round {rnd}: {what}.")
out.append("")

# The ratios at a glance.
chains = []
for (app, chain, name) in rows:
    if chain not in chains:
        chains.append(chain)
head = ["app"]
for chain in chains:
    head.append("HTTP direct: gatewayd / granian" if chain == "HTTP direct"
                else f"{chain}: gatewayd / uWSGI")
head.append("HTTP direct: gatewayd (log on) / granian")
out.append("| " + " | ".join(head) + " |")
out.append("|---|" + "--:|" * (len(head) - 1))
for app in apps:
    cells = [app]
    for chain in chains + ["log on"]:
        name = "gatewayd (log on)" if chain == "log on" else "gatewayd"
        chain = "HTTP direct" if chain == "log on" else chain
        key, ref = (app, chain, name), reference(app, chain)
        if key in rows and rows[key] is None:
            cells.append("not measured")
        elif rows.get(key) and ref:
            cells.append(f"{rows[key]['median'] / ref:.2f}×")
        else:
            cells.append("–")
    out.append("| " + " | ".join(cells) + " |")
out.append("")

# Memory: per server and app, its processes.
mem = OrderedDict()  # (app, server) -> {when: {"main": kib, "children": [kib]}}
for line in (work / "memory").read_text().splitlines():
    when, app, server, role, _pid, kib = line.split()
    m = mem.setdefault((app, server), {}).setdefault(when, {"main": 0, "children": []})
    if role == "main":
        m["main"] = int(kib)
    else:
        m["children"].append(int(kib))
names = {"gatewayd": "**gatewayd**", "gatewayd_log": "**gatewayd (log on)**", "granian": "granian",
         "gunicorn": "gunicorn (gthread)", "uwsgi": "uWSGI", "bjoern": "bjoern"}
mib = lambda kib: f"{kib / 1024:.1f} MiB"
out.append("Memory (RSS from `/proc`, per process; the worker serves, the master only watches it; "
           "uWSGI's one instance per app serves every chain):")
out.append("")
out.append("| app | server | worker, idle | worker, after the load | master, after the load"
           " | total after the load |")
out.append("|---|---|--:|--:|--:|--:|")
for (app, server), whens in mem.items():
    idle, after = whens.get("idle"), whens.get("after_load")
    if not after:
        continue
    if after["children"]:  # a master and its worker(s)
        worker_idle = sum(idle["children"]) if idle else 0
        worker, master = sum(after["children"]), after["main"]
        master_cell = mib(master)
    else:
        worker_idle, worker, master = idle["main"] if idle else 0, after["main"], 0
        master_cell = "– (one process)"
    out.append(f"| {app} | {names.get(server, server)} | {mib(worker_idle)} | {mib(worker)}"
               f" | {master_cell} | {mib(worker + master)} |")
for app, name, chain in missing:
    if chain == "HTTP direct":
        out.append(f"| {app} | **{name}** | not measured | not measured | – | – |")
out.append("")

out.append("Settings:")
out.append("")
for line in (work / "settings").read_text().splitlines():
    k, v = line.split("|", 1)
    out.append(f"- {k}: {v};")
out[-1] = out[-1].rstrip(";") + "."
out.append("")
out.append("| | |")
out.append("|---|---|")
for line in (work / "versions").read_text().splitlines():
    k, v = line.split("|", 1)
    out.append(f"| {k} | {v} |")

text = doc.read_text()
block = BEGIN + "\n\n" + "\n".join(out) + "\n\n" + END
if BEGIN in text and END in text:
    pre, rest = text.split(BEGIN, 1)
    text = pre + block + rest.split(END, 1)[1]
else:
    section = ("## Python WSGI apps\n\n"
               "gatewayd's `wsgi` app type against granian, gunicorn, uWSGI and bjoern, each running the same\n"
               "module on the same Debian CPython 3.11. **Reproduce:** `bench/wsgi.sh` (as root on Debian: one\n"
               "`apt-get install`, the peers from pip into a venv under `/var/cache/gatewayd-bench`, then about\n"
               "8 minutes of load); it rewrites only the text between the wsgi-bench markers.\n\n"
               + block + "\n\n")
    marker = "## Micro-benchmarks"
    text = text.replace(marker, section + marker, 1) if marker in text else text + "\n" + section
doc.write_text(text)
PY
log "BENCHMARKS.md updated (wsgi-bench section)"
