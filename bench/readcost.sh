# The read-cost rows (issue 12), sourced by bench/run.sh (alone: `bench/run.sh --only readcost`,
# or one row set of it: `--only paging`, `--only visible`).
# Uses run.sh's helpers ($bin, $work, record, start_service, free_port, stop_pid, …).
#
# Rows, every figure from the service's own counters (`store_consumed_read_units_total` on
# the Prometheus listener) or its `catalogue refilled` log lines, on dynalite's capacity
# accounting (the units DynamoDB bills):
#   readcost     read units per minute, no writes, steady GET load (1,000 and 10,000 shows)
#   refill       the refill after a write (10,000 and 100,000 shows): duration, items/s
#   first-fill   the first (cold) fill at 100,000 shows vs APP__SERVER__REQUESTTIMEOUTMS
#   paging       `?limit=1000&cursor=…` walk, ms per page, both stores, cache on and off,
#                10,000 and 100,000 shows side by side (bench/paging_walk.py)
#   rss          VmRSS / VmHWM with 100,000 shows after the rows above
#   visible      a write through one of three tasks on one table (production cache
#                settings), until every task lists it (bench/visible.py; 10,000 and
#                100,000 shows)
# Shows: 400-byte descriptions, half eligible (tools/gen-feed.py defaults but the size).
# Settings: BENCH_READCOST_SECONDS (60; smoke 5), BENCH_READCOST_SIZES ('1000 10000'),
# BENCH_MID (10000) and BENCH_BIG (100000; smoke 20000): the catalogues of the refill,
# paging, RSS and visible rows, BENCH_REFILLS (3: writes in the refill row),
# BENCH_PAGES (500, smoke 100: timed pages per catalogue with the cache; a third of that
# without), BENCH_VISIBLE_WRITES (10; smoke 3). rc_rows (set by run.sh's --only): the row
# sets to run, of `units refill paging visible` (all by default).

rc_secs=${BENCH_READCOST_SECONDS:-$( ((smoke)) && echo 5 || echo 60)}
rc_sizes=${BENCH_READCOST_SIZES:-1000 10000}
rc_big=${BENCH_BIG:-$( ((smoke)) && echo 20000 || echo 100000)}
rc_mid=${BENCH_MID:-10000}
rc_refills=${BENCH_REFILLS:-3}
rc_pages=${BENCH_PAGES:-$( ((smoke)) && echo 100 || echo 500)}
rc_writes=${BENCH_VISIBLE_WRITES:-$( ((smoke)) && echo 3 || echo 10)}
rc_rows=${rc_rows:-units refill paging visible}
rc_row() { [[ " $rc_rows " == *" $1 "* ]]; }

scripts/install-test-tools.sh >&2
start_dynalite "$work/rc-dynalite.log"
pid_rc_dynalite=$dynalite_pid
pids+=("$pid_rc_dynalite")
rc_ddb=(APP__STORE__KIND=dynamodb "APP__DYNAMODB__ENDPOINTOVERRIDE=http://127.0.0.1:$dynalite_port")

# The sum of a counter over its labels on the listener at PORT (0 when absent).
metric_sum() { # PORT NAME
    curl -sf "http://127.0.0.1:$1/metrics" | awk -v n="$2" '
        $1 == n || index($1, n "{") == 1 {s += $NF} END {printf "%.1f\n", s + 0}'
}

rc_data() { # N: feed, SQLite folder and dynalite table with N shows
    local n=$1
    [[ -d $work/rc$n ]] && return 0
    log "read cost: $n shows (400-byte descriptions, half eligible) into SQLite and dynalite"
    python3 tools/gen-feed.py "$n" --description-bytes 400 --prefix "rc$n-" >"$work/rc-feed-$n.json"
    mkdir -p "$work/rc$n"
    local t0 t1
    t0=$(date +%s.%N)
    APP__STORE__PATH="$work/rc$n/shows.db" "$bin" import "$work/rc-feed-$n.json" 2>>"$work/import.log"
    t1=$(date +%s.%N)
    env "${rc_ddb[@]}" APP__DYNAMODB__SHOWSTABLE="rc-$n" APP__STORE__PATH="$work/rc$n/shows.db" \
        "$bin" table create >>"$work/import.log" 2>&1
    env "${rc_ddb[@]}" APP__DYNAMODB__SHOWSTABLE="rc-$n" APP__STORE__PATH="$work/rc$n/shows.db" \
        "$bin" import "$work/rc-feed-$n.json" 2>>"$work/import.log"
    record "$(python3 -c 'import json,sys,time; print(json.dumps(dict(kind="rc_import", shows=int(sys.argv[1]),
        sqlite_s=float(sys.argv[3])-float(sys.argv[2]), dynamo_s=time.time()-float(sys.argv[3]))))' "$n" "$t0" "$t1")"
}

