#!/usr/bin/env bash
# Infrastructure checks, run by scripts/test.sh. No AWS account is needed.
#
#   1. fmt       terraform fmt -check -recursive infra
#   2. validate  terraform init -backend=false (local provider plugins) + validate
#   3. checkov   zero failed checks (skips only inline, with a reason)
#   4. moto      apply the whole stack for real against moto's server for the dev and
#                prod tfvars: init, validate, plan, apply, a second plan that must be
#                empty, destroy, and an empty state; then the takeover from the Go
#                service (docs/deploy.md section 5): a table made outside Terraform is
#                imported with the runbook's command and the plan must neither destroy
#                nor replace it
#
# Everything it installs or writes goes to .tools/ (git-ignored) and the generated,
# git-ignored infra/zz_moto_override.tf, which is removed on exit.
#
# Environment:
#   TF_PLUGIN_DIR=DIR        folder holding registry.terraform.io/hashicorp/aws/...;
#                            found with `find /` when unset
#   ALLOW_SKIP_TERRAFORM=1   a missing terraform, provider plugin folder or python
#                            venv support is reported as SKIPPED and does not fail the
#                            run (otherwise it fails: a skip is never a pass)
#   INFRA_CHECK_ENVS="dev prod"  environments the moto run applies
#   INFRA_CHECK_ONLY="fmt validate checkov moto"  parts to run
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INFRA="$ROOT/infra"
TOOLS="$ROOT/.tools"
OVERRIDE="$INFRA/zz_moto_override.tf"
CHECKOV_VERSION="3.3.30"
MOTO_VERSION="5.2.5"
ENVS="${INFRA_CHECK_ENVS:-dev prod}"
ONLY="${INFRA_CHECK_ONLY:-fmt validate checkov moto}"

export TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1
# No user CLI configuration: nothing on the machine changes how providers are found.
export TF_CLI_CONFIG_FILE=/dev/null

mkdir -p "$TOOLS"

declare -a TIMINGS=()
declare -a SKIPS=()
MOTO_PID=""

