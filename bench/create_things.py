"""Creates COUNT things named PREFIX0..PREFIX{COUNT-1} with boto3 (for the shadow benchmark).

usage: create_things.py ENDPOINT CREDENTIALS_FILE COUNT PREFIX
"""
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3

endpoint, credentials, count, prefix = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = credentials
iot = boto3.Session(profile_name="trellis").client("iot", endpoint_url=endpoint, region_name="us-east-1")
with ThreadPoolExecutor(8) as pool:
    list(pool.map(lambda i: iot.create_thing(thingName=f"{prefix}{i}"), range(count)))
print(f"created {count} things")
