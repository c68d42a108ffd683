#!/usr/bin/env bash
# gatewayd against its peers, on the chains users deploy, in one run on this machine.
#
# Every target answers GET / with 200, text/plain and "Hello, World!\n" (checked before the
# load). Each is loaded with `wrk -t1 -c50 -d5s` for 3 rounds, interleaved (A B C ... then
# ... C B A, then A B C again) so a slow phase of a noisy machine hits every target alike. CGI
# programs are also timed per request with `hyperfine -N`. gatewayd's memory is read from
# /proc: idle, holding 1,000 idle keep-alive connections, and after the load.
#
# Everything runs from private configs in a temp dir, on loopback ports 18300-18499. The
# results go to BENCHMARKS.md (between its bench markers) and bench/chart.svg.
#
# Usage: bench/run.sh            (as root: it installs its Debian packages with apt-get)
# Knobs: BENCH_DURATION (5s), BENCH_ROUNDS (3), BENCH_CONNS (50), BENCH_CGI_RUNS (1000),
#        BENCH_ONLY (a regex over target names, chains, or "NAME on CHAIN", to measure a few
#        while working),
#        BENCH_HOLD=1 (start everything, print the URLs and wait, for profiling by hand),
#        BENCH_SMOKE=1 (start everything, check that each target selected by BENCH_ONLY answers
#        the hello response once, and stop: no load, no report),
#        BENCH_BEFORE=path/to/gatewayd (an older build, measured beside this one on HTTP direct,
#        FastCGI over TCP with and without keep-conn, SCGI and uwsgi: a change's before and
#        after in the same run).
# gatewayd is measured with its access log off, as every peer's is, and also as users run it by
# default, log on (to a file), on the same chains: the rows "gatewayd (log on)".
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
duration=${BENCH_DURATION:-5s}
rounds=${BENCH_ROUNDS:-3}
conns=${BENCH_CONNS:-50}
cgi_runs=${BENCH_CGI_RUNS:-1000}
only=${BENCH_ONLY:-}

log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

# --- Packages ----------------------------------------------------------------------------
packages=(nginx php-fpm golang-go uwsgi-core uwsgi-plugin-python3 fcgiwrap wrk hyperfine gcc curl
  python3-venv)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v python3 >/dev/null || { echo "bench/run.sh needs python3" >&2; exit 1; }
php_fpm=$(ls /usr/sbin/php-fpm* | head -1)

# --- Builds ------------------------------------------------------------------------------
log "building gatewayd and the hyper peer (release), and gatewayd's static build for CGI"
cargo build --release -q --bin gatewayd --example hyper-hello
gatewayd=$repo/target/release/gatewayd
# A CGI program starts once per request: there the static build is what to deploy (no dynamic
# loader); the daemons run the default build, as hyper's hello does.
gatewayd_static=$(scripts/build-static.sh -q)

