#!/usr/bin/env bash
# GETs through full refills, and the index reads of a task start (issue 24). Loopback
# only, bounded (about 15 minutes, most of it importing 100,000 shows into the emulator).
#
#   bench/through_refills.sh BINARY [BINARY…]
#
# For each release BINARY (e.g. main's and this branch's, to compare), on dynalite:
#   refills   100,000 shows, safety net 10 s (every check past it re-reads the whole
#             index), production TTL (1 s): after the first GET (the cold fill),
#             BENCH_REFILL_SECONDS (35) of paged GETs, open loop at BENCH_REFILL_RATE
#             (200) a second on 32 connections (bench/through_refills.py): p50, p90,
#             p99, max; then the same with the safety net off (the p99 without refills)
#   startup   10,000 shows: the first GET, then a GET every 100 ms for 5 s (five
#             checks at TTL 1 s): full index reads and read units the task made
# Shows: 400-byte descriptions, half eligible (as bench/readcost.sh). Prints one JSON line
# per row and binary; raw output in bench/out/refills-*/ (git-ignored).
#
# Cores (BENCH_REFILL_PIN, default 1 on a machine of 2 cores or more): the emulator is
# pinned to the last core, the service and the load client to the others (`taskset`). In
# production DynamoDB never runs on the task's cores; here, unpinned, the emulator's
# seconds of CPU per full read (it re-serves 100,000 items) land on the cores the service
# answers on, only in the rows with refills, so the with/without ratio would charge the
# emulator to the service. Pinned, both rows give the service and the client the same
# cores (on 2 cores: one, close to production's half vCPU), and what a refill costs them
# is the service's own work: the SDK parsing the pages, the snapshot build. Each row also prints the CPU seconds the service, the
# emulator and the client used in the window, and the load average, to tell the machine
# apart from the service. BENCH_REFILL_PIN=0 runs everything on every core.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh
(($# > 0)) || { sed -n "2,/^set -euo pipefail/{/^#/p}" "$0"; exit 2; }
secs=${BENCH_REFILL_SECONDS:-35}
rate=${BENCH_REFILL_RATE:-200}
work=bench/out/refills-$(date +%Y%m%d-%H%M%S)
mkdir -p "$work"
pids=()
trap 'stop_pids "${pids[@]}"' EXIT
export APP_ENV=local APP__AUTH__PUBLICURL=http://show-service.bench APP__LOG__FORMAT=json
export APP__LOG__LEVEL=info
unset RUST_LOG
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
metric_sum() { # PORT NAME [LABEL-FILTER]
    curl -sf "http://127.0.0.1:$1/metrics" | awk -v n="$2" -v f="${3:-}" '
        ($1 == n || index($1, n "{") == 1) && index($1, f) {s += $NF} END {printf "%.1f\n", s + 0}'
}

scripts/install-test-tools.sh >&2
start_dynalite "$work/dynalite.log"
pids+=("$dynalite_pid")
cores=$(nproc)
near=() client=(python3)
if [[ ${BENCH_REFILL_PIN:-$((cores >= 2))} == 1 ]]; then
    taskset -a -p -c "$((cores - 1))" "$dynalite_pid" >/dev/null
    near=(taskset -c "0-$((cores - 2))")
    client=("${near[@]}" python3)
fi
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system, every thread
ddb=(APP__STORE__KIND=dynamodb "APP__DYNAMODB__ENDPOINTOVERRIDE=http://127.0.0.1:$dynalite_port")

load() { # N BINARY: a dynalite table rf-N with N shows
    local n=$1 bin=$2
    mkdir -p "$work/d$n"
    python3 tools/gen-feed.py "$n" --description-bytes 400 --prefix "rf$n-" >"$work/feed-$n.json"
    env "${ddb[@]}" APP__DYNAMODB__SHOWSTABLE="rf-$n" APP__STORE__PATH="$work/d$n/shows.db" \
        "$bin" table create >>"$work/import.log" 2>&1
    env "${ddb[@]}" APP__DYNAMODB__SHOWSTABLE="rf-$n" APP__STORE__PATH="$work/d$n/shows.db" \
        "$bin" import "$work/feed-$n.json" >>"$work/import.log" 2>&1
}

# start NAME N BINARY [VAR=VALUE…]: sets port, mport, pid; log in $work/NAME.log.
start() {
    local name=$1 n=$2 bin=$3
    shift 3
    port=$(free_port) mport=$(free_port)
    env "${ddb[@]}" APP__DYNAMODB__SHOWSTABLE="rf-$n" APP__STORE__PATH="$work/d$n/shows.db" \
        APP__SERVER__PORT="$port" APP__METRICS__PORT="$mport" "$@" \
        ${near[@]+"${near[@]}"} "$bin" serve >"$work/$name.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 1 400); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/health" && break
        sleep 0.05
    done
    tok=$(APP__STORE__PATH="$work/d$n/shows.db" "$bin" token --scope shows.read)
}
stop() { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }

load 10000 "$1"
load 100000 "$1"

for bin in "$@"; do
    label=$(basename "$bin")
    # refills, then the same without them
    for net in 10 0; do
        start "refills-$label-$net" 100000 "$bin" APP__CACHE__SAFETYNETSECONDS="$net"
        first=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -H "Authorization: Bearer $tok" \
            "http://127.0.0.1:$port/v1/shows")
        s0=$(cpu_ticks "$pid") d0=$(cpu_ticks "$dynalite_pid") l0=$(cut -d' ' -f1 /proc/loadavg)
        "${client[@]}" bench/through_refills.py "$secs" "$rate" "$port" "$mport" "$tok" \
            >"$work/client.json"
        s1=$(cpu_ticks "$pid") d1=$(cpu_ticks "$dynalite_pid") l1=$(cut -d' ' -f1 /proc/loadavg)
        python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
hz = float(sys.argv[5])
r.update(row="refills", binary=sys.argv[2], shows=100000, safety_net_s=int(sys.argv[3]),
    first_get=sys.argv[4], pinned=sys.argv[6] == "1", load_average=sys.argv[7:9],
    cpu_s=dict(service=int(sys.argv[9]) / hz, emulator=int(sys.argv[10]) / hz,
        client=r.pop("client_cpu_s")))
print(json.dumps(r))' "$work/client.json" "$label" "$net" "$first" "$(getconf CLK_TCK)" \
            "$((${#near[@]} > 0))" "$l0" "$l1" "$((s1 - s0))" "$((d1 - d0))" |
            tee -a "$work/results.jsonl"
        stop
    done
    # the reads of a task start
    start "startup-$label" 10000 "$bin"
    curl -sf -o /dev/null -H "Authorization: Bearer $tok" "http://127.0.0.1:$port/v1/shows"
    for _ in $(seq 1 50); do
        curl -sf -o /dev/null -H "Authorization: Bearer $tok" "http://127.0.0.1:$port/v1/shows"
        sleep 0.1
    done
    python3 -c '
import json, sys
print(json.dumps(dict(row="startup", binary=sys.argv[1], shows=10000,
    full_reads=float(sys.argv[2]), read_units=float(sys.argv[3]), checks=float(sys.argv[4]))))' \
        "$label" "$(metric_sum "$mport" catalogue_refills_total 'kind="full"')" \
        "$(metric_sum "$mport" store_consumed_read_units_total)" \
        "$(metric_sum "$mport" catalogue_change_checks_total)" | tee -a "$work/results.jsonl"
    stop
done
