#!/usr/bin/env bash
# Start-up time and resident memory of `trellis serve` in its build forms, on this machine:
#   jit  the framework-dependent build `./trellis` runs from a clone (dotnet artifacts/bin/…/trellis.dll)
#   r2r  the self-contained ReadyToRun publish that PACKAGE_FORM=r2r scripts/package.sh makes (artifacts/publish/linux-x64/trellis)
#   aot  Native AOT, the package's default form, only with STARTUP_AOT=1 (built into artifacts/publish/aot: minutes)
# For each form, STARTUP_ROUNDS times (default 3): a first start on an empty data folder (CA, keys,
# databases made) and a restart on that folder. Start-up is the time from exec to the banner's
# "Trellis is running." (every listener bound, every store open); RSS is VmRSS 8 s later.
# usage: bench/startup.sh            results: a markdown table on stdout
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rounds="${STARTUP_ROUNDS:-3}"
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1

dotnet build src/Trellis.Cli/Trellis.Cli.csproj -c Release --nologo -v quiet -clp:ErrorsOnly >&2
# (a Native AOT publish there, scripts/package.sh's default, has no System.Private.CoreLib.dll: made again as ReadyToRun)
[[ -x artifacts/publish/linux-x64/trellis && -f artifacts/publish/linux-x64/System.Private.CoreLib.dll
  && -z "$(find src -newer artifacts/publish/linux-x64/trellis -name '*.cs' -print -quit)" ]] || PACKAGE_FORM=r2r scripts/package.sh --publish-only >&2
declare -A command=(
  [jit]="dotnet $root/artifacts/bin/Trellis.Cli/release/trellis.dll"
  [r2r]="$root/artifacts/publish/linux-x64/trellis"
)
forms=(jit r2r)
if [[ "${STARTUP_AOT:-0}" == 1 ]]; then
  dotnet publish src/Trellis.Cli/Trellis.Cli.csproj -c Release -r linux-x64 --self-contained -p:PublishAot=true \
    -o artifacts/publish/aot --nologo -v quiet -clp:ErrorsOnly >&2
  command[aot]="$root/artifacts/publish/aot/trellis"
  forms+=(aot)
fi

# One start: prints "milliseconds-to-banner rss-MiB" (or "failed …").
measure() {
  local form="$1" data="$2" log
  log="$(mktemp)"
  local t0 t1
  t0=$(date +%s%N)
  # shellcheck disable=SC2086
  ${command[$form]} serve --data "$data" --mqtt 127.0.0.1:0 --mqtts 127.0.0.1:0 --ws 127.0.0.1:0 --coap 127.0.0.1:0 \
    --coaps 127.0.0.1:0 --http 127.0.0.1:0 >"$log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 600); do
    grep -q "Trellis is running." "$log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  t1=$(date +%s%N)
  if ! grep -q "Trellis is running." "$log"; then
    echo "failed: $(tail -3 "$log" | tr '\n' ' ')"
    kill -9 "$pid" 2>/dev/null || true
    return
  fi
  sleep 8
  local rss
  rss=$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status")
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  rm -f "$log"
  echo "$(( (t1 - t0) / 1000000 )) $rss"
}

echo "| form | start | start-up ms, each round | median | RSS MiB 8 s later, each round | size on disk |"
echo "|---|---|---|---|---|---|"
for form in "${forms[@]}"; do
  declare -a first_ms=() first_rss=() again_ms=() again_rss=()
  for _ in $(seq 1 "$rounds"); do
    data="$(mktemp -d)"
    read -r ms rss <<<"$(measure "$form" "$data")"
    first_ms+=("$ms"); first_rss+=("$rss")
    read -r ms rss <<<"$(measure "$form" "$data")"
    again_ms+=("$ms"); again_rss+=("$rss")
    rm -rf "$data"
  done
  size=$(case "$form" in jit) du -sh artifacts/bin/Trellis.Cli/release | cut -f1 ;; r2r) du -sh artifacts/publish/linux-x64 | cut -f1 ;; aot) du -sh artifacts/publish/aot | cut -f1 ;; esac)
  median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  echo "| $form | first (empty data folder) | ${first_ms[*]} | $(median "${first_ms[@]}") | ${first_rss[*]} | $size |"
  echo "| $form | restart | ${again_ms[*]} | $(median "${again_ms[@]}") | ${again_rss[*]} | |"
done
