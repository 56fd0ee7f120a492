#!/usr/bin/env bash
# Runs the end-to-end benchmarks against Trellis and Debian's Mosquitto on this machine, in turn,
# with the same load generator and workloads. Results: bench/results/<timestamp>.jsonl and a
# markdown table on stdout (paste it into docs/benchmarks.md with the machine details).
#
# usage: scripts/bench.sh [scenario ...]   (default: fanin-q0 fanin-q1 fanin-q1-persistent session-journal fanout p2p p2p-1 p2p-lockstep idle overload shadow provision telemetry ingest;
#        also jobs (JOBS_THINGS=N, default 10000: CreateJob on a group and notify-next to every device),
#        ota (HTTPS range downloads against nginx, then a whole update job on OTA_THINGS=N devices, default 10000),
#        coap (CON and NON requests from 1 000 simulated devices at COAP_RATES against libcoap's coap-server),
#        coaps (the same over DTLS 1.2 with pre-shared keys: handshakes/s, memory per session, resumption, COAPS_RATES; against coap-server-openssl),
#        presence (PRESENCE_CONNECTIONS=N silent clients, default 10000: offline within 1.5 × keep-alive + 1 s),
#        defender (the QoS 1 fan-in ladder with Device Defender's accounting off and on, in turns),
#        index (INDEX_THINGS=N, default 100000: SearchIndex and aggregation latency beside ListThings' SQLite
#        filter, and index freshness under INDEX_RATE shadow updates per second, default 5000),
#        gateway (an edge gateway's leaf throughput with --fsync always and os, and Mosquitto as a bridge;
#        then GATEWAY_OUTAGE seconds of upstream outage, default 300, at GATEWAY_OUTAGE_RATE msg/s, and the drain),
#        simulate (trellis simulate's industrial fleet at SIM_DEVICES sizes, default "1000 5000 10000", SIM_SECONDS each, default 60),
#        delta (a delta image between Trellis's own assemblies at DELTA_FROM=commit, default a89db30, and HEAD),
#        and p2p-hops, a diagnostic that captures loopback traffic to split point-to-point latency into hops)
#        BENCH_ROUNDS=N (default 3): traffic scenarios run N times, brokers alternating; the report
#        quotes medians, because single runs on a shared 2-core VM move by 10-30 %.
#        ingest: INGEST_ROUNDS=N ladder rounds (default BENCH_ROUNDS), INGEST_SUSTAIN=S seconds of the
#        sustained-ingest memory run (default 600; 0 skips it).
#        TRELLIS_BENCH_ENV="NAME=VALUE …": extra environment for the Trellis process (runtime experiments).
#        idle: IDLE_CONNECTIONS="N …" (default "10000 100000"); a size above the descriptor limit is
#        reported as skipped with the limit, not measured.
#        TRELLIS_BENCH_COMMAND=PROGRAM: the trellis that serves (default: the framework-dependent build,
#        `dotnet …/trellis.dll`); artifacts/publish/linux-x64/trellis after `scripts/package.sh --publish-only`
#        measures the package's form (Native AOT). The delta, gateway and simulate scenarios keep the default.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1
"$root/scripts/install-deps.sh" tcpdump nginx-light >/dev/null  # tcpdump: the p2p-hops diagnostic; nginx: the ota baseline
# 100 000 idle connections need as many descriptors in the broker and in the load generator: raise
# the hard limit where this user may (root with CAP_SYS_RESOURCE), then the soft one to it.
ulimit -Hn 1048576 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

dotnet build bench/Trellis.LoadGen/Trellis.LoadGen.csproj -c Release --nologo -v quiet -clp:ErrorsOnly
dotnet build src/Trellis.Cli/Trellis.Cli.csproj -c Release --nologo -v quiet -clp:ErrorsOnly
trellis_dll="$root/artifacts/bin/Trellis.Cli/release/trellis.dll" # the framework-dependent build: management commands, and the server by default
read -r -a trellis <<<"${TRELLIS_BENCH_COMMAND:-dotnet $trellis_dll}"
# The generator reads its sockets on the runtime's socket thread (inline completions) and stamps a
# message's arrival there: handing every read to the thread pool first added 0.1-0.45 ms of the
# generator's own queueing to each point-to-point message (measured with p2p-hops and --trace).
loadgen="env DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 dotnet $root/artifacts/bin/Trellis.LoadGen/release/Trellis.LoadGen.dll"

work="$(mktemp -d)"
mosq_port=21883
trellis_port=22883
cat > "$work/mosquitto.conf" <<CONF
listener $mosq_port 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 10000
max_connections -1
set_tcp_nodelay true
log_dest none
CONF

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# The persistent-session scenario gives Mosquitto its persistence too (a snapshot at autosave and at
# shutdown: it writes nothing per message).
sed -e 's/^persistence false/persistence true/' > "$work/mosquitto-persist.conf" < "$work/mosquitto.conf"
printf "persistence_location %s/\nuser %s\n" "$work" "$(id -un)" >> "$work/mosquitto-persist.conf"
mosq_conf="$work/mosquitto.conf"
start_brokers() {
  mosquitto -c "$mosq_conf" & mosq_pid=$!
  env ${TRELLIS_BENCH_ENV:-} "${trellis[@]}" serve --data "$work/data" --allow-anonymous \
    --mqtt 127.0.0.1:$trellis_port --mqtts off --ws off --http 127.0.0.1:0 --log-level Warning > "$work/trellis.log" 2>&1 & trellis_pid=$!
  pids+=("$mosq_pid" "$trellis_pid")
  for _ in $(seq 1 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/$trellis_port) 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/$mosq_port) 2>/dev/null; then return; fi
    sleep 0.1
  done
  echo "brokers did not start"; cat "$work/trellis.log"; exit 1
}
stop_brokers() { kill "$mosq_pid" "$trellis_pid" 2>/dev/null || true; wait "$mosq_pid" "$trellis_pid" 2>/dev/null || true; rm -rf "$work/data" "$work/mosquitto.db"; }

