#!/bin/sh
# Healthcare: store vital signs, alarm on arrhythmia and low SpO2, republish low batteries.
. "$(dirname "$0")/../common.sh"
store_fleet care_store sim-healthcare-
alarm_model heart-rhythm --sql "SELECT heartRate FROM 'devices/+/telemetry' WHERE arrhythmia = true" --thing-expr "topic(2)" --severity CRITICAL \
  --description "The wearable sees an irregular heart rhythm"
alarm_model low-spo2 --sql "SELECT spo2 FROM 'devices/+/telemetry' WHERE spo2 < 90" --thing-expr "topic(2)" --severity MAJOR \
  --description "Blood oxygen saturation under 90 %"
rule care_battery_low --sql "SELECT topic(2) AS wearable, batteryPct FROM 'devices/+/telemetry' WHERE batteryPct < 15" \
  --action '{"republish": {"topic": "care/battery/low", "qos": 1}}'
echo "Now: ./trellis simulate --profile healthcare --devices 50 --seconds 60"
