#!/usr/bin/env bash
# API fuzzing: schemathesis (v4) against the service's own /openapi.json, with a valid
# token and a bounded number of examples per operation. Fails on any 5xx, any response
# that breaks the document (status, schema, content type, headers), or an undeclared
# method not answered 405. A step of scripts/test.sh; runs alone too.
#
#   scripts/schemathesis.sh                      (SCHEMATHESIS_MAX_EXAMPLES=N, default 100)
#
# Installs schemathesis (pinned) into .tools/venv-schemathesis when missing; uses the
# debug binary the test step built (`cargo build --locked` is a no-op then), a copy of it;
# starts it on
# a free loopback port with a throw-away data folder; stops it on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh
root=$PWD

SCHEMATHESIS_VERSION=4.32.5
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-100}
venv=.tools/venv-schemathesis

if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

work=$(mktemp -d)
trap 'stop_service; rm -rf "$work"' EXIT
bin=$(debug_binary "$work")

start_local_service "$bin" "$work" || exit 1
base="http://$addr"
echo "service on $base"

# A token with every scope (shows.admin too, so the admin routes are exercised past their
# scope check) from the local issuer, as a client would get it (SCHEMATHESIS_TOKEN
# overrides, e.g. to test a service behind another issuer).
token=${SCHEMATHESIS_TOKEN:-$(local_token "$base" "shows.read shows.write shows.admin")}

# Undeclared methods: 405 in the error envelope, on every kind of route.
status=0
for path in /health /health/ready /openapi.json /v1/shows /shows /v1/shows/show/a /v1/admin/owners /oauth/token; do
  for method in PUT PATCH; do
    code=$(curl -s -o "$work/body" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $token" "$base$path")
    if [[ $code != 405 ]] || ! grep -q '"requestId"' "$work/body"; then
      echo "FAIL: $method $path answered $code: $(head -c 200 "$work/body")"
      status=1
    fi
  done
done
[[ $status == 0 ]] && echo "undeclared methods: 405 with the envelope on every route"

# The service is seeded with the sample feed so reads find data.
curl -sS -o /dev/null -X POST "$base/v1/shows" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' --data-binary @tests/fixtures/feed-12.json

# The deprecated /shows... operations are aliases served by the /v1/shows handlers: they
# are not fuzzed twice (--exclude-deprecated).
# Per-operation settings. Each relaxation is a rule the document cannot state:
# - GET /v1/shows: `cursor` is opaque; any string fits its schema, but only cursors this
#   service issued are accepted (others get 400, as documented).
# - the token endpoint: client authentication is HTTP Basic with the development client;
#   RFC 6749 errors that a schema cannot express (a parameter repeated, §3.2) are 400,
#   and bursts are rate limited (429, as documented).
basic=$(printf 'local-client:local-secret' | base64)
cat >"$work/schemathesis.toml" <<TOML
headers = { Authorization = "Bearer $token" }

[[operations]]
include-path = "/v1/shows"
include-method = "GET"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404"]

[[operations]]
include-path-regex = "^/oauth2?/token\$"
headers = { Authorization = "Basic $basic" }
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "429"]
TOML

started=$SECONDS
set +e
(cd "$work" && "$root/$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "$base/openapi.json" \
  --url "$base" \
  --checks all \
  --exclude-deprecated \
  --max-examples "$max_examples" \
  --seed "${SCHEMATHESIS_SEED:-20261129}" \
  --generation-database none \
  --no-color)
st_status=$?
set -e
echo "schemathesis: exit $st_status in $((SECONDS - started))s"

# Belt and braces: no 5xx at all in the service's request log, whatever the checks said.
errors=$(grep -c '"status":5[0-9][0-9]' "$work/service.log" || true)
if [[ $errors != 0 ]]; then
  echo "FAIL: the service answered $errors requests with 5xx:"
  grep '"status":5[0-9][0-9]' "$work/service.log" | head -20
  status=1
fi
grep -q '"panicked"\|panicked at' "$work/service.log" && { echo "FAIL: a panic was logged"; status=1; }

if [[ $st_status != 0 ]]; then
  status=1
fi
exit $status
