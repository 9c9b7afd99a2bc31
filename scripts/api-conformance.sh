#!/usr/bin/env bash
# The API contract checked from outside, against a served backend (127.0.0.1, temporary database):
#  1. the OpenAPI document at /v1/openapi.json validates (openapi-spec-validator);
#  2. a bounded schemathesis run with a fixed seed, once per role (Friend, customer and admin
#     token), once more for Friend and customer with the id of a real job, finds no 5xx, no status
#     the document does not list for the operation, and no response off its schema.
# The Python tools are pinned in scripts/api-conformance.requirements.txt and installed into a venv
# under target/. Exits non-zero on any failure; the backend is stopped in every case.
# API_CONFORMANCE_EXAMPLES (default 30) sets the cases per operation and phase.
set -euo pipefail
cd "$(dirname "$0")/.."

examples="${API_CONFORMANCE_EXAMPLES:-30}"
seed=20261202
admin_token="conformance-admin-token"
friend_token="dev-friend-anna"
customer_token="dev-customer-heidi"

target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
venv="$target_dir/api-conformance-venv"
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "-- Python tools (pinned) in $venv"
requirements=scripts/api-conformance.requirements.txt
if [ ! -x "$venv/bin/schemathesis" ] || ! cmp -s "$requirements" "$venv/installed.txt"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$venv/installed.txt"
fi
py="$venv/bin/python"

echo "-- backend"
# The same selection as bindings/generate.sh (which CI runs before): the workspace's features, so
# nothing is rebuilt; `-p friend-backend` alone would resolve features anew and rebuild its deps.
cargo build --quiet --locked --workspace --lib --bins --tests --examples
FRIEND_ADMIN_TOKEN="$admin_token" RUST_LOG=warn "$target_dir/debug/friend-backend" \
  --addr 127.0.0.1:0 --db "$work/backend.db" >"$work/backend.log" 2>&1 &
server_pid=$!
base=""
for _ in $(seq 1 300); do
  base=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/backend.log" | head -n 1 || true)
  [ -n "$base" ] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    cat "$work/backend.log" >&2
    echo "the backend did not start" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$base" ]; then
  echo "the backend did not report its address within 30 s" >&2
  exit 1
fi
echo "   $base"

echo "-- OpenAPI document validates"
"$py" -c 'import sys, urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1]).read())' \
  "$base/v1/openapi.json" >"$work/openapi.json"
"$venv/bin/openapi-spec-validator" "$work/openapi.json"

# Two real jobs near the dev Friend Anna, booked by the dev customer Heidi: one for each seeded run.
book() {
  "$py" - "$base" "$customer_token" "$1" <<'PY'
import json, sys, urllib.request
base, token, key = sys.argv[1:4]
body = {
    "service_id": "network.router_setup", "description": "Conformance run: router setup",
    "timing": {"kind": "now"}, "place": "on_site",
    "location": {"lat": 47.3779, "lon": 8.5403},
    "address": {"street": "Bahnhofplatz 1", "postal_code": "8001", "city": "Zürich"},
    "contact": {"name": "Heidi Muster", "phone": "+41 79 000 00 00"},
}
req = urllib.request.Request(base + "/v1/customer/jobs", data=json.dumps(body).encode(),
    headers={"Authorization": "Bearer " + token, "Idempotency-Key": key,
             "Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req))["job"]["id"])
PY
}
friend_job=$(book conformance-friend)
customer_job=$(book conformance-customer)

summary="$work/summary.txt"
failed=0
run() { # name token [job id]
  local name=$1 token=$2 job=${3:-} config="$work/$1.toml"
  cp scripts/api-conformance.toml "$config"
  if [ -n "$job" ]; then
    printf '\n[parameters]\n"path.id" = "%s"\n' "$job" >>"$config"
  fi
  echo "-- schemathesis: $name"
  local started=$SECONDS status=0
  # Run from the temporary directory: schemathesis keeps a cache in its working directory.
  (cd "$work" && "$venv/bin/schemathesis" --no-color --config-file "$config" run \
    "$base/v1/openapi.json" --header "Authorization: Bearer $token" --seed "$seed" \
    --max-examples "$examples" --generation-database none >"$work/$name.log" 2>&1) || status=$?
  local operations cases problems
  operations=$(sed -n 's/^ *Tested: \([0-9]*\).*/\1/p' "$work/$name.log" | head -n 1)
  cases=$(sed -n 's/^ *\([0-9]*\) generated.*/\1/p' "$work/$name.log" | head -n 1)
  problems=$(sed -n 's/.* \([0-9]*\) found .*/\1/p' "$work/$name.log" | head -n 1)
  printf '%-20s %3s operations %6s cases %3s failures %4ss\n' "$name" "${operations:-?}" \
    "${cases:-?}" "${problems:-0}" "$((SECONDS - started))" | tee -a "$summary"
  if [ "$status" -ne 0 ]; then
    failed=1
    sed -n '/FAILURES\|ERRORS/,$p' "$work/$name.log" >&2
  fi
}
run friend "$friend_token"
run customer "$customer_token"
run admin "$admin_token"
run friend-real-job "$friend_token" "$friend_job"
run customer-real-job "$customer_token" "$customer_job"

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "the backend died during the run:" >&2
  tail -n 50 "$work/backend.log" >&2
  failed=1
fi
awk '{ops += $2; cases += $4; fails += $6; secs += $8}
  END {printf "conformance: %d operation runs, %d cases, %d failures, %ds\n", ops, cases, fails, secs}' "$summary"
if [ "$failed" -ne 0 ]; then
  echo "API conformance run FAILED" >&2
  exit 1
fi
