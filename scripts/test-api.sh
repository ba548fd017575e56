#!/usr/bin/env bash
# The API against its OpenAPI document, with Schemathesis (from PyPI, pinned, in a
# virtual environment under target/): a real server on 127.0.0.1 with real data and an
# admin token, every operation fuzzed (examples, coverage, fuzzing and stateful phases,
# following the document's links: create -> get -> patch -> delete). Fails on any 5xx, an
# undocumented status, content type or response body, or when Schemathesis cannot run.
# Called by scripts/test.sh after `cargo test` (which built target/debug/appliance).
set -euo pipefail
cd "$(dirname "$0")/.."

version=4.32.5
venv="$PWD/target/schemathesis-venv"
st="$venv/bin/schemathesis"
if ! "$st" --version 2>/dev/null | grep -q "$version"; then
  echo "==> installing Schemathesis $version into $venv (pip)"
  rm -rf "$venv"
  python3 -m venv "$venv" || { echo "error: python3 -m venv failed (Schemathesis needs Python 3)" >&2; exit 1; }
  "$venv/bin/pip" install -q "schemathesis==$version" ||
    { echo "error: cannot install schemathesis==$version from PyPI" >&2; exit 1; }
fi

bin="$PWD/target/debug/appliance"
[ -x "$bin" ] || cargo build --locked
work=$(mktemp -d)
server=""
cleanup() { [ -z "$server" ] || kill "$server" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/appliance.toml" <<TOML
data_dir = "$work/data"
[server]
listen = "127.0.0.1:$port"
[rate_limit]
# The fuzzer sends thousands of requests from one address; the limits are tested
# elsewhere (tests/security.rs).
enabled = false
[backup]
schedule = ""
[metrics]
enabled = false
[log]
format = "json"
TOML
app() { env -u APPLIANCE_CONFIG "$bin" --config "$work/appliance.toml" "$@"; }
app migrate run >/dev/null
printf 'a long fuzzing passphrase' | app user create --email admin@example.org --role admin --password-stdin >/dev/null
token=$(app token create --email admin@example.org --name schemathesis)
for i in $(seq 1 20); do
  printf '{"external_id":"seed-%s","title":"Seed article %s","body":"Words to search for, number %s.","status":"published","tags":["seed"],"category":"fuzz"}\n' "$i" "$i" "$i"
done > "$work/seed.jsonl"
app articles import "$work/seed.jsonl" >/dev/null
app backup >/dev/null
archive=$(app backup list --json | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["name"])')
# Real identifiers for the path parameters whose random values would only ever be 404:
# the archive taken above, and the first seed article (the document's links give the
# fuzzer the ids of the articles it creates itself).
cat > "$work/schemathesis.toml" <<TOML
[parameters]
"path.name" = "$archive"
"path.key" = "1"
TOML
app serve > "$work/serve.log" 2>&1 &
server=$!
ready() { python3 -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "$1" 2>/dev/null; }
for _ in $(seq 1 200); do
  ready "http://127.0.0.1:$port/readyz" && break
  kill -0 "$server" 2>/dev/null || { cat "$work/serve.log"; echo "error: the server did not start" >&2; exit 1; }
  sleep 0.1
done

report="$PWD/target/schemathesis-report"
rm -rf "$report"
mkdir -p "$report"
echo "==> Schemathesis $version against http://127.0.0.1:$port/api/openapi.json"
# DELETE /api/auth/tokens/{id} is left out: it would revoke the token the run uses
# (revocation is tested in tests/security.rs).
set +e
"$st" --config-file "$work/schemathesis.toml" run "http://127.0.0.1:$port/api/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "${APPLIANCE_SCHEMATHESIS_EXAMPLES:-100}" \
  --seed 20261207 \
  --workers 2 \
  --exclude-operation-id delete_auth_tokens_id \
  --report junit --report-dir "$report" \
  --no-color 2>&1 | tee "$report/output.txt"
rc=${PIPESTATUS[0]}
set -e
if grep -q '"level":"ERROR"' "$work/serve.log"; then
  echo "==> the server logged errors during the run:"
  grep '"level":"ERROR"' "$work/serve.log" | head -20
fi
[ "$rc" -eq 0 ] || { echo "error: Schemathesis found failures (exit $rc); see $report/output.txt" >&2; exit 1; }
echo "==> Schemathesis passed"