work=$(mktemp -d /tmp/gatewayd-bench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  pkill -f "$work" 2>/dev/null || true # the children of fcgiwrap and php-fpm
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/cgi" "$work/nginx"
GOCACHE=$work/.gocache GOPATH=$work/.gopath GO111MODULE=off \
  go build -o "$work/go-fcgi-hello" bench/peers/go_fcgi_hello.go
gcc -O2 -o "$work/cgi/hello-c" bench/peers/hello_cgi.c
{ echo "#!$(command -v python3)"; cat bench/peers/hello_cgi.py; } > "$work/cgi/hello-py"
chmod 755 "$work/cgi/hello-py"
cp bench/peers/hello.php bench/peers/hello_wsgi.py "$work/"
# gunicorn speaks uwsgi from 24.0 on (Debian 12 packages 20.1): from PyPI, into a venv of its own.
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q 'gunicorn>=24'
gunicorn_version=$("$work/venv/bin/gunicorn" --version | awk '{print $NF}' | tr -d '()')
ulimit -n 65536 2>/dev/null || true

# --- Servers -----------------------------------------------------------------------------
start() { # NAME COMMAND...: runs a server in the background, its output in $work/NAME.log
  local name=$1; shift
  "$@" > "$work/$name.log" 2>&1 &
  pids+=($!)
  eval "pid_$name=$!"
}

cat > "$work/gatewayd.toml" <<TOML
[[listen]]
protocol = "http"
address = "127.0.0.1:18301"
[[listen]]
protocol = "fastcgi"
address = "127.0.0.1:18302"
[[listen]]
protocol = "fastcgi"
address = "unix:$work/gw-fcgi.sock"
socket_mode = "0666"
[[listen]]
protocol = "scgi"
address = "127.0.0.1:18303"
[[listen]]
protocol = "scgi"
address = "unix:$work/gw-scgi.sock"
socket_mode = "0666"
[[listen]]
protocol = "uwsgi"
address = "127.0.0.1:18310"
[[listen]]
protocol = "uwsgi"
address = "unix:$work/gw-uwsgi.sock"
socket_mode = "0666"
TOML
cat bench/peers/hello.toml >> "$work/gatewayd.toml"
# The access log is off, as it is for every peer (nginx, uWSGI): the bench measures the gateway.
RUST_LOG=info,gatewayd::access=off start gatewayd "$gatewayd" serve --config "$work/gatewayd.toml"
# Variants on their own ports (HTTP, FastCGI, SCGI over TCP): the default config (access log
# on, to a file) and, with BENCH_BEFORE, an older build with the log off.
variant_config() { # FIRST-PORT
  printf '[[listen]]\nprotocol = "http"\naddress = "127.0.0.1:%s"\n' "$1"
  printf '[[listen]]\nprotocol = "fastcgi"\naddress = "127.0.0.1:%s"\n' "$(($1 + 1))"
  printf '[[listen]]\nprotocol = "scgi"\naddress = "127.0.0.1:%s"\n' "$(($1 + 2))"
  printf '[[listen]]\nprotocol = "uwsgi"\naddress = "127.0.0.1:%s"\n' "$(($1 + 3))"
  cat bench/peers/hello.toml
}
variant_config 18321 > "$work/gatewayd-log.toml"
RUST_LOG=info start gatewayd_log "$gatewayd" serve --config "$work/gatewayd-log.toml"
if [[ -n ${BENCH_BEFORE:-} ]]; then
  variant_config 18331 > "$work/gatewayd-before.toml"
  RUST_LOG=info,gatewayd::access=off start gatewayd_before "$BENCH_BEFORE" serve \
    --config "$work/gatewayd-before.toml"
fi
start hyper "$repo/target/release/examples/hyper-hello" 127.0.0.1:18304

cat > "$work/php-fpm.conf" <<INI
[global]
pid = $work/php-fpm.pid
error_log = $work/php-fpm-error.log
daemonize = no
[unix]
user = $(id -un)
listen = $work/php.sock
listen.mode = 0666
pm = static
pm.max_children = 4
[tcp]
user = $(id -un)
listen = 127.0.0.1:18305
pm = static
pm.max_children = 4
; keep-conn pins a child to each connection nginx keeps (2 workers x keepalive 32, plus the
; 50 in flight): those chains get pools of their own, or they would starve the plain ones.
[unix-keep]
user = $(id -un)
listen = $work/php-keep.sock
listen.mode = 0666
pm = ondemand
pm.max_children = 96
pm.process_idle_timeout = 600s
[tcp-keep]
user = $(id -un)
listen = 127.0.0.1:18309
pm = ondemand
pm.max_children = 96
pm.process_idle_timeout = 600s
INI
start php "$php_fpm" -R -F -y "$work/php-fpm.conf"
start go "$work/go-fcgi-hello" 127.0.0.1:18306 "unix:$work/go.sock"
start uwsgi uwsgi --plugin python3 --master --die-on-term --processes 2 --disable-logging --need-app \
  --chdir "$work" --wsgi-file "$work/hello_wsgi.py" --chmod-socket=666 \
  --fastcgi-socket 127.0.0.1:18307 --fastcgi-socket "$work/uw-fcgi.sock" \
  --scgi-socket 127.0.0.1:18308 --scgi-socket "$work/uw-scgi.sock" \
  --uwsgi-socket 127.0.0.1:18311 --uwsgi-socket "$work/uw-uwsgi.sock"
# gunicorn's default sync workers, as many as uWSGI's processes; it accepts uwsgi from
# loopback only by default, and a unix socket has no peer address to allow.
start gunicorn "$work/venv/bin/gunicorn" --protocol uwsgi --uwsgi-allow-from '*' --workers 2 \
  --chdir "$work" --bind 127.0.0.1:18312 --bind "unix:$work/gunicorn.sock" hello_wsgi:application
umask_was=$(umask)
umask 0 # fcgiwrap has no socket mode option
start fcgiwrap fcgiwrap -c 2 -s "unix:$work/fcgiwrap.sock"
umask "$umask_was"

# --- Targets: name, chain, kind (gatewayd, peer or ceiling), URL; nginx in front of most ----
names=() chains=() kinds=() urls=()
target() { names+=("$1"); chains+=("$2"); kinds+=("$3"); urls+=("$4"); }
next_port=18400
upstreams=0
servers=$work/nginx/servers.conf
: > "$servers"
via_nginx() { # NAME CHAIN KIND LOCATION-BODY
  local port=$((next_port++))
  printf 'server { listen 127.0.0.1:%s; location / { %s } }\n' "$port" "$4" >> "$servers"
  target "$1" "$2" "$3" "http://127.0.0.1:$port/"
}
upstream() { # ADDRESS [KEEPALIVE]: defines an upstream block named $up
  up=up$((upstreams++))
  printf 'upstream %s { server %s; %s }\n' "$up" "$1" "${2:+keepalive $2;}" >> "$servers"
}
kind_of() { [[ $1 == gatewayd* ]] && echo gatewayd || echo peer; }
via_fastcgi() { # NAME SOCKET-KIND ADDRESS [EXTRA-DIRECTIVES [KEEP-CONN-ADDRESS]]: without and with keep-conn
  local kind
  kind=$(kind_of "$1")
  upstream "$3"
  via_nginx "$1" "nginx → FastCGI ($2)" "$kind" "include /etc/nginx/fastcgi_params; ${4:-} fastcgi_pass $up;"
  upstream "${5:-$3}" 32
  via_nginx "$1" "nginx → FastCGI ($2, keep-conn)" "$kind" \
    "include /etc/nginx/fastcgi_params; ${4:-} fastcgi_keep_conn on; fastcgi_pass $up;"
}
via_scgi() { # NAME SOCKET-KIND ADDRESS
  via_nginx "$1" "nginx → SCGI ($2)" "$(kind_of "$1")" "include /etc/nginx/scgi_params; scgi_pass $3;"
}
via_uwsgi() { # NAME SOCKET-KIND ADDRESS
  via_nginx "$1" "nginx → uwsgi ($2)" "$(kind_of "$1")" "include /etc/nginx/uwsgi_params; uwsgi_pass $3;"
}
via_proxy() { # NAME ADDRESS
  upstream "$2" 32
  via_nginx "$1" "nginx → HTTP proxy" "$(kind_of "$1")" \
    "proxy_pass http://$up; proxy_http_version 1.1; proxy_set_header Connection \"\";"
}
via_fcgiwrap() { # NAME PROGRAM [EXTRA-DIRECTIVES]
  via_nginx "$1" "nginx → fcgiwrap → CGI" "$(kind_of "$1")" \
    "include /etc/nginx/fastcgi_params; fastcgi_param SCRIPT_FILENAME $2; ${3:-} fastcgi_pass unix:$work/fcgiwrap.sock;"
}

via_nginx "nginx return 200" "nginx alone (ceiling)" ceiling \
  "default_type text/plain; return 200 \"Hello, World!\\n\";"
# The variants (log on; BENCH_BEFORE's build) each right after gatewayd on the same chain, so
# that the two are loaded back to back in every round and their per-round ratio is paired.
variants() { # http|fastcgi|scgi|uwsgi: the variants of gatewayd on that chain
  local name port
  for name in "gatewayd (log on)" ${BENCH_BEFORE:+"gatewayd (before)"}; do
    if [[ $name == *before* ]]; then port=18331; else port=18321; fi
    case $1 in
      http) target "$name" "HTTP direct" variant "http://127.0.0.1:$port/" ;;
      fastcgi)
        upstream "127.0.0.1:$((port + 1))" 32
        via_nginx "$name" "nginx → FastCGI (TCP, keep-conn)" variant \
          "include /etc/nginx/fastcgi_params; fastcgi_keep_conn on; fastcgi_pass $up;"
        # nginx's default: a connection per request.
        via_nginx "$name" "nginx → FastCGI (TCP)" variant \
          "include /etc/nginx/fastcgi_params; fastcgi_pass 127.0.0.1:$((port + 1));"
        ;;
      scgi) via_nginx "$name" "nginx → SCGI (TCP)" variant \
        "include /etc/nginx/scgi_params; scgi_pass 127.0.0.1:$((port + 2));" ;;
      uwsgi) via_nginx "$name" "nginx → uwsgi (TCP)" variant \
        "include /etc/nginx/uwsgi_params; uwsgi_pass 127.0.0.1:$((port + 3));" ;;
    esac
  done
}
target gatewayd "HTTP direct" gatewayd http://127.0.0.1:18301/
variants http
target "hyper hello" "HTTP direct" peer http://127.0.0.1:18304/
via_proxy gatewayd 127.0.0.1:18301
via_proxy "hyper hello" 127.0.0.1:18304
via_fastcgi gatewayd unix "unix:$work/gw-fcgi.sock"
via_fastcgi gatewayd TCP 127.0.0.1:18302
variants fastcgi
via_fastcgi php-fpm unix "unix:$work/php.sock" "fastcgi_param SCRIPT_FILENAME $work/hello.php;" \
  "unix:$work/php-keep.sock"
