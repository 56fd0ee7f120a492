"""Creates the ingest benchmark's store rule with boto3: each ingest/dev-N/t message becomes two points.

usage: create_ingest_rule.py ENDPOINT CREDENTIALS_FILE
"""
import os
import sys

import boto3

endpoint, credentials = sys.argv[1:3]
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = credentials
iot = boto3.Session(profile_name="trellis").client("iot", endpoint_url=endpoint, region_name="us-east-1")
iot.create_topic_rule(ruleName="ingest_store", topicRulePayload={
    "sql": "SELECT temp, hum FROM 'ingest/+/t'",
    "actions": [{"timestream": {"roleArn": "arn:aws:iam::000000000000:role/bench", "databaseName": "trellis", "tableName": "telemetry",
                                "dimensions": [{"name": "thing", "value": "${topic(2)}"}]}}]})
print("ingest rule ready")
