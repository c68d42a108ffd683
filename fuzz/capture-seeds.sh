#!/usr/bin/env bash
# Captures the seed corpora from real peers: nginx and lighttpd requests over FastCGI and SCGI,
# nginx, Apache and lighttpd requests over uwsgi (a recorder stands in for the app), a CGI
# environment from lighttpd mod_cgi, the fixture scripts' outputs, the SCGI spec example, and
# the example configs.
# Usage: fuzz/capture-seeds.sh [uwsgi]   (needs nginx, lighttpd, apache2, python3, curl)
#   with `uwsgi`, captures the uwsgi corpus only.
set -euo pipefail
cd "$(dirname "$0")"
only=${1:-}
work=$(mktemp -d)
chmod 755 "$work" # Apache's workers (www-data, when run as root) read its config and logs here
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p corpus/fastcgi corpus/scgi corpus/uwsgi corpus/cgi_response corpus/cgi_environ corpus/config

# The recorder: saves the first bytes of each connection, answers nothing, closes.
cat > "$work/recorder.py" <<'PY'
import socket, sys, time
port, out = int(sys.argv[1]), sys.argv[2]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen(8)
n = 0
while True:
    c, _ = s.accept(); c.settimeout(0.5); data = b""
    try:
        while True:
            chunk = c.recv(65536)
            if not chunk: break
            data += chunk
    except socket.timeout:
        pass
    open(f"{out}-{n}", "wb").write(data); n += 1; c.close()
PY
# uwsgi: nginx's stock uwsgi_params, Apache mod_proxy_uwsgi, lighttpd scgi.protocol = "uwsgi".
python3 "$work/recorder.py" 19005 corpus/uwsgi/nginx &
python3 "$work/recorder.py" 19006 corpus/uwsgi/apache &
python3 "$work/recorder.py" 19007 corpus/uwsgi/lighttpd &
cp /etc/nginx/uwsgi_params "$work/"
cat > "$work/nginx-uwsgi.conf" <<NGINX
daemon off; master_process off; error_log $work/error-uwsgi.log; pid $work/nginx-uwsgi.pid;
events {}
http { access_log off; client_body_temp_path $work/b; uwsgi_temp_path $work/u; uwsgi_read_timeout 1s;
  server { listen 127.0.0.1:19012;
    location / { include uwsgi_params; uwsgi_pass 127.0.0.1:19005; } } }
NGINX
nginx -e "$work/error-uwsgi.log" -p "$work" -c "$work/nginx-uwsgi.conf" &
cat > "$work/httpd.conf" <<APACHE
ServerRoot "$work"
ServerName localhost
DefaultRuntimeDir "$work"
PidFile "$work/httpd.pid"
Listen 127.0.0.1:19013
ErrorLog "$work/apache-error.log"
User www-data
Group www-data
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
LoadModule proxy_uwsgi_module /usr/lib/apache2/modules/mod_proxy_uwsgi.so
ProxyTimeout 1
ProxyPass "/" "uwsgi://127.0.0.1:19006/"
APACHE
apache2 -DFOREGROUND -f "$work/httpd.conf" &
mkdir -p "$work/www-uwsgi"
cat > "$work/lighttpd-uwsgi.conf" <<LIGHTTPD
server.document-root = "$work/www-uwsgi"
server.bind = "127.0.0.1"
server.port = 19014
server.modules += ("mod_scgi")
scgi.protocol = "uwsgi"
scgi.server = ( "/" => (( "host" => "127.0.0.1", "port" => 19007, "check-local" => "disable" )) )
LIGHTTPD
lighttpd -D -f "$work/lighttpd-uwsgi.conf" &
sleep 1
for port in 19012 19013 19014; do
  curl -s -m 2 -o /dev/null "http://127.0.0.1:$port/get?x=1&y=%20" -H 'Cookie: a=1' -H 'X-Rep: 1' -H 'X-Rep: 2' || true
  curl -s -m 2 -o /dev/null "http://127.0.0.1:$port/post" -d 'name=gatewayd&lang=rust' || true
