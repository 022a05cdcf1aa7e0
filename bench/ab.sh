#!/usr/bin/env bash
# A/B of two service binaries on the same data, interleaved (A, B, A, B…), for judging one
# code change on a noisy machine: authenticated GET /v1/shows, requests/s and server CPU µs
# per request, with the ratio B/A of each round.
#
#   bench/ab.sh OLD_BINARY NEW_BINARY [SHOWS (100)] [ROUNDS (4)] [SECONDS (6)] [-- VAR=VALUE…]
#
# Variables after `--` go to both servers (e.g. APP__LOG__LEVEL=off; APP__METRICS__PORT=free
# gives each its own free metrics port); AB_HEADER adds a
# request header (e.g. AB_HEADER='Accept-Encoding: gzip'). Output in bench/out/ab-*/; a
# summary on stdout.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
a=$1 b=$2
shift 2
shows=100 rounds=4 secs=6
for v in shows rounds secs; do
    [[ $# -gt 0 && $1 != -- ]] || break
    printf -v "$v" '%s' "$1"
    shift
done
[[ ${1:-} == -- ]] && shift
extra=("$@")

work=$PWD/bench/out/ab-$(date +%Y%m%d-%H%M%S)
mkdir -p "$work/data"
export APP_ENV=local APP__AUTH__PUBLICURL=http://show-service.bench APP__LOG__FORMAT=json
export APP__LOG__LEVEL=info APP__STORE__PATH=$work/data/shows.db
unset RUST_LOG
python3 tools/gen-feed.py "$shows" --eligible-ratio 1 --prefix "ab-" >"$work/feed.json"
"$a" import "$work/feed.json" 2>/dev/null

pids=()
trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
start() { # NAME BINARY
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # APP__METRICS__PORT=free: each server gets a free port of its own for its metrics.
    local vars=("${extra[@]/#APP__METRICS__PORT=free/APP__METRICS__PORT=$(free_port)}")
    env APP__SERVER__PORT="$port" "${vars[@]}" "$2" serve >"$work/$1.log" 2>&1 &
    pids+=($!)
    printf -v "pid_$1" '%s' "$!"
    printf -v "port_$1" '%s' "$port"
    for _ in $(seq 1 200); do curl -sf -o /dev/null "http://127.0.0.1:$port/health" && return; sleep 0.05; done
    echo "ab: $1 did not start" >&2
    exit 1
}
# A running service holds its SQLite store exclusively: B serves a copy of the same data.
cp -r "$work/data" "$work/data-b"
start a "$a"
# `token` never makes a signing key: A made one on its first start. B gets a copy of it, so
# one token (same key, same fixed issuer URL) is accepted by both.
token=$("$a" token --scope shows.read,shows.write 2>/dev/null)
cp "$work/data/local-issuer.pk8" "$work/data-b/"
APP__STORE__PATH=$work/data-b/shows.db start b "$b"
hdr=(-H "Authorization: Bearer $token")
[[ -n ${AB_HEADER:-} ]] && hdr+=(-H "$AB_HEADER")
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
run() { # NAME -> "rps cpu_us"
    local pid_var=pid_$1 port_var=port_$1
    local pid=${!pid_var} port=${!port_var} t0 t1 out rps
    wrk -t2 -c64 -d1s "${hdr[@]}" "http://127.0.0.1:$port/v1/shows" >/dev/null
    t0=$(ticks "$pid")
    out=$(wrk -t2 -c64 -d"${secs}s" --latency "${hdr[@]}" "http://127.0.0.1:$port/v1/shows")
    t1=$(ticks "$pid")
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {v = $2; if (v ~ /us$/) v = v / 1000; else if (v ~ /ms$/) v = v + 0; else v = v * 1000; print v}' <<<"$out")
    awk -v r="$rps" -v d="$((t1 - t0))" -v hz="$hz" -v s="$secs" -v p="$p99" \
        'BEGIN {printf "%.0f %.2f %.2f\n", r, d * 1e6 / hz / (r * s), p}'
}
printf 'round  A req/s  B req/s  B/A   A cpu-us  B cpu-us  B/A   A p99 ms  B p99 ms\n'
for r in $(seq 1 "$rounds"); do
    read -r ra ca pa < <(run a)
    read -r rb cb pb < <(run b)
    awk -v r="$r" -v ra="$ra" -v rb="$rb" -v ca="$ca" -v cb="$cb" -v pa="$pa" -v pb="$pb" \
        'BEGIN {printf "%5d %8d %8d  %.3f %8.2f %9.2f  %.3f %8.2f %9.2f\n", r, ra, rb, rb/ra, ca, cb, cb/ca, pa, pb}'
done | tee "$work/summary.txt"
awk '{n++; q+=$4; c+=$7; pa+=$8; pb+=$9} END {printf "mean B/A: req/s %.3f, CPU per request %.3f; mean p99 %.2f -> %.2f ms (%d rounds)\n", q/n, c/n, pa/n, pb/n, n}' \
    "$work/summary.txt"
