"""Drives bad input at the control-plane API with boto3 and prints what came back, as JSON.

usage: api_errors.py ENDPOINT PREFIX
Each case maps to [error code, HTTP status, message] or "ok". The C# test asserts on them.
"""
import json
import sys

import boto3
import botocore.exceptions

endpoint, prefix = sys.argv[1:3]
iot = boto3.client("iot", endpoint_url=endpoint, region_name="us-east-1")
results = {}


def case(name, call):
    try:
        call()
        results[name] = "ok"
    except botocore.exceptions.ClientError as e:
        err = e.response["Error"]
        results[name] = [err.get("Code"), e.response["ResponseMetadata"]["HTTPStatusCode"], err.get("Message")]
    except botocore.exceptions.ParamValidationError as e:
        results[name] = ["ParamValidationError", 0, str(e)]


thing = prefix + "thing"
policy = prefix + "policy"
case("create_thing", lambda: iot.create_thing(thingName=thing))
case("create_thing_again_same", lambda: iot.create_thing(thingName=thing))
case("create_thing_again_different", lambda: iot.create_thing(thingName=thing, attributePayload={"attributes": {"a": "1"}}))
case("create_thing_bad_name", lambda: iot.create_thing(thingName="bad name!"))
case("get_thing_shapes", lambda: results.__setitem__("thing_shapes", [
    {k: v for k, v in r.items() if k in ("thingName", "thingArn", "thingId", "defaultClientId", "version")}
    for r in (iot.create_thing(thingName=thing), iot.describe_thing(thingName=thing))]))
case("describe_unknown_thing", lambda: iot.describe_thing(thingName=prefix + "nope"))
case("update_thing_wrong_version", lambda: iot.update_thing(thingName=thing, expectedVersion=99, attributePayload={"attributes": {"a": "1"}}))
case("update_unknown_thing", lambda: iot.update_thing(thingName=prefix + "nope", attributePayload={"attributes": {"a": "1"}}))
case("describe_unknown_cert", lambda: iot.describe_certificate(certificateId="0" * 64))
case("describe_malformed_cert_id", lambda: iot.describe_certificate(certificateId="z" * 64))
case("update_cert_bad_status", lambda: iot.update_certificate(certificateId="0" * 64, newStatus="ACTIVE"))
case("create_policy_malformed", lambda: iot.create_policy(policyName=policy, policyDocument="{not json"))
case("get_policy_after_malformed", lambda: iot.get_policy(policyName=policy))
case("create_policy_bad_effect", lambda: iot.create_policy(policyName=policy, policyDocument=json.dumps({"Statement": [{"Effect": "Perhaps", "Action": "iot:Connect", "Resource": "*"}]})))
good = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]})
case("create_policy", lambda: iot.create_policy(policyName=policy, policyDocument=good))
case("create_policy_duplicate", lambda: iot.create_policy(policyName=policy, policyDocument=good))
case("attach_policy_unknown_target", lambda: iot.attach_policy(policyName=policy, target="arn:aws:iot:us-east-1:000000000000:cert/" + "0" * 64))
case("attach_policy_not_an_arn", lambda: iot.attach_policy(policyName=policy, target="hello"))
case("attach_unknown_policy", lambda: iot.attach_policy(policyName=prefix + "nopolicy", target="hello"))
case("attach_thing_principal_unknown_thing", lambda: iot.attach_thing_principal(thingName=prefix + "nope", principal="arn:aws:iot:us-east-1:000000000000:cert/" + "0" * 64))
cert = iot.create_keys_and_certificate(setAsActive=True)
case("delete_active_cert", lambda: iot.delete_certificate(certificateId=cert["certificateId"]))
iot.attach_thing_principal(thingName=thing, principal=cert["certificateArn"])
iot.update_certificate(certificateId=cert["certificateId"], newStatus="INACTIVE")
case("delete_attached_cert", lambda: iot.delete_certificate(certificateId=cert["certificateId"]))
iot.attach_policy(policyName=policy, target=cert["certificateArn"])
case("delete_attached_policy", lambda: iot.delete_policy(policyName=policy))
case("create_policy_version", lambda: iot.create_policy_version(policyName=policy, policyDocument=good, setAsDefault=True))
case("list_policy_versions", lambda: results.__setitem__("versions", [v["versionId"] for v in iot.list_policy_versions(policyName=policy)["policyVersions"]]))
case("set_default_unknown_version", lambda: iot.set_default_policy_version(policyName=policy, policyVersionId="42"))
case("revoke_then_activate", lambda: (iot.update_certificate(certificateId=cert["certificateId"], newStatus="REVOKED"), iot.update_certificate(certificateId=cert["certificateId"], newStatus="ACTIVE")))
case("list_attached", lambda: results.__setitem__("attached", [p["policyName"] for p in iot.list_attached_policies(target=cert["certificateArn"])["policies"]]))
case("list_principal_things", lambda: results.__setitem__("principal_things", iot.list_principal_things(principal=cert["certificateArn"])["things"]))
case("legacy_attach_principal_policy", lambda: iot.attach_principal_policy(policyName=policy, principal=cert["certificateArn"]))
case("describe_endpoint", lambda: results.__setitem__("endpoint", iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]))
case("get_policy_version", lambda: results.__setitem__("version1_default", iot.get_policy_version(policyName=policy, policyVersionId="1")["isDefaultVersion"]))
case("get_policy_shapes", lambda: results.__setitem__("policy_shapes", [
    {k: v for k, v in r.items() if k in ("policyName", "policyArn", "policyVersionId", "defaultVersionId", "isDefaultVersion", "generationId")} | {"document": "policyDocument" in r, "dates": "creationDate" in r and "lastModifiedDate" in r}
    for r in (iot.get_policy(policyName=policy), iot.get_policy_version(policyName=policy, policyVersionId="2"))]))
case("delete_policy_version", lambda: iot.delete_policy_version(policyName=policy, policyVersionId="1"))
case("list_versions_after_delete", lambda: results.__setitem__("versions_after_delete", [v["versionId"] for v in iot.list_policy_versions(policyName=policy)["policyVersions"]]))
case("detach_principal_policy", lambda: iot.detach_principal_policy(policyName=policy, principal=cert["certificateArn"]))
case("list_attached_after_detach", lambda: results.__setitem__("attached_after_detach", [p["policyName"] for p in iot.list_attached_policies(target=cert["certificateArn"])["policies"]]))
case("detach_thing_principal", lambda: iot.detach_thing_principal(thingName=thing, principal=cert["certificateArn"]))
case("list_principal_things_after_detach", lambda: results.__setitem__("principal_things_after_detach", iot.list_principal_things(principal=cert["certificateArn"])["things"]))
case("list_policies", lambda: results.__setitem__("policies_listed", policy in [p["policyName"] for p in iot.list_policies(pageSize=250)["policies"]]))
for i in range(5):
    iot.create_thing(thingName=f"{prefix}page{i}", attributePayload={"attributes": {"batch": prefix}})
first = iot.list_things(maxResults=2, attributeName="batch", attributeValue=prefix)
results["page1"] = [t["thingName"] for t in first["things"]]
rest = []
token = first.get("nextToken")
while token:
    page = iot.list_things(maxResults=2, attributeName="batch", attributeValue=prefix, nextToken=token)
    rest += [t["thingName"] for t in page["things"]]
    token = page.get("nextToken")
results["pages_rest"] = rest
print(json.dumps(results))
