"""Registers COUNT things (coaps-bench-0 …), each with a device token that is also its DTLS
pre-shared key, under one allow-all policy, through the signed /api route and boto3; writes
"thing<TAB>token" lines (PSK identity and key) for the CoAP-over-DTLS benchmark.

usage: create_psk_devices.py ENDPOINT CREDENTIALS_FILE COUNT OUT_TSV
"""
import json
import os
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import boto3
import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

endpoint, credentials_file, count, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = credentials_file
credentials = botocore.session.Session(profile="trellis").get_credentials()
iot = boto3.Session(profile_name="trellis").client("iot", endpoint_url=endpoint, region_name="us-east-1")
iot.create_policy(policyName="coaps-bench", policyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}))


def create(i):
    thing = f"coaps-bench-{i}"
    iot.create_thing(thingName=thing)
    body = b'{"dtlsPsk":true}'
    request = AWSRequest(method="POST", url=f"{endpoint}/api/things/{thing}/tokens", data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(credentials, "iot", "us-east-1").add_auth(request)
    prepared = request.prepare()
    with urllib.request.urlopen(urllib.request.Request(prepared.url, data=body, method="POST", headers=dict(prepared.headers))) as response:
        token = json.loads(response.read())
    iot.attach_policy(policyName="coaps-bench", target=token["tokenArn"])
    return thing, token["token"]


with ThreadPoolExecutor(8) as pool:
    rows = list(pool.map(create, range(count)))
with open(out, "w") as f:
    f.writelines(f"{thing}\t{token}\n" for thing, token in rows)
print(f"registered {len(rows)} things with DTLS pre-shared keys")
