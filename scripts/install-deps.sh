#!/usr/bin/env bash
# Installs the Debian packages the test suite and benchmarks need. Idempotent: a package that is
# already there is not asked for again, so a warm machine spends no time here.
# usage: install-deps.sh [extra Debian package ...]   (the benchmarks add tcpdump)
set -euo pipefail

packages=(mosquitto mosquitto-clients openssl python3-boto3 nats-server curl zstd python3-aiosmtpd prometheus libcoap3-bin python3-pymodbus python3-serial python3-serial-asyncio mbpoll python3-paho-mqtt libmosquitto-dev gcc make chromium "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts a system-wide mosquitto on 1883 after install; the tests and benchmarks start
  # their own on free ports, and the system one would take Trellis's default port.
  if [[ " ${missing[*]} " == *" mosquitto "* ]] && command -v systemctl >/dev/null; then
    $SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || true
  fi
  # And for prometheus: only its promtool is used (checking /metrics); its server would take 9090.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null; then
    $SUDO systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
  fi
  # The same for nats-server: the tests start their own on a free port.
  if [[ " ${missing[*]} " == *" nats-server "* ]] && command -v systemctl >/dev/null; then
    $SUDO systemctl disable --now nats-server >/dev/null 2>&1 || true
  fi
fi

# boto3 and the AWS CLI: the machine's python3 usually has them. If not, Debian's packages.
if ! command -v aws >/dev/null; then
  echo "install-deps: installing the AWS CLI (Debian package awscli)"
  $SUDO apt-get install -y -qq --no-install-recommends awscli >/dev/null
fi
if ! python3 -c 'import boto3' 2>/dev/null; then
  echo "install-deps: boto3 is missing for $(command -v python3); trying pip, else use Debian's python3-boto3 via /usr/bin/python3 first on PATH"
  python3 -m pip install --quiet boto3 || { echo "install-deps: cannot install boto3 for $(command -v python3)"; exit 1; }
fi
# AWS's own device SDKs for Node.js (tests/device-sdks), run unmodified by the integration tests.
if ! command -v npm >/dev/null; then
  echo "install-deps: installing Node.js and npm (Debian packages nodejs, npm)"
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
sdks="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/device-sdks"
if [[ ! -d "$sdks/node_modules" || "$sdks/package-lock.json" -nt "$sdks/node_modules" ]]; then
  echo "install-deps: installing the device SDKs in tests/device-sdks (npm ci)"
  (cd "$sdks" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || { echo "install-deps: npm ci failed in $sdks"; exit 1; }
  touch "$sdks/node_modules"
fi
echo "install-deps: ok"