done
if [ "$only" = uwsgi ]; then
  find corpus/uwsgi -type f -empty -delete
  ls corpus/uwsgi
  exit 0
fi

python3 "$work/recorder.py" 19001 corpus/fastcgi/nginx &
python3 "$work/recorder.py" 19002 corpus/scgi/nginx &
python3 "$work/recorder.py" 19003 corpus/fastcgi/lighttpd &
python3 "$work/recorder.py" 19004 corpus/scgi/lighttpd &
cp /etc/nginx/fastcgi_params /etc/nginx/scgi_params "$work/"
cat > "$work/nginx.conf" <<NGINX
daemon off; master_process off; error_log $work/error.log; pid $work/nginx.pid;
events {}
http { access_log off; client_body_temp_path $work/b; fastcgi_temp_path $work/f; scgi_temp_path $work/s;
  fastcgi_read_timeout 1s; scgi_read_timeout 1s;
  server { listen 127.0.0.1:19010;
    location /fcgi/ { include fastcgi_params; fastcgi_pass 127.0.0.1:19001; }
    location /scgi/ { include scgi_params; scgi_pass 127.0.0.1:19002; } } }
NGINX
nginx -e "$work/error.log" -p "$work" -c "$work/nginx.conf" &
mkdir -p "$work/www" "$work/cgi-bin"
printf '#!/bin/sh\nenv -0 > %s/env\nprintf "Status: 200 OK\\r\\n\\r\\n"\n' "$work" > "$work/cgi-bin/env"
chmod 755 "$work/cgi-bin/env"
cat > "$work/lighttpd.conf" <<LIGHTTPD
server.document-root = "$work/www"
server.bind = "127.0.0.1"
server.port = 19011
server.modules += ("mod_fastcgi", "mod_scgi", "mod_cgi", "mod_alias")
fastcgi.server = ( "/fcgi/" => (( "host" => "127.0.0.1", "port" => 19003, "check-local" => "disable" )) )
scgi.server = ( "/scgi/" => (( "host" => "127.0.0.1", "port" => 19004, "check-local" => "disable" )) )
alias.url = ( "/cgi-bin/" => "$work/cgi-bin/" )
\$HTTP["url"] =~ "^/cgi-bin/" { cgi.assign = ( "" => "" ) }
LIGHTTPD
lighttpd -D -f "$work/lighttpd.conf" &
sleep 1
for port in 19010 19011; do
  for gw in fcgi scgi; do
    curl -s -m 2 -o /dev/null "http://127.0.0.1:$port/$gw/get?x=1&y=%20" -H 'Cookie: a=1' -H 'X-Rep: 1' -H 'X-Rep: 2' || true
    curl -s -m 2 -o /dev/null "http://127.0.0.1:$port/$gw/post" -d 'name=gatewayd&lang=rust' || true
  done
done
curl -s -m 2 -o /dev/null "http://127.0.0.1:19011/cgi-bin/env/sub/path?q=1" -H 'X-Custom: yes' || true
cp "$work/env" corpus/cgi_environ/lighttpd-mod-cgi
printf '70:CONTENT_LENGTH\0''27\0SCGI\0''1\0REQUEST_METHOD\0POST\0REQUEST_URI\0/deepthought\0,What is the answer to life?' > corpus/scgi/spec-example
for script in ../tests/fixtures/cgi-bin/*.sh; do
  name=$(basename "$script" .sh)
  [ "$name" = slow ] && continue
  QUERY_STRING=/dev/null timeout 2 sh "$script" < /dev/null 2>/dev/null | head -c 4096 > "corpus/cgi_response/$name" || true
done
cp ../configs/gatewayd.toml corpus/config/gatewayd.toml
cp ../examples/axum_app.toml corpus/config/axum_app.toml
find corpus -type f -empty -delete
ls -R corpus | head -40
