"""Sends one SigV4-signed request (signing name "iot") to a Trellis route that boto3 has no method
for (the /api/... routes), with botocore's own signer.

usage: signed_request.py ENDPOINT METHOD PATH [JSON_BODY]
Prints {"status": HTTP status, "body": the JSON response or null, "headers": the response headers}.
Credentials come from AWS_SHARED_CREDENTIALS_FILE / AWS_PROFILE (the server's data folder).
"""
import json
import sys
import urllib.error
import urllib.request

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

endpoint, method, path = sys.argv[1:4]
body = sys.argv[4].encode() if len(sys.argv) > 4 else b""
credentials = botocore.session.Session().get_credentials()
request = AWSRequest(method=method, url=endpoint + path, data=body, headers={"Content-Type": "application/json"})
SigV4Auth(credentials, "iot", "us-east-1").add_auth(request)
prepared = request.prepare()
http = urllib.request.Request(prepared.url, data=body if body else None, method=method, headers=dict(prepared.headers))
try:
    with urllib.request.urlopen(http) as response:
        status, text, headers = response.status, response.read(), dict(response.headers)
except urllib.error.HTTPError as e:
    status, text, headers = e.code, e.read(), dict(e.headers)
print(json.dumps({"status": status, "body": json.loads(text) if text else None, "headers": headers}))
