#!/bin/sh
# Sets up fleet provisioning by claim for the Python device (device.py) on a running Trellis:
# the group and policy a lamp gets, the template lamps-fleet, and a claim certificate whose policy
# allows only the provisioning topics, written to the folder given (default ./claim).
# Uses TRELLIS_ENDPOINT and TRELLIS_DATA like every trellis command; may be run again.
set -eu
out="$(realpath -m "${1:-claim}")"
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
trellis() { ./trellis "$@"; }
exists() { trellis "$@" >/dev/null 2>&1; }

exists groups describe lamps || trellis groups create lamps >/dev/null
exists policies get lamp-policy || trellis policies create lamp-policy "$here/lamp-policy.json" >/dev/null
exists policies get claim-policy || trellis policies create claim-policy "$here/claim-policy.json" >/dev/null
exists templates describe lamps-fleet || trellis templates create lamps-fleet "$here/fleet.json" >/dev/null
if [ ! -f "$out/device.json" ]; then
  trellis provision --thing lamp-claim --out "$out" --policy claim-policy >/dev/null
fi
echo "setup: group lamps, lamp-policy, claim-policy, template lamps-fleet; claim certificate in $out"
