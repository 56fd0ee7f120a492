// A device written against AWS's own jobs client (aws-iot-device-sdk-v2, iotjobs.IotJobsClient),
// unmodified: it connects with its certificate, waits for notify-next, starts the job, reports
// progress and success, and prints what it saw as one JSON line.
// usage: node jobs_agent.js HOST PORT CA CERT KEY THING
const { mqtt, iot, iotjobs } = require("aws-iot-device-sdk-v2");

const [host, port, ca, cert, key, thing] = process.argv.slice(2);
const QOS = mqtt.QoS.AtLeastOnce;

function once(subscribe) {
  return new Promise((resolve, reject) => subscribe((error, response) => (error ? reject(error) : resolve(response))));
}

async function main() {
  const config = iot.AwsIotMqttConnectionConfigBuilder.new_mtls_builder_from_path(cert, key)
    .with_certificate_authority_from_path(undefined, ca)
    .with_endpoint(host)
    .with_port(Number(port))
    .with_client_id(thing)
    .with_clean_session(true)
    .build();
  const connection = new mqtt.MqttClient().new_connection(config);
  await connection.connect();
  const jobs = new iotjobs.IotJobsClient(connection);
  const seen = {};

  const next = new Promise((resolve) => jobs.subscribeToNextJobExecutionChangedEvents({ thingName: thing }, QOS, (error, event) => {
    if (!error && event && event.execution) resolve(event);
  }));
  let onStarted, onStartRejected, onUpdated, onUpdateRejected;
  await jobs.subscribeToStartNextPendingJobExecutionAccepted({ thingName: thing }, QOS, (e, r) => onStarted && onStarted(e, r));
  await jobs.subscribeToStartNextPendingJobExecutionRejected({ thingName: thing }, QOS, (e, r) => onStartRejected && onStartRejected(e, r));
  await jobs.subscribeToUpdateJobExecutionAccepted({ thingName: thing, jobId: "+" }, QOS, (e, r) => onUpdated && onUpdated(e, r));
  await jobs.subscribeToUpdateJobExecutionRejected({ thingName: thing, jobId: "+" }, QOS, (e, r) => onUpdateRejected && onUpdateRejected(e, r));
  console.log("ready");

  seen.next = await next;
  const started = new Promise((resolve, reject) => { onStarted = (e, r) => (e ? reject(e) : resolve(r)); onStartRejected = (e, r) => reject(new Error(JSON.stringify(r))); });
  await jobs.publishStartNextPendingJobExecution({ thingName: thing, clientToken: "start-1", statusDetails: { progress: "downloading" } }, QOS);
  seen.started = await started;

  const jobId = seen.started.execution.jobId;
  const updated = new Promise((resolve, reject) => { onUpdated = (e, r) => (e ? reject(e) : resolve(r)); onUpdateRejected = (e, r) => reject(new Error(JSON.stringify(r))); });
  await jobs.publishUpdateJobExecution({
    thingName: thing, jobId, status: iotjobs.model.JobStatus.SUCCEEDED, clientToken: "update-1",
    expectedVersion: seen.started.execution.versionNumber, statusDetails: { progress: "done" }, includeJobExecutionState: true,
  }, QOS);
  seen.updated = await updated;
  console.log(JSON.stringify(seen));
  await connection.disconnect();
}

const timer = setTimeout(() => { console.error("timed out"); process.exit(2); }, 30000);
main().then(() => { clearTimeout(timer); process.exit(0); }, (e) => { console.error(e && e.stack || e); process.exit(1); });
