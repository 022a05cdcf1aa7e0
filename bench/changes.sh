#!/usr/bin/env bash
# Staying current after one changed show (issue 27's target): the bytes a client downloads
# with the change feed against a re-list, and the read units the changes call costs the
# store. Loopback only, bounded (a few minutes at 100,000 shows, most of it the imports).
#
#   bench/changes.sh                 the debug binary (built when missing)
#   BENCH_BIN=target/release/show-service bench/changes.sh
#
# For each store (SQLite, then DynamoDB on dynalite unless BENCH_CHANGES_STORES says
# otherwise), on BENCH_CHANGES_SHOWS (100000) shows (tools/gen-feed.py: 400-byte
# descriptions, half eligible, as bench/readcost.sh):
#   1. the client lists (`GET /v1/shows`) and keeps `Changes-Cursor`;
#   2. one listed show changes (its title, through `POST /v1/shows`; the import made the
#      shows unowned, so the writer has `shows.admin`);
#   3. the client catches up with `GET /v1/shows/changes?since=…` — checked: exactly one
#      `put` of that show with the new title — against listing again; each with and
#      without `Accept-Encoding: gzip`, bytes = headers + body as received;
#   4. read units (`store_consumed_read_units_total` on the metrics listener) of the
#      changes call, and of a second one from its `next` (nothing changed).
# One JSON line per store on stdout; raw files in bench/out/changes-*/ (git-ignored).
# Exits non-zero when a check fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh
n=${BENCH_CHANGES_SHOWS:-100000}
stores=${BENCH_CHANGES_STORES:-sqlite dynamodb}
work=$PWD/bench/out/changes-$(date +%Y%m%d-%H%M%S)
mkdir -p "$work"
pids=()
trap 'stop_pids ${pids[@]+"${pids[@]}"}' EXIT
export APP_ENV=local APP__AUTH__PUBLICURL=http://show-service.bench APP__LOG__FORMAT=json
export APP__LOG__LEVEL=info
unset RUST_LOG
log() { printf '== %s\n' "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
metric_sum() { # PORT NAME
    curl -sf "http://127.0.0.1:$1/metrics" | awk -v n="$2" '
        $1 == n || index($1, n "{") == 1 {s += $NF} END {printf "%.1f\n", s + 0}'
}

if [[ -n ${BENCH_BIN:-} ]]; then
    bin=$BENCH_BIN
else
    bin=$(debug_binary "$work")
fi
[[ -x $bin ]] || { echo "changes: no binary $bin" >&2; exit 2; }

log "$n shows (400-byte descriptions, half eligible)"
python3 tools/gen-feed.py "$n" --description-bytes 400 --prefix "ch-" >"$work/feed.json"
mkdir -p "$work/sqlite" "$work/dynamodb"
ddb=()
if [[ " $stores " == *" dynamodb "* ]]; then
    scripts/install-test-tools.sh >&2
    start_dynalite "$work/dynalite.log"
    pids+=("$dynalite_pid")
    ddb=(APP__STORE__KIND=dynamodb "APP__DYNAMODB__ENDPOINTOVERRIDE=http://127.0.0.1:$dynalite_port"
        APP__DYNAMODB__SHOWSTABLE=changes)
    env "${ddb[@]}" APP__STORE__PATH="$work/dynamodb/shows.db" "$bin" table create >>"$work/import.log" 2>&1
fi

for store in $stores; do
    extra=()
    [[ $store == dynamodb ]] && extra=("${ddb[@]}")
    log "$store: import"
    env "${extra[@]}" APP__STORE__PATH="$work/$store/shows.db" "$bin" import "$work/feed.json" \
        >>"$work/import.log" 2>&1

    port=$(free_port) mport=$(free_port)
    env "${extra[@]}" APP__SERVER__HOST=127.0.0.1 APP__SERVER__PORT="$port" APP__METRICS__PORT="$mport" \
        APP__STORE__PATH="$work/$store/shows.db" "$bin" serve >"$work/$store.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    base=http://127.0.0.1:$port
    for _ in $(seq 1 300); do
        curl -sf -o /dev/null "$base/health/ready" && break
        kill -0 "$pid" 2>/dev/null || { cat "$work/$store.log" >&2; exit 1; }
        sleep 0.1
    done
    # After the start: the first start makes the issuer's key beside the store.
    token=$(env "${extra[@]}" APP__STORE__PATH="$work/$store/shows.db" "$bin" token --scope shows.read,shows.write,shows.admin)
    auth=(-H "Authorization: Bearer $token")
    # fetch NAME URL [curl args…]: the answer in $work/$store-NAME.{headers,body}; prints
    # "status bytes" (headers + body as received).
    fetch() {
        local name=$1 url=$2
        shift 2
        curl -s "${auth[@]}" "$@" -D "$work/$store-$name.headers" -o "$work/$store-$name.body" \
            -w '%{http_code} %{size_header} %{size_download}\n' "$url" | awk '{print $1, $2 + $3}'
    }

    log "$store: list, change one show, catch up"
    # A list read while a write may still be landing (DynamoDB: up to the index's lag
    # plus the clock margin, about 3 s after the import's last call) has the position
    # every change is after; the client of this bench lists once the import has settled:
    # again each second until nothing has changed since its position.
    for try in $(seq 1 30); do
        read -r code list_bytes < <(fetch list "$base/v1/shows")
        [[ $code == 200 ]] || { echo "changes: GET /v1/shows answered $code" >&2; exit 1; }
        since=$(awk 'tolower($1) == "changes-cursor:" {print $2}' "$work/$store-list.headers" | tr -d '\r')
        [[ -n $since ]] || { echo "changes: GET /v1/shows has no Changes-Cursor" >&2; exit 1; }
        settled=$(curl -sf "${auth[@]}" --get --data-urlencode "since=$since" -d limit=1 \
            "$base/v1/shows/changes" | python3 -c 'import json,sys; print(not json.load(sys.stdin)["changes"])')
        [[ $settled == True ]] && break
        ((try < 30)) || { echo "changes: the list's position never settled" >&2; exit 1; }
        sleep 1
    done
    lists=$try
    # The first listed show, with a new title.
    python3 - "$work/feed.json" "$work/$store-list.body" "$work/$store-one.json" <<'EOF'
import json, sys
feed, listed, out = sys.argv[1:4]
first = json.load(open(listed))["response"][0]["slug"]
show = next(s for s in json.load(open(feed))["payload"] if s["slug"] == first)
show["title"] = "Changed after the list: " + show["title"]
json.dump({"payload": [show], "skip": 0, "take": 1, "totalRecords": 1}, open(out, "w"))
EOF
    code=$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" -H 'Content-Type: application/json' \
        --data-binary @"$work/$store-one.json" "$base/v1/shows")
    [[ $code == 201 || $code == 200 ]] || { echo "changes: POST /v1/shows answered $code" >&2; exit 1; }

    u0=$(metric_sum "$mport" store_consumed_read_units_total)
    read -r code changes_bytes < <(fetch changes "$base/v1/shows/changes" --get --data-urlencode "since=$since")
    [[ $code == 200 ]] || { echo "changes: GET /v1/shows/changes answered $code" >&2; exit 1; }
    u1=$(metric_sum "$mport" store_consumed_read_units_total)
    next=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["next"])' "$work/$store-changes.body")
    read -r code idle_bytes < <(fetch idle "$base/v1/shows/changes" --get --data-urlencode "since=$next")
    [[ $code == 200 ]] || { echo "changes: GET /v1/shows/changes (nothing new) answered $code" >&2; exit 1; }
    u2=$(metric_sum "$mport" store_consumed_read_units_total)
    read -r _ changes_gz < <(fetch changes-gz "$base/v1/shows/changes" -H 'Accept-Encoding: gzip' \
        --get --data-urlencode "since=$since")
    read -r _ relist_bytes < <(fetch relist "$base/v1/shows")
    read -r _ relist_gz < <(fetch relist-gz "$base/v1/shows" -H 'Accept-Encoding: gzip')
    stop_pids "$pid"

    python3 - "$work" "$store" "$n" "$list_bytes" "$changes_bytes" "$changes_gz" "$relist_bytes" \
        "$relist_gz" "$idle_bytes" "$u0" "$u1" "$u2" "$lists" <<'EOF' | tee -a "$work/results.jsonl"
