"""A fleet of simulated devices working through one AWS IoT job over HTTPS (boto3 "iot-jobs-data").

usage: jobs_fleet.py ENDPOINT CONFIG_JSON
CONFIG_JSON: {"group": name, "prefix": thing-name prefix, "count": N, "failPercent": P, "job": {create_job arguments}}

Creates the group and N things in it, creates the job (its targets are the group), then each device
asks for its next job (start-next) and finishes it: SUCCEEDED, or FAILED for the P % of devices
chosen by index. Devices keep asking until the job is no longer IN_PROGRESS and none of them has
anything pending (or two minutes pass). Prints JSON: {"acted": {thing: status it reported},
"executions": {thing: status the server holds}, "job": describe_job's job, "fails": the things made
to fail}.
"""
import concurrent.futures
import json
import sys
import time

import boto3

endpoint, config = sys.argv[1], json.loads(sys.argv[2])
iot = boto3.client("iot", endpoint_url=endpoint, region_name="us-east-1")
data = boto3.client("iot-jobs-data", endpoint_url=endpoint, region_name="us-east-1")
group, prefix, count, fail_percent = config["group"], config["prefix"], config["count"], config["failPercent"]
things = [f"{prefix}-{i:04d}" for i in range(count)]
fails = {t for i, t in enumerate(things) if (i * 7919) % 100 < fail_percent}

iot.create_thing_group(thingGroupName=group)
group_arn = iot.describe_thing_group(thingGroupName=group)["thingGroupArn"]


def register(thing):
    iot.create_thing(thingName=thing)
    iot.add_thing_to_thing_group(thingGroupName=group, thingName=thing)


with concurrent.futures.ThreadPoolExecutor(8) as pool:
    list(pool.map(register, things))

job_id = config["job"]["jobId"]
iot.create_job(targets=[group_arn], **config["job"])
acted = {}


def work(thing):
    """One device's turn: start its next job and finish it. True when it had something to do."""
    execution = data.start_next_pending_job_execution(thingName=thing).get("execution")
    if not execution:
        return False
    status = "FAILED" if thing in fails else "SUCCEEDED"
    try:
        data.update_job_execution(thingName=thing, jobId=execution["jobId"], status=status,
                                  expectedVersion=execution["versionNumber"], statusDetails={"by": "fleet"})
        acted[thing] = status
    except data.exceptions.InvalidStateTransitionException:
        pass  # canceled by the abort between start-next and the update: the device did not finish it
    return True


deadline = time.monotonic() + 120
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    while time.monotonic() < deadline:
        busy = any(list(pool.map(work, [t for t in things if t not in acted])))
        job = iot.describe_job(jobId=job_id)["job"]
        if not busy and job["status"] != "IN_PROGRESS":
            break

executions = {}
for page in iot.get_paginator("list_job_executions_for_job").paginate(jobId=job_id):
    for summary in page["executionSummaries"]:
        executions[summary["thingArn"].rsplit("/", 1)[1]] = summary["jobExecutionSummary"]["status"]
print(json.dumps({"acted": acted, "executions": executions, "job": job, "fails": sorted(fails)}, default=str))
