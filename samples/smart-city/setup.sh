#!/bin/sh
# Smart city: store every reading, republish full car parks, alarm on bad air.
. "$(dirname "$0")/../common.sh"
store_fleet city_store sim-smart-city-
rule city_parking_full --sql "SELECT topic(2) AS lot, occupied, capacity FROM 'devices/+/telemetry' WHERE occupancyPct > 95" \
  --action '{"republish": {"topic": "city/parking/full", "qos": 1}}'
alarm_model city-air-quality --sql "SELECT pm25 FROM 'devices/+/telemetry' WHERE pm25 > 25" --thing-expr "topic(2)" --severity MINOR \
  --description "PM2.5 above the WHO daily guideline"
echo "Now: ./trellis simulate --profile smart-city --devices 200 --seconds 120"
