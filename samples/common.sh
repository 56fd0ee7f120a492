# Shared by the samples' setup scripts: run trellis from the repository root, and create a rule or
# an alarm model only when it does not exist yet (so a script may be run again).
set -eu
cd "$(dirname "$0")/../.."
trellis() { ./trellis "$@"; }
rule() {
  name="$1"; shift
  if trellis rules describe "$name" >/dev/null 2>&1; then echo "rule $name exists"; else trellis rules create "$name" "$@" >/dev/null && echo "rule $name created"; fi
}
alarm_model() {
  name="$1"; shift
  trellis alarms model-put "$name" "$@" >/dev/null && echo "alarm model $name in place"
}
# Every numeric field of a fleet's telemetry into the time-series store, one series per thing.
store_fleet() {
  rule "$1" --sql "SELECT * FROM 'devices/+/telemetry' WHERE startswith(topic(2), '$2')" \
    --action '{"timestream": {"roleArn": "arn:aws:iam::000000000000:role/trellis", "databaseName": "trellis", "tableName": "telemetry", "dimensions": [{"name": "thing", "value": "${topic(2)}"}]}}'
}
