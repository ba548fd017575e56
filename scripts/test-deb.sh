#!/usr/bin/env bash
# Package checks, run by ./scripts/test.sh (no `cmd | grep -q` here: grep closing the pipe
# early made the writer fail under pipefail) (and so by CI). Needs root (chroot, mount).
#   1. build the .deb (scripts/build-deb.sh) and a second one with a higher version and
#      one more migration, from a copy of this tree;
#   2. lintian: no errors, no warnings (overrides are in packaging/debian/lintian-overrides);
#   3. systemd-analyze verify (clean) and security --offline (exposure <= 2.0);
#   4. in a debootstrap --variant=minbase chroot (the host stays untouched): install, run
#      the unit's ExecStart as the service user until /readyz = 200, root-run CLI commands
#      leave appliance-owned files, upgrade (backup first, data kept, migration applied,
#      pre-migration copy), restore as root, remove (data and config kept), purge
#      (config gone, data kept).
# Installs lintian, debootstrap, systemd and man-db with apt-get when missing; fails
# loudly when it cannot.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
step() { echo "==> deb: $*"; }
fail() { echo "FAILED (deb): $*" >&2; exit 1; }

missing=()
command -v lintian >/dev/null || missing+=(lintian)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v man >/dev/null || missing+=(man-db)
if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null \
        || fail "cannot install ${missing[*]} with apt-get"
fi
[ "$(id -u)" = 0 ] || fail "the package checks need root (chroot, mount)"

