# The JSON app of bench/wsgi.sh: about 10 KB of JSON, encoded once at import, so that each
# request measures the server moving a larger body rather than json.dumps.
import json

ITEMS = [
    {
        "id": i,
        "name": f"item-{i:03d}",
        "price": round(1.5 * i + 0.25, 2),
        "tags": ["bench", "wsgi", "json"],
        "in_stock": i % 3 != 0,
    }
    for i in range(112)
]
BODY = json.dumps({"count": len(ITEMS), "items": ITEMS}, separators=(",", ":")).encode()
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
