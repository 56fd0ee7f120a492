"""Prepares fleet provisioning for the provisioning benchmark, with boto3 as an operator would.

usage: setup_provisioning.py ENDPOINT CREDENTIALS_FILE OUT_DIR
Creates: a device policy (per-thing topics) attached to the group bench-fleet-group, so that both
certificate and token connections of its things get it; a claim certificate (OUT_DIR/claim.pem and
claim.key) whose policy allows only the provisioning topics; and the FLEET_PROVISIONING template
bench-fleet (thing bench-dev-{SerialNumber} in bench-fleet-group, certificate activated).
"""
import json
import os
import sys

import boto3

endpoint, credentials, out = sys.argv[1:4]
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = credentials
iot = boto3.Session(profile_name="trellis").client("iot", endpoint_url=endpoint, region_name="us-east-1")

device_policy = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
    {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "arn:aws:iot:*:*:topic/dt/${iot:Connection.Thing.ThingName}/*"},
    {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:*:*:topicfilter/dt/${iot:Connection.Thing.ThingName}/*"}]}
claim_policy = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"},
    {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": [
        "arn:aws:iot:*:*:topic/$aws/certificates/create/*", "arn:aws:iot:*:*:topic/$aws/certificates/create-from-csr/*",
        "arn:aws:iot:*:*:topic/$aws/provisioning-templates/bench-fleet/provision/*"]},
    {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": [
        "arn:aws:iot:*:*:topicfilter/$aws/certificates/create/*", "arn:aws:iot:*:*:topicfilter/$aws/certificates/create-from-csr/*",
        "arn:aws:iot:*:*:topicfilter/$aws/provisioning-templates/bench-fleet/provision/*"]}]}
template = {
    "Parameters": {"SerialNumber": {"Type": "String"}, "AWS::IoT::Certificate::Id": {"Type": "String"}},
    "Resources": {
        "thing": {"Type": "AWS::IoT::Thing", "Properties": {
            "ThingName": {"Fn::Join": ["", ["bench-dev-", {"Ref": "SerialNumber"}]]},
            "AttributePayload": {"serial": {"Ref": "SerialNumber"}}, "ThingGroups": ["bench-fleet-group"]}},
        "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"}},
        "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "bench-device"}}},
    "DeviceConfiguration": {"topic": {"Fn::Sub": "dt/bench-dev-${SerialNumber}/telemetry"}}}

iot.create_policy(policyName="bench-device", policyDocument=json.dumps(device_policy))
group = iot.create_thing_group(thingGroupName="bench-fleet-group")
iot.attach_policy(policyName="bench-device", target=group["thingGroupArn"])
claim = iot.create_keys_and_certificate(setAsActive=True)
iot.create_policy(policyName="bench-claim", policyDocument=json.dumps(claim_policy))
iot.attach_policy(policyName="bench-claim", target=claim["certificateArn"])
iot.create_provisioning_template(templateName="bench-fleet", templateBody=json.dumps(template), enabled=True,
                                 provisioningRoleArn="arn:aws:iam::000000000000:role/bench")
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "claim.pem"), "w") as f:
    f.write(claim["certificatePem"])
with open(os.path.join(out, "claim.key"), "w") as f:
    f.write(claim["keyPair"]["PrivateKey"])
print("provisioning ready: template bench-fleet, claim certificate", claim["certificateId"])
