#!/bin/sh
# Industrial: store machine readings, alarm on the vibration of a failing bearing.
. "$(dirname "$0")/../common.sh"
store_fleet plant_store sim-industrial-
alarm_model bearing-vibration --sql "SELECT vibrationRms, temperature FROM 'devices/+/telemetry' WHERE vibrationRms > 6" --thing-expr "topic(2)" --severity MAJOR \
  --description "Vibration RMS above 6 mm/s: a bearing is failing (ISO 10816 zone C)"
echo "Now: ./trellis simulate --profile industrial --devices 100 --seconds 180   (faults start 30-120 s in)"