via_fastcgi php-fpm TCP 127.0.0.1:18305 "fastcgi_param SCRIPT_FILENAME $work/hello.php;" 127.0.0.1:18309
via_fastcgi "Go net/http/fcgi" unix "unix:$work/go.sock"
via_fastcgi "Go net/http/fcgi" TCP 127.0.0.1:18306
via_fastcgi uWSGI unix "unix:$work/uw-fcgi.sock"
via_fastcgi uWSGI TCP 127.0.0.1:18307
via_scgi gatewayd unix "unix:$work/gw-scgi.sock"
via_scgi gatewayd TCP 127.0.0.1:18303
variants scgi
via_scgi uWSGI unix "unix:$work/uw-scgi.sock"
via_scgi uWSGI TCP 127.0.0.1:18308
via_uwsgi gatewayd unix "unix:$work/gw-uwsgi.sock"
via_uwsgi gatewayd TCP 127.0.0.1:18310
variants uwsgi
via_uwsgi uWSGI unix "unix:$work/uw-uwsgi.sock"
via_uwsgi uWSGI TCP 127.0.0.1:18311
via_uwsgi gunicorn unix "unix:$work/gunicorn.sock"
via_uwsgi gunicorn TCP 127.0.0.1:18312
via_fcgiwrap gatewayd "$gatewayd_static" "fastcgi_param GATEWAYD_CONFIG $work/gatewayd.toml;"
via_fcgiwrap "C hello" "$work/cgi/hello-c"
via_fcgiwrap "Python hello" "$work/cgi/hello-py"

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
  include $servers;
}
NGINX
start nginx nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log"

