"""Creates one device token per provisioned thing (the *.pem files of DEVICES_DIR name the things),
through the signed /api route, and writes "thing<TAB>token" lines for the connect benchmark.

usage: create_tokens.py ENDPOINT CREDENTIALS_FILE DEVICES_DIR OUT_TSV
"""
import json
import os
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

endpoint, credentials_file, devices, out = sys.argv[1:5]
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = credentials_file
session = botocore.session.Session(profile="trellis")
credentials = session.get_credentials()
things = sorted(f[:-4] for f in os.listdir(devices) if f.endswith(".pem"))


def create(thing):
    body = b"{}"
    request = AWSRequest(method="POST", url=f"{endpoint}/api/things/{thing}/tokens", data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(credentials, "iot", "us-east-1").add_auth(request)
    prepared = request.prepare()
    with urllib.request.urlopen(urllib.request.Request(prepared.url, data=body, method="POST", headers=dict(prepared.headers))) as response:
        return thing, json.loads(response.read())["token"]


with ThreadPoolExecutor(8) as pool:
    rows = list(pool.map(create, things))
with open(out, "w") as f:
    f.writelines(f"{thing}\t{token}\n" for thing, token in rows)
print(f"created {len(rows)} device tokens")
