"""Drives the AWS IoT data plane (boto3 "iot-data") and the control plane against a Trellis endpoint.

usage: iotdata.py ENDPOINT OPERATIONS_JSON
OPERATIONS_JSON is a JSON list of operations, run in order; a {"parallel": [...]} entry runs its
operations at the same time. Prints a JSON list with one result per operation:
{"status": HTTP status, "body": the JSON document returned (or null), "error": AWS error code, "message": ...}.
Operations: {"op": "create_thing", "thing"}, {"op": "get"|"delete", "thing", "name"?},
{"op": "update", "thing", "name"?, "payload": object or "raw": string},
{"op": "list", "thing", "pageSize"?, "nextToken"?}, {"op": "publish", "topic", "payload": string, "qos"?, "retain"?}.
Credentials come from AWS_SHARED_CREDENTIALS_FILE / AWS_PROFILE (the server's data folder).
"""
import json
import sys
import threading

import boto3
from botocore.exceptions import ClientError

endpoint = sys.argv[1]
data = boto3.client("iot-data", endpoint_url=endpoint, region_name="us-east-1")
iot = boto3.client("iot", endpoint_url=endpoint, region_name="us-east-1")


def shadow_args(op):
    args = {"thingName": op["thing"]}
    if op.get("name"):
        args["shadowName"] = op["name"]
    return args


def run(op):
    try:
        kind = op["op"]
        if kind == "create_thing":
            body = iot.create_thing(thingName=op["thing"])
            body.pop("ResponseMetadata", None)
            return {"status": 200, "body": body}
        if kind == "get":
            response = data.get_thing_shadow(**shadow_args(op))
        elif kind == "delete":
            response = data.delete_thing_shadow(**shadow_args(op))
        elif kind == "update":
            payload = op["raw"].encode() if "raw" in op else json.dumps(op["payload"]).encode()
            response = data.update_thing_shadow(payload=payload, **shadow_args(op))
        elif kind == "list":
            args = {"thingName": op["thing"]}
            for key in ("pageSize", "nextToken"):
                if key in op:
                    args[key] = op[key]
            response = data.list_named_shadows_for_thing(**args)
            status = response["ResponseMetadata"]["HTTPStatusCode"]
            response.pop("ResponseMetadata")
            return {"status": status, "body": response}
        elif kind == "publish":
            response = data.publish(topic=op["topic"], qos=op.get("qos", 0), retain=op.get("retain", False), payload=op["payload"].encode())
            return {"status": response["ResponseMetadata"]["HTTPStatusCode"], "body": None}
        else:
            raise ValueError("unknown op " + kind)
        status = response["ResponseMetadata"]["HTTPStatusCode"]
        return {"status": status, "body": json.loads(response["payload"].read())}
    except ClientError as e:
        return {"status": e.response["ResponseMetadata"]["HTTPStatusCode"], "error": e.response["Error"]["Code"], "message": e.response["Error"].get("Message", "")}


results = []
for op in json.loads(sys.argv[2]):
    if "parallel" in op:
        out = [None] * len(op["parallel"])
        barrier = threading.Barrier(len(op["parallel"]))

        def worker(i, o):
            barrier.wait()
            out[i] = run(o)

        threads = [threading.Thread(target=worker, args=(i, o)) for i, o in enumerate(op["parallel"])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        results.append(out)
    else:
        results.append(run(op))
print(json.dumps(results))
