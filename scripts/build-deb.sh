#!/usr/bin/env bash
# Build the Debian package from this checkout: release binary, man page (rendered from
# the CLI definition, gzipped), then cargo-deb. Installs cargo-deb from crates.io when
# it is missing. Prints the path of the .deb on the last line.
#   scripts/build-deb.sh [--deb-version VERSION]   (default: Cargo.toml's version, -1)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deb >/dev/null 2>&1; then
    echo "==> installing cargo-deb (cargo install cargo-deb --locked)" >&2
    cargo install cargo-deb --locked --quiet
fi

target="${CARGO_TARGET_DIR:-target}"
echo "==> cargo build --release" >&2
cargo build --release --locked --quiet
mkdir -p target/man
"$target/release/appliance" man > target/man/appliance.1
gzip -9n -f target/man/appliance.1
if [ "$target" != "target" ]; then
    # cargo-deb's assets name target/release/appliance: point it at the real target dir.
    mkdir -p target/release
    cp -f "$target/release/appliance" target/release/appliance
fi
echo "==> cargo deb" >&2
cargo deb --no-build --quiet "$@" 2>&1 | tail -n 1
