"""Sends requests with bad signatures and prints the status and error type of each, as JSON.

usage: sigv4_errors.py ENDPOINT
"""
import datetime
import json
import sys
import urllib.request

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import boto3

endpoint = sys.argv[1]
session = boto3.Session()
good = session.get_credentials().get_frozen_credentials()
results = {}


def send(name, credentials, when=None, service="iot", tamper=None):
    request = botocore.awsrequest.AWSRequest(method="GET", url=endpoint + "/things")
    signer = botocore.auth.SigV4Auth(credentials, service, "eu-west-1")
    if when is not None:
        real = botocore.auth.datetime.datetime

        class Frozen(real):
            @classmethod
            def utcnow(cls):
                return when

            @classmethod
            def now(cls, tz=None):
                return when.replace(tzinfo=tz) if tz else when

        botocore.auth.datetime.datetime = Frozen
        try:
            signer.add_auth(request)
        finally:
            botocore.auth.datetime.datetime = real
    else:
        signer.add_auth(request)
    prepared = request.prepare()
    headers = dict(prepared.headers)
    if tamper is not None:
        headers = tamper(headers)
    req = urllib.request.Request(prepared.url, headers=headers, method="GET")
    try:
        with urllib.request.urlopen(req) as response:
            results[name] = [response.status, None, None]
    except urllib.error.HTTPError as e:
        body = json.loads(e.read() or b"{}")
        results[name] = [e.code, e.headers.get("x-amzn-ErrorType"), body.get("message")]


send("good_any_region", good)
send("wrong_secret", botocore.credentials.Credentials(good.access_key, "wrong-secret"))
send("unknown_key", botocore.credentials.Credentials("AKIAUNKNOWN", good.secret_key))
send("expired", good, datetime.datetime.utcnow() - datetime.timedelta(hours=1))
send("future", good, datetime.datetime.utcnow() + datetime.timedelta(hours=1))
send("wrong_service", good, service="s3")


def other_credential_date(headers):
    authorization = headers["Authorization"]
    date = authorization.split("Credential=")[1].split("/")[1]
    headers["Authorization"] = authorization.replace("/" + date + "/", "/20200101/")
    return headers


def without_date(headers):
    return {k: v for k, v in headers.items() if k.lower() != "x-amz-date"}


def host_unsigned(headers):
    headers["Authorization"] = headers["Authorization"].replace("SignedHeaders=host;", "SignedHeaders=")
    return headers


send("credential_date_mismatch", good, tamper=other_credential_date)
send("missing_date", good, tamper=without_date)
send("host_not_signed", good, tamper=host_unsigned)
try:
    with urllib.request.urlopen(endpoint + "/things") as response:
        results["unsigned"] = [response.status, None, None]
except urllib.error.HTTPError as e:
    results["unsigned"] = [e.code, e.headers.get("x-amzn-ErrorType"), json.loads(e.read()).get("message")]
print(json.dumps(results))
