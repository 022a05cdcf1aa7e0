#!/usr/bin/env bash
# The /docs pages in headless Chromium (tests/browser/pages.py, selenium over WebDriver):
# the API reference lists every operation, authorizes and tries GET /v1/shows; the
# catalogue preview shows the fixture feed's eligible shows, feed text as text, and follows
# the change feed (a show posted after the load appears, a deleted one goes). A step of
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

artefacts="$(target_dir)/browser-test"
work=$(mktemp -d)
trap 'stop_service; rm -rf "$work"' EXIT
bin=$(debug_binary "$work")

start_local_service "$bin" "$work" || exit 1
base="http://$addr"
echo "service on $base"

token=$(local_token "$base")

status=0
"$venv/bin/python" tests/browser/pages.py "$base" "$token" "$artefacts" || status=1
if grep -q '"status":5[0-9][0-9]' "$work/service.log"; then
  echo "FAIL: the service answered 5xx:"
  grep '"status":5[0-9][0-9]' "$work/service.log" | head -20
  status=1
fi
exit $status
