"""Calls boto3 "iot" (control plane) operations against a Trellis endpoint, in order.

usage: iot_calls.py ENDPOINT CALLS_JSON
CALLS_JSON is a JSON list of {"call": "create_thing_group", "args": {...}}; a call named
"jobs-data:<operation>" goes to the "iot-jobs-data" client instead. Prints a JSON list with
one result per call: {"status": HTTP status, "body": the response without ResponseMetadata} or
{"status": ..., "error": AWS error code, "message": ...}. Datetimes are printed as epoch seconds.
Credentials come from AWS_SHARED_CREDENTIALS_FILE / AWS_PROFILE (the server's data folder).
"""
import datetime
import json
import sys

import boto3
from botocore.exceptions import ClientError

iot = boto3.client("iot", endpoint_url=sys.argv[1], region_name="us-east-1")
jobs_data = boto3.client("iot-jobs-data", endpoint_url=sys.argv[1], region_name="us-east-1")


def plain(value):
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    raise TypeError(type(value))


results = []
for item in json.loads(sys.argv[2]):
    try:
        client, name = (jobs_data, item["call"][10:]) if item["call"].startswith("jobs-data:") else (iot, item["call"])
        response = getattr(client, name)(**item.get("args", {}))
        status = response.pop("ResponseMetadata")["HTTPStatusCode"]
        results.append({"status": status, "body": response})
    except ClientError as e:
        results.append({"status": e.response["ResponseMetadata"]["HTTPStatusCode"], "error": e.response["Error"]["Code"], "message": e.response["Error"].get("Message", "")})
print(json.dumps(results, default=plain))
