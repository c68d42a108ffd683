# The uWSGI peer of bench/run.sh (python3 plugin, over --fastcgi-socket and --scgi-socket).
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "14")])
    return [b"Hello, World!\n"]
