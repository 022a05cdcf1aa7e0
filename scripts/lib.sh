# Shared by the scripts that start the service themselves (schemathesis.sh, soak.sh,
# browser-test.sh, bench/run.sh, bench/readcost.sh and bench/through_refills.sh).

# wait_for_addr LOG PID: waits (up to 10 s) for the "listening" line the service writes
# to LOG when started with APP__SERVER__PORT=0, and prints the address it bound. Fails,
# showing the log, when the process PID exits first or no address appears.
# stop_pids PID…: TERM each, then wait for each (a trap's cleanup of what a script started).
stop_pids() {
  local p
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

wait_for_addr() {
  local log=$1 pid=$2 addr=
  for _ in $(seq 100); do
    addr=$(grep -o '"addr":"[^"]*"' "$log" 2>/dev/null | head -1 | cut -d'"' -f4) || true
    if [[ -n $addr ]]; then
      echo "$addr"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "the service did not start:" >&2
  cat "$log" >&2
  return 1
}

# start_local_service BIN WORK: starts BIN in local mode on a free loopback port with its
# data and log (service.log) in WORK; sets server_pid, and addr to the address it bound.
# Call it directly (not in `$(...)`, which would lose both), and pair it with
# `trap 'stop_service; rm -rf "$work"' EXIT`.
server_pid=
addr=
start_local_service() {
  local bin=$1 work=$2
  # Port 0: the service picks a free port and logs it.
  env -i PATH="$PATH" APP_ENV=local APP__SERVER__HOST=127.0.0.1 APP__SERVER__PORT=0 \
    APP__STORE__PATH="$work/data/shows.db" APP__LOG__FORMAT=json APP__LOG__LEVEL=info \
    "$bin" serve >"$work/service.log" 2>&1 &
  server_pid=$!
  addr=$(wait_for_addr "$work/service.log" "$server_pid")
}

# stop_service: stops the service start_local_service started, if any.
stop_service() {
  if [[ -n $server_pid ]]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
}

# local_token BASE [SCOPES]: a token from the local issuer's development client, with
# SCOPES (default `shows.read shows.write`).
local_token() {
  curl -sS -X POST "$1/oauth/token" -u local-client:local-secret \
    -d grant_type=client_credentials -d "scope=${2:-shows.read shows.write}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

# debug_binary WORK: builds the debug binary and prints the path of a copy in WORK, taken
# at once after the build (a target folder shared with other checkouts may relink it).
# SHOW_SERVICE_BIN=path uses that binary instead (e.g. a release build).
debug_binary() {
  if [[ -n ${SHOW_SERVICE_BIN:-} ]]; then
    cp "$SHOW_SERVICE_BIN" "$1/show-service"
    echo "$1/show-service"
    return
  fi
  cargo build --locked --quiet
  cp "$(target_dir)/debug/show-service" "$1/show-service"
  echo "$1/show-service"
}

# target_dir: cargo's target folder (CARGO_TARGET_DIR or ./target).
target_dir() {
  cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])'
}

# start_dynalite LOG: starts the DynamoDB emulator (dynalite, installed into .tools/node
# by scripts/install-test-tools.sh) on a free loopback port, its output in LOG; sets
# dynalite_pid and dynalite_port, and returns once it accepts connections (at most 10 s).
# Call it directly (not in `$(...)`, which would lose both); the caller stops it.
dynalite_pid=
dynalite_port=
start_dynalite() {
  local log=$1
  dynalite_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$(dirname "${BASH_SOURCE[0]}")/../.tools/node/node_modules/.bin/dynalite" \
    --host 127.0.0.1 --port "$dynalite_port" --createTableMs 0 >"$log" 2>&1 &
  dynalite_pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$dynalite_port") 2>/dev/null && return 0
    kill -0 "$dynalite_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill "$dynalite_pid" 2>/dev/null || true
  echo "dynalite did not start:" >&2
  cat "$log" >&2
  return 1
}
