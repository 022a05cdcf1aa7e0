#!/usr/bin/env bash
# The benchmark suite: one command, loopback only, bounded (about 20 minutes after the
# release build, DynamoDB emulator rows included; --smoke: a few minutes). Writes
# docs/benchmarks.md (--smoke: bench/out/benchmarks-smoke.md) from this one run's figures.
#
#   bench/run.sh                full run (wrk 10 s per row, 2 interleaved rounds)
#   bench/run.sh --smoke        a few seconds per row: checks the script, not the service
#   bench/run.sh --no-dynamo    without the DynamoDB emulator rows
#   bench/run.sh --only readcost   only the read-cost rows (bench/readcost.sh, about 10
#                               minutes with 100,000 shows); replaces their section of
#                               docs/benchmarks.md (--smoke: bench/out/benchmarks-smoke.md)
#   bench/run.sh --only paging  only the paged-walk rows of it (10,000 and 100,000 shows
#                               side by side, both stores; a few minutes, most of it the
#                               import), replacing just their block of that section
#   bench/run.sh --only refill  only the first-fill and refill-after-a-write rows, likewise
#   bench/run.sh --only visible only the "a write is listed by every task" rows (three
#                               tasks on one emulator table, at 10,000 and at 100,000
#                               shows; a few minutes, most of it the imports), likewise
#
# What it does: installs wrk and hyperfine from Debian when missing; builds the release
# binary and the bench programs once (bench/ceiling.rs, bench/tools.rs); makes the data
# (tools/gen-feed.py, imported with `show-service import`); starts every server on a free
# loopback port (the POST rows' servers with their metrics listener on too: the store calls
# per feed are the service's own `store_calls_total`); measures; stops what it started;
# renders the Markdown (bench/report.py).
#
# Every figure that depends on the machine is also given as a ratio to the ceiling measured
# in the same run, interleaved (ceiling, service, ceiling, service…), because the machine
# is shared and its load changes. Raw output stays in bench/out/run-*/ (git-ignored).
#
# Settings (environment): BENCH_DURATION (10s), BENCH_ROUNDS (2), BENCH_CONNECTIONS (64),
# BENCH_THREADS (2), BENCH_STARTUP_RUNS (30), BENCH_POST_RUNS (10), BENCH_RTT_MS ('1 2': the
# network round trips modelled between the service and the emulator for the POST rows),
# BENCH_BIN (a release binary to measure instead of building one; with --only only),
# and those of bench/readcost.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
source scripts/lib.sh

smoke=0
dynamo=0
only=
[[ -d src/store/dynamodb ]] && dynamo=1
for a in "$@"; do
    case $a in
        --smoke) smoke=1 ;;
        --no-dynamo) dynamo=0 ;;
        --only) only=next ;;
        readcost | paging | visible | refill)
            [[ ${only:-} == next ]] || { echo "unknown argument $a" >&2; exit 2; }
            only=$a ;;
        -h | --help) sed -n "2,/^set -euo pipefail/{/^#/p}" "$0"; exit 0 ;;
        *) echo "unknown argument $a" >&2; exit 2 ;;
    esac
done
[[ $only == next ]] && { echo "--only takes a row set: readcost, refill, paging or visible" >&2; exit 2; }
# The read-cost row sets bench/readcost.sh runs (all of them for --only readcost).
case $only in
    paging | visible | refill) rc_rows=$only only=readcost ;;
    *) rc_rows= ;;
esac

if ((smoke)); then
    duration=${BENCH_DURATION:-2s} warmup=1s rounds=${BENCH_ROUNDS:-1}
    startup_runs=${BENCH_STARTUP_RUNS:-5} post_runs=${BENCH_POST_RUNS:-3}
    rtts=${BENCH_RTT_MS:-1}
    report=bench/out/benchmarks-smoke.md
else
    duration=${BENCH_DURATION:-10s} warmup=2s rounds=${BENCH_ROUNDS:-2}
    startup_runs=${BENCH_STARTUP_RUNS:-30} post_runs=${BENCH_POST_RUNS:-10}
    rtts=${BENCH_RTT_MS:-1 2}
    report=docs/benchmarks.md
fi
conns=${BENCH_CONNECTIONS:-64}
threads=${BENCH_THREADS:-2}

log() { printf '\n== %s\n' "$*" >&2; }

# --- tools -----------------------------------------------------------------------------
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
    log "installing ${need[*]} from Debian"
    if [[ $(id -u) != 0 ]]; then
        echo "bench: need ${need[*]} (apt-get install -y ${need[*]}; run as root to let this script do it)" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v python3 >/dev/null || { echo "bench: python3 is required" >&2; exit 1; }

