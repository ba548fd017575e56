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
echo "==> cargo test"
cargo test --locked
