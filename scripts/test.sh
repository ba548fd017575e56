#!/usr/bin/env bash
# The one test command (README): formatting, lints, and every test.
# Later capabilities that need system packages (a browser, lintian, promtool, PostgreSQL,
# Litestream) install them here and fail loudly if they cannot.
set -euo pipefail
cd "$(dirname "$0")/.."

# promtool (tests/metrics.rs checks the scrape with it): from PATH, else extracted from
# Debian's prometheus package into target/test-tools (nothing installed, no service
# started). No promtool means a loud failure here, never a skipped check.
if [ -z "${PROMTOOL:-}" ]; then
  if command -v promtool >/dev/null 2>&1; then
    PROMTOOL=$(command -v promtool)
  else
    tools="$PWD/target/test-tools"
    if [ ! -x "$tools/usr/bin/promtool" ]; then
      echo "==> fetching promtool (Debian package prometheus, extracted into $tools)"
      mkdir -p "$tools/deb"
      ( cd "$tools/deb" && { apt-get download prometheus >/dev/null 2>&1 ||
          { apt-get update >/dev/null && apt-get download prometheus; }; } ) ||
        { echo "error: cannot download Debian's prometheus package for promtool" >&2; exit 1; }
      dpkg-deb -x "$tools"/deb/prometheus_*.deb "$tools"
    fi
    PROMTOOL="$tools/usr/bin/promtool"
  fi
fi
"$PROMTOOL" --version >/dev/null || { echo "error: promtool at $PROMTOOL does not run" >&2; exit 1; }
export PROMTOOL

# Chromium, chromedriver and axe-core for the browser tests (tests/browser.rs).
. scripts/browser-tools.sh
# PostgreSQL 15 and openssl for tests/postgres.rs (import from and export to a real
# server).
. scripts/postgres-tools.sh
# Litestream and an S3-compatible server (rclone) for tests/litestream.rs.
. scripts/s3-tools.sh

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy (all targets, -D warnings)"
cargo clippy --all-targets --locked -- -D warnings
echo "==> cargo test (unit, integration, CLI)"
log=$(mktemp)
watchdog=""
trap 'rm -f "$log"; [ -z "$watchdog" ] || kill "$watchdog" 2>/dev/null || true' EXIT

# A test binary that runs longer than this is taken for hung: the stacks of its threads
# are printed (gdb, else each thread's kernel wait channel) and it is killed, so the run
# fails with the reason in its log instead of running out of CI's time. The slowest
# binary (tests/browser.rs) takes under half a minute on 2 cores.
limit=${APPLIANCE_TEST_BINARY_LIMIT_SECS:-600}
deps="$PWD/target/debug/deps/"
watch_tests() {
  while sleep 5; do
    for pid in $(pgrep -f "target/debug/deps/" || true); do
      exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
      case "$exe" in "$deps"*) ;; *) continue ;; esac
      age=$(ps -o etimes= -p "$pid" 2>/dev/null | tr -d ' ') || continue
      [ -n "$age" ] && [ "$age" -gt "$limit" ] || continue
      echo "==> HUNG TEST BINARY: ${exe#"$PWD"/} has run ${age}s (limit ${limit}s); its threads:"
      if command -v gdb >/dev/null 2>&1; then
        gdb -p "$pid" -batch -ex 'thread apply all bt 30' 2>&1 | grep -v '^\[New LWP' | head -n 600
      else
        for t in /proc/"$pid"/task/*; do
          echo "  thread $(basename "$t") $(cat "$t/comm" 2>/dev/null): waits in $(cat "$t/wchan" 2>/dev/null)"
        done
      fi
      kill -9 "$pid" 2>/dev/null || true
      echo "==> killed ${exe#"$PWD"/}: the test run fails"
    done
  done
}
watch_tests &
watchdog=$!

# --lib --bins --tests: every test target; benches only print numbers and are built by
# clippy above; there are no doc-tests.
cargo test --locked --lib --bins --tests 2>&1 | tee "$log"
kill "$watchdog" 2>/dev/null || true
watchdog=""
# One closing line with the totals over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f; if (p == 0) exit 1 }' "$log"

# The API against its OpenAPI document: Schemathesis (pinned, from PyPI into a virtual
# environment under target/) fuzzes every operation of a real server (scripts/test-api.sh,
# about a minute).
echo "==> API contract (scripts/test-api.sh: Schemathesis)"
scripts/test-api.sh

# The Debian package: build it, lintian, systemd-analyze, install / upgrade / restore /
# remove / purge in a debootstrap chroot (scripts/test-deb.sh; about 5-10 minutes on a
# fresh machine: a release build, cargo-deb, debootstrap). APPLIANCE_SKIP_DEB=1 skips it
# for a quick local run; CI never sets it.
if [ "${APPLIANCE_SKIP_DEB:-}" = "1" ]; then
  echo "==> package checks SKIPPED (APPLIANCE_SKIP_DEB=1): not a complete test run"
else
  echo "==> package checks (scripts/test-deb.sh)"
  scripts/test-deb.sh
fi