import gzip, json, sys
work, store, n, listed, ch, ch_gz, re, re_gz, idle, u0, u1, u2, lists = sys.argv[1:14]
one = json.load(open(f"{work}/{store}-one.json"))["payload"][0]
changes = json.load(open(f"{work}/{store}-changes.body"))
idle_body = json.load(open(f"{work}/{store}-idle.body"))
want = [{"op": "put", "slug": one["slug"], "title": one["title"]}]
got = [{"op": c["op"], "slug": c.get("item", c).get("slug"), "title": c.get("item", {}).get("title")}
       for c in changes["changes"]]
assert got == want, f"{store}: changes {got}, expected {want}"
assert idle_body["changes"] == [] and idle_body["next"] == changes["next"], f"{store}: {idle_body}"
raw = open(f"{work}/{store}-relist-gz.body", "rb").read()
assert raw[:2] == b"\x1f\x8b", f"{store}: the gzip re-list is not gzip"
relisted = json.loads(gzip.decompress(raw))["response"]
assert any(s["slug"] == one["slug"] and s["title"] == one["title"] for s in relisted), store
ch, ch_gz, re, re_gz = int(ch), int(ch_gz), int(re), int(re_gz)
print(json.dumps(dict(store=store, shows=int(n), listed=len(relisted), list_bytes=int(listed),
    changes_bytes=ch, changes_gzip_bytes=ch_gz, relist_bytes=re, relist_gzip_bytes=re_gz,
    ratio_identity=round(re / ch), ratio_gzip=round(re_gz / ch_gz),
    ratio_gzip_relist_vs_identity_changes=round(re_gz / ch),
    changes_read_units=float(u1) - float(u0), idle_changes_read_units=float(u2) - float(u1),
    idle_bytes=int(idle), lists_until_settled=int(lists))))
EOF
done
