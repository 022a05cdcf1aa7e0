#!/usr/bin/env bash
# The cached 100-show GET of several service binaries against the ceiling, interleaved in
# each round (ceiling, then each binary), for the "× ceiling" targets without the whole
# suite: requests/s, server CPU µs per request, p99 and the ratio to the ceiling's
# requests/s in the same round. The ceiling (bench/ceiling.rs) answers with the last
# binary's body and response headers, as in bench/run.sh.
#
#   bench/vs_ceiling.sh ROUNDS SECONDS NAME=BINARY [NAME=BINARY…]
#
# Each service logs JSON at info to a file (LOGLEVEL=info,request=debug to log every
# request's line, LOGLEVEL=off to turn the log off) and has its
# Prometheus listener on, except one named `baseline` (a build from before the metrics).
# Needs the ceiling built: `cargo build --release --example ceiling`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=$1 secs=$2; shift 2
target=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
ceiling=$target/release/examples/ceiling
[[ -x $ceiling ]] || { echo "vs_ceiling: build the ceiling first: cargo build --release --example ceiling" >&2; exit 1; }
mkdir -p bench/out
work=$(mktemp -d "$PWD/bench/out/vs-ceiling-XXXX")
export APP_ENV=local APP__AUTH__PUBLICURL=http://show-service.bench APP__LOG__FORMAT=json APP__LOG__LEVEL=${LOGLEVEL:-info}
unset RUST_LOG
fp() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
python3 tools/gen-feed.py 100 --eligible-ratio 1 --prefix "ab-" >$work/feed.json
names=(); pids=(); ports=()
trap 'kill ${pids[@]} 2>/dev/null; wait' EXIT
first=""
for nb in "$@"; do
  n=${nb%%=*}; b=${nb#*=}; mkdir -p $work/$n
  APP__STORE__PATH=$work/$n/shows.db "$b" import $work/feed.json 2>/dev/null
  [[ -n $first ]] && cp $work/$first/local-issuer.pk8 $work/$n/
  p=$(fp); m=(); [[ $n != baseline ]] && m=(APP__METRICS__PORT=$(fp))
  env APP__STORE__PATH=$work/$n/shows.db APP__SERVER__PORT=$p "${m[@]}" "$b" serve >$work/$n.log 2>&1 &
  pids+=($!); names+=($n); ports+=($p)
  for _ in $(seq 1 200); do curl -sf -o /dev/null http://127.0.0.1:$p/health && break; sleep 0.05; done
  if [[ -z $first ]]; then first=$n; tok=$(APP__STORE__PATH=$work/$n/shows.db "$b" token --scope shows.read 2>/dev/null); fi
done
curl -sf -D $work/h.txt -o $work/body.json -H "Authorization: Bearer $tok" http://127.0.0.1:${ports[-1]}/v1/shows
hdr=()
while IFS= read -r line; do line=${line%$'\r'}; case ${line,,} in http/*|date:*|content-length:*|content-type:*|content-encoding:*|"") ;; *) hdr+=(--header "$line");; esac; done <$work/h.txt
cport=$(fp); $ceiling --port $cport --body $work/body.json "${hdr[@]}" & pids+=($!); cpid=$!
sleep 0.5
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' /proc/$1/stat; }
run() { local pid=$1 p=$2 t0 t1 out
  wrk -t2 -c64 -d1s -H "Authorization: Bearer $tok" http://127.0.0.1:$p/v1/shows >/dev/null
  t0=$(ticks $pid); out=$(wrk -t2 -c64 -d${secs}s --latency -H "Authorization: Bearer $tok" http://127.0.0.1:$p/v1/shows); t1=$(ticks $pid)
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out"); non=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  p99=$(awk '$1 == "99%" {v = $2; if (v ~ /us$/) v = v / 1000; else if (v ~ /ms$/) v = v + 0; else v = v * 1000; print v}' <<<"$out")
  awk -v r=$rps -v d=$((t1-t0)) -v hz=$hz -v s=$secs -v p=$p99 -v n=${non:-0} 'BEGIN{printf "%.0f %.1f %.2f %s\n", r, d*1e6/hz/(r*s), p, n}'; }
for r in $(seq 1 $rounds); do
  read -r rc cc pc nc < <(run $cpid $cport)
  line=$(printf "round %d ceiling %6d req/s %5.1f us p99 %5.2f ms" $r $rc $cc $pc)
  for i in "${!names[@]}"; do
    read -r rs cs ps ns < <(run ${pids[$i]} ${ports[$i]})
    line+=$(awk -v n=${names[$i]} -v rs=$rs -v cs=$cs -v ps=$ps -v rc=$rc -v ns=$ns 'BEGIN{printf " | %s %6d %5.1f us p99 %5.2f x%.3f non2xx %s", n, rs, cs, ps, rs/rc, ns}')
  done
  echo "$line"
done
for i in "${!names[@]}"; do echo "${names[$i]} log lines: $(wc -l <$work/${names[$i]}.log)"; done
rm -rf $work