# --- build -----------------------------------------------------------------------------
if [[ $only == readcost ]]; then
    target=$(cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    if [[ -z ${BENCH_BIN:-} ]]; then
        log "building the release binary"
        cargo build --release --locked --bin show-service
    fi
    bin=${BENCH_BIN:-$target/release/show-service}
else
    log "building the release binary and the bench programs"
    # Two invocations: built together, the examples' dev-dependencies would unify features into
    # the service binary, and the binary measured (and its size) would not be the one shipped.
    cargo build --release --locked --bin show-service
    cargo build --release --locked --example ceiling --example bench_tools
    target=$(cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    bin=$target/release/show-service
    ceiling=$target/release/examples/ceiling
    tools=$target/release/examples/bench_tools
fi

work=$root/bench/out/run-$(date +%Y%m%d-%H%M%S)
mkdir -p "$work"
results=$work/results.jsonl
: >"$results"
record() { printf '%s\n' "$1" >>"$results"; }

pids=()
trap 'stop_pids "${pids[@]}"' EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_answering() { # PORT: until something answers HTTP there (any status), at most 10 s
    local i
    for i in $(seq 1 200); do
        curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
        sleep 0.05
    done
}

wait_healthy() { # PORT PID
    local i
    for i in $(seq 1 400); do
        curl -sf -o /dev/null "http://127.0.0.1:$1/health" && return 0
        kill -0 "$2" 2>/dev/null || { echo "bench: server $2 died" >&2; return 1; }
        sleep 0.05
    done
    echo "bench: server on $1 not healthy" >&2
    return 1
}

# Every server of the run: local issuer with a fixed public URL, so a token minted for a
# data folder is valid whatever the port; production log settings unless a row says not.
export APP_ENV=local APP__AUTH__PUBLICURL=http://show-service.bench APP__LOG__FORMAT=json
export APP__LOG__LEVEL=info
unset RUST_LOG

# start_service NAME DATADIR [VAR=VALUE…]: sets port_NAME and pid_NAME; stdout to NAME.log.
start_service() {
    local name=$1 dir=$2
    shift 2
    local port
    port=$(free_port)
    env APP__SERVER__PORT="$port" APP__STORE__PATH="$dir/shows.db" "$@" \
        "$bin" serve >"$work/$name.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    wait_healthy "$port" "$pid"
    printf -v "port_$name" '%s' "$port"
    printf -v "pid_$name" '%s' "$pid"
}

start_ceiling() { # NAME BODYFILE [ceiling args…]
    local name=$1 body=$2
    shift 2
    local port
    port=$(free_port)
    "$ceiling" --port "$port" --body "$body" "$@" &
    local pid=$!
    pids+=("$pid")
    wait_answering "$port"
    printf -v "port_$name" '%s' "$port"
    printf -v "pid_$name" '%s' "$pid"
}

# `--header` arguments for the ceiling: the response headers the service sent (in FILE, as
# `curl -D` wrote them), but those the ceiling sets itself (content-type/-encoding) or hyper
# writes (date, content-length). The load generator then reads the same bytes from both.
same_headers() { # FILE -> sets the array hdr
    hdr=()
    local line
    while IFS= read -r line; do
        line=${line%$'\r'}
        case ${line,,} in
            http/* | date:* | content-length:* | content-type:* | content-encoding:* | "") ;;
            *) hdr+=(--header "$line") ;;
        esac
    done <"$1"
}

stop_pid() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

cpu_ticks() { # PID -> utime+stime in clock ticks
    awk '{print $14 + $15}' "/proc/$1/stat"
}
status_kb() { # PID FIELD -> kB
    awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"
}
clk_tck=$(getconf CLK_TCK)

# wrk_row LABEL ROUND PID PORT PATH [wrk args…]: warm-up, then a measured wrk run; records
# requests/s, latency percentiles, server CPU per request and errors.
wrk_row() {
    local label=$1 round=$2 pid=$3 port=$4 path=$5
    shift 5
    wrk -t"$threads" -c"$conns" -d"$warmup" "$@" "http://127.0.0.1:$port$path" >/dev/null
    local t0 t1 out
    t0=$(cpu_ticks "$pid")
    out=$(wrk -t"$threads" -c"$conns" -d"$duration" --latency -s "$work/report.lua" "$@" \
        "http://127.0.0.1:$port$path")
    t1=$(cpu_ticks "$pid")
    printf '%s\n' "$out" >"$work/wrk-$label-$round.txt"
    local line
    line=$(printf '%s\n' "$out" | sed -n 's/^BENCH //p')
    record "$(python3 -c '
import json, sys
r = json.loads(sys.argv[1])
label, rnd, dt, hz = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
secs = r["duration_us"] / 1e6
r.update(kind="wrk", label=label, round=rnd, rps=r["requests"] / secs,
         cpu_us_per_req=dt * 1e6 / hz / max(r["requests"], 1), cpu_ticks=dt)
print(json.dumps(r))' "$line" "$label" "$round" "$((t1 - t0))" "$clk_tck")"
    printf '  %-22s round %s: %s\n' "$label" "$round" \
        "$(printf '%s\n' "$out" | grep -E '^Requests/sec' || true)" >&2
}

# Store calls per feed, from the service's own counters: `store_calls_total` on its
# metrics listener (APP__METRICS__PORT), scraped before every POST run (hyperfine's
# --prepare) and once after the last, so the difference between two scrapes is one feed's.
scrape_cmd() { # MPORT FILE -> the shell command that appends one scrape to FILE
    printf "curl -sf http://127.0.0.1:%s/metrics >>'%s' && echo '# end of scrape' >>'%s'" "$1" "$2" "$2"
}
feed_calls() { # FILE -> {"write_calls": [per feed], "calls": [{operation: calls} per feed]}
    python3 - "$1" <<'EOF'
import json, re, sys
scrapes, now = [], {}
for line in open(sys.argv[1]):
    if line.startswith("# end of scrape"):
        scrapes.append(now)
        now = {}
    elif m := re.match(r'store_calls_total\{(.*)\} (\S+)$', line.strip()):
        op = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1))).get("operation", "?")
        now[op] = now.get(op, 0) + float(m.group(2))
feeds = [{op: round(b.get(op, 0) - a.get(op, 0)) for op in sorted(set(a) | set(b))
          if b.get(op, 0) != a.get(op, 0)} for a, b in zip(scrapes, scrapes[1:])]
# The calls that write shows: SQLite's transactions, DynamoDB's transactions (before
# ownership, batches) and deletes.
writes = ("upsert", "delete", "TransactWriteItems", "BatchWriteItem", "DeleteItem")
print(json.dumps(dict(write_calls=[sum(f.get(op, 0) for op in writes) for f in feeds], calls=feeds)))
EOF
}

cat bench/wrk/report.lua >"$work/report.lua"
cat bench/wrk/token.lua bench/wrk/report.lua >"$work/token.lua"

# --- machine ---------------------------------------------------------------------------
record "$(python3 - "$bin" <<'EOF'
import json, os, platform, subprocess, sys, datetime
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True).stdout.strip()
print(json.dumps(dict(kind="machine", nproc=os.cpu_count(), cpu=cpu, mem_gib=round(int(mem) / 2**20, 1),
    kernel=platform.release(), load_start=os.getloadavg(),
    date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    commit=git("rev-parse", "--short", "HEAD"), dirty=bool(git("status", "--porcelain", "--", "src", "bench", "Cargo.toml")),
    binary_bytes=os.path.getsize(sys.argv[1]),
    wrk=subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0],
    hyperfine=subprocess.run(["hyperfine", "--version"], capture_output=True, text=True).stdout.strip())))
EOF
)"
record "$(printf '{"kind":"settings","duration":"%s","warmup":"%s","rounds":%s,"connections":%s,"threads":%s,"smoke":%s}' \
    "$duration" "$warmup" "$rounds" "$conns" "$threads" "$smoke")"

if [[ $only == readcost ]]; then
    source bench/readcost.sh
    record "$(python3 -c 'import json,os; print(json.dumps(dict(kind="end", load_end=os.getloadavg())))')"
    mkdir -p "$(dirname "$report")"
    [[ -f $report ]] || : >"$report"
    python3 bench/report_readcost.py "$results" --splice "$report"
    log "replaced the read-cost rows (${rc_rows:-all of them}) in $report (raw figures: $work)"
    exit 0
fi

# --- data ------------------------------------------------------------------------------
log "data: 100 and 10,000 eligible shows (tools/gen-feed.py, show-service import)"
for n in 100 10000; do
    python3 tools/gen-feed.py "$n" --eligible-ratio 1 --prefix "b$n-" >"$work/feed-$n.json"
    mkdir -p "$work/d$n"
    APP__STORE__PATH="$work/d$n/shows.db" "$bin" import "$work/feed-$n.json" 2>>"$work/import.log"
done
python3 tools/gen-feed.py 1000 --prefix post- >"$work/feed-post-1000.json"

token_for() { # DATADIR
    APP__STORE__PATH="$1/shows.db" "$bin" token --scope shows.read,shows.write
}
# A running service holds its SQLite store exclusively: the servers that run beside s100
# (every request line to a file or /dev/null, log off) each serve a copy of d100.
for v in all null off; do cp -r "$work/d100" "$work/d100-$v"; done

# --- GET rows --------------------------------------------------------------------------
log "GET /v1/shows: service (JSON request log to a file, as in production) and ceilings"
start_service s100 "$work/d100"
start_service s10k "$work/d10000"
# `token` never makes a signing key: each server made its own on its first start. The
# servers beside s100 get a copy of s100's, so tok100 is accepted by all three.
tok100=$(token_for "$work/d100")
tok10k=$(token_for "$work/d10000")
for v in all null off; do cp "$work/d100/local-issuer.pk8" "$work/d100-$v/"; done
record "$(printf '{"kind":"rss","label":"idle","shows":100,"rss_kb":%s}' "$(status_kb "$pid_s100" VmRSS)")"
record "$(printf '{"kind":"rss","label":"idle","shows":10000,"rss_kb":%s}' "$(status_kb "$pid_s10k" VmRSS)")"

auth100=("-H" "Authorization: Bearer $tok100")
auth10k=("-H" "Authorization: Bearer $tok10k")
curl -sf -D "$work/h100.txt" -o "$work/body-100.json" "${auth100[@]}" "http://127.0.0.1:$port_s100/v1/shows"
curl -sf -D "$work/h10k.txt" -o "$work/body-10000.json" "${auth10k[@]}" "http://127.0.0.1:$port_s10k/v1/shows"
curl -sf -D "$work/h10k-gz.txt" -o "$work/body-10000.json.gz" -H 'Accept-Encoding: gzip' "${auth10k[@]}" \
    "http://127.0.0.1:$port_s10k/v1/shows"
grep -qi '^content-encoding: gzip' "$work/h10k-gz.txt" || { echo "bench: no gzip variant" >&2; exit 1; }
etag=$(awk 'tolower($1) == "etag:" {print $2}' "$work/h10k.txt" | tr -d '\r')
code=$(curl -s -D "$work/h304.txt" -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "${auth10k[@]}" "http://127.0.0.1:$port_s10k/v1/shows")
[[ $code == 304 ]] || { echo "bench: If-None-Match gave $code, not 304" >&2; exit 1; }
python3 - "$work" <<'EOF' >>"$results"
import json, sys
w = sys.argv[1]
for n in (100, 10000):
    body = json.load(open(f"{w}/body-{n}.json"))
    assert len(body["response"]) == n, (n, len(body["response"]))
print(json.dumps(dict(kind="bodies", json_100=len(open(f"{w}/body-100.json", "rb").read()),
    json_10000=len(open(f"{w}/body-10000.json", "rb").read()),
    gzip_10000=len(open(f"{w}/body-10000.json.gz", "rb").read()))))
EOF

same_headers "$work/h100.txt"; start_ceiling c100 "$work/body-100.json" "${hdr[@]}"
same_headers "$work/h10k.txt"; start_ceiling c10k "$work/body-10000.json" "${hdr[@]}"
same_headers "$work/h10k-gz.txt"
start_ceiling c10kgz "$work/body-10000.json.gz" --content-encoding gzip "${hdr[@]}"
: >"$work/empty"
same_headers "$work/h304.txt"; start_ceiling c304 "$work/empty" --status 304 "${hdr[@]}"

for r in $(seq 1 "$rounds"); do
    wrk_row ceiling-100 "$r" "$pid_c100" "$port_c100" /v1/shows "${auth100[@]}"
    wrk_row get-100 "$r" "$pid_s100" "$port_s100" /v1/shows "${auth100[@]}"
    wrk_row ceiling-10k "$r" "$pid_c10k" "$port_c10k" /v1/shows "${auth10k[@]}"
    wrk_row get-10k "$r" "$pid_s10k" "$port_s10k" /v1/shows "${auth10k[@]}"
    wrk_row ceiling-10k-gzip "$r" "$pid_c10kgz" "$port_c10kgz" /v1/shows "${auth10k[@]}" -H 'Accept-Encoding: gzip'
    wrk_row get-10k-gzip "$r" "$pid_s10k" "$port_s10k" /v1/shows "${auth10k[@]}" -H 'Accept-Encoding: gzip'
    wrk_row ceiling-304 "$r" "$pid_c304" "$port_c304" /v1/shows "${auth10k[@]}" -H "If-None-Match: $etag"
    wrk_row get-10k-304 "$r" "$pid_s10k" "$port_s10k" /v1/shows "${auth10k[@]}" -H "If-None-Match: $etag"
done
record "$(printf '{"kind":"rss","label":"peak","shows":10000,"hwm_kb":%s,"rss_kb":%s}' \
    "$(status_kb "$pid_s10k" VmHWM)" "$(status_kb "$pid_s10k" VmRSS)")"
record "$(printf '{"kind":"rss","label":"peak","shows":100,"hwm_kb":%s,"rss_kb":%s}' \
    "$(status_kb "$pid_s100" VmHWM)" "$(status_kb "$pid_s100" VmRSS)")"
stop_pid "$pid_s10k"
stop_pid "$pid_c10k"; stop_pid "$pid_c10kgz"; stop_pid "$pid_c304"

# Production logs a successful read at DEBUG (src/http/middleware.rs, log_line); these
# rows log every request's line (`request=debug`) to a file and to /dev/null, or nothing.
log "GET /v1/shows, 100 shows: every request line to a file, to /dev/null; log off"
every=APP__LOG__LEVEL=info,request=debug
start_service s100all "$work/d100-all" "$every"
port=$(free_port)
env APP__SERVER__PORT="$port" APP__STORE__PATH="$work/d100-null/shows.db" "$every" "$bin" serve >/dev/null 2>&1 &
pid_null=$!; pids+=("$pid_null"); wait_healthy "$port" "$pid_null"; port_null=$port
start_service s100off "$work/d100-off" APP__LOG__LEVEL=off
for r in $(seq 1 "$rounds"); do
    wrk_row ceiling-100-b "$r" "$pid_c100" "$port_c100" /v1/shows "${auth100[@]}"
    wrk_row get-100-log-prod "$r" "$pid_s100" "$port_s100" /v1/shows "${auth100[@]}"
    wrk_row get-100-log-file "$r" "$pid_s100all" "$port_s100all" /v1/shows "${auth100[@]}"
    wrk_row get-100-log-null "$r" "$pid_null" "$port_null" /v1/shows "${auth100[@]}"
    wrk_row get-100-log-off "$r" "$pid_s100off" "$port_s100off" /v1/shows "${auth100[@]}"
done
stop_pid "$pid_s100"; stop_pid "$pid_s100all"; stop_pid "$pid_null"; stop_pid "$pid_s100off"; stop_pid "$pid_c100"
record "$(printf '{"kind":"log","lines":%s,"bytes":%s,"prod_lines":%s}' "$(wc -l <"$work/s100all.log")" \
    "$(stat -c %s "$work/s100all.log")" "$(wc -l <"$work/s100.log")")"
head -n 1000 "$work/s100all.log" >"$work/s100all.sample.log" && rm -f "$work/s100all.log" # keep a sample

# --- POST ------------------------------------------------------------------------------
log "POST /v1/shows, 1000 shows (hyperfine; curl's own cost measured alongside)"
mkdir -p "$work/dpost"
mport=$(free_port)
start_service spost "$work/dpost" APP__METRICS__PORT="$mport"
tokpost=$(token_for "$work/dpost")
scrape=$(scrape_cmd "$mport" "$work/spost.metrics")
hyperfine --style basic --warmup 1 --runs "$post_runs" --export-json "$work/post.json" \
    --prepare "$scrape" -n post-1000 "curl -sf -o /dev/null -H 'Authorization: Bearer $tokpost' -H 'Content-Type: application/json' --data-binary @$work/feed-post-1000.json http://127.0.0.1:$port_spost/v1/shows" \
    --prepare true -n curl-health "curl -sf -o /dev/null http://127.0.0.1:$port_spost/health" >&2
eval "$scrape"
stop_pid "$pid_spost"
feed_calls "$work/spost.metrics" >"$work/spost-calls.json"
python3 - "$work" <<'EOF' >>"$results"
import json, sys
w = sys.argv[1]
runs = {r["command"]: r for r in json.load(open(f"{w}/post.json"))["results"]}
calls = json.load(open(f"{w}/spost-calls.json"))
print(json.dumps(dict(kind="post", store="sqlite", shows=1000,
    median_ms=runs["post-1000"]["median"] * 1e3, mean_ms=runs["post-1000"]["mean"] * 1e3,
    stddev_ms=(runs["post-1000"]["stddev"] or 0) * 1e3, runs=len(runs["post-1000"]["times"]),
    curl_median_ms=runs["curl-health"]["median"] * 1e3,
    write_calls=calls["write_calls"], calls=calls["calls"])))
EOF

# --- tokens ----------------------------------------------------------------------------
log "token issuance (rate limit raised for the run) and verification"
start_service stok "$work/d100" APP__AUTH__TOKENRATEPERSECOND=100000 APP__AUTH__TOKENBURST=100000
wrk_row token-issue 1 "$pid_stok" "$port_stok" /oauth/token -s "$work/token.lua"
stop_pid "$pid_stok"
record "$("$tools" auth-cost --n 2000 | python3 -c 'import json,sys; r=json.load(sys.stdin); r["kind"]="auth"; print(json.dumps(r))')"
record "$("$tools" fill-cost --db "$work/d10000/shows.db" --runs 10 | python3 -c 'import json,sys; r=json.load(sys.stdin); r["kind"]="fill"; print(json.dumps(r))')"

# --- start-up --------------------------------------------------------------------------
log "exec to healthy (bench_tools startup: spawn, poll /health every 200 µs)"
port=$(free_port)
out=$(APP__SERVER__PORT=$port APP__STORE__PATH="$work/d10000/shows.db" \
    "$tools" startup --port "$port" --runs "$startup_runs" -- "$bin" serve)
record "$(printf '%s' "$out" | python3 -c 'import json,sys; r=json.load(sys.stdin); r.update(kind="startup", label="existing data"); print(json.dumps(r))')"
# First start in an empty folder: creates the database and generates the issuer's RSA key.
mkdir -p "$work/fresh"
fresh_runs=$((startup_runs < 5 ? startup_runs : 5))
first=()
for i in $(seq 1 "$fresh_runs"); do
    port=$(free_port)
    first+=("$(APP__SERVER__PORT=$port APP__STORE__PATH="$work/fresh/$i/shows.db" \
        "$tools" startup --port "$port" --runs 1 -- "$bin" serve)")
done
record "$(printf '%s\n' "${first[@]}" | python3 -c '
import json, sys, statistics
rs = [json.loads(l) for l in sys.stdin if l.strip()]
ms = sorted(r["median_ms"] for r in rs)
print(json.dumps(dict(kind="startup", label="first start (new key)", runs=len(ms),
    median_ms=statistics.median(ms), min_ms=ms[0], max_ms=ms[-1], p10_ms=ms[0], p90_ms=ms[-1],
    probe_us=rs[0]["probe_us"], poll_interval_us=rs[0]["poll_interval_us"])))')"

# --- DynamoDB emulator ----------------------------------------------------------------
if ((dynamo)); then
    log "DynamoDB emulator (dynalite, scripts/install-test-tools.sh): GET, POST, PutItem baseline"
    scripts/install-test-tools.sh >&2
    start_dynalite "$work/dynalite.log"
    pid_dynalite=$dynalite_pid dport=$dynalite_port
    pids+=("$pid_dynalite")
    ddb=(APP__STORE__KIND=dynamodb "APP__DYNAMODB__ENDPOINTOVERRIDE=http://127.0.0.1:$dport")
    for n in 100 10000; do
        env "${ddb[@]}" APP__DYNAMODB__SHOWSTABLE="bench-$n" APP__STORE__PATH="$work/d$n/shows.db" \
            "$bin" table create >>"$work/import.log" 2>&1
        env "${ddb[@]}" APP__DYNAMODB__SHOWSTABLE="bench-$n" APP__STORE__PATH="$work/d$n/shows.db" \
            "$bin" import "$work/feed-$n.json" 2>>"$work/import.log"
    done
    start_service sd100 "$work/d100" "${ddb[@]}" APP__DYNAMODB__SHOWSTABLE=bench-100
    start_service sd10k "$work/d10000" "${ddb[@]}" APP__DYNAMODB__SHOWSTABLE=bench-10000
    record "$(printf '{"kind":"rss","label":"idle-dynamo","shows":100,"rss_kb":%s}' "$(status_kb "$pid_sd100" VmRSS)")"
    curl -sf -D "$work/hd100.txt" -o "$work/body-100-dynamo.json" "${auth100[@]}" "http://127.0.0.1:$port_sd100/v1/shows"
    curl -sf -D "$work/hd10k.txt" -o "$work/body-10000-dynamo.json" "${auth10k[@]}" "http://127.0.0.1:$port_sd10k/v1/shows"
    python3 -c 'import json,sys
for n, f in ((100, sys.argv[1]), (10000, sys.argv[2])):
    got = len(json.load(open(f))["response"])
    assert got == n, (f, got)' "$work/body-100-dynamo.json" "$work/body-10000-dynamo.json"
    same_headers "$work/hd100.txt"; start_ceiling cd100 "$work/body-100-dynamo.json" "${hdr[@]}"
    same_headers "$work/hd10k.txt"; start_ceiling cd10k "$work/body-10000-dynamo.json" "${hdr[@]}"
    for r in $(seq 1 "$rounds"); do
        wrk_row ceiling-100-dynamo "$r" "$pid_cd100" "$port_cd100" /v1/shows "${auth100[@]}"
        wrk_row get-100-dynamo "$r" "$pid_sd100" "$port_sd100" /v1/shows "${auth100[@]}"
        wrk_row ceiling-10k-dynamo "$r" "$pid_cd10k" "$port_cd10k" /v1/shows "${auth10k[@]}"
        wrk_row get-10k-dynamo "$r" "$pid_sd10k" "$port_sd10k" /v1/shows "${auth10k[@]}"
    done
    record "$(printf '{"kind":"rss","label":"peak-dynamo","shows":10000,"hwm_kb":%s,"rss_kb":%s}' \
        "$(status_kb "$pid_sd10k" VmHWM)" "$(status_kb "$pid_sd10k" VmRSS)")"
    stop_pid "$pid_sd100"; stop_pid "$pid_sd10k"; stop_pid "$pid_cd100"; stop_pid "$pid_cd10k"
    rm -f "$work/sd10k.log" "$work/sd100.log"

    env "${ddb[@]}" APP__DYNAMODB__SHOWSTABLE=bench-post APP__STORE__PATH="$work/dpost/shows.db" \
        "$bin" table create >>"$work/import.log" 2>&1
    mport=$(free_port)
    start_service spostd "$work/dpost" "${ddb[@]}" APP__DYNAMODB__SHOWSTABLE=bench-post \
        APP__METRICS__PORT="$mport"
    scrape=$(scrape_cmd "$mport" "$work/spostd.metrics")
    # The emulator's own CPU time over the POST runs and over the PutItem runs: how much of
    # the wall time is the emulator's work rather than the service's or the calls'.
    emu0=$(cpu_ticks "$pid_dynalite")
    hyperfine --style basic --warmup 1 --runs "$post_runs" --export-json "$work/post-dynamo.json" \
        --prepare "$scrape" -n post-1000 "curl -sf -o /dev/null -H 'Authorization: Bearer $tokpost' -H 'Content-Type: application/json' --data-binary @$work/feed-post-1000.json http://127.0.0.1:$port_spostd/v1/shows" \
        --prepare true -n curl-health "curl -sf -o /dev/null http://127.0.0.1:$port_spostd/health" >&2
    emu1=$(cpu_ticks "$pid_dynalite")
    eval "$scrape"
    stop_pid "$pid_spostd"
    feed_calls "$work/spostd.metrics" >"$work/spostd-calls.json"
    put=()
    for i in $(seq 1 "$((post_runs < 3 ? post_runs : 3))"); do
        put+=("$("$tools" putitem --endpoint "http://127.0.0.1:$dport" --table "bench-putitem-$i" \
            --feed "$work/feed-post-1000.json")")
    done
    emu2=$(cpu_ticks "$pid_dynalite")
    printf '%s\n' "${put[@]}" >"$work/putitem.jsonl"
    printf '{"post_ticks":%s,"post_feeds":%s,"putitem_ticks":%s,"putitem_feeds":%s,"hz":%s}\n' \
        "$((emu1 - emu0))" "$((post_runs + 1))" "$((emu2 - emu1))" "${#put[@]}" "$(getconf CLK_TCK)" \
        >"$work/emulator-cpu.json"
    python3 - "$work" <<'EOF2' >>"$results"
import json, statistics, sys
w = sys.argv[1]
runs = {r["command"]: r for r in json.load(open(f"{w}/post-dynamo.json"))["results"]}
calls = json.load(open(f"{w}/spostd-calls.json"))
put = [json.loads(l)["ms"] for l in open(f"{w}/putitem.jsonl") if l.strip()]
emu = json.load(open(f"{w}/emulator-cpu.json"))
emu_post_ms = emu["post_ticks"] * 1000 / emu["hz"] / emu["post_feeds"]
emu_put_ms = emu["putitem_ticks"] * 1000 / emu["hz"] / emu["putitem_feeds"]
post_ms = runs["post-1000"]["median"] * 1e3
print(json.dumps(dict(kind="post", store="dynamodb (dynalite)", shows=1000, median_ms=post_ms,
    mean_ms=runs["post-1000"]["mean"] * 1e3, stddev_ms=(runs["post-1000"]["stddev"] or 0) * 1e3,
    runs=len(runs["post-1000"]["times"]), curl_median_ms=runs["curl-health"]["median"] * 1e3,
    write_calls=calls["write_calls"], calls=calls["calls"], putitem_ms=statistics.median(put),
    putitem_runs=put, speedup=statistics.median(put) / post_ms,
    emulator_cpu_ms=emu_post_ms, putitem_emulator_cpu_ms=emu_put_ms)))
EOF2

    # The same POST and PutItem baseline with a network between the service and the
    # emulator: bench_tools delay-proxy delivers every byte half a round trip late, both
    # ways. On loopback a call costs almost nothing and the emulator's own CPU per item
    # sets both times; against DynamoDB every call pays a round trip, which is what batching
    # saves. The added latency per call is measured, not assumed (PutItem per call through
    # the proxy minus direct).
    for rtt in $rtts; do
        pport=$(free_port)
        "$tools" delay-proxy --listen "$pport" --upstream "127.0.0.1:$dport" --rtt-ms "$rtt" \
            >"$work/proxy-$rtt.log" 2>&1 &
        pid_proxy=$!
        pids+=("$pid_proxy")
        wait_answering "$pport"
        pddb=(APP__STORE__KIND=dynamodb "APP__DYNAMODB__ENDPOINTOVERRIDE=http://127.0.0.1:$pport")
        env "${pddb[@]}" APP__DYNAMODB__SHOWSTABLE="bench-post-rtt$rtt" \
            APP__STORE__PATH="$work/dpost/shows.db" "$bin" table create >>"$work/import.log" 2>&1
        mport=$(free_port)
        start_service "spostr$rtt" "$work/dpost" "${pddb[@]}" APP__DYNAMODB__SHOWSTABLE="bench-post-rtt$rtt" \
            APP__METRICS__PORT="$mport"
        port_r=port_spostr$rtt pidv=pid_spostr$rtt
        scrape=$(scrape_cmd "$mport" "$work/spostr$rtt.metrics")
        hyperfine --style basic --warmup 1 --runs "$post_runs" --export-json "$work/post-rtt$rtt.json" \
            --prepare "$scrape" -n post-1000 "curl -sf -o /dev/null -H 'Authorization: Bearer $tokpost' -H 'Content-Type: application/json' --data-binary @$work/feed-post-1000.json http://127.0.0.1:${!port_r}/v1/shows" \
            --prepare true -n curl-health "curl -sf -o /dev/null http://127.0.0.1:${!port_r}/health" >&2
        eval "$scrape"
        stop_pid "${!pidv}"
        feed_calls "$work/spostr$rtt.metrics" >"$work/spostr$rtt-calls.json"
        : >"$work/putitem-rtt$rtt.jsonl"
        for i in $(seq 1 "$((post_runs < 2 ? post_runs : 2))"); do
            "$tools" putitem --endpoint "http://127.0.0.1:$pport" --table "bench-putitem-rtt$rtt-$i" \
                --feed "$work/feed-post-1000.json" >>"$work/putitem-rtt$rtt.jsonl"
        done
        stop_pid "$pid_proxy"
        python3 - "$work" "$rtt" <<'EOF3' >>"$results"
import json, statistics, sys
w, rtt = sys.argv[1], float(sys.argv[2])
runs = {r["command"]: r for r in json.load(open(f"{w}/post-rtt{sys.argv[2]}.json"))["results"]}
calls = json.load(open(f"{w}/spostr{sys.argv[2]}-calls.json"))
put = [json.loads(l)["ms"] for l in open(f"{w}/putitem-rtt{sys.argv[2]}.jsonl") if l.strip()]
direct = statistics.median(json.loads(l)["ms"] for l in open(f"{w}/putitem.jsonl") if l.strip())
post_ms = runs["post-1000"]["median"] * 1e3
print(json.dumps(dict(kind="post", store=f"dynamodb (dynalite, +{rtt:g} ms round trip)", rtt_ms=rtt,
    added_ms_per_call=(statistics.median(put) - direct) / 1000, shows=1000, median_ms=post_ms,
    mean_ms=runs["post-1000"]["mean"] * 1e3, stddev_ms=(runs["post-1000"]["stddev"] or 0) * 1e3,
    runs=len(runs["post-1000"]["times"]), curl_median_ms=runs["curl-health"]["median"] * 1e3,
    write_calls=calls["write_calls"], calls=calls["calls"], putitem_ms=statistics.median(put),
    putitem_runs=put, speedup=statistics.median(put) / post_ms)))
EOF3
    done
    stop_pid "$pid_dynalite"
    source bench/readcost.sh
fi

record "$(python3 -c 'import json,os; print(json.dumps(dict(kind="end", load_end=os.getloadavg())))')"

# --- report ----------------------------------------------------------------------------
mkdir -p "$(dirname "$report")"
python3 bench/report.py "$results" >"$report"
log "wrote $report (raw figures: $work)"
