#!/usr/bin/env python3
"""A minimal OTLP/HTTP receiver for compose/local-up.sh: accepts POST /v1/traces (and any other
OTLP path), answers 200 with an empty export response, and counts the requests and bytes per
path. GET /stats returns the counts as JSON. Not a trace store: Jaeger is, in docker compose.

    python3 compose/otlp-receiver.py --port 4318
"""

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counts = {}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        with lock:
            c = counts.setdefault(self.path, {"requests": 0, "bytes": 0})
            c["requests"] += 1
            c["bytes"] += len(body)
        # An empty protobuf message is a valid ExportTraceServiceResponse (no partial success).
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        if self.path != "/stats":
            self.send_error(404)
            return
        with lock:
            body = json.dumps(counts).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=4318)
    args = ap.parse_args()
    server = ThreadingHTTPServer((args.bind, args.port), Handler)
    print(f"otlp-receiver listening on {args.bind}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
