#!/usr/bin/env bash
# Storage faults against the embedded store, repeated: counts how often they kill the process.
#
#   bench/storage-faults.sh [BINARY (release build)] [REPS (20)]
#
# Each repetition starts BINARY on a store of its own, posts the sample feed, injects the
# fault, posts again, then removes the fault and posts once more:
#   immutable  `chattr +i` on every file of the store (a disk that turns read-only under the
#              running process)
#   full       the store folder is a 3 MB tmpfs, filled up with a filler file
# One line per repetition (status of the POST under the fault, of /health, of the POST after
# the fault is removed, and whether the process lived), then the deaths per fault. Exits
# non-zero when any process died. Needs root: chattr +i needs CAP_LINUX_IMMUTABLE, mount
# needs CAP_SYS_ADMIN. The same checks, once each with every assertion, are the test
# `tests/storage_faults.rs`; this loop is for the "0 deaths in 20" figure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=${1:-${CARGO_TARGET_DIR:-target}/release/show-service}
reps=${2:-20}
[[ -x $bin ]] || { echo "storage-faults: no binary $bin (cargo build --release)" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "storage-faults: needs root (chattr +i, mount -t tmpfs)" >&2; exit 2; }

work=$PWD/bench/out/faults-$(date +%Y%m%d-%H%M%S)
mkdir -p "$work"
feed=$PWD/tests/fixtures/feed-12.json
python3 tools/gen-feed.py 300 --prefix fault- >"$work/feed-300.json"
pid=
cleanup() {
    [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null || true
    find "$work" -xdev -type f -exec chattr -i {} + 2>/dev/null || true
    for m in "$work"/full-*; do mountpoint -q "$m" 2>/dev/null && umount "$m"; done
    return 0
}
trap cleanup EXIT

touch "$work/probe"
chattr +i "$work/probe" || { echo "storage-faults: chattr +i does not work on $work's filesystem" >&2; exit 2; }
chattr -i "$work/probe"

start() { # DIR -> pid, port, token
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    APP_ENV=local APP__SERVER__PORT=$port APP__STORE__PATH=$1/shows.db APP__LOG__FORMAT=json \
        "$bin" serve >"$1.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 400); do curl -sf -o /dev/null "http://127.0.0.1:$port/health" && break; sleep 0.05; done
    token=$(APP_ENV=local APP__SERVER__PORT=$port APP__STORE__PATH=$1/shows.db "$bin" token)
}
post() { # FILE -> status
    curl -s -o /dev/null -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' --data-binary "@$1" "http://127.0.0.1:$port/v1/shows" || true
}
status() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$port$1" || true; }
finish() { # FAULT REP DURING HEALTH AFTER
    local alive=alive code
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" && code=0 || code=$?
        alive="DIED (exit $code$( ((code > 128)) && echo ", signal $((code - 128))"))"
        deaths[$1]=$((${deaths[$1]:-0} + 1))
    else
        kill -TERM "$pid"
        wait "$pid" || true
    fi
    pid=
    printf '%-9s %2s  fault POST %s  /health %s  POST after %s  %s\n' "$@" "$alive"
}

declare -A deaths=([immutable]=0 [full]=0)
for i in $(seq 1 "$reps"); do
    dir=$work/imm-$i
    mkdir -p "$dir"
    start "$dir"
    [[ $(post "$feed") == 201 ]] || echo "immutable $i: the first POST failed" >&2
    chattr +i "$dir"/shows.db*
    during=$(post "$feed")
    health=$(status /health)
    chattr -i "$dir"/shows.db* 2>/dev/null || true
    after=$(post "$feed")
    finish immutable "$i" "$during" "$health" "$after"

    dir=$work/full-$i
    mkdir -p "$dir"
    mount -t tmpfs -o size=3m tmpfs "$dir"
    start "$dir"
    [[ $(post "$feed") == 201 ]] || echo "full $i: the first POST failed" >&2
    dd if=/dev/zero of="$dir/filler" bs=64k status=none 2>/dev/null || true
    during=$(post "$work/feed-300.json")
    health=$(status /health)
    rm -f "$dir/filler"
    after=$(post "$work/feed-300.json")
    finish full "$i" "$during" "$health" "$after"
    umount "$dir"
done
echo "deaths in $reps repetitions: immutable ${deaths[immutable]}, full ${deaths[full]} ($bin)"
((deaths[immutable] + deaths[full] == 0))
