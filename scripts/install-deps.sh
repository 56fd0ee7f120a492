#!/usr/bin/env bash
# Installs the Debian packages the test suite and benchmarks need. Idempotent: a package that is
# already there is not asked for again, so a warm machine spends no time here.
set -euo pipefail

packages=(mosquitto mosquitto-clients openssl python3-boto3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts a system-wide mosquitto on 1883 after install; the tests and benchmarks start
  # their own on free ports, and the system one would take Trellis's default port.
  if [[ " ${missing[*]} " == *" mosquitto "* ]] && command -v systemctl >/dev/null; then
    $SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || true
  fi
fi

# boto3 and the AWS CLI: the machine's python3 usually has them; install them for it if not.
if ! python3 -c 'import boto3' 2>/dev/null || ! command -v aws >/dev/null; then
  echo "install-deps: installing boto3 and awscli for $(command -v python3)"
  python3 -m pip install --quiet boto3 awscli
fi
echo "install-deps: ok"