# start_rc NAME N STORE [VAR=VALUE…]: a service on N shows, metrics listener on; sets
# port_NAME, pid_NAME, mport_NAME.
start_rc() {
    local name=$1 n=$2 store=$3
    shift 3
    local mport extra=()
    mport=$(free_port)
    [[ $store == dynamodb ]] && extra=("${rc_ddb[@]}" APP__DYNAMODB__SHOWSTABLE="rc-$n")
    start_service "$name" "$work/rc$n" APP__METRICS__PORT="$mport" "${extra[@]}" "$@"
    printf -v "mport_$name" '%s' "$mport"
}

rc_token() { APP__STORE__PATH="$work/rc$1/shows.db" "$bin" token --scope shows.read,shows.write; }

# The large catalogue loads into the emulator beside the units rows: units do not depend on
# the CPU left, and the import takes minutes at 100,000 shows.
pid_rc_big=
if rc_row refill || rc_row paging || rc_row visible; then
    rc_data "$rc_big" &
    pid_rc_big=$!
    pids+=("$pid_rc_big")
fi

# --- read units per minute, no writes ---------------------------------------------------
rc_row units || rc_sizes=
for n in $rc_sizes; do
    rc_data "$n"
    start_rc rcget "$n" dynamodb
    tok=$(rc_token "$n") # after the start: the first start makes the issuer's key
    curl -sf -o /dev/null -H "Authorization: Bearer $tok" "http://127.0.0.1:$port_rcget/v1/shows"
    u0=$(metric_sum "$mport_rcget" store_consumed_read_units_total)
    c0=$(metric_sum "$mport_rcget" store_calls_total)
    f0=$(metric_sum "$mport_rcget" catalogue_refills_total)
    t0=$(date +%s.%N)
    wrk -t1 -c4 -d"${rc_secs}s" -H "Authorization: Bearer $tok" \
        "http://127.0.0.1:$port_rcget/v1/shows" >"$work/rc-wrk-$n.txt"
    t1=$(date +%s.%N)
    u1=$(metric_sum "$mport_rcget" store_consumed_read_units_total)
    c1=$(metric_sum "$mport_rcget" store_calls_total)
    f1=$(metric_sum "$mport_rcget" catalogue_refills_total)
    checks=$(curl -sf "http://127.0.0.1:$mport_rcget/metrics" | { grep '^catalogue_change_checks_total' || true; } | tr '\n' ' ')
    rps=$(awk '/^Requests\/sec/ {print $2}' "$work/rc-wrk-$n.txt")
    # The cold fill's units: what one refill (safety net or change) costs at this size.
    fill=$(grep -m 1 '"catalogue refilled"' "$work/rcget.log" || true)
    record "$(python3 - "$n" "$u0" "$u1" "$c0" "$c1" "$f0" "$f1" "$t0" "$t1" "$rps" "$fill" "$checks" <<'EOF'
import json, sys
n, u0, u1, c0, c1, f0, f1, t0, t1, rps = sys.argv[1:11]
fill = json.loads(sys.argv[11]) if sys.argv[11] else {}
fill = fill.get("fields", fill)
secs = float(t1) - float(t0)
print(json.dumps(dict(kind="readcost", shows=int(n), seconds=secs, rps=float(rps or 0),
    read_units=float(u1) - float(u0), units_per_min=(float(u1) - float(u0)) * 60 / secs,
    calls=float(c1) - float(c0), refills=float(f1) - float(f0),
    fill_read_units=fill.get("read_units"), fill_calls=fill.get("store_calls"),
    checks=sys.argv[12].strip())))
EOF
)"
    stop_pid "$pid_rcget"
done

# --- the large catalogue: first fill, refill after a write, RSS -------------------------
[[ -z $pid_rc_big ]] || wait "$pid_rc_big"
rc_fill_sizes=
if rc_row refill; then rc_fill_sizes="$rc_mid $rc_big"; fi
for n in $rc_fill_sizes; do
    rc_data "$n"
    start_rc rcfill "$n" dynamodb
    tok=$(rc_token "$n")
    # First (cold) fill: the first GET's wall time, against the request timeout.
    code=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -H "Authorization: Bearer $tok" \
        "http://127.0.0.1:$port_rcfill/v1/shows")
    hdr=(-H "Authorization: Bearer $tok")
    wu0=$(metric_sum "$mport_rcfill" store_consumed_write_units_total)
    for i in $(seq 1 "$rc_refills"); do
        python3 tools/gen-feed.py 1 --eligible-ratio 1 --prefix "rcw$i-" >"$work/rc-one.json"
        curl -sf -o /dev/null "${hdr[@]}" -H 'Content-Type: application/json' \
            --data-binary @"$work/rc-one.json" "http://127.0.0.1:$port_rcfill/v1/shows"
        curl -sf -o /dev/null "${hdr[@]}" "http://127.0.0.1:$port_rcfill/v1/shows"
    done
    wu1=$(metric_sum "$mport_rcfill" store_consumed_write_units_total)
    record "$(python3 - "$n" "$code" "$work/rcfill.log" "$(status_kb "$pid_rcfill" VmRSS)" \
        "$(status_kb "$pid_rcfill" VmHWM)" "$wu0" "$wu1" "$rc_refills" <<'EOF'
