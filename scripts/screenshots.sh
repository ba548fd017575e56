#!/usr/bin/env bash
# Regenerate the README's screenshots (docs/screenshots/*.png) from the real UI: runs the
# browser tests (tests/browser.rs) with APPLIANCE_UPDATE_SCREENSHOTS=1, which writes the
# pages listed in DOCS_SCREENSHOTS there. Installs Chromium, chromedriver and axe-core
# like scripts/test.sh when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/browser-tools.sh
APPLIANCE_UPDATE_SCREENSHOTS=1 cargo test --test browser -- --test-threads 2
ls -l docs/screenshots
