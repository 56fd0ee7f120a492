"""Local receivers for notifications: an SMTP server (Debian's aiosmtpd) and an HTTP server that
answers webhooks, each printing what it received as one JSON line on stdout.

usage: /usr/bin/python3 receivers.py FAIL_FIRST
Prints {"smtp": PORT, "http": PORT} first. The HTTP server answers 503 to the first FAIL_FIRST
requests (a target that fails must be retried), then 200. Lines after: {"kind": "smtp", "from": ...,
"to": [...], "subject": ..., "body": ...} or {"kind": "http", "path": ..., "status": ..., "body": ...}.
Runs until stdin closes.
"""
import email
import email.policy
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

lock = threading.Lock()
fail_first = int(sys.argv[1]) if len(sys.argv) > 1 else 0
seen = {"http": 0}


def emit(record):
    with lock:
        print(json.dumps(record), flush=True)


class Mail:
    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        emit({"kind": "smtp", "from": envelope.mail_from, "to": envelope.rcpt_tos, "subject": message["subject"], "body": body.get_content() if body else ""})
        return "250 OK"


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode("utf-8", "replace")
        with lock:
            seen["http"] += 1
            status = 503 if seen["http"] <= fail_first else 200
        emit({"kind": "http", "path": self.path, "status": status, "body": body})
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


probe = socket.socket()
probe.bind(("127.0.0.1", 0))
smtp_port = probe.getsockname()[1]
probe.close()
smtp = Controller(Mail(), hostname="127.0.0.1", port=smtp_port)
smtp.start()
http = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
threading.Thread(target=http.serve_forever, daemon=True).start()
emit({"smtp": smtp_port, "http": http.server_address[1]})
sys.stdin.read()
smtp.stop()
http.shutdown()
