#!/usr/bin/env bash
# The /docs pages in headless Chromium (tests/browser/pages.py, selenium over WebDriver):
# the API reference lists every operation, authorizes and tries GET /v1/shows; the
# catalogue preview shows the fixture feed's eligible shows, feed text as text. A step of
# scripts/test.sh; runs alone too.
#
#   scripts/browser-test.sh
#
# Needs Debian's chromium and chromium-driver (scripts/install-test-tools.sh installs
# them); installs selenium (pinned) into .tools/venv-browser when missing. Starts the
# debug binary on a free loopback port with a throw-away data folder and stops it on exit.
# Screenshots of each page stay in <target dir>/browser-test/ (not committed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

SELENIUM_VERSION=4.45.0
venv=.tools/venv-browser

for tool in chromium chromedriver; do
  command -v "$tool" >/dev/null || {
    echo "browser test: $tool not found; run scripts/install-test-tools.sh" >&2
    exit 1
  }
done
if ! "$venv/bin/python" -c "import selenium, sys; sys.exit(selenium.__version__ != '$SELENIUM_VERSION')" 2>/dev/null; then
  echo "installing selenium $SELENIUM_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "selenium==$SELENIUM_VERSION"
fi

cargo build --locked --quiet
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
artefacts="$target_dir/browser-test"

work=$(mktemp -d)
# A copy, taken at once: a target folder shared with other checkouts may relink the binary.
cp "$target_dir/debug/show-service" "$work/show-service"
bin="$work/show-service"
server_pid=
cleanup() {
  if [[ -n $server_pid ]]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Local mode: the docs pages are on by default, the development client exists.
env -i PATH="$PATH" APP_ENV=local APP__SERVER__HOST=127.0.0.1 APP__SERVER__PORT=0 \
  APP__STORE__PATH="$work/data/shows.db" APP__LOG__FORMAT=json APP__LOG__LEVEL=info \
  "$bin" serve >"$work/service.log" 2>&1 &
server_pid=$!
addr=$(wait_for_addr "$work/service.log" "$server_pid") || exit 1
base="http://$addr"
echo "service on $base"

token=$(curl -sS -X POST "$base/oauth/token" -u local-client:local-secret \
  -d grant_type=client_credentials -d 'scope=shows.read shows.write' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

status=0
"$venv/bin/python" tests/browser/pages.py "$base" "$token" "$artefacts" || status=1
if grep -q '"status":5[0-9][0-9]' "$work/service.log"; then
  echo "FAIL: the service answered 5xx:"
  grep '"status":5[0-9][0-9]' "$work/service.log" | head -20
  status=1
fi
exit $status
