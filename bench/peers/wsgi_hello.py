# The hello app of bench/wsgi.sh: every WSGI server there (gatewayd's `wsgi` app type, granian,
# gunicorn, uWSGI, bjoern) runs this module as `wsgi_hello:application`.
BODY = b"Hello, World!\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
