#!/usr/bin/env bash
# Fuzzes every cargo-fuzz target in fuzz/ for a bounded time each (not part of test.sh;
# the committed seeds are replayed by `cargo test --test properties` instead).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default: 60 s per target, every target
#
# Installs cargo-fuzz into .tools/cargo when missing. Only the stable toolchain exists
# here, so RUSTC_BOOTSTRAP=1 lets it take the nightly-only sanitizer flags.
# FUZZ_SANITIZER=none|address (default address) picks the sanitizer. Inputs found are kept
# in fuzz/corpus/<target> (git-ignored); a crash is saved under fuzz/artifacts/<target>/
# and fails the script. Reproduce one with `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>`
# from the repository root (PATH=.tools/cargo/bin:$PATH).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${1:-60}
shift || true
tools=$PWD/.tools/cargo
export PATH="$tools/bin:$PATH"
export RUSTC_BOOTSTRAP=1
sanitizer=${FUZZ_SANITIZER:-address}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz into $tools"
  cargo install --locked --root "$tools" cargo-fuzz
fi

# Resolve the fuzz crate's dependencies to the versions the service is tested with.
[[ -f fuzz/Cargo.lock ]] || cp Cargo.lock fuzz/Cargo.lock

if (($# > 0)); then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi
if ((${#targets[@]} == 0)); then
  echo "no fuzz targets found (cargo fuzz list failed?)" >&2
  exit 1
fi

summary=()
status=0
for target in "${targets[@]}"; do
  echo "=== fuzz ${target}: ${seconds}s, sanitizer ${sanitizer}"
  mkdir -p "fuzz/corpus/${target}" fuzz/target
  log="fuzz/target/${target}.log"
  # The corpus folder comes first: libFuzzer writes new inputs there and only reads seeds.
  if cargo fuzz run --sanitizer "$sanitizer" "$target" "fuzz/corpus/${target}" "fuzz/seeds/${target}" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tee "$log"; then
    result=ok
  else
    result="CRASH (see fuzz/artifacts/${target}/)"
    status=1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  corpus=$(find "fuzz/corpus/${target}" -type f | wc -l)
  summary+=("$(printf '%-8s %-10s %12s execs %8s/s  corpus %s' "$target" "$result" "${execs:-?}" "${speed:-?}" "$corpus")")
done

echo
echo "=== fuzz summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
exit $status