import json, statistics, sys
n, code, logf, rss, hwm, wu0, wu1, writes = sys.argv[1:9]
fills = []
for l in open(logf):
    if '"catalogue refilled"' in l:
        r = json.loads(l)
        fills.append(r.get("fields", r))
cold = [f for f in fills if f.get("reason") == "cold"]
warm = [f for f in fills if f.get("reason") != "cold" and f.get("kind") != "delta"]
delta = [f for f in fills if f.get("kind") == "delta"]
med = lambda k, fs: statistics.median(float(f[k]) for f in fs) if fs else None
status, secs = code.split()
print(json.dumps(dict(kind="refill", store="dynamodb (dynalite)", shows=int(n),
    first_status=int(status), first_get_s=float(secs),
    cold_ms=med("duration_ms", cold), cold_read_units=med("read_units", cold),
    refill_ms=med("duration_ms", warm), refill_runs=[f["duration_ms"] for f in warm],
    refill_reasons=sorted({f.get("reason") for f in warm}),
    items=med("items", warm), read_units=med("read_units", warm), calls=med("store_calls", warm),
    delta_ms=med("duration_ms", delta), delta_runs=[f["duration_ms"] for f in delta],
    rss_kb=int(rss), hwm_kb=int(hwm),
    write_units_per_post=(float(wu1) - float(wu0)) / int(writes))))
EOF
)"
    stop_pid "$pid_rcfill"
done

# --- paged walk -------------------------------------------------------------------------
# Both catalogues at once, walked in turns page by page (bench/paging_walk.py: steady
# state first, then round robin), so their ratio is measured side by side.
if rc_row paging; then
    rc_data "$rc_mid"
    for store in sqlite dynamodb; do
        for ttl in 1000 0; do
            log "read cost: paged walk, $store, TTL $ttl ms, $rc_mid and $rc_big shows side by side"
            specs=()
            for n in "$rc_mid" "$rc_big"; do
                start_rc "rcpage$n" "$n" "$store" APP__CACHE__TTLMS="$ttl"
                p=port_rcpage$n m=mport_rcpage$n i=pid_rcpage$n
                specs+=("$n=${!p},${!m},${!i},$ttl,$(rc_token "$n")")
            done
            # Without the cache every page is a store query (tens of ms on the emulator).
            pages=$rc_pages
            ((ttl > 0)) || pages=$((rc_pages / 3))
            python3 bench/paging_walk.py "$pages" "${specs[@]}" >"$work/rc-paging-$store-$ttl.jsonl"
            while IFS= read -r line; do
                record "$(python3 -c 'import json, sys
r = json.loads(sys.argv[1])
r.update(kind="paging", store=sys.argv[2], ttl_ms=int(sys.argv[3]), shows=int(r.pop("label")))
print(json.dumps(r))' "$line" "$store" "$ttl")"
            done <"$work/rc-paging-$store-$ttl.jsonl"
            for n in "$rc_mid" "$rc_big"; do
                i=pid_rcpage$n
                stop_pid "${!i}"
            done
        done
    done
fi

# --- a write through any task, listed by every task -------------------------------------
# Three tasks on one table with the production cache settings (no APP__CACHE__* set), one
# data folder (one issuer key, so one token for all three).
rc_vis_sizes=
if rc_row visible; then rc_vis_sizes="$rc_mid $rc_big"; fi
for n in $rc_vis_sizes; do
    rc_data "$n"
    log "read cost: a write through one of three tasks at $n shows, until all three list it ($rc_writes writes)"
    ports=()
    for t in 1 2 3; do
        start_rc "rcvis$t" "$n" dynamodb
        p=port_rcvis$t m=mport_rcvis$t
        ports+=("${!p},${!m}")
    done
    tok=$(rc_token "$n")
    record "$(python3 bench/visible.py "$rc_writes" "$tok" "${ports[@]}" | python3 -c 'import json, sys
r = json.load(sys.stdin)
r.update(kind="visible", store="dynamodb (dynalite)", shows=int(sys.argv[1]))
print(json.dumps(r))' "$n")"
    for t in 1 2 3; do
        i=pid_rcvis$t
        stop_pid "${!i}"
    done
done
stop_pid "$pid_rc_dynalite"
