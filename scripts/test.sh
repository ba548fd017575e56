#!/usr/bin/env bash
# The one test command (README): formatting, lints, and every test.
# Later capabilities that need system packages (a browser, lintian, promtool) install
# them here and fail loudly if they cannot.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy (all targets, -D warnings)"
cargo clippy --all-targets --locked -- -D warnings
echo "==> cargo test (unit, integration, CLI)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# --lib --bins --tests: every test target; benches only print numbers and are built by
# clippy above; there are no doc-tests.
cargo test --locked --lib --bins --tests 2>&1 | tee "$log"
# One closing line with the totals over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f; if (p == 0) exit 1 }' "$log"