mkdir -p bench/results
out="bench/results/$(date -u +%Y%m%dT%H%M%SZ).jsonl"
scenarios=("$@")
[[ ${#scenarios[@]} -gt 0 ]] || scenarios=(fanin-q0 fanin-q1 fanin-q1-persistent session-journal fanout p2p p2p-1 p2p-lockstep idle overload shadow provision telemetry ingest)

rounds=${BENCH_ROUNDS:-3}
run() { # round broker-name port pid scenario-args...
  local round=$1 name=$2 port=$3 pid=$4; shift 4
  $loadgen --name "$name" --port "$port" --pid "$pid" "$@" | sed -u "s/^{/{\"round\":$round,/" | tee -a "$out"
}

# Shadows have no Mosquitto counterpart: Trellis alone, over MQTT across 1000 things, then the
# store's and the shadow service's in-process capacity across 10 000 things.
shadow_bench() {
  start_brokers
  python3 "$root/bench/create_things.py" "http://127.0.0.1:$(trellis_http_port)" "$work/data/credentials" 1000 bench-thing-
  for round in $(seq 1 "$rounds"); do
    run "$round" trellis $trellis_port "$trellis_pid" --scenario shadow --things 1000 --rates 1000,2000,5000,10000,15000,20000
  done
  stop_brokers
  $loadgen --scenario shadow-store --things 10000 --in-flight 512 --seconds 5 | tee -a "$out"
}
# Jobs: 10 000 things in one group, each connected and subscribed to its notify-next; one CreateJob
# on the group. No other broker runs AWS IoT Jobs, so the figures stand against issue 18's targets.
jobs_bench() {
  start_brokers
  local http key secret
  http=$(trellis_http_port)
  python3 "$root/bench/create_things.py" "http://127.0.0.1:$http" "$work/data/credentials" "${JOBS_THINGS:-10000}" job-dev- job-fleet
  key=$(grep aws_access_key_id "$work/data/credentials" | cut -d= -f2 | tr -d ' ')
  secret=$(grep aws_secret_access_key "$work/data/credentials" | cut -d= -f2 | tr -d ' ')
  run 1 trellis $trellis_port "$trellis_pid" --scenario jobs --things "${JOBS_THINGS:-10000}" --thing-prefix job-dev- --group job-fleet \
    --api "http://127.0.0.1:$http" --key-id "$key" --secret "$secret"
  stop_brokers
}
# Firmware updates. (1) HTTPS range downloads of a 64 MiB image: Trellis's pre-signed link against
# Debian's nginx serving the same file with the same certificate (one process: master_process off,
# so its pid's CPU is all of its work; compare MB per CPU-second). (2) A whole update job on
# OTA_THINGS devices (default 10 000): notify-next, start-next, a 1 MiB HTTPS download, SUCCEEDED.
ota_bench() {
  local https_port=22443 nginx_port=22444 trellis_cli="dotnet $trellis_dll"
  for round in $(seq 1 "$rounds"); do
    env ${TRELLIS_BENCH_ENV:-} "${trellis[@]}" serve --data "$work/data" --allow-anonymous \
      --mqtt 127.0.0.1:$trellis_port --mqtts off --ws off --http 127.0.0.1:0 --https 127.0.0.1:$https_port --log-level Warning > "$work/trellis.log" 2>&1 & trellis_pid=$!
    pids+=("$trellis_pid")
    local http; http=$(trellis_http_port)
    mkdir -p "$work/www"
    head -c $((64 << 20)) /dev/urandom > "$work/www/fw.bin"
    $trellis_cli firmware upload fw.bin "$work/www/fw.bin" --endpoint "http://127.0.0.1:$http" --data "$work/data" > /dev/null
    local url; url=$($trellis_cli firmware url fw.bin --expires-in 3600 --endpoint "http://127.0.0.1:$http" --data "$work/data")
    cat > "$work/nginx.conf" <<CONF
daemon off;
master_process off;
error_log $work/nginx-error.log;
pid $work/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  server {
    listen 127.0.0.1:$nginx_port ssl;
    ssl_certificate $work/data/pki/server.pem;
    ssl_certificate_key $work/data/pki/server.key;
    root $work/www;
  }
}
CONF
    nginx -c "$work/nginx.conf" & local nginx_pid=$!
    pids+=("$nginx_pid")
    sleep 1
    local size=$((64 << 20))
    run "$round" trellis 0 "$trellis_pid" --scenario ota --part download --url "$url" --ca "$work/data/ca.pem" --size $size --connections 16 --seconds 15
    run "$round" nginx 0 "$nginx_pid" --scenario ota --part download --url "https://localhost:$nginx_port/fw.bin" --ca "$work/data/ca.pem" --size $size --connections 16 --seconds 15
    kill "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true
    if [[ $round == 1 ]]; then
      python3 "$root/bench/create_things.py" "http://127.0.0.1:$http" "$work/data/credentials" "${OTA_THINGS:-10000}" ota-dev- ota-fleet
      head -c 1048576 /dev/urandom > "$work/www/fleet.bin"
      $trellis_cli firmware upload fleet.bin "$work/www/fleet.bin" --endpoint "http://127.0.0.1:$http" --data "$work/data" > /dev/null
      local key secret
      key=$(grep aws_access_key_id "$work/data/credentials" | cut -d= -f2 | tr -d ' ')
      secret=$(grep aws_secret_access_key "$work/data/credentials" | cut -d= -f2 | tr -d ' ')
      run 1 trellis $trellis_port "$trellis_pid" --scenario ota --part fleet --things "${OTA_THINGS:-10000}" --thing-prefix ota-dev- --group ota-fleet \
        --firmware fleet.bin --size 1048576 --ca "$work/data/ca.pem" --concurrency 64 --api "http://127.0.0.1:$http" --key-id "$key" --secret "$secret"
    fi
    kill "$trellis_pid" 2>/dev/null || true; wait "$trellis_pid" 2>/dev/null || true
    rm -rf "$work/data" "$work/www"
  done
}
# Delta images on a real pair: Trellis's own assemblies (Trellis*.dll, trellis.dll) built at
# DELTA_FROM (default a89db30, the start of the firmware work) and at HEAD, each tarred as one
# "image". Trellis makes the patch; Debian's zstd checks it rebuilds HEAD's image and makes its own
# --patch-from patch at -19 as the baseline; plain zstd -19 of the new image shows what compression
# alone gives.
delta_bench() {
  local old=${DELTA_FROM:-a89db30} tree="$work/old-tree" trellis_cli="dotnet $trellis_dll"
  git -C "$root" worktree add --detach "$tree" "$old" > /dev/null 2>&1
  dotnet build "$tree/src/Trellis.Cli/Trellis.Cli.csproj" -c Release --nologo -v quiet -clp:ErrorsOnly
  image() { (cd "$1" && tar --sort=name --mtime=2026-01-01 --owner=0 --group=0 -cf "$2" Trellis*.dll trellis.dll); }
  image "$tree/artifacts/bin/Trellis.Cli/release" "$work/old.tar"
  image "$root/artifacts/bin/Trellis.Cli/release" "$work/new.tar"
  git -C "$root" worktree remove --force "$tree"
  dotnet "$trellis_dll" serve --data "$work/data" --mqtt off --mqtts off --ws off --http 127.0.0.1:0 --log-level Warning > "$work/trellis.log" 2>&1 & trellis_pid=$!
  pids+=("$trellis_pid")
  local http; http=$(trellis_http_port)
  local cli=(--endpoint "http://127.0.0.1:$http" --data "$work/data")
  $trellis_cli firmware upload old.tar "$work/old.tar" "${cli[@]}" > /dev/null
  $trellis_cli firmware upload new.tar "$work/new.tar" "${cli[@]}" > /dev/null
  local started ended made
  started=$(date +%s%N)
  made=$($trellis_cli firmware delta new.tar --from old.tar --output json "${cli[@]}")
  ended=$(date +%s%N)
  local url; url=$($trellis_cli firmware url new.tar "${cli[@]}")
  curl -s -o "$work/trellis.patch" "$url&from=$(sha256sum "$work/old.tar" | cut -d' ' -f1)"
  zstd -q -d -f --patch-from="$work/old.tar" "$work/trellis.patch" -o "$work/rebuilt.tar"
  cmp -s "$work/rebuilt.tar" "$work/new.tar" || { echo "the patch does not rebuild the new image" >&2; exit 1; }
  zstd -q -19 -f --patch-from="$work/old.tar" "$work/new.tar" -o "$work/cli.patch"
  zstd -q -19 -f "$work/new.tar" -o "$work/new.tar.zst"
  python3 - "$made" "$(stat -c %s "$work/old.tar")" "$(stat -c %s "$work/new.tar")" "$(stat -c %s "$work/cli.patch")" "$(stat -c %s "$work/new.tar.zst")" $(( (ended - started) / 1000000 )) "$old" "$(git -C "$root" rev-parse --short HEAD)" <<'PY' | tee -a "$out"
import json, sys
made = json.loads(sys.argv[1])
print(json.dumps({"scenario": "firmware-delta", "from": sys.argv[7], "to": sys.argv[8], "oldBytes": int(sys.argv[2]), "newBytes": int(sys.argv[3]),
                  "trellisPatchBytes": made["size"], "saving": made["saving"], "zstdPatchFromBytes": int(sys.argv[4]), "zstd19FullBytes": int(sys.argv[5]),
                  "makeMs": int(sys.argv[6]), "rebuiltByZstdCli": True}))
PY
  kill "$trellis_pid" 2>/dev/null || true; wait "$trellis_pid" 2>/dev/null || true
}
trellis_http_port() { # the banner is printed once start-up is complete
  for _ in $(seq 1 100); do
    grep -qE 'Management API +http' "$work/trellis.log" && break
    sleep 0.1
  done
  grep -oE 'Management API +http://127.0.0.1:[0-9]+' "$work/trellis.log" | grep -oE '[0-9]+$'
}

# Fleet provisioning by claim, then connects of the provisioned devices with a device token (plain
# TCP) and with their certificate (TLS). Mosquitto, which provisions nothing, gets the same
# credentials for the connect comparison: the tokens in a password file, and a TLS listener with
# Trellis's CA and server certificate that requires client certificates.
provision_bench() {
  local tls_port=22884 mosq_tls_port=21884 prov="$work/prov"
  for round in $(seq 1 "$rounds"); do
    # Capacity, not policy: the per-principal and server-wide certificate rate limits (a fleet shares
    # one claim certificate) are raised out of the way, so the figures show what the server can do.
    env ${TRELLIS_BENCH_ENV:-} TRELLIS_Provisioning__KeysPerSecondPerPrincipal=1000 TRELLIS_Provisioning__KeyBurstPerPrincipal=1000 \
      TRELLIS_Provisioning__KeysPerSecond=1000 TRELLIS_Provisioning__KeyBurst=1000 TRELLIS_Provisioning__CsrCertificatesPerSecondPerPrincipal=10000 \
      TRELLIS_Provisioning__CsrCertificateBurstPerPrincipal=10000 TRELLIS_Provisioning__CsrCertificatesPerSecond=10000 TRELLIS_Provisioning__CsrCertificateBurst=10000 \
      "${trellis[@]}" serve --data "$work/data" \
      --mqtt 127.0.0.1:$trellis_port --mqtts 127.0.0.1:$tls_port --ws off --http 127.0.0.1:0 --log-level Warning > "$work/trellis.log" 2>&1 & trellis_pid=$!
    pids+=("$trellis_pid")
    local http; http=$(trellis_http_port)
    python3 "$root/bench/setup_provisioning.py" "http://127.0.0.1:$http" "$work/data/credentials" "$prov"
    # Keys made by the server (RSA-2048, as AWS does: ~0.2 s of CPU each here), then keys made by the device (CSR).
    run "$round" trellis $tls_port "$trellis_pid" --scenario provision --keys server --devices 200 --concurrency 16 --serial-prefix "r$round-server-" \
      --out "$prov/server-keyed" --ca "$work/data/ca.pem" --claim-cert "$prov/claim.pem" --claim-key "$prov/claim.key"
    run "$round" trellis $tls_port "$trellis_pid" --scenario provision --keys csr --devices 1000 --concurrency 16 --serial-prefix "r$round-" \
      --out "$prov/devices" --ca "$work/data/ca.pem" --claim-cert "$prov/claim.pem" --claim-key "$prov/claim.key"
    python3 "$root/bench/create_tokens.py" "http://127.0.0.1:$http" "$work/data/credentials" "$prov/devices" "$prov/tokens.tsv"
    run "$round" trellis $trellis_port "$trellis_pid" --scenario connect --auth token --tokens "$prov/tokens.tsv" --concurrency 32
    run "$round" trellis $tls_port "$trellis_pid" --scenario connect --auth cert --devices-dir "$prov/devices" --ca "$work/data/ca.pem" --concurrency 32

    sed 's/\t/:/' "$prov/tokens.tsv" > "$work/passwords" && mosquitto_passwd -U "$work/passwords"
    cat > "$work/mosquitto-auth.conf" <<CONF
per_listener_settings true
persistence false
log_dest none
# started as root, Mosquitto would switch to its own user, which cannot read the 0600 key in this private folder
user $(id -un)
listener $mosq_port 127.0.0.1
allow_anonymous false
password_file $work/passwords
listener $mosq_tls_port 127.0.0.1
cafile $work/data/ca.pem
certfile $work/data/pki/server.pem
keyfile $work/data/pki/server.key
require_certificate true
use_identity_as_username true
CONF
    mosquitto -c "$work/mosquitto-auth.conf" & mosq_pid=$!
    pids+=("$mosq_pid")
    sleep 0.5
    run "$round" mosquitto $mosq_port "$mosq_pid" --scenario connect --auth token --tokens "$prov/tokens.tsv" --concurrency 32
    run "$round" mosquitto $mosq_tls_port "$mosq_pid" --scenario connect --auth cert --devices-dir "$prov/devices" --ca "$work/data/ca.pem" --concurrency 32
    stop_brokers
    rm -rf "$prov"
  done
}

# Idle connections at each size in IDLE_CONNECTIONS, a fresh pair of brokers per size.
# Device Defender's accounting: two Trellis servers take turns on the QoS 1 fan-in ladder, one with
# --device-defender off and one with it on and a security profile on every client (each message counted,
# every window evaluated). Issue 19's figure: the zero-loss rate with it on within 5 % of off.
defender_bench() {
  for round in $(seq 1 "$rounds"); do
    local pids_here=() ports=(22883 22884) modes=(off on)
    for i in 0 1; do
      env ${TRELLIS_BENCH_ENV:-} "${trellis[@]}" serve --data "$work/data-${modes[$i]}" --allow-anonymous \
        --mqtt 127.0.0.1:${ports[$i]} --mqtts off --ws off --http 127.0.0.1:0 --log-level Warning --device-defender "${modes[$i]}" > "$work/trellis-${modes[$i]}.log" 2>&1 &
      pids_here+=($!)
    done
    pids+=("${pids_here[@]}")
    for _ in $(seq 1 100); do grep -qE 'Management API +http' "$work/trellis-on.log" && grep -qE 'Management API +http' "$work/trellis-off.log" && break; sleep 0.1; done
    local http; http=$(grep -oE 'Management API +http://127.0.0.1:[0-9]+' "$work/trellis-on.log" | grep -oE '[0-9]+$')
    python3 - "http://127.0.0.1:$http" "$work/data-on/credentials" <<'PY'
import sys, boto3
import configparser
c = configparser.ConfigParser(); c.read(sys.argv[2]); k = c["trellis"]
iot = boto3.client("iot", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id=k["aws_access_key_id"], aws_secret_access_key=k["aws_secret_access_key"])
def b(name, metric, op, count, duration=None):
    criteria = {"comparisonOperator": op, "value": {"count": count}}
    if duration: criteria["durationSeconds"] = duration
    return {"name": name, "metric": metric, "criteria": criteria}
iot.create_security_profile(securityProfileName="bench", behaviors=[
    b("sent", "aws:num-messages-sent", "less-than", 10**9, 5), b("received", "aws:num-messages-received", "less-than", 10**9, 5),
    b("authz", "aws:num-authorization-failures", "less-than", 1000, 5), b("connects", "aws:num-connection-attempts", "less-than", 1000, 5),
    b("size", "aws:message-byte-size", "less-than-equals", 1 << 20)])
iot.attach_security_profile(securityProfileName="bench", securityProfileTargetArn="arn:aws:iot:us-east-1:000000000000:all/unregistered-things")
PY
    local a=(--scenario fanin --qos 1 --rates 100000,300000,350000,400000,425000,450000,475000,500000,550000,600000)
    if (( round % 2 )); then
      run "$round" trellis-defender-off,trellis-defender-on 22883,22884 "${pids_here[0]},${pids_here[1]}" "${a[@]}"
    else
      run "$round" trellis-defender-on,trellis-defender-off 22884,22883 "${pids_here[1]},${pids_here[0]}" "${a[@]}"
    fi
    kill "${pids_here[@]}" 2>/dev/null || true; wait "${pids_here[@]}" 2>/dev/null || true
    rm -rf "$work/data-on" "$work/data-off"
  done
}
# CoAP: 1 000 simulated devices (one UDP socket each) send 64-byte CON, then NON, requests at a
# ladder of rates (COAP_RATES) to Trellis (POST /topics/bench/{i}, anonymous) and to libcoap's
# coap-server (PUT /example_data), the baseline; a step passes with every request answered and
# p99 <= 10 ms. Each server runs alone on the machine while it is measured.
coap_bench() {
  local coap_port=25683 libcoap_port=25684 rates=${COAP_RATES:-2000,5000,10000,20000,30000,40000,60000} lib_pid
  for round in $(seq 1 "$rounds"); do
    for type in con non; do
      env ${TRELLIS_BENCH_ENV:-} "${trellis[@]}" serve --data "$work/data" --allow-anonymous \
        --mqtt 127.0.0.1:$trellis_port --mqtts off --ws off --http 127.0.0.1:0 --coap 127.0.0.1:$coap_port --log-level Warning > "$work/trellis.log" 2>&1 & trellis_pid=$!
      pids+=("$trellis_pid")
      trellis_http_port >/dev/null
      run "$round" trellis $coap_port "$trellis_pid" --scenario coap --coap-type $type --rates "$rates" --seconds 5 --coap-path 'topics/bench/{i}'
      kill "$trellis_pid"; wait "$trellis_pid" 2>/dev/null || true; rm -rf "$work/data"
      coap-server-notls -A 127.0.0.1 -p $libcoap_port > "$work/libcoap.log" 2>&1 & lib_pid=$!
      pids+=("$lib_pid")
      sleep 0.5
      run "$round" libcoap $libcoap_port "$lib_pid" --scenario coap --coap-type $type --rates "$rates" --seconds 5 --coap-method put --coap-path example_data
      kill "$lib_pid"; wait "$lib_pid" 2>/dev/null || true
    done
  done
}
# CoAP over DTLS 1.2 with pre-shared keys: 1 000 registered things, each with a PSK token, complete
# their handshakes (16 at a time; rate, server CPU and memory per session), resume them from new
# ports, then climb the same ladder (COAPS_RATES) with every request in its session. libcoap's
# coap-server-openssl (one key for every identity) is the baseline, measured the same way.
coaps_bench() {
  local coaps_port=25684 lib_port=25685 rates=${COAPS_RATES:-1000,2000,3000,5000,10000,20000} lib_pid http
  for round in $(seq 1 "$rounds"); do
    for type in con non; do
      env ${TRELLIS_BENCH_ENV:-} "${trellis[@]}" serve --data "$work/data" \
        --mqtt 127.0.0.1:$trellis_port --mqtts off --ws off --http 127.0.0.1:0 --coap off --coaps 127.0.0.1:$coaps_port --log-level Warning > "$work/trellis.log" 2>&1 & trellis_pid=$!
      pids+=("$trellis_pid")
      http=$(trellis_http_port)
      python3 "$root/bench/create_psk_devices.py" "http://127.0.0.1:$http" "$work/data/credentials" "${COAPS_DEVICES:-1000}" "$work/psk.tsv"
      run "$round" trellis $coaps_port "$trellis_pid" --scenario coap --psk-file "$work/psk.tsv" --coap-type $type --rates "$rates" --seconds 5 --coap-path 'topics/bench/{i}'
      kill "$trellis_pid"; wait "$trellis_pid" 2>/dev/null || true; rm -rf "$work/data"
      coap-server-openssl -A 127.0.0.1 -p $lib_port -k libcoap-bench-key > "$work/libcoap.log" 2>&1 & lib_pid=$!
      pids+=("$lib_pid")
      sleep 0.5
      awk -F'\t' '{ print $1 "\tlibcoap-bench-key" }' "$work/psk.tsv" > "$work/psk-libcoap.tsv"
      run "$round" libcoap $((lib_port + 1)) "$lib_pid" --scenario coap --psk-file "$work/psk-libcoap.tsv" --coap-type $type --rates "$rates" --seconds 5 --coap-method put --coap-path example_data
      kill "$lib_pid"; wait "$lib_pid" 2>/dev/null || true
    done
  done
}
idle_bench() {
  local limit; limit=$(ulimit -n)
  for n in ${IDLE_CONNECTIONS:-10000 100000}; do
    if (( n + 1000 > limit )); then
      echo "{\"scenario\":\"idle\",\"connections\":$n,\"skipped\":\"the descriptor limit here is $limit (ulimit -n); raising it needs root with CAP_SYS_RESOURCE\"}" | tee -a "$out"
      continue
    fi
    start_brokers
    run 1 mosquitto $mosq_port "$mosq_pid" --scenario idle --connections "$n"
    run 1 trellis $trellis_port "$trellis_pid" --scenario idle --connections "$n"
    stop_brokers
  done
}

# Edge gateway (issue 21): 20 leaves publish QoS 1 to a gateway's local listener, which forwards to a
# Trellis server upstream over TLS with the gateway's certificate; the upstream
# counts arrivals (its received-messages counter). Trellis's gateway with --fsync always (each commit fsynced) and --fsync os, then
# Mosquitto as a bridge (persistence on, same certificate). Then an outage: upstream stopped for
# GATEWAY_OUTAGE seconds (default 300) while the leaves offer GATEWAY_OUTAGE_RATE msg/s (default
# 1000), and the drain once it is back.
gateway_bench() {
  local up_mqtt=23883 up_mqtts=23884 leaf_port=23885 gw="$work/gw" http up_pid gw_pid mq_pid acked
  local outage=${GATEWAY_OUTAGE:-300} rate=${GATEWAY_OUTAGE_RATE:-1000} dll="$trellis_dll"
  start_upstream() {
    env ${TRELLIS_BENCH_ENV:-} dotnet "$dll" serve --data "$work/up" --mqtt 127.0.0.1:$up_mqtt --mqtts 127.0.0.1:$up_mqtts --ws off \
      --http 127.0.0.1:0 --coap off --coaps off --allow-anonymous --log-level Warning > "$work/trellis.log" 2>&1 & up_pid=$!
    pids+=("$up_pid"); http=$(trellis_http_port)
  }
  leaves_in() { # data folder -> leaves.tsv beside it
    : > "$1.tsv"
    for i in $(seq -w 0 19); do
      echo "gwbench-leaf-$i $(dotnet "$dll" gateway add-leaf --data "$1" --thing "gwbench-leaf-$i" | tail -1)" >> "$1.tsv"
    done
  }
  start_gateway() { # data folder, fsync
    dotnet "$dll" gateway --identity "$gw/identity" --data "$1" --mqtt 127.0.0.1:$leaf_port --fsync "$2" --log-level Warning > "$work/gateway.log" 2>&1 & gw_pid=$!
    pids+=("$gw_pid")
    for _ in $(seq 1 100); do grep -q "Trellis gateway" "$work/gateway.log" && break; sleep 0.1; done
    sleep 1
  }
  start_bridge() {
    mkdir -p "$work/mq"
    cat > "$work/bridge.conf" <<CONF
user root
listener $leaf_port 127.0.0.1
allow_anonymous true
persistence true
persistence_location $work/mq/
max_queued_messages 0
log_dest none
connection upstream
address localhost:$up_mqtts
remote_clientid gw-bench
bridge_cafile $gw/identity/ca.pem
bridge_certfile $gw/identity/gw-bench.cert.pem
bridge_keyfile $gw/identity/gw-bench.private.key
bridge_protocol_version mqttv311
cleansession false
restart_timeout 1 15
notifications false
topic devices/# out 1
CONF
    mosquitto -c "$work/bridge.conf" & mq_pid=$!
    pids+=("$mq_pid"); sleep 2
  }
  rm -rf "$work/up" "$gw"; mkdir -p "$gw"
  start_upstream
  cat > "$gw/policy.json" <<'JSON'
{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
  {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":["arn:aws:iot:*:*:topic/devices/*","arn:aws:iot:*:*:topic/$aws/things/*"]},
  {"Effect":"Allow","Action":"iot:Subscribe","Resource":"arn:aws:iot:*:*:topicfilter/$aws/things/*"}]}
JSON
  dotnet "$dll" policies create gwbench "$gw/policy.json" --endpoint "http://127.0.0.1:$http" --data "$work/up" > /dev/null
  dotnet "$dll" provision --thing gw-bench --out "$gw/identity" --policy gwbench --endpoint "http://127.0.0.1:$http" --data "$work/up" > /dev/null
  for round in $(seq 1 "$rounds"); do
    for fsync in always os; do
      rm -rf "$gw/data"; leaves_in "$gw/data"; start_gateway "$gw/data" $fsync
      run "$round" "trellis-fsync-$fsync" $leaf_port "$gw_pid" --scenario gateway --phase throughput --leaf-port $leaf_port --upstream-metrics "http://127.0.0.1:$http/metrics" --credentials "$gw/data.tsv" --seconds 10
      kill "$gw_pid"; wait "$gw_pid" 2>/dev/null || true
    done
    rm -rf "$work/mq"; start_bridge
    run "$round" mosquitto-bridge $leaf_port "$mq_pid" --scenario gateway --phase throughput --leaf-port $leaf_port --upstream-metrics "http://127.0.0.1:$http/metrics" --leaves 20 --seconds 10
    kill "$mq_pid"; wait "$mq_pid" 2>/dev/null || true
  done
  for broker in trellis mosquitto-bridge; do
    if [[ $broker == trellis ]]; then rm -rf "$gw/data"; leaves_in "$gw/data"; start_gateway "$gw/data" always; pid=$gw_pid; creds=(--credentials "$gw/data.tsv")
    else rm -rf "$work/mq"; start_bridge; pid=$mq_pid; creds=(--leaves 20); fi
    kill "$up_pid"; wait "$up_pid" 2>/dev/null || true
    run 1 "$broker" $leaf_port "$pid" --scenario gateway --phase outage --leaf-port $leaf_port "${creds[@]}" --seconds "$outage" --rate "$rate"
    acked=$(tail -1 "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["acknowledged"])')
    start_upstream
    run 1 "$broker" $leaf_port "$pid" --scenario gateway --phase drain --upstream-metrics "http://127.0.0.1:$http/metrics" --expect "$acked" --timeout 60
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
  kill "$up_pid"; wait "$up_pid" 2>/dev/null || true
}

# Fleet simulator (issue 21): `trellis simulate --profile industrial` with SIM_DEVICES devices (a
# list, default "1000 5000 10000"; identities are provisioned by claim once and kept between sizes)
# against a local `trellis serve`, SIM_SECONDS each (default 60). Reports what the simulator
# achieved (peak connected, messages/s, errors) and what the server spent (CPU % of 200 and RSS at
# the end); the simulator and the server share the two cores.
simulate_bench() {
  local up_mqtts=23884 http sim="$work/sim" dll="$trellis_dll" up_pid summary
  rm -rf "$work/up" "$sim"
  env ${TRELLIS_BENCH_ENV:-} dotnet "$dll" serve --data "$work/up" --mqtt off --mqtts 127.0.0.1:$up_mqtts --ws off \
    --http 127.0.0.1:0 --coap off --coaps off --log-level Warning > "$work/trellis.log" 2>&1 & up_pid=$!
  pids+=("$up_pid"); http=$(trellis_http_port)
  for n in ${SIM_DEVICES:-1000 5000 10000}; do
    # Provision (and connect once) outside the measured run.
    dotnet "$dll" simulate --profile industrial --devices "$n" --seconds 5 --state "$sim" --endpoint "http://127.0.0.1:$http" --data "$work/up" --output json > /dev/null 2> "$work/sim-provision.log"
    local cpu0 cpu1 t0 t1
    cpu0=$(awk '{print $14 + $15}' "/proc/$up_pid/stat"); t0=$(date +%s.%N)
    summary=$(dotnet "$dll" simulate --profile industrial --devices "$n" --seconds "${SIM_SECONDS:-60}" --state "$sim" --endpoint "http://127.0.0.1:$http" --data "$work/up" --output json 2> "$work/sim.log")
    cpu1=$(awk '{print $14 + $15}' "/proc/$up_pid/stat"); t1=$(date +%s.%N)
    python3 - "$n" "$cpu0" "$cpu1" "$t0" "$t1" "$(grep VmRSS "/proc/$up_pid/status" | awk '{print $2}')" "$summary" <<'PY' | tee -a "$out"
import json, os, sys
n, cpu0, cpu1, t0, t1, rss, summary = sys.argv[1:]
s = json.loads(summary)
hz = os.sysconf("SC_CLK_TCK")
print(json.dumps({"scenario": "simulate", "profile": s["profile"], "devices": int(n), "seconds": s["seconds"], "peakConnected": s["peakConnected"],
                  "messagesPerSecond": s["messagesPerSecond"], "errors": s["errors"], "reconnects": s["reconnects"],
                  "serverCpuPercent": round(100 * (int(cpu1) - int(cpu0)) / hz / (float(t1) - float(t0)), 1), "serverRssMiB": round(int(rss) / 1024)}))
PY
  done
  kill "$up_pid"; wait "$up_pid" 2>/dev/null || true
}

for scenario in "${scenarios[@]}"; do
  if [[ $scenario == shadow ]]; then shadow_bench; continue; fi
  if [[ $scenario == defender ]]; then defender_bench; continue; fi
  if [[ $scenario == jobs ]]; then jobs_bench; continue; fi
  if [[ $scenario == ota ]]; then ota_bench; continue; fi
  if [[ $scenario == coap ]]; then coap_bench; continue; fi
  if [[ $scenario == coaps ]]; then coaps_bench; continue; fi
  if [[ $scenario == gateway ]]; then gateway_bench; continue; fi
  if [[ $scenario == simulate ]]; then simulate_bench; continue; fi
  if [[ $scenario == delta ]]; then delta_bench; continue; fi
  if [[ $scenario == presence ]]; then
    # 10 000 clients (PRESENCE_CONNECTIONS) with a 10 s keep-alive that go silent at once: each must be offline within 1.5 × 10 s + 1 s.
    for round in $(seq 1 "$rounds"); do
      start_brokers
      run "$round" trellis $trellis_port "$trellis_pid" --scenario presence --connections "${PRESENCE_CONNECTIONS:-10000}" --keepalive 10
      stop_brokers
    done
    continue
  fi
  if [[ $scenario == index ]]; then
    # The fleet index has no counterpart in Mosquitto: the baseline is the registry's own attribute filter (SQLite).
    start_brokers
    http=$(trellis_http_port)
    key=$(grep aws_access_key_id "$work/data/credentials" | cut -d= -f2 | tr -d ' ')
    secret=$(grep aws_secret_access_key "$work/data/credentials" | cut -d= -f2 | tr -d ' ')
    run 1 trellis $trellis_port "$trellis_pid" --scenario index --things "${INDEX_THINGS:-100000}" --rate "${INDEX_RATE:-5000}" \
      --api "http://127.0.0.1:$http" --key-id "$key" --secret "$secret"
    du -sh "$work/data/index" "$work/data/trellis.db" "$work/data/shadows.db" | sed 's/^/# /'
    stop_brokers
    continue
  fi
  if [[ $scenario == provision ]]; then provision_bench; continue; fi
  if [[ $scenario == ingest ]]; then
    # MQTT publish -> store rule -> queryable points; Mosquitto gets the same publishers and stores nothing.
    ingest=(--scenario ingest --publishers 100 --seconds 3 --rates 10000,50000,100000,150000,200000,250000,300000,350000,400000)
    for round in $(seq 1 "${INGEST_ROUNDS:-$rounds}"); do
      start_brokers
      http=$(trellis_http_port)
      python3 "$root/bench/create_ingest_rule.py" "http://127.0.0.1:$http" "$work/data/credentials"
      key=$(grep aws_access_key_id "$work/data/credentials" | cut -d= -f2 | tr -d ' ')
      secret=$(grep aws_secret_access_key "$work/data/credentials" | cut -d= -f2 | tr -d ' ')
      run "$round" mosquitto $mosq_port "$mosq_pid" "${ingest[@]}"
      run "$round" trellis $trellis_port "$trellis_pid" "${ingest[@]}" --api "http://127.0.0.1:$http" --key-id "$key" --secret "$secret"
      stop_brokers
    done
    [[ ${INGEST_SUSTAIN:-600} -gt 0 ]] || continue
    # Memory under sustained ingest: 100k messages/s (200k points/s) for ten minutes (long enough for the store's cache to reach its cap), RSS every 5 s.
    start_brokers
    http=$(trellis_http_port)
    python3 "$root/bench/create_ingest_rule.py" "http://127.0.0.1:$http" "$work/data/credentials"
    key=$(grep aws_access_key_id "$work/data/credentials" | cut -d= -f2 | tr -d ' ')
    secret=$(grep aws_secret_access_key "$work/data/credentials" | cut -d= -f2 | tr -d ' ')
    run 1 trellis $trellis_port "$trellis_pid" --scenario ingest --publishers 100 --rates 100000 --sustain "${INGEST_SUSTAIN:-600}" --api "http://127.0.0.1:$http" --key-id "$key" --secret "$secret"
    stop_brokers
    continue
  fi
  if [[ $scenario == p2p-hops ]]; then
    # Point-to-point with the loopback interface captured: bench/hops.py splits each message's latency
    # into the generator's send path, the broker (packet in -> packet out) and the subscriber side.
    # A diagnostic: the capture costs both brokers some CPU, so its end-to-end figures are not the p2p ones.
    for round in $(seq 1 "$rounds"); do
      start_brokers
      for b in mosquitto trellis; do
        if [[ $b == mosquitto ]]; then port=$mosq_port pid=$mosq_pid; else port=$trellis_port pid=$trellis_pid; fi
        offset=$(python3 -c 'import time; print(time.clock_gettime_ns(time.CLOCK_REALTIME) - time.clock_gettime_ns(time.CLOCK_MONOTONIC))')
        tcpdump -i lo -s 256 -B 131072 --time-stamp-precision=nano -w "$work/hops.pcap" \
          "tcp port $port and tcp[tcpflags] & tcp-push != 0" 2> "$work/tcpdump.log" & dump=$!
        sleep 1
        $loadgen --name $b --port $port --pid "$pid" --scenario p2p --qos 0 --rates 10000,20000,40000 --trace "$work/trace.txt" \
          | sed -u "s/^{/{\"round\":$round,/; s/\"scenario\":\"p2p\"/\"scenario\":\"p2p-hops\"/" | tee -a "$out"
        kill -INT $dump; wait $dump || true
        grep -h "dropped by kernel" "$work/tcpdump.log" || true
        if [[ ! -s "$work/hops.pcap" ]]; then
          echo "p2p-hops: tcpdump captured nothing (it needs root or CAP_NET_RAW to capture the loopback interface):"; cat "$work/tcpdump.log"; exit 1
        fi
        python3 "$root/bench/hops.py" "$work/hops.pcap" $port "$offset" $b "$round" "$work/trace.txt" | tee -a "$out"
        rm -f "$work/hops.pcap" "$work/trace.txt"
      done
      stop_brokers
    done
    continue
  fi
  if [[ $scenario == session-journal ]]; then
    # The journal alone, every message written (no subscriber acknowledges in time): its worst case.
    for f in 100 1000; do $loadgen --scenario session-journal --in-flight $f --seconds 5 | tee -a "$out"; done
    continue
  fi
  if [[ $scenario == telemetry ]]; then
    $loadgen --scenario telemetry-store --things 10000 --points 10000000 | tee -a "$out"
    $loadgen --scenario rules --messages 1000000 | tee -a "$out"
    continue
  fi
  case $scenario in
    fanin-q0) a=(--scenario fanin --qos 0 --rates 20000,40000,60000,80000,100000,120000,140000,160000,200000,250000,300000,350000,400000,500000) ;;
    fanin-q1) a=(--scenario fanin --qos 1 --rates 10000,20000,40000,60000,80000,100000,120000,140000,160000,200000,250000,300000) ;;
    fanin-q1-persistent) a=(--scenario fanin --qos 1 --persistent --rates 10000,20000,40000,60000,80000,100000,120000,140000,160000,200000,250000,300000) ;;  # the subscriber's session is persistent: Trellis journals every message before its PUBACK
    fanout)   a=(--scenario fanout --qos 0 --rates 20,50,100,150,200,300,400,500,600,800,1000,1200,1500,2000) ;;
    p2p)      a=(--scenario p2p --qos 0 --rates 10000,20000,40000,60000,80000,100000,120000,150000,200000,250000,300000) ;;
    p2p-1)    a=(--scenario p2p --pairs 1 --qos 0 --rates 1000,5000,10000,20000) ;;  # latency without contention: one publisher, one subscriber
    p2p-lockstep) a=(--scenario p2p --lockstep --qos 0 --rates 10000,20000,40000,60000,80000,100000,120000,150000,200000,250000,300000) ;;  # all 500 publishers due at once: bursts
    idle)     idle_bench; continue ;;
    overload) a=(--scenario overload --qos 0 --seconds 5) ;;
    *) echo "unknown scenario $scenario"; exit 2 ;;
  esac
  # A fresh pair of brokers per round; Mosquitto and Trellis take turns on the same workload.
  mosq_conf="$work/mosquitto.conf"
  [[ $scenario == *-persistent ]] && mosq_conf="$work/mosquitto-persist.conf"
  n=$rounds
  [[ $scenario == idle || $scenario == overload ]] && n=1
  for round in $(seq 1 "$n"); do
    start_brokers
    if [[ $scenario == idle || $scenario == overload ]]; then
      run "$round" mosquitto $mosq_port "$mosq_pid" "${a[@]}"
      run "$round" trellis $trellis_port "$trellis_pid" "${a[@]}"
    elif (( round % 2 )); then
      # Ladders: one generator connects to both brokers and runs their steps in turns at each rate,
      # seconds apart, so both see the same host; who goes first alternates by rate and by round.
      run "$round" mosquitto,trellis $mosq_port,$trellis_port "$mosq_pid,$trellis_pid" "${a[@]}"
    else
      run "$round" trellis,mosquitto $trellis_port,$mosq_port "$trellis_pid,$mosq_pid" "${a[@]}"
    fi
    if [[ $scenario == *-persistent ]]; then
      # What the journal really wrote: a message the subscriber acknowledged before its commit costs no row.
      curl -s "http://127.0.0.1:$(trellis_http_port)/metrics" | awk -v r="$round" -v s="$scenario" '
        /^trellis_broker_messages_received_total/ {m=$2} /^trellis_broker_journal_commits_total/ {c=$2} /^trellis_broker_journal_rows_total/ {w=$2}
        END {printf "{\"round\":%s,\"broker\":\"trellis\",\"scenario\":\"journal-metrics\",\"of\":\"%s\",\"messages\":%s,\"commits\":%s,\"rows\":%s}\n", r, s, m, c, w}' | tee -a "$out"
    fi
    stop_brokers
  done
done

echo
echo "results: $out"
python3 "$root/bench/report.py" "$out"
