# Shared by the scripts that start the service themselves (schemathesis.sh, soak.sh).

# wait_for_addr LOG PID: waits (up to 10 s) for the "listening" line the service writes
# to LOG when started with APP__SERVER__PORT=0, and prints the address it bound. Fails,
# showing the log, when the process PID exits first or no address appears.
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
