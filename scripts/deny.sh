#!/usr/bin/env bash
# Dependency policy, offline: licences, banned crates and sources of every dependency
# (deny.toml). Installs cargo-deny into .tools/cargo when missing (a one-off build of a
# few minutes). A step of scripts/test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tools=$PWD/.tools/cargo
export PATH="$tools/bin:$PATH"
if ! cargo deny --version >/dev/null 2>&1; then
  echo "installing cargo-deny into $tools"
  cargo install --locked --root "$tools" cargo-deny --version 0.20.2
fi
cargo deny --locked check --hide-inclusion-graph licenses bans sources
