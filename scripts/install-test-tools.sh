#!/usr/bin/env bash
# Installs the tools the test suite runs besides cargo: the DynamoDB emulator dynalite
# (npm), pinned by tools/node/package-lock.json, into .tools/node (git-ignored); and
# Debian's chromium and chromium-driver for the browser test (scripts/browser-test.sh),
# only when `chromium` or `chromedriver` is missing (about 300 MB).
# Debian's prometheus (with promtool) when missing, for the Prometheus test.
#
#   scripts/install-test-tools.sh          # install, or do nothing when already current
#
# Idempotent and fast when nothing changed: the installed lockfile is compared with the
# committed one. The tests look for .tools/node/node_modules/.bin/dynalite (or the path
# in SHOW_TEST_DYNALITE) and fail, naming this script, when it is missing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Headless Chromium and its WebDriver, from the distribution's packages.
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "test tools: chromium and chromedriver present"
elif [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "test tools: installing Debian's chromium and chromium-driver"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver >/dev/null
else
    echo "test tools: chromium and chromium-driver are required (apt-get install chromium chromium-driver)" >&2
    exit 1
fi
src="$root/tools/node"
dest="$root/.tools/node"
bin="$dest/node_modules/.bin/dynalite"

# The storage fault tests (tests/api/storage_faults.rs) run chattr, mount and umount as
# root; Debian has them in e2fsprogs and mount (present on most machines, installed here
# when missing).
for pkg_tool in e2fsprogs:chattr mount:mount mount:umount; do
    if ! command -v "${pkg_tool#*:}" >/dev/null 2>&1; then
        if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
            echo "test tools: ${pkg_tool#*:} not found; installing Debian's ${pkg_tool%%:*}"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkg_tool%%:*}" >/dev/null
        else
            echo "test tools: ${pkg_tool#*:} is required by the storage fault tests" >&2
            exit 1
        fi
    fi
done

# Prometheus and promtool (Debian's `prometheus`): a test scrapes the service with a real
# server and checks its exposition with promtool.
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "test tools: installing Debian's prometheus (with promtool)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    else
        echo "test tools: prometheus and promtool are required (Debian: apt-get install prometheus)" >&2
        exit 1
    fi
fi
echo "test tools: $(prometheus --version 2>&1 | head -n 1)"

if [[ -x "$bin" ]] && cmp -s "$src/package-lock.json" "$dest/package-lock.json"; then
    echo "test tools: dynalite up to date in .tools/node"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    # The project's machines come with Node.js; a bare Debian box may not.
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "test tools: npm not found; installing Debian's nodejs and npm"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    else
        echo "test tools: npm (Node.js >= 20) is required to install dynalite" >&2
        exit 1
    fi
fi

mkdir -p "$dest"
# npm ci installs exactly the lockfile. Install scripts are not needed: classic-level (the
# on-disk store behind dynalite --path) ships prebuilt binaries that it loads at run time.
cp "$src/package.json" "$src/package-lock.json" "$src/.npmrc" "$dest/"
(cd "$dest" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)

"$bin" --help >/dev/null 2>&1 || {
    echo "test tools: $bin does not run" >&2
    exit 1
}
echo "test tools: dynalite $(node -p "require('$dest/node_modules/dynalite/package.json').version") installed in .tools/node"