cleanup() {
  if [[ -n "$MOTO_PID" ]] && kill -0 "$MOTO_PID" 2>/dev/null; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
  rm -f "$OVERRIDE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '\n==> %s\n' "$*"; }

fail() {
  printf 'FAILED: %s\n' "$*" >&2
  exit 1
}

skip() {
  printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n' >&2
  printf 'SKIPPED: %s\n' "$*" >&2
  printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n' >&2
  SKIPS+=("$*")
  if [[ "${ALLOW_SKIP_TERRAFORM:-0}" != "1" ]]; then
    fail "a check could not run (set ALLOW_SKIP_TERRAFORM=1 to accept the skip)"
  fi
}

wants() { [[ " $ONLY " == *" $1 "* ]]; }

# timed NAME COMMAND...: run COMMAND (errexit still applies), record how long it took.
timed() {
  local name="$1" start end ms
  shift
  start=${EPOCHREALTIME/./}
  "$@"
  end=${EPOCHREALTIME/./}
  ms=$(((end - start) / 1000))
  TIMINGS+=("$(printf '%-24s %4d.%d s' "$name" $((ms / 1000)) $((ms % 1000 / 100)))")
}

have_terraform() { command -v terraform >/dev/null 2>&1; }

################################################################################
# Provider plugins
################################################################################

PLUGIN_DIR=""
find_plugin_dir() {
  if [[ -n "${TF_PLUGIN_DIR:-}" ]]; then
    PLUGIN_DIR="$TF_PLUGIN_DIR"
  else
    local hit
    # Not a copy inside some working directory's .terraform/ or .tools/ (those come
    # and go); the newest provider version wins.
    hit=$(find / \( -path /proc -o -path /sys -o -path /dev -o -name .terraform -o -name .tools \) -prune -o \
      -name 'terraform-provider-aws_*' -path '*/registry.terraform.io/hashicorp/aws/*' -print 2>/dev/null |
      sort -t/ -V | tail -n 1 || true)
    [[ -n "$hit" ]] && PLUGIN_DIR="${hit%%/registry.terraform.io/*}"
  fi
  if [[ -z "$PLUGIN_DIR" || ! -d "$PLUGIN_DIR/registry.terraform.io/hashicorp/aws" ]]; then
    PLUGIN_DIR=""
    return 1
  fi
  echo "provider plugins: $PLUGIN_DIR"
}

# tf_init DATA_DIR ARGS...: offline init from the plugin folder; the committed lock
# file must already be right (-lockfile=readonly).
tf_init() {
  local data_dir="$1"
  shift
  TF_DATA_DIR="$data_dir" terraform -chdir="$INFRA" init -no-color -input=false \
    -plugin-dir="$PLUGIN_DIR" -lockfile=readonly "$@" >"$data_dir.init.log" 2>&1 ||
    {
      cat "$data_dir.init.log" >&2
      fail "terraform init ($data_dir)"
    }
}

################################################################################
# 1. fmt, 2. validate
################################################################################

check_fmt() {
  log "terraform fmt -check -recursive infra"
  terraform fmt -check -recursive -diff "$INFRA" || fail "terraform fmt: run 'terraform fmt -recursive infra'"
  echo "fmt: ok"
}

check_validate() {
  log "terraform init -backend=false + validate"
  local dir="$TOOLS/tf/validate"
  mkdir -p "$dir"
  tf_init "$dir" -backend=false
  TF_DATA_DIR="$dir" terraform -chdir="$INFRA" validate -no-color || fail "terraform validate"
}

################################################################################
# Python tools, each in its own venv (checkov pins an old boto3)
################################################################################

# venv NAME PIP_SPEC: create .tools/venv-NAME with PIP_SPEC installed, once.
venv() {
  local name="$1" spec="$2" dir="$TOOLS/venv-$1"
  local stamp="$dir/.installed"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$spec" ]]; then
    return 0
  fi
  log "installing $spec into .tools/venv-$name"
  rm -rf "$dir"
  python3 -m venv "$dir" || return 1
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$spec" || return 1
  echo "$spec" >"$stamp"
}

have_venv() { command -v python3 >/dev/null 2>&1 && python3 -c 'import venv, ensurepip' 2>/dev/null; }

################################################################################
# 3. checkov
################################################################################

check_checkov() {
  if ! have_venv; then
    skip "checkov: python3 with venv support is not installed"
    return 0
  fi
  timed "checkov install" venv checkov "checkov==$CHECKOV_VERSION" || fail "installing checkov"
  timed "checkov scan" run_checkov
}

run_checkov() {
  log "checkov -d infra"
  local out="$TOOLS/checkov.out"
  # The override file must not be scanned; it only exists during the moto run.
  rm -f "$OVERRIDE"
  (cd "$ROOT" && "$TOOLS/venv-checkov/bin/checkov" -d infra --framework terraform \
    --skip-download --compact --quiet) >"$out" 2>&1 || {
    cat "$out"
    fail "checkov reported failed checks"
  }
  grep -E 'Passed checks|Failed checks' "$out"
  grep -q 'Failed checks: 0,' "$out" || {
    cat "$out"
    fail "checkov did not report zero failed checks"
  }
}

################################################################################
# 4. apply for real against moto
################################################################################

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_moto() {
  local port
  port=$(free_port)
  MOTO_URL="http://127.0.0.1:$port"
  log "starting moto on $MOTO_URL"
  # Managed policies loaded so attachments of AWS-managed policies would resolve.
  MOTO_IAM_LOAD_MANAGED_POLICIES=true \
    "$TOOLS/venv-moto/bin/python" "$ROOT/scripts/moto_shim.py" -H 127.0.0.1 -p "$port" \
    >"$TOOLS/moto.log" 2>&1 &
  MOTO_PID=$!
  local i
  for i in $(seq 1 100); do
    if curl -fsS -o /dev/null "$MOTO_URL/moto-api/" 2>/dev/null; then
      echo "moto ready after $((i * 100)) ms (pid $MOTO_PID)"
      return 0
    fi
    kill -0 "$MOTO_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$TOOLS/moto.log" >&2
  fail "moto did not start"
}

# Every service the stack calls gets an endpoint: a missing one would call real AWS.
write_override() {
  local services=(apigatewayv2 appautoscaling cloudwatch cloudwatchlogs codebuild cognitoidp
    dynamodb ec2 ecr ecs elbv2 iam kms sns sts)
  {
    echo "# Generated by scripts/infra-check.sh for the moto run; git-ignored, removed on exit."
    echo 'terraform {'
    echo '  backend "local" {}'
    echo '}'
    echo
    echo 'provider "aws" {'
    echo '  access_key                  = "moto"'
    echo '  secret_key                  = "moto"'
    echo '  skip_credentials_validation = true'
    echo '  skip_metadata_api_check     = true'
    echo '  # The account id is asked of moto (sts): without it the provider cannot tell'
    echo '  # its own security groups from another account'"'"'s and plans bogus changes.'
    echo '  skip_region_validation      = true'
    echo '  # An action moto lacks must fail fast, not after the default 25 retries; but'
    echo '  # one retry is needed: under two parallel runs moto'"'"'s server now and then'
    echo '  # closes a kept-alive connection just as the provider reuses it.'
    echo '  max_retries = 3'
    echo
    echo '  endpoints {'
    local s
    for s in "${services[@]}"; do
      printf '    %-14s = "%s"\n' "$s" "$MOTO_URL"
    done
    echo '  }'
    echo '}'
  } >"$OVERRIDE"
}

# tf ENV ARGS...: terraform in infra/ with ENV's own data dir and state.
tf() {
  local env="$1"
  shift
  TF_DATA_DIR="$TOOLS/moto/$env/data" terraform -chdir="$INFRA" "$@"
}

# moto_cycle ENV: the whole life of ENV's stack on moto. Writes its summary line to
# .tools/moto/ENV/summary; its progress to stdout.
moto_cycle() {
  local env="$1" dir="$TOOLS/moto/$1"
  local tfvars="terraform.$env.tfvars"
  # One alarm subscription, so that the topic's subscriptions are applied too.
  local vars=(-var-file="$tfvars" -var image_tag=moto-check
    -var source_repository_url=https://git.invalid/show-service.git
    -var 'alarm_subscriptions=[{protocol="email",endpoint="alarms@example.invalid"}]')
  local t0 t1 t2 t3 t4
  rm -rf "$dir"
  mkdir -p "$dir/data"
  t0=$(date +%s)

  echo "[$env] init + validate"
  tf_init "$dir/data" -backend-config="path=$dir/terraform.tfstate"
  tf "$env" validate -no-color >/dev/null || fail "[$env] validate"

  echo "[$env] plan + apply ($tfvars as it is)"
  tf "$env" plan -no-color -input=false "${vars[@]}" -out="$dir/plan" >"$dir/plan.log" 2>&1 || {
    cat "$dir/plan.log" >&2
    fail "[$env] plan"
  }
  grep -E '^Plan:' "$dir/plan.log" | sed "s/^/[$env] /"
  t1=$(date +%s)
  tf "$env" apply -no-color -input=false -auto-approve "$dir/plan" >"$dir/apply.log" 2>&1 || {
    tail -n 80 "$dir/apply.log" >&2
    fail "[$env] apply"
  }
  t2=$(date +%s)
  grep -E '^Apply complete' "$dir/apply.log" | sed "s/^/[$env] /"
  local created
  created=$(grep -oE 'Resources: [0-9]+ added' "$dir/apply.log" | grep -oE '[0-9]+')

  echo "[$env] second plan must be empty"
  local rc=0
  tf "$env" plan -no-color -input=false "${vars[@]}" -detailed-exitcode >"$dir/replan.log" 2>&1 || rc=$?
  if [[ $rc -ne 0 ]]; then
    cat "$dir/replan.log" >&2
    fail "[$env] second plan is not empty (exit $rc)"
  fi
  echo "[$env] no changes"

  # As an operator would tear down a protected environment: turn protection off, apply,
  # then destroy. Proves the protection is a real, reversible setting.
  vars+=(-var deletion_protection=false)
  if grep -Eq '^deletion_protection *= *true' "$INFRA/$tfvars"; then
    echo "[$env] turning deletion protection off"
    tf "$env" apply -no-color -input=false -auto-approve "${vars[@]}" >"$dir/unprotect.log" 2>&1 || {
      tail -n 80 "$dir/unprotect.log" >&2
      fail "[$env] apply with deletion_protection=false"
    }
    grep -E '^Apply complete' "$dir/unprotect.log" | sed "s/^/[$env] /"
  fi

  echo "[$env] destroy"
  t3=$(date +%s)
  tf "$env" destroy -no-color -input=false -auto-approve "${vars[@]}" >"$dir/destroy.log" 2>&1 || {
    tail -n 80 "$dir/destroy.log" >&2
    fail "[$env] destroy"
  }
  t4=$(date +%s)
  grep -E '^Destroy complete' "$dir/destroy.log" | sed "s/^/[$env] /"
  local left
  left=$(tf "$env" state list | wc -l)
  [[ "$left" -eq 0 ]] || {
    tf "$env" state list >&2
    fail "[$env] $left resources left in state after destroy"
  }
  echo "[$env] state empty"
  printf 'moto %s: %s resources created and destroyed; apply %d s, destroy %d s, whole cycle %d s\n' \
    "$env" "$created" $((t2 - t1)) $((t4 - t3)) $((t4 - t0)) >"$dir/summary"
}

# The environments run side by side against one moto server: their names and CIDRs
# differ, so they cannot collide, and the provider's fixed waits overlap.
check_moto() {
  if ! have_venv; then
    skip "moto apply: python3 with venv support is not installed"
    return 0
  fi
  timed "moto install" venv moto "moto[server]==$MOTO_VERSION" || fail "installing moto"
  timed "moto start" start_moto
  write_override
  timed "moto apply cycles" run_cycles
  timed "moto takeover" takeover_check
}

# go_item_is_there MESSAGE: the item takeover_check wrote the Go way is in the table;
# prints MESSAGE when it is.
go_item_is_there() {
  TAKEOVER_OK="$1" "$TOOLS/venv-moto/bin/python" - <<'PY'
import os, boto3
ddb = boto3.client("dynamodb", endpoint_url=os.environ["TAKEOVER_URL"],
                   region_name=os.environ["TAKEOVER_REGION"],
                   aws_access_key_id="moto", aws_secret_access_key="moto")
got = ddb.get_item(TableName=os.environ["TAKEOVER_TABLE"], Key={"slug": {"S": "show/go-era"}})
assert got["Item"]["title"]["S"] == "Go era", got
print("[takeover] " + os.environ["TAKEOVER_OK"])
PY
}

# takeover_check: the runbook's takeover of the Go service's table, on moto. The table is
# made as the Go deployment made it (by the AWS API, not Terraform; no PITR, default
# encryption, no tags) with an item in it, imported into a fresh state with the
# runbook's `terraform import`, and planned with the test tfvars: the plan must not
# delete or replace anything, and the table may only be updated in place. Applying the
# table alone then must keep the item, and so must the way back, `terraform state rm`.
takeover_check() {
  local env=test table=shows-test dir="$TOOLS/moto/takeover"
  local vars=(-var-file="terraform.$env.tfvars" -var image_tag=moto-check
    -var source_repository_url=https://git.invalid/show-service.git)
  local region
  region=$(sed -nE 's/^region *= *"([^"]+)".*/\1/p' "$INFRA/terraform.$env.tfvars")
  rm -rf "$dir"
  mkdir -p "$dir/data"
  export TAKEOVER_URL="$MOTO_URL" TAKEOVER_TABLE="$table" TAKEOVER_REGION="$region"
  log "takeover: $table created the Go way, imported, planned"
  "$TOOLS/venv-moto/bin/python" - <<'PY' || fail "takeover: creating $table the Go way"
import os, sys, boto3
ddb = boto3.client("dynamodb", endpoint_url=os.environ["TAKEOVER_URL"],
                   region_name=os.environ["TAKEOVER_REGION"],
                   aws_access_key_id="moto", aws_secret_access_key="moto")
table = os.environ["TAKEOVER_TABLE"]
ddb.create_table(
    TableName=table, BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in
                          [("slug", "S"), ("drmKey", "N"), ("episodeCount", "N")]],
    KeySchema=[{"AttributeName": "slug", "KeyType": "HASH"}],
    GlobalSecondaryIndexes=[{
        "IndexName": "gsi_drm_episode",
        "KeySchema": [{"AttributeName": "drmKey", "KeyType": "HASH"},
                      {"AttributeName": "episodeCount", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "ALL"}}])
ddb.put_item(TableName=table, Item={"slug": {"S": "show/go-era"}, "title": {"S": "Go era"},
                                    "drmKey": {"N": "1"}, "episodeCount": {"N": "3"}})
PY
  tf_init "$dir/data" -backend-config="path=$dir/terraform.tfstate"
  local tfd=(env TF_DATA_DIR="$dir/data" terraform -chdir="$INFRA")
  # The runbook's command, word for word but for the environment.
  "${tfd[@]}" import -no-color -input=false "${vars[@]}" \
    module.data.aws_dynamodb_table.this "$table" >"$dir/import.log" 2>&1 || {
    cat "$dir/import.log" >&2
    fail "takeover: terraform import"
  }
  grep -E '^Import successful' "$dir/import.log" | sed 's/^/[takeover] /'
  "${tfd[@]}" plan -no-color -input=false "${vars[@]}" -out="$dir/plan" >"$dir/plan.log" 2>&1 || {
    cat "$dir/plan.log" >&2
    fail "takeover: terraform plan"
  }
  grep -E '^Plan:' "$dir/plan.log" | sed 's/^/[takeover] /'
  "${tfd[@]}" show -json "$dir/plan" >"$dir/plan.json" || fail "takeover: terraform show -json"
  python3 - "$dir/plan.json" <<'PY' || fail "takeover: the plan destroys or replaces something (see $dir/plan.log)"
import json, sys
plan = json.load(open(sys.argv[1]))
table = "module.data.aws_dynamodb_table.this"
bad, seen = [], None
for rc in plan.get("resource_changes", []):
    actions = rc["change"]["actions"]
    if rc["address"] == table:
        seen = actions
    if "delete" in actions:
        bad.append(f'{rc["address"]}: {actions}')
if seen is None:
    bad.append(f"{table} is not in the plan")
elif seen not in (["no-op"], ["update"]):
    bad.append(f"{table}: {seen}, expected an update in place or nothing")
for b in bad:
    print(f"[takeover] {b}", file=sys.stderr)
print(f"[takeover] table: {seen}; 0 resources to destroy or replace" if not bad else "")
sys.exit(1 if bad else 0)
PY
  "${tfd[@]}" apply -no-color -input=false -auto-approve "${vars[@]}" \
    -target=module.data.aws_dynamodb_table.this >"$dir/apply.log" 2>&1 || {
    tail -n 40 "$dir/apply.log" >&2
    fail "takeover: apply of the imported table"
  }
  go_item_is_there "applied; the Go service's item is still there" ||
    fail "takeover: the Go service's item did not survive the apply"
  # The way back (docs/deploy.md section 5): the table leaves the state, not the account.
  "${tfd[@]}" state rm -no-color module.data.aws_dynamodb_table.this >"$dir/state-rm.log" 2>&1 || {
    cat "$dir/state-rm.log" >&2
    fail "takeover: terraform state rm"
  }
  go_item_is_there "state rm: out of the state, table and item still there" ||
    fail "takeover: the table did not survive terraform state rm"
  SUMMARIES+=("moto takeover: $table imported, plan without destroy or replace, item kept")
}

run_cycles() {
  local env pids=() failed=""
  for env in $ENVS; do
    mkdir -p "$TOOLS/moto"
    (moto_cycle "$env") >"$TOOLS/moto/$env.log" 2>&1 &
    pids+=("$!")
  done
  local i=0
  for env in $ENVS; do
    if ! wait "${pids[$i]}"; then
      failed+=" $env"
    fi
    i=$((i + 1))
  done
  for env in $ENVS; do
    log "moto: $env"
    cat "$TOOLS/moto/$env.log"
    [[ -f "$TOOLS/moto/$env/summary" ]] && SUMMARIES+=("$(cat "$TOOLS/moto/$env/summary")")
  done
  [[ -z "$failed" ]] || fail "moto apply cycle failed for:$failed (logs in .tools/moto/)"
}

################################################################################
# Main
################################################################################

declare -a SUMMARIES=()
TOTAL_START=$(date +%s)

if ! have_terraform; then
  skip "terraform is not installed: fmt, validate and the moto apply did not run"
  wants checkov && check_checkov
else
  # sed, not head: head would close the pipe early and SIGPIPE terraform (pipefail)
  terraform version | sed -n 1p
  wants fmt && timed "fmt" check_fmt
  if wants validate || wants moto; then
    if ! find_plugin_dir; then
      skip "no local hashicorp/aws provider plugin folder (set TF_PLUGIN_DIR): validate and the moto apply did not run"
      ONLY="${ONLY//validate/}"
      ONLY="${ONLY//moto/}"
    fi
  fi
  wants validate && timed "validate" check_validate
  wants checkov && check_checkov
  wants moto && check_moto
fi

log "infra-check timings"
printf '  %s\n' "${TIMINGS[@]}"
printf '  %-24s %6d s\n' "total" "$(($(date +%s) - TOTAL_START))"
if [[ ${#SUMMARIES[@]} -gt 0 ]]; then
  printf '  %s\n' "${SUMMARIES[@]}"
fi
if [[ ${#SKIPS[@]} -gt 0 ]]; then
  printf '\nSKIPPED (not passed):\n' >&2
  printf '  - %s\n' "${SKIPS[@]}" >&2
  echo "infra-check: finished WITH SKIPS"
else
  echo "infra-check: all checks passed"
fi
