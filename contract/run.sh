#!/usr/bin/env bash
# Runs third-party clients against a freshly started hookgate: SailPoint's Python SDK (both
# majors), the standardwebhooks verifier on a real delivery, inbound webhooks signed by the
# senders' own libraries (npm: standardwebhooks, @octokit/webhooks-methods, stripe), and
# schemathesis (openapi.yaml: no 500s, every response as documented, 405 with Allow).
# Usage: contract/run.sh [DATABASE_URL]   (default: a temporary SQLite file)
# Needs a built target/debug/hookgate (cargo build), python3, and Node.js with npm.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/debug/hookgate"
work=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

venv() {  # venv DIR REQUIREMENT: a cached virtualenv with one requirement installed
    local dir="$root/target/contract/$1"
    if [ ! -x "$dir/bin/python" ] || ! "$dir/bin/pip" show "${2%%[<>=]*}" >/dev/null 2>&1; then
        python3 -m venv "$dir"
        "$dir/bin/pip" install --quiet --disable-pip-version-check "$2"
    fi
    echo "$dir/bin/python"
}
py2=$(venv sdk2 'sailpoint>=2.1,<3')
pysw=$(venv standardwebhooks 'standardwebhooks>=1.0,<2')
py1=$(venv sdk1 'sailpoint==1.4.2')
st=$(dirname "$(venv schemathesis 'schemathesis>=4.3,<5')")/schemathesis
if [ ! -d "$root/contract/node_modules/stripe" ]; then
    (cd "$root/contract" && npm ci --silent --no-audit --no-fund)
fi

export HOOKGATE_DATABASE_URL="${1:-$work/hookgate.db}"
export HOOKGATE_LOG=warn
# A fresh database: a new key seals its secrets (PostgreSQL needs one; SQLite would make its own).
export HOOKGATE_ENCRYPTION_KEY="${HOOKGATE_ENCRYPTION_KEY:-$("$bin" keys generate)}"
"$bin" migrate >/dev/null
creds=$("$bin" client create --name contract --scope sp:scopes:all --json)
export HOOKGATE_CLIENT_ID=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientId"])')
export HOOKGATE_CLIENT_SECRET=$(echo "$creds" | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientSecret"])')

start_server() {  # start_server WORKERS ALLOWED_NETWORKS
    kill "${server:-}" 2>/dev/null && wait "$server" 2>/dev/null || true
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    HOOKGATE_WORKERS=$1 HOOKGATE_ALLOWED_TARGET_NETWORKS=$2 "$bin" serve --listen "127.0.0.1:$port" &
    server=$!
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null && break
        sleep 0.1
    done
    export HOOKGATE_URL="http://127.0.0.1:$port"
}

status=0
# Phase 1: the SDKs, and a real delivery to a local receiver (only 127.0.0.1 may be reached).
start_server 1 127.0.0.1/32
"$py2" "$root/contract/sailpoint_sdk.py" || status=1
"$py1" "$root/contract/sailpoint_sdk.py" || status=1
echo "standardwebhooks verifies a real delivery"
"$pysw" "$root/contract/standard_webhooks.py" || status=1
echo "inbound webhooks signed by the senders' own libraries"
node "$root/contract/inbound_webhooks.mjs" || status=1

# Phase 2: schemathesis, with no delivery loops: it creates subscriptions to arbitrary URLs,
# which must never be contacted. Waits are capped below schemathesis's 10 s request timeout.
HOOKGATE_MAX_WAIT=2s start_server 0 ""
token=$(curl -fs "$HOOKGATE_URL/oauth/token" -d grant_type=client_credentials \
    -d client_id="$HOOKGATE_CLIENT_ID" -d client_secret="$HOOKGATE_CLIENT_SECRET" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
echo "schemathesis against openapi.yaml"
"$st" run "$root/openapi.yaml" --url "$HOOKGATE_URL" -H "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,unsupported_method \
    --exclude-path-regex '^/(beta|v2024|v2025)/' --max-examples 40 --seed 1 --no-color \
    || status=1
exit $status
