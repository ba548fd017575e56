#!/usr/bin/env bash
# PostgreSQL in and out (README "Performance"): export, verify and import rates on the
# benchmark corpus against a local PostgreSQL 15 cluster the benchmark starts, with
# pgloader (Debian's 3.6.9) moving the same SQLite file in the same run. Installs
# postgresql-15, openssl and pgloader with apt-get when missing.
#   BENCH_PG_ARTICLES=20000 scripts/bench-postgres.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/postgres-tools.sh
if [ -z "${BENCH_PGLOADER:-}" ] && ! command -v pgloader >/dev/null 2>&1; then
  echo "==> installing pgloader (apt-get)"
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends pgloader >/dev/null ||
    { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends pgloader >/dev/null; }; } ||
    { echo "error: cannot install pgloader (or set BENCH_PGLOADER)" >&2; exit 1; }
fi
exec cargo bench --bench postgres "$@"
