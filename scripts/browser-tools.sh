# Sourced by scripts/test.sh and scripts/screenshots.sh: what tests/browser.rs needs,
# installed when missing, or a loud failure.

# Debian's Chromium and chromedriver for the browser tests (tests/browser.rs).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "==> installing chromium and chromium-driver (apt-get)"
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null ||
    { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; }; } ||
    { echo "error: cannot install chromium and chromium-driver for the browser tests" >&2; exit 1; }
fi

# axe-core for the browser tests' accessibility check (run in each page): npm's tarball
# of a pinned version, checked against the registry's sha512, unpacked into
# target/test-tools. Not in the repository (550 KB of someone else's code) and never
# served by the appliance.
AXE_VERSION=4.14.1
AXE_SHA512=FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ==
if [ -z "${APPLIANCE_AXE_JS:-}" ]; then
  axe_dir="$PWD/target/test-tools/axe-core-$AXE_VERSION"
  if [ ! -f "$axe_dir/axe.min.js" ]; then
    echo "==> fetching axe-core $AXE_VERSION (npm registry) into $axe_dir"
    mkdir -p "$axe_dir"
    curl -fsSL --retry 3 -o "$axe_dir/axe.tgz" "https://registry.npmjs.org/axe-core/-/axe-core-$AXE_VERSION.tgz" ||
      { echo "error: cannot download axe-core $AXE_VERSION from registry.npmjs.org" >&2; exit 1; }
    got=$(openssl dgst -sha512 -binary "$axe_dir/axe.tgz" | base64 -w0)
    [ "$got" = "$AXE_SHA512" ] ||
      { echo "error: axe-core $AXE_VERSION tarball does not match its sha512 ($got)" >&2; rm -f "$axe_dir/axe.tgz"; exit 1; }
    tar -xzf "$axe_dir/axe.tgz" -C "$axe_dir" --strip-components=1 package/axe.min.js package/LICENSE
  fi
  APPLIANCE_AXE_JS="$axe_dir/axe.min.js"
fi
export APPLIANCE_AXE_JS

