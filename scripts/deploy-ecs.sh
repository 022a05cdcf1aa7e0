#!/usr/bin/env bash
# deploy-ecs.sh IMAGE: roll the ECS service onto IMAGE (run by buildspec.yml).
#
# Takes the task definition family's latest revision (so settings Terraform changed
# since the last deploy come along), swaps the service container's image, registers
# that as a new revision, points the service at it and waits until the service is
# stable. Fails if the deployment did not end on the new revision (the circuit breaker
# rolls a failing deployment back, after which the service is "stable" on the old one).
#
# Needs: ECS_CLUSTER, ECS_SERVICE, TASK_FAMILY, CONTAINER_NAME; aws CLI v2 and jq.
set -euo pipefail

image="${1:?usage: deploy-ecs.sh IMAGE}"
: "${ECS_CLUSTER:?}" "${ECS_SERVICE:?}" "${TASK_FAMILY:?}" "${CONTAINER_NAME:?}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

aws ecs describe-task-definition --task-definition "$TASK_FAMILY" --include TAGS --output json >"$work/current.json"

# Keep only what register-task-definition accepts; drop read-only fields (arn,
# revision, status, registeredAt, ...).
jq --arg image "$image" --arg name "$CONTAINER_NAME" '
  .taskDefinition
  | .containerDefinitions |= map(if .name == $name then .image = $image else . end)
  | {family, taskRoleArn, executionRoleArn, networkMode, containerDefinitions, volumes,
     placementConstraints, requiresCompatibilities, cpu, memory, runtimePlatform,
     ephemeralStorage, pidMode, ipcMode, proxyConfiguration}
  | with_entries(select(.value != null))
' "$work/current.json" >"$work/next.json"

jq -e --arg name "$CONTAINER_NAME" --arg image "$image" \
  'any(.containerDefinitions[]; .name == $name and .image == $image)' "$work/next.json" >/dev/null || {
  echo "deploy-ecs: no container named $CONTAINER_NAME in $TASK_FAMILY" >&2
  exit 1
}

tag_args=()
if [[ "$(jq '.tags // [] | length' "$work/current.json")" -gt 0 ]]; then
  tag_args=(--tags "$(jq -c '.tags' "$work/current.json")")
fi

revision=$(aws ecs register-task-definition --cli-input-json "file://$work/next.json" "${tag_args[@]}" \
  --query 'taskDefinition.taskDefinitionArn' --output text)
echo "registered $revision"

aws ecs update-service --cluster "$ECS_CLUSTER" --service "$ECS_SERVICE" \
  --task-definition "$revision" --query 'service.serviceArn' --output text

echo "waiting for $ECS_SERVICE to be stable"
aws ecs wait services-stable --cluster "$ECS_CLUSTER" --services "$ECS_SERVICE"

# shellcheck disable=SC2016 # the backticks are JMESPath literals, not shell
read -r primary state < <(aws ecs describe-services --cluster "$ECS_CLUSTER" --services "$ECS_SERVICE" \
  --query 'services[0].deployments[?status==`PRIMARY`] | [0].[taskDefinition, rolloutState]' --output text)
if [[ "$primary" != "$revision" || "$state" != "COMPLETED" ]]; then
  echo "deploy-ecs: deployment of $revision did not complete (primary $primary, $state): rolled back?" >&2
  exit 1
fi
echo "deployed $image ($revision)"
