"""Provisions a device the way AWS IoT tutorials do, with boto3 against a Trellis endpoint.

usage: provision.py ENDPOINT THING OUTDIR POLICY_NAME POLICY_JSON_FILE
Prints a JSON object with the certificate id, ARN and the paths of the written files.
Credentials come from AWS_SHARED_CREDENTIALS_FILE / AWS_PROFILE (the server's data folder).
"""
import json
import os
import sys

import boto3

endpoint, thing, outdir, policy_name, policy_file = sys.argv[1:6]
iot = boto3.client("iot", endpoint_url=endpoint, region_name="us-east-1")
iot.create_thing(thingName=thing)
cert = iot.create_keys_and_certificate(setAsActive=True)
with open(policy_file) as f:
    document = f.read()
try:
    iot.create_policy(policyName=policy_name, policyDocument=document)
except iot.exceptions.ResourceAlreadyExistsException:
    pass
iot.attach_policy(policyName=policy_name, target=cert["certificateArn"])
iot.attach_thing_principal(thingName=thing, principal=cert["certificateArn"])
os.makedirs(outdir, exist_ok=True)
cert_path = os.path.join(outdir, thing + ".crt")
key_path = os.path.join(outdir, thing + ".key")
with open(cert_path, "w") as f:
    f.write(cert["certificatePem"])
with open(key_path, "w") as f:
    f.write(cert["keyPair"]["PrivateKey"])
print(json.dumps({
    "certificateId": cert["certificateId"],
    "certificateArn": cert["certificateArn"],
    "cert": cert_path,
    "key": key_path,
}))