# --- Every target must answer the same thing before it is measured ------------------------
check() { # URL: 200, text/plain, "Hello, World!\n"
  local head body
  head=$(curl -sS -D - -o "$work/body" --max-time 5 "$1" 2>/dev/null) || return 1
  body=$(cat "$work/body"; echo .)
  [[ $head == HTTP/1.1\ 200* ]] && grep -qi '^content-type: text/plain' <<<"$head" &&
    [[ $body == $'Hello, World!\n.' ]]
}
selected() {
  [[ -z $only ]] || [[ ${names[$1]} =~ $only ]] || [[ ${chains[$1]} =~ $only ]] ||
    [[ "${names[$1]} on ${chains[$1]}" =~ $only ]]
}
log "waiting for ${#names[@]} targets"
for i in "${!names[@]}"; do
  [[ -n ${BENCH_SMOKE:-} ]] && ! selected "$i" && continue
  for _ in $(seq 100); do check "${urls[$i]}" && continue 2; sleep 0.1; done
  echo "${names[$i]} on ${chains[$i]} (${urls[$i]}) does not answer the hello response:" >&2
  curl -sS -i --max-time 5 "${urls[$i]}" >&2 || true
  tail -n 5 "$work"/*.log "$work/nginx/error.log" >&2
  exit 1
done

if [[ -n ${BENCH_SMOKE:-} ]]; then # every selected target answered once: done
  for i in "${!names[@]}"; do
    selected "$i" && echo "ok  ${names[$i]} on ${chains[$i]} (${urls[$i]})"
  done
  exit 0
fi
if [[ -n ${BENCH_HOLD:-} ]]; then # keep every server up, to probe by hand
  for i in "${!names[@]}"; do echo "${urls[$i]}  ${names[$i]} on ${chains[$i]}"; done
  echo "work dir: $work; ^C ends"
  sleep infinity
fi
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# CPU accounting: user and system clock ticks of a process, its live children and the children
# it reaped (fields 14-17 of /proc/PID/stat), so a fork per request (CGI) is counted too.
tick=$(getconf CLK_TCK)
ticks() { # PID...: "user system"
  local pid all=()
  for pid in "$@"; do all+=("$pid" $(pgrep -P "$pid" || true)); done
  for pid in "${all[@]}"; do cat "/proc/$pid/stat" 2>/dev/null || true; done |
    awk '{ sub(/^.*\) /, ""); u += $12 + $14; s += $13 + $15 } END { printf "%d %d\n", u, s }'
}
backend_of() { # TARGET-INDEX: the processes that serve it behind nginx, or nothing
  case "${names[$1]}|${chains[$1]}" in
    *fcgiwrap*) echo "$pid_fcgiwrap" ;;
    "gatewayd (log on)"*) echo "$pid_gatewayd_log" ;;
    "gatewayd (before)"*) echo "$pid_gatewayd_before" ;;
    gatewayd*) echo "$pid_gatewayd" ;;
    "hyper hello"*) echo "$pid_hyper" ;;
    php-fpm*) echo "$pid_php" ;;
    Go*) echo "$pid_go" ;;
    uWSGI*) echo "$pid_uwsgi" ;;
    gunicorn*) echo "$pid_gunicorn" ;;
  esac
}
# shellcheck disable=SC2154 # set by start
gw=$pid_gatewayd
echo "gatewayd idle_kib $(rss "$gw")" > "$work/memory"
echo "hyper idle_kib $(rss "$pid_hyper")" >> "$work/memory"
python3 bench/idle_conns.py 127.0.0.1:18301 1000 "$gw" gatewayd >> "$work/memory"
python3 bench/idle_conns.py 127.0.0.1:18304 1000 "$pid_hyper" hyper >> "$work/memory"

# --- Load ----------------------------------------------------------------------------------
: > "$work/results.tsv"
order=("${!names[@]}")
for i in "${order[@]}"; do # warm-up: one second each, not recorded
  selected "$i" && wrk -t1 -c"$conns" -d1s "${urls[$i]}" > /dev/null
done
for round in $(seq "$rounds"); do
  if ((round % 2 == 0)); then seq=$(printf '%s\n' "${order[@]}" | tac); else seq=${order[*]}; fi
  for i in $seq; do
    selected "$i" || continue
    log "round $round/$rounds: ${names[$i]} on ${chains[$i]}"
    # shellcheck disable=SC2046 # word splitting of the pid lists is wanted
    {
      read -r bu0 bs0 < <(ticks $(backend_of "$i"))
      read -r nu0 ns0 < <(ticks $(pgrep -P "$pid_nginx"))
      TIMEFORMAT='%U %S'
      { time wrk -t1 -c"$conns" -d"$duration" --latency "${urls[$i]}" > "$work/wrk.txt"; } 2> "$work/wrk.time"
      read -r bu1 bs1 < <(ticks $(backend_of "$i"))
      read -r nu1 ns1 < <(ticks $(pgrep -P "$pid_nginx"))
    }
    awk -v name="${names[$i]}" -v chain="${chains[$i]}" -v kind="${kinds[$i]}" -v round="$round" \
      -v bu=$((bu1 - bu0)) -v bs=$((bs1 - bs0)) -v ng=$((nu1 + ns1 - nu0 - ns0)) -v tick="$tick" \
      -v wrk="$(awk '{print $1 + $2}' "$work/wrk.time")" '
      /requests in/ { n = $1 }
      /Requests\/sec/ { rps = $2 }
      $1 == "99%" { p99 = $2 }
      /Non-2xx/ { errors += $NF }
      /Socket errors/ { gsub(/,/, ""); errors += $4 + $6 + $8 + $10 }
      END {
        us = 1e6 / tick / (n ? n : 1)  # clock ticks to microseconds per request
        printf "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\n", name, chain, kind, round,
          rps, p99, errors, bu * us, bs * us, ng * us, wrk * 1e6 / (n ? n : 1)
      }
    ' "$work/wrk.txt" | tee -a "$work/results.tsv" >&2
  done
done
sleep 3 # gatewayd hands freed memory back a quiet second after a burst (src/server/trim.rs)
echo "gatewayd after_load_kib $(rss "$gw")" >> "$work/memory"

# --- CGI: time per request ----------------------------------------------------------------
log "CGI programs, $cgi_runs runs each over $rounds rounds"
(
  export GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=GET SCRIPT_NAME=/cgi-bin/hello PATH_INFO= \
    QUERY_STRING= SERVER_NAME=localhost SERVER_PORT=80 SERVER_PROTOCOL=HTTP/1.1 \
    REMOTE_ADDR=127.0.0.1 GATEWAYD_CONFIG="$work/gatewayd.toml"
  programs=("C hello" "$work/cgi/hello-c" "Python hello" "$work/cgi/hello-py"
    "gatewayd (static build)" "$gatewayd_static" "gatewayd (default build)" "$gatewayd")
  # Rounds in alternating order, as for wrk: hyperfine times one command after the other.
  for round in $(seq "$rounds"); do
    args=()
    for ((k = 0; k < ${#programs[@]}; k += 2)); do
      pair=(-n "${programs[k]}" "${programs[k + 1]}")
      if ((round % 2 == 0)); then args=("${pair[@]}" "${args[@]}"); else args+=("${pair[@]}"); fi
    done
    hyperfine -N --warmup 20 --runs $(((cgi_runs + rounds - 1) / rounds)) \
      --export-json "$work/cgi-$round.json" "${args[@]}" > /dev/null
  done
)

# --- Versions and report --------------------------------------------------------------------
{
  echo "cores|$(nproc)"
  echo "machine|$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
  echo "gatewayd|$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!BENCHMARKS.md' ':!bench/chart.svg' || echo ' (modified)'), $(rustc --version | cut -d' ' -f1-2), hyper $(sed -n '/^name = "hyper"$/{n;s/version = "\(.*\)"/\1/p}' Cargo.lock)"
  echo "nginx|$(nginx -v 2>&1 | sed 's/.*nginx\///')"
  echo "php-fpm|$("$php_fpm" -v | head -1 | cut -d' ' -f2)"
  echo "Go|$(go version | cut -d' ' -f3)"
  echo "uWSGI|$(uwsgi --version), python3 plugin"
  echo "gunicorn|$gunicorn_version (pip), sync workers"
  echo "fcgiwrap|$(dpkg-query -W -f '${Version}' fcgiwrap)"
  echo "Python|$(python3 --version | cut -d' ' -f2)"
  echo "C compiler|$(gcc --version | head -1)"
  echo "wrk|$(dpkg-query -W -f '${Version}' wrk)"
  echo "hyperfine|$(hyperfine --version | cut -d' ' -f2)"
} > "$work/versions"
python3 bench/report.py "$work" "duration=$duration rounds=$rounds conns=$conns"
log "BENCHMARKS.md and bench/chart.svg updated"
