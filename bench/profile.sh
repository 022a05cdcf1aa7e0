#!/usr/bin/env bash
# Instruction counts per request with valgrind's callgrind: stable on a shared, noisy
# machine (it counts instructions, not seconds), so before/after figures of a code change
# can be compared run to run. User-space only: the kernel's share (socket and log writes)
# is not counted; bench/run.sh's CPU µs/request is.
#
#   bench/profile.sh                   GET /v1/shows, 100 shows, production log settings
#   bench/profile.sh --shows 10000     the 10,000-show catalogue
#   bench/profile.sh --log off         with APP__LOG__LEVEL=off
#   bench/profile.sh --requests 5000   more requests (default 2000, after 300 of warm-up)
#   bench/profile.sh --path /health    another route
#
# Builds the `profiling` profile (release + symbols + line tables; its own folder under the
# target dir), runs the service under callgrind, warms it up, zeroes the counters, sends
# exactly N requests over 4 keep-alive connections (bench_tools hammer), dumps, and prints
# Ir per request: the total, then the functions with the most inclusive and self cost.
# Output: bench/out/profile-*/ (callgrind.out.*, annotate-*.txt, summary.txt).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

shows=100 requests=2000 logsetting=info path=/v1/shows
while (($#)); do
    case $1 in
        --shows) shows=$2; shift 2 ;;
        --requests) requests=$2; shift 2 ;;
        --log) logsetting=$2; shift 2 ;;
        --path) path=$2; shift 2 ;;
        -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
command -v valgrind >/dev/null || { echo "profile: valgrind is required (apt-get install valgrind)" >&2; exit 1; }

cargo build --profile profiling --locked --bin show-service
cargo build --release --locked --example bench_tools # the load generator: not profiled
target=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin=$target/profiling/show-service
tools=$target/release/examples/bench_tools

work=$root/bench/out/profile-$(date +%Y%m%d-%H%M%S)-$shows-$logsetting
mkdir -p "$work/data"
export APP_ENV=local APP__AUTH__PUBLICURL=http://show-service.bench APP__LOG__FORMAT=json
export APP__LOG__LEVEL=$logsetting APP__STORE__PATH=$work/data/shows.db
unset RUST_LOG
python3 tools/gen-feed.py "$shows" --eligible-ratio 1 --prefix "p$shows-" >"$work/feed.json"
"$bin" import "$work/feed.json" 2>/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

APP__SERVER__PORT=$port valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" \
    "$bin" serve >"$work/server.log" 2>"$work/valgrind.log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/health" && break
    sleep 0.1
done
# After the first start: the server makes the issuer's signing key that `token` signs with.
token=$("$bin" token --scope shows.read,shows.write 2>/dev/null)
hammer() {
    "$tools" hammer --port "$port" --path "$path" --conns 4 --n "$1" \
        --header "Authorization: Bearer $token"
}
hammer 300 >/dev/null
callgrind_control --zero "$pid" >/dev/null
hammer "$requests" >"$work/hammer.json"
callgrind_control --dump="measured" "$pid" >/dev/null
dump=$(ls -t "$work"/callgrind.out.* | head -n 1)
kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
trap - EXIT

callgrind_annotate --inclusive=yes --threshold=100 "$dump" >"$work/annotate-inclusive.txt"
callgrind_annotate --inclusive=no --threshold=100 "$dump" >"$work/annotate-self.txt"
python3 - "$work" "$requests" "$shows" "$logsetting" "$path" <<'EOF' | tee "$work/summary.txt"
import re, sys
work, n, shows, logs, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def parse(name):
    total, funcs = None, []
    for line in open(f"{work}/{name}"):
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S.*)$", line)
        if not m:
            continue
        ir = int(m.group(1).replace(",", ""))
        what = m.group(2)
        if what.startswith("PROGRAM TOTALS"):
            total = ir
        else:
            funcs.append((ir, what))
    return total, funcs
total, inc = parse("annotate-inclusive.txt")
_, own = parse("annotate-self.txt")
print(f"GET {path}, {shows} shows, log level {logs}: {n} requests measured")
print(f"Ir per request (user space, all threads): {total / n:,.0f}")
def short(s):
    s = re.sub(r" \[[^\]]*\]$", "", s)  # the object file
    s = re.sub(r"^[^:]*:", "", s, count=1) if re.match(r"^[^ ]*\.rs:|^\?\?\?:|^[^ ]*\.c:", s) else s
    return s[:150]
print("\ninclusive (the function and what it calls), Ir/request, top 45:")
for ir, f in inc[:45]:
    print(f"{ir / n:>12,.0f}  {ir / total * 100:5.1f}%  {short(f)}")
print("\nself, Ir/request, top 30:")
for ir, f in own[:30]:
    print(f"{ir / n:>12,.0f}  {ir / total * 100:5.1f}%  {short(f)}")
EOF
echo "(files: $work)"
