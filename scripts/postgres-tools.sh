# Sourced by scripts/test.sh (and scripts/bench.sh): PostgreSQL 15's server binaries
# for tests/postgres.rs (Debian's postgresql-15, the major version pinned by the package
# name; the tests start their own throwaway clusters with initdb on 127.0.0.1 and stop
# them), and openssl for the test certificates. Installed with apt-get when missing;
# a loud failure when that is impossible, never a skipped test.
pg_bin=/usr/lib/postgresql/15/bin
if [ ! -x "$pg_bin/postgres" ] || [ ! -x "$pg_bin/initdb" ] || ! command -v openssl >/dev/null 2>&1; then
  echo "==> installing PostgreSQL 15 and openssl (Debian packages postgresql-15, openssl)"
  if [ "$(id -u)" != 0 ]; then
    echo "error: PostgreSQL 15 is missing and installing it needs root: apt-get install postgresql-15 openssl" >&2
    exit 1
  fi
  { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 openssl >/dev/null 2>&1 ||
    { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 openssl; }; } ||
    { echo "error: cannot install Debian's postgresql-15 and openssl" >&2; exit 1; }
fi
"$pg_bin/postgres" --version | grep -q ' 15\.' ||
  { echo "error: $pg_bin/postgres is not PostgreSQL 15" >&2; exit 1; }
export APPLIANCE_TEST_PG_BIN="$pg_bin"
