#!/usr/bin/env bash
# The web console's first load (docs/benchmarks.md, "Web console"): a server on a fresh data folder
# (loopback, ports of its own), Debian's Chromium driven by playwright-core from npm (no browser
# downloaded), CONSOLE_ROUNDS rounds (default 5) each with an empty cache.
# usage: bench/console.sh          results: one JSON line per round, then the medians
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rounds="${CONSOLE_ROUNDS:-5}"
[[ -x /usr/bin/chromium ]] || { echo "console bench: /usr/bin/chromium is missing: run scripts/install-deps.sh" >&2; exit 1; }
(cd bench/console && npm ci --no-audit --no-fund --loglevel=error >&2)
work="$(mktemp -d)"
port=28080
./trellis serve --data "$work/data" --mqtt 127.0.0.1:0 --mqtts 127.0.0.1:0 --ws 127.0.0.1:0 --coap off --coaps off \
  --http 127.0.0.1:$port --log-level Warning >"$work/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 600); do grep -q "Trellis is running." "$work/server.log" && break; sleep 0.1; done
key=$(awk -F' *= *' '/aws_access_key_id/ {print $2; exit}' "$work/data/credentials")
secret=$(awk -F' *= *' '/aws_secret_access_key/ {print $2; exit}' "$work/data/credentials")
node bench/console/load.mjs "http://127.0.0.1:$port/" "$key" "$secret" "$rounds" | tee "$work/rounds.jsonl"
python3 - "$work/rounds.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(json.dumps({"rounds": len(rows),
  "firstLoadBytes": statistics.median(r["firstLoadBytes"] for r in rows),
  "signInFormReadyMsMedian": statistics.median(r["signInFormReadyMs"] for r in rows),
  "overviewAfterSignInMsMedian": statistics.median(r["overviewAfterSignInMs"] for r in rows)}))
PY
