"""Creates COUNT things named PREFIX0..PREFIX{COUNT-1} with boto3 (for the shadow and jobs benchmarks),
and puts them in GROUP when one is given (created if needed).

usage: create_things.py ENDPOINT CREDENTIALS_FILE COUNT PREFIX [GROUP]
"""
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3

endpoint, credentials, count, prefix = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = credentials
iot = boto3.Session(profile_name="trellis").client("iot", endpoint_url=endpoint, region_name="us-east-1")
group = sys.argv[5] if len(sys.argv) > 5 else None
if group:
    iot.create_thing_group(thingGroupName=group)


def create(i):
    iot.create_thing(thingName=f"{prefix}{i}")
    if group:
        iot.add_thing_to_thing_group(thingGroupName=group, thingName=f"{prefix}{i}")


with ThreadPoolExecutor(8) as pool:
    list(pool.map(create, range(count)))
print(f"created {count} things" + (f" in group {group}" if group else ""))