# 1. Build both packages.
step "building the package"
deb1=$(scripts/build-deb.sh | tail -n 1)
[ -f "$deb1" ] || fail "no package built"
work="$repo/target/deb-test"
rm -rf "$work"
mkdir -p "$work"
cp "$deb1" "$work/"
deb1="$work/$(basename "$deb1")"
step "building an upgrade (0.1.1-1) with one more migration"
src="$work/src-upgrade"
mkdir -p "$src"
tar -C "$repo" --exclude=./target --exclude=./.git -cf - . | tar -C "$src" -xf -
next=$(ls "$src/migrations" | sed -n 's/^V\([0-9]*\)__.*/\1/p' | sort -n | tail -n 1)
next=$((next + 1))
cat > "$src/migrations/V${next}__package_upgrade_test.sql" <<SQL
-- Added only by scripts/test-deb.sh to prove that an upgrade applies a migration.
CREATE TABLE package_upgrade_marker (id INTEGER PRIMARY KEY);
SQL
cp target/release/appliance "$work/appliance.first"
# Share the target directory: only this crate is compiled again.
shared="${CARGO_TARGET_DIR:-$repo/target}"
case "$shared" in /*) ;; *) shared="$repo/$shared" ;; esac
deb2=$(cd "$src" && CARGO_TARGET_DIR="$shared" scripts/build-deb.sh --deb-version 0.1.1-1 | tail -n 1)
cp "$deb2" "$work/"
deb2="$work/$(basename "$deb2")"
# Put the first build's binary back (the upgrade build shares the target directory).
cp "$work/appliance.first" target/release/appliance
cp "$work/appliance.first" "$shared/release/appliance"
dpkg-deb --fsys-tarfile "$deb2" | tar -xO ./usr/bin/appliance > "$work/appliance.upgrade"
grep -q "package_upgrade_test" "$work/appliance.upgrade" \
    || fail "the upgrade package does not carry the new migration"

# 2. lintian.
step "lintian $(basename "$deb1")"
lintian --fail-on error,warning "$deb1" 2>&1 | grep -v '^running with root' || true
lintian --fail-on error,warning "$deb1" >/dev/null 2>&1 || fail "lintian reports errors or warnings (above)"

# 3. systemd-analyze on the packaged unit, binary and man page from the package.
step "systemd-analyze verify / security"
ext="$work/extracted"
dpkg-deb -x "$deb1" "$ext"
unit="$ext/usr/lib/systemd/system/appliance.service"
mkdir -p "$work/unit"
sed "s#^ExecStart=/usr/bin/appliance#ExecStart=$ext/usr/bin/appliance#" "$unit" > "$work/unit/appliance.service"
out=$(MANPATH="$ext/usr/share/man" systemd-analyze verify "$work/unit/appliance.service" 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify is not clean: $out"
score=$(systemd-analyze security --offline=yes "$unit" 2>&1 | sed -n 's/.*Overall exposure level for appliance.service: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || fail "no exposure score from systemd-analyze security"
echo "    exposure level: $score (limit 2.0)"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "exposure $score > 2.0"

# 4. The isolated root.
base="$repo/target/test-tools/bookworm-minbase"
if [ ! -f "$base/.complete" ]; then
    step "debootstrap --variant=minbase bookworm (cached in target/test-tools)"
    rm -rf "$base.tmp"
    mirror=$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
    debootstrap --variant=minbase bookworm "$base.tmp" "${mirror:-http://deb.debian.org/debian}" >/dev/null \
        || fail "debootstrap failed"
    touch "$base.tmp/.complete"
    mv "$base.tmp" "$base"
fi
root="$work/root"
cp -a "$base" "$root"
mount -t proc proc "$root/proc"
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    umount "$root/proc" 2>/dev/null || true
}
trap cleanup EXIT
cp "$deb1" "$deb2" "$root/tmp/"
in_root() { chroot "$root" "$@"; }
owner() { chroot "$root" stat -c '%U:%G %a' "$1"; }

step "install"
in_root dpkg -i "/tmp/$(basename "$deb1")" > "$work/install.log" 2>&1 || { cat "$work/install.log"; fail "dpkg -i"; }
grep -q "setup_token" "$work/install.log" || fail "postinst did not say how to get the setup token"
passwd_line=$(in_root getent passwd appliance || true)
[[ "$passwd_line" == *:/var/lib/appliance:/usr/sbin/nologin ]] || fail "no appliance system user ($passwd_line)"
[ "$(owner /var/lib/appliance)" = "appliance:appliance 750" ] || fail "/var/lib/appliance is $(owner /var/lib/appliance)"
[ "$(owner /etc/appliance/appliance.toml)" = "root:root 644" ] || fail "config is $(owner /etc/appliance/appliance.toml)"
grep -qx /etc/appliance/appliance.toml "$root/var/lib/dpkg/info/appliance.conffiles" || fail "config is not a conffile"
[ -f "$root/usr/share/man/man1/appliance.1.gz" ] || fail "no man page"
[ -f "$root/usr/lib/systemd/system/appliance.service" ] || fail "no unit"
# Maintainer scripts are safe to run again.
in_root /var/lib/dpkg/info/appliance.postinst configure 0.1.0-1 >/dev/null 2>&1 || fail "postinst is not idempotent"

exec_start=$(sed -n 's/^ExecStart=//p' "$root/usr/lib/systemd/system/appliance.service")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_service() {
    # The unit's ExecStart, as its User=, on a free port (the chroot shares the network).
    chroot --userspec=appliance:appliance "$root" env -i PATH=/usr/bin:/bin \
        APPLIANCE__SERVER__LISTEN="127.0.0.1:$port" APPLIANCE__METRICS__LISTEN=127.0.0.1:0 \
        $exec_start >> "$work/service.log" 2>&1 &
    server=$!
    for _ in $(seq 1 300); do
        code=$(python3 - "$port" <<'PY' 2>/dev/null || true
import sys, urllib.request
try:
    print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=2).status)
except Exception as e:
    print(getattr(e, "code", 0))
PY
)
        [ "$code" = 200 ] && return 0
        kill -0 "$server" 2>/dev/null || { cat "$work/service.log"; fail "the service exited"; }
        sleep 0.1
    done
    cat "$work/service.log"
    fail "/readyz never answered 200"
}
stop_service() {
    kill -TERM "$server"
    wait "$server" || fail "the service did not stop cleanly"
    server=""
}
api() { # METHOD PATH TOKEN [JSON]
    python3 - "$port" "$@" <<'PY'
import json, sys, urllib.request
port, method, path, token = sys.argv[1:5]
body = sys.argv[5].encode() if len(sys.argv) > 5 else None
req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method,
    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
print(urllib.request.urlopen(req, timeout=10).read().decode())
PY
}

step "the unit's ExecStart as appliance: /readyz = 200"
start_service
step "root-run CLI commands beside the service"
in_root appliance user create --email admin@example.org --role admin > /dev/null || fail "user create as root"
token=$(in_root appliance token create --email admin@example.org --name test 2>/dev/null) || fail "token create"
api POST /api/articles "$token" '{"title": "Kept across upgrades", "body": "b", "status": "published"}' > /dev/null
in_root appliance backup > /dev/null || fail "backup as root"
in_root appliance doctor > "$work/doctor.log" || [ $? = 1 ] || { cat "$work/doctor.log"; fail "doctor reports failures"; }
stray=$(chroot "$root" find /var/lib/appliance ! -user appliance)
[ -z "$stray" ] || fail "files not owned by appliance after root-run commands: $stray"
stop_service

step "upgrade to $(basename "$deb2")"
in_root dpkg -i "/tmp/$(basename "$deb2")" > "$work/upgrade.log" 2>&1 || { cat "$work/upgrade.log"; fail "dpkg -i (upgrade)"; }
grep -q "taking a backup before upgrading" "$work/upgrade.log" || fail "no pre-upgrade backup"
[ "$(ls "$root/var/lib/appliance/backups" | grep -c -- '-manual.tar.zst$')" = 2 ] || fail "expected 2 archives (ours + pre-upgrade)"
start_service
status=$(in_root appliance migrate status --json) || fail "migrate status"
[[ "$status" == *package_upgrade_test* ]] || fail "the new migration is not applied"
compgen -G "$root/var/lib/appliance/backups/pre-migrate-*" >/dev/null || fail "no pre-migration copy"
listing=$(api GET /api/articles "$token") || fail "GET /api/articles"
[[ "$listing" == *"Kept across upgrades"* ]] || fail "data lost in the upgrade"
stray=$(chroot "$root" find /var/lib/appliance ! -user appliance)
[ -z "$stray" ] || fail "files not owned by appliance after the upgrade: $stray"
stop_service

step "restore as root"
archives=("$root"/var/lib/appliance/backups/*-manual.tar.zst)
archive=$(basename "${archives[0]}")
in_root appliance restore "$archive" > "$work/restore.log" 2>&1 || { cat "$work/restore.log"; fail "restore as root"; }
stray=$(chroot "$root" find /var/lib/appliance ! -user appliance)
[ -z "$stray" ] || fail "files not owned by appliance after a root restore: $stray"
start_service
listing=$(api GET /api/articles "$token") || fail "GET /api/articles"
[[ "$listing" == *"Kept across upgrades"* ]] || fail "restored data missing"
stop_service

step "remove: data and config kept"
in_root dpkg -r appliance > /dev/null 2>&1 || fail "dpkg -r"
[ ! -e "$root/usr/bin/appliance" ] || fail "binary left after remove"
[ -f "$root/etc/appliance/appliance.toml" ] || fail "config removed by dpkg -r"
[ -f "$root/var/lib/appliance/appliance.db" ] || fail "data removed by dpkg -r"
step "purge: config gone, data kept"
in_root dpkg -P appliance > "$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "dpkg -P"; }
[ ! -e "$root/etc/appliance/appliance.toml" ] || fail "config left after purge"
[ -f "$root/var/lib/appliance/appliance.db" ] || fail "data removed by purge"
grep -q "is kept" "$work/purge.log" || fail "purge did not say where the data is"

size=$(stat -c %s "$deb1")
echo "==> deb: all package checks passed ($(basename "$deb1"), $((size / 1024)) KiB, exposure $score)"
