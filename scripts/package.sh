#!/usr/bin/env bash
# Builds Trellis's release: a self-contained Native AOT publish for linux-x64 (the whole program
# compiled to native code ahead of time: no .NET needed where it runs, no JIT at run time; `./trellis`
# uses it once it is newer than the sources), or with PACKAGE_FORM=r2r a ReadyToRun one, then a
# Debian package around it:
#   /usr/lib/trellis/          the program            /usr/bin/trellis      the command
#   /lib/systemd/system/trellis.service               /etc/default/trellis  its settings
#   /var/lib/trellis           the data folder, 0700, owned by the system user trellis made on install
# usage: [PACKAGE_FORM=aot|r2r] scripts/package.sh [--publish-only]
# output: artifacts/publish/linux-x64/ and artifacts/package/trellis_VERSION_amd64.deb
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1
publish="$root/artifacts/publish/linux-x64"

# Native AOT starts in a third of the time of ReadyToRun in about 37 MiB less memory
# (docs/benchmarks.md) and takes a few minutes to build; it needs gcc or clang (scripts/install-deps.sh
# installs gcc). PACKAGE_FORM=r2r builds the ReadyToRun form instead (the JIT recompiles hot methods).
form="${PACKAGE_FORM:-aot}"
case "$form" in
  r2r) compile=(-p:PublishReadyToRun=true) ; what="ReadyToRun" ;;
  aot) compile=(-p:PublishAot=true) ; what="Native AOT" ;;
  *) echo "package: PACKAGE_FORM is aot (the default) or r2r, not '$form'" >&2; exit 2 ;;
esac
echo "package: publishing a self-contained $what build to $publish" >&2
# Built beside the folder and moved into place whole: `./trellis` (which runs this build when it is
# newest) never starts a half-written program while a build is under way, as in scripts/test.sh.
rm -rf "$publish.new"
dotnet publish src/Trellis.Cli/Trellis.Cli.csproj -c Release -r linux-x64 --self-contained \
  "${compile[@]}" -p:DebugType=none -p:PublishDocumentationFiles=false \
  -o "$publish.new" --nologo -v quiet -clp:ErrorsOnly
# Native libraries built for other systems (Alpine, CentOS, macOS, Windows) are not loaded here.
find "$publish.new" -maxdepth 1 \( -name 'alpine-*.so' -o -name 'centos*-*.so' -o -name '*.dylib' -o -name '*.dll.so' \) -delete
touch "$publish.new/trellis" # ./trellis uses this build while no source is newer
rm -rf "$publish"
mv "$publish.new" "$publish"
[[ "${1:-}" == "--publish-only" ]] && exit 0

version="0.1.$(git rev-list --count HEAD 2>/dev/null || echo 0)"
stage="$root/artifacts/package/stage"
rm -rf "$stage"
mkdir -p "$stage/DEBIAN" "$stage/usr/lib/trellis" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/default" "$stage/usr/share/doc/trellis"
cp -a "$publish/." "$stage/usr/lib/trellis/"
ln -s ../lib/trellis/trellis "$stage/usr/bin/trellis"
install -m 0644 packaging/trellis.service "$stage/lib/systemd/system/trellis.service"
install -m 0644 packaging/default "$stage/etc/default/trellis"
cp -a README.md docs "$stage/usr/share/doc/trellis/"
installed_kb=$(du -sk "$stage" | cut -f1)

cat >"$stage/DEBIAN/control" <<CONTROL
Package: trellis
Version: $version
Architecture: amd64
Maintainer: Trellis developers <trellis@localhost>
Depends: adduser, libc6 (>= 2.31), libgcc-s1, libstdc++6, libssl3, zlib1g
Installed-Size: $installed_kb
Section: net
Priority: optional
Description: self-hosted IoT platform: MQTT broker, device registry, AWS IoT-compatible API
 One program with an MQTT 3.1.1/5.0 broker (TCP, TLS with per-device certificates, WebSockets),
 CoAP, device shadows, jobs and firmware updates, topic rules and an embedded time-series store,
 managed through AWS IoT's API (boto3 and the AWS CLI work with an endpoint override).
CONTROL
echo /etc/default/trellis >"$stage/DEBIAN/conffiles"

cat >"$stage/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  if ! getent passwd trellis >/dev/null; then
    adduser --system --group --home /var/lib/trellis --no-create-home --quiet trellis
  fi
  install -d -m 0700 -o trellis -g trellis /var/lib/trellis
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable trellis.service >/dev/null 2>&1 || true
    systemctl restart trellis.service || echo "trellis: the service did not start: journalctl -u trellis says why" >&2
  fi
fi
exit 0
POSTINST
cat >"$stage/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
  systemctl disable --now trellis.service >/dev/null 2>&1 || true
fi
exit 0
PRERM
cat >"$stage/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
if [ "$1" = purge ]; then
  echo "trellis: /var/lib/trellis (the registry, keys and CA) is kept; delete it yourself if you no longer need it" >&2
fi
exit 0
POSTRM
# Whatever the umask or the clone's modes were, the package installs files everyone may read and
# run (the service user must load the program) and only root may change; dpkg-deb checks DEBIAN too.
chmod -R u=rwX,go=rX "$stage"
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm" "$stage/usr/lib/trellis/trellis"

deb="$root/artifacts/package/trellis_${version}_amd64.deb"
rm -f "$root"/artifacts/package/trellis_*_amd64.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
rm -rf "$stage"
echo "$deb"
