#!/usr/bin/env bash
# Installs the tools the test suite runs besides cargo: the DynamoDB emulator dynalite
# (npm), pinned by tools/node/package-lock.json, into .tools/node (git-ignored), with the
# TransactWriteItems action it lacks added from scripts/dynalite/ (see its README); and
# Debian's chromium and chromium-driver for the browser test (scripts/browser-test.sh),
# only when `chromium` or `chromedriver` is missing (about 300 MB).
# Debian's prometheus (with promtool) when missing, for the Prometheus test.
#
#   scripts/install-test-tools.sh          # install, or do nothing when already current
#
# Idempotent and fast when nothing changed: the installed lockfile is compared with the
# committed one, and a stamp in .tools/node with scripts/dynalite/ (a change there
# reinstalls dynalite from the lockfile and adds the new version). The tests look for .tools/node/node_modules/.bin/dynalite (or the path
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

# dynalite has no TransactWriteItems; the DynamoDB store writes shows with it. The action
# and its validation (scripts/dynalite/actions, validations) are copied into the package and
# scripts/dynalite/dynalite.patch registers them; the stamp records which version is in.
ext="$root/scripts/dynalite"
pkg="$dest/node_modules/dynalite"
stamp="$dest/dynalite-extension.sha256"
want="$(cd "$ext" && sha256sum dynalite.patch actions/*.js validations/*.js | sha256sum | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"

if [[ -x "$bin" ]] && cmp -s "$src/package-lock.json" "$dest/package-lock.json" && [[ "$have" == "$want" ]]; then
    echo "test tools: dynalite (with TransactWriteItems) up to date in .tools/node"
    exit 0
fi

if ! command -v patch >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "test tools: patch not found; installing Debian's patch"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq patch >/dev/null
    else
        echo "test tools: patch is required to add TransactWriteItems to dynalite" >&2
        exit 1
    fi
fi

# A fresh package unless the current one is the lockfile's, untouched (no stamp): an older
# version of the extension is never patched over.
if ! [[ -x "$bin" ]] || ! cmp -s "$src/package-lock.json" "$dest/package-lock.json" || [[ -n "$have" ]]; then
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
    rm -f "$stamp"
fi

# Already applied (an install stopped before its stamp): leave it; else it must apply.
if ! patch -p1 -R --dry-run --silent -d "$pkg" <"$ext/dynalite.patch" >/dev/null 2>&1 &&
    ! patch -p1 --forward --silent --no-backup-if-mismatch -d "$pkg" <"$ext/dynalite.patch"; then
    echo "test tools: scripts/dynalite/dynalite.patch does not apply to $pkg" >&2
    exit 1
fi
cp "$ext"/actions/*.js "$pkg/actions/"
cp "$ext"/validations/*.js "$pkg/validations/"
node -e "require('$pkg/index.js')" || {
    echo "test tools: dynalite with TransactWriteItems does not load" >&2
    exit 1
}
echo "$want" >"$stamp"

"$bin" --help >/dev/null 2>&1 || {
    echo "test tools: $bin does not run" >&2
    exit 1
}
echo "test tools: dynalite $(node -p "require('$pkg/package.json').version") with TransactWriteItems installed in .tools/node"
