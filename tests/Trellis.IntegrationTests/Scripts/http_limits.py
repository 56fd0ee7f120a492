"""Sends requests whose bodies are announced but not (yet) sent, over raw sockets, and prints how the
server answered each and how long it took, as JSON. A server that reads a body before it checks the
request would wait for the rest of the body and time out here.

usage: http_limits.py HOST PORT CASE
CASE: unsigned_huge (40 at once, each announcing 28 MB and sending 1 KiB), signed_huge (a valid signature
over a declared x-amz-content-sha256, announcing 28 MB), signed_chunked (a chunked body that grows past
the limit), slow_then_second (one signed body held open, then a second signed body).
Credentials come from AWS_SHARED_CREDENTIALS_FILE / AWS_PROFILE.
"""
import concurrent.futures
import hashlib
import json
import socket
import sys
import time

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

host, port, case = sys.argv[1], int(sys.argv[2]), sys.argv[3]
HUGE = 28 * 1024 * 1024


def signed_headers(path, body_hash=None, length=None, chunked=False, body=b""):
    credentials = botocore.session.Session().get_credentials()
    headers = {"Content-Type": "application/json"}
    if body_hash is not None:
        headers["X-Amz-Content-SHA256"] = body_hash
    request = AWSRequest(method="POST", url=f"http://{host}:{port}{path}", data=body, headers=headers)
    SigV4Auth(credentials, "iot", "us-east-1").add_auth(request)
    out = dict(request.headers)
    out["Host"] = f"{host}:{port}"
    if chunked:
        out["Transfer-Encoding"] = "chunked"
    elif length is not None:
        out["Content-Length"] = str(length)
    return out


def head(path, headers):
    lines = [f"POST {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer(sock, timeout=10):
    sock.settimeout(timeout)
    data = b""
    started = time.monotonic()
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        header, _, rest = data.partition(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1]) if lines and lines[0].startswith("HTTP/") else 0
        fields = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
        if "content-length" in fields:
            while len(rest) < int(fields["content-length"]):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
        elif fields.get("transfer-encoding") == "chunked":
            while not rest.endswith(b"0\r\n\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
            size, _, tail = rest.partition(b"\r\n")
            rest = tail[: int(size, 16)]
        body = json.loads(rest) if rest.strip() else None
        return {"status": status, "type": fields.get("x-amzn-errortype"), "message": (body or {}).get("message"), "seconds": time.monotonic() - started}
    except socket.timeout:
        return {"status": 0, "type": None, "message": "timed out waiting for an answer", "seconds": time.monotonic() - started}


def unsigned_huge(_):
    sock = socket.create_connection((host, port))
    sock.sendall(head("/things/x", {"Host": f"{host}:{port}", "Content-Type": "application/json", "Content-Length": str(HUGE)}) + b"x" * 1024)
    try:
        return answer(sock)
    finally:
        sock.close()


if case == "unsigned_huge":
    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        results = list(pool.map(unsigned_huge, range(40)))
elif case == "signed_huge":
    digest = hashlib.sha256(b"\0" * HUGE).hexdigest()
    sock = socket.create_connection((host, port))
    sock.sendall(head("/things/x", signed_headers("/things/x", digest, HUGE)) + b"\0" * 1024)
    results = [answer(sock)]
    sock.close()
elif case == "signed_chunked":
    sock = socket.create_connection((host, port))
    sock.sendall(head("/things/x", signed_headers("/things/x", chunked=True)))
    chunk = b"\0" * 65536
    try:
        for _ in range(64):  # 4 MiB, past the 1 MiB limit
            sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
    except OSError:
        pass
    results = [answer(sock)]
    sock.close()
elif case == "slow_then_second":
    first = socket.create_connection((host, port))
    first.sendall(head("/things/x", signed_headers("/things/x", length=1000)) + b"{")
    time.sleep(0.5)
    second = socket.create_connection((host, port))
    second.sendall(head("/things/y", signed_headers("/things/y", length=2, body=b"{}")) + b"{}")
    results = [answer(second)]
    first.close()
    second.close()
print(json.dumps(results))
