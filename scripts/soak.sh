#!/usr/bin/env bash
# Soak: a bounded mixed load (wrk, scripts/soak.lua) against the release binary on
# loopback. Not part of test.sh (it takes minutes).
#
#   scripts/soak.sh [MINUTES]                      default 10, embedded SQLite store
#   SOAK_STORE=dynamodb scripts/soak.sh [MINUTES]  against the DynamoDB emulator (dynalite)
#
# Samples the server's RSS and open file descriptors every 10 s and prints them. Fails
# when a response is neither 2xx nor one of the intended 4xx (400 invalid feed, 404 absent
# show), on any socket error, when the server logged a 5xx or died, or when RSS or fds at
# the end exceed the level after warm-up by more than the margin (RSS: 25% + 16 MiB;
# fds: 16). Installs wrk (Debian) when missing. Env: SOAK_THREADS (2), SOAK_CONNECTIONS
# (32).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

minutes=${1:-10}
threads=${SOAK_THREADS:-2}
connections=${SOAK_CONNECTIONS:-32}
interval=10
duration=$((minutes * 60))

if ! command -v wrk >/dev/null; then
  echo "installing wrk"
  if [[ $(id -u) == 0 ]]; then
    apt-get update -qq && apt-get install -y -qq wrk
  else
    sudo apt-get update -qq && sudo apt-get install -y -qq wrk
  fi
fi

cargo build --release --locked --quiet
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target_dir/release/show-service"

work=$(mktemp -d)
server_pid=
cleanup() {
  for pid in $server_pid $dynalite_pid; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

store=${SOAK_STORE:-sqlite}
store_env=()
case $store in
  sqlite) ;;
  dynamodb)
    scripts/install-test-tools.sh
    start_dynalite "$work/dynalite.log"
    store_env=(APP__STORE__KIND=dynamodb "APP__DYNAMODB__ENDPOINTOVERRIDE=http://127.0.0.1:$dynalite_port"
      APP__DYNAMODB__SHOWSTABLE=shows-soak)
    env -i PATH="$PATH" APP_ENV=local "${store_env[@]}" "$bin" table create
    ;;
  *)
    echo "SOAK_STORE=$store: expected sqlite or dynamodb" >&2
    exit 2
    ;;
esac

# Request lines are DEBUG or INFO; 5xx lines are warnings and stay in the log.
env -i PATH="$PATH" APP_ENV=local APP__SERVER__HOST=127.0.0.1 APP__SERVER__PORT=0 \
  APP__STORE__PATH="$work/data/shows.db" APP__LOG__FORMAT=json APP__LOG__LEVEL="info,request=warn" \
  "${store_env[@]}" "$bin" serve >"$work/service.log" 2>&1 &
server_pid=$!
addr=$(wait_for_addr "$work/service.log" "$server_pid") || exit 1
base="http://$addr"

TOKEN=$(curl -sS -X POST "$base/oauth/token" -u local-client:local-secret \
  -d grant_type=client_credentials -d 'scope=shows.read shows.write' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
export TOKEN
curl -sS -o /dev/null -X POST "$base/v1/shows" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' --data-binary @tests/fixtures/feed-12.json

sample() {
  local rss fds
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status")
  fds=$(find "/proc/$server_pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
  echo "$1 $rss $fds"
}

echo "soak: ${minutes} min, $store store, wrk -t${threads} -c${connections} on $base (pid $server_pid)"
wrk -t"$threads" -c"$connections" -d"${duration}s" --timeout 10s --latency \
  -s scripts/soak.lua "$base" >"$work/wrk.out" 2>&1 &
wrk_pid=$!

samples="$work/samples"
printf '%6s %10s %5s\n' "t(s)" "rss(KiB)" "fds"
sample 0 | tee -a "$samples" | awk '{printf "%6s %10s %5s\n", $1, $2, $3}'
elapsed=0
while kill -0 "$wrk_pid" 2>/dev/null; do
  sleep "$interval"
  elapsed=$((elapsed + interval))
  kill -0 "$server_pid" 2>/dev/null || break
  sample "$elapsed" | tee -a "$samples" | awk '{printf "%6s %10s %5s\n", $1, $2, $3}'
done
wait "$wrk_pid" || true
cat "$work/wrk.out"

status=0
fail() {
  echo "FAIL: $*"
  status=1
}
kill -0 "$server_pid" 2>/dev/null || fail "the server died"

# Statuses: only 2xx and the intended 400/404.
total=0
while read -r _ code n; do
  total=$((total + n))
  case $code in
    2??) ;;
    400 | 404) ;;
    *) fail "$n responses with status $code" ;;
  esac
done < <(grep '^status ' "$work/wrk.out")
((total > 0)) || fail "no responses counted"
grep -q '^socket_errors connect=0 read=0 write=0 timeout=0$' "$work/wrk.out" ||
  fail "socket errors: $(grep '^socket_errors' "$work/wrk.out")"
fivexx=$(grep -c '"status":5[0-9][0-9]' "$work/service.log" || true)
[[ $fivexx == 0 ]] || fail "the service logged $fivexx responses with 5xx"

# Growth: the end against the level once warmed up (the sample at 20% of the run, at
# least 30 s in), so start-up allocation and the store's first growth do not count.
warm_t=$(((duration / 5 / interval) * interval))
((warm_t >= 30)) || warm_t=30
read -r _ warm_rss warm_fds < <(awk -v t="$warm_t" '$1 >= t {print; exit}' "$samples")
read -r _ start_rss start_fds < <(head -1 "$samples")
read -r end_t end_rss end_fds < <(tail -1 "$samples")
max_rss=$(awk 'BEGIN {m = 0} $2 > m {m = $2} END {print m}' "$samples")
echo
echo "RSS: start ${start_rss} KiB, after warm-up (${warm_t}s) ${warm_rss} KiB, end (${end_t}s) ${end_rss} KiB, max ${max_rss} KiB"
echo "fds: start ${start_fds}, after warm-up ${warm_fds}, end ${end_fds}"
if ((end_rss > warm_rss * 125 / 100 + 16384)); then
  fail "RSS grew from ${warm_rss} to ${end_rss} KiB"
fi
if ((end_fds > warm_fds + 16)); then
  fail "open fds grew from ${warm_fds} to ${end_fds}"
fi
((status == 0)) && echo "soak: ok"
exit $status
