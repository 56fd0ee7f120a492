#!/usr/bin/env bash
# Runs every test: installs what the tests need, checks formatting, builds once, runs the suites
# in order (unit, integration) and ends with one line "N passed, N failed, N skipped" (a skipped
# test says why in the log above it).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

"$root/scripts/install-deps.sh" || { echo "install-deps failed"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }

echo "== format check"
if ! dotnet format whitespace . --folder --exclude artifacts --verify-no-changes; then
  echo "Formatting differs: run 'dotnet format whitespace . --folder --exclude artifacts'."
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi

echo "== build"
if ! dotnet build Trellis.slnx -c Release --nologo -clp:ErrorsOnly; then
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi

# The Debian package's Native AOT build takes minutes of CPU and the integration tests leave most of
# the machine idle: it is built in the background at the lowest CPU priority while the tests run,
# and PackageTests installs what it made (its exit code, stdout and stderr land in the folder that
# TRELLIS_TEST_PACKAGE_BUILD names). Run alone, PackageTests builds the package itself.
package_build="$root/artifacts/test-package-build"
rm -rf "$package_build" && mkdir -p "$package_build"
setsid nice -n 19 bash -c '"$1/scripts/package.sh" >"$2/stdout" 2>"$2/stderr"; echo $? >"$2/exit-code.new"; mv "$2/exit-code.new" "$2/exit-code"' \
  package-build "$root" "$package_build" &
package_pid=$!
trap 'kill -- -"$package_pid" 2>/dev/null' EXIT
export TRELLIS_TEST_PACKAGE_BUILD="$package_build"

passed=0
failed=0
skipped=0
status=0
for project in tests/Trellis.UnitTests tests/Trellis.IntegrationTests; do
  echo "== $project"
  log="$(mktemp)"
  dotnet test --project "$project" -c Release --no-build 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  p=$(grep -E '^\s+succeeded: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
  f=$(grep -E '^\s+failed: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
  s=$(grep -E '^\s+skipped: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
  if [[ -z "$p" ]]; then
    echo "$project: no test summary (the test host did not run)"
    p=0
    f=$(( ${f:-0} + 1 ))
  fi
  passed=$((passed + p))
  failed=$((failed + ${f:-0}))
  skipped=$((skipped + ${s:-0}))
  [[ $rc -ne 0 ]] && status=1
  rm -f "$log"
done

echo "${passed} passed, ${failed} failed, ${skipped} skipped"
if [[ $failed -gt 0 || $status -ne 0 ]]; then
  exit 1
fi
