"""Calls boto3 "iot" (control plane) operations against a Trellis endpoint, in order.

usage: iot_calls.py ENDPOINT CALLS_JSON
CALLS_JSON is a JSON list of {"call": "create_thing_group", "args": {...}}; a call named
"jobs-data:<operation>" goes to the "iot-jobs-data" client instead, "data:<operation>" to "iot-data"
(a "payload" given as a JSON object is sent as its text). Prints a JSON list with
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
data = boto3.client("iot-data", endpoint_url=sys.argv[1], region_name="us-east-1")


def plain(value):
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    raise TypeError(type(value))


results = []
for item in json.loads(sys.argv[2]):
    try:
        call, args = item["call"], dict(item.get("args", {}))
        if call.startswith("jobs-data:"):
            client, name = jobs_data, call[10:]
        elif call.startswith("data:"):
            client, name = data, call[5:]
            if isinstance(args.get("payload"), dict):
                args["payload"] = json.dumps(args["payload"])
        else:
            client, name = iot, call
        response = getattr(client, name)(**args)
        status = response.pop("ResponseMetadata")["HTTPStatusCode"]
        if hasattr(response.get("payload"), "read"):
            response["payload"] = json.loads(response["payload"].read() or b"null")
        results.append({"status": status, "body": response})
    except ClientError as e:
        results.append({"status": e.response["ResponseMetadata"]["HTTPStatusCode"], "error": e.response["Error"]["Code"], "message": e.response["Error"].get("Message", "")})
print(json.dumps(results, default=plain))
