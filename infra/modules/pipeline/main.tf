data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  # Every revision of the service's task definition family.
  task_family_arn = "arn:${data.aws_partition.current.partition}:ecs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:task-definition/${var.deploy_target.task_family}:*"
}

################################################################################
# Build logs
################################################################################

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_158:Encrypted at rest by CloudWatch Logs' own keys; build logs hold no secrets, so a customer-managed key adds cost and a key policy for no requirement.
  name              = "/codebuild/${var.name}-build"
  retention_in_days = var.log_retention_days

  tags = var.tags
}

################################################################################
# IAM: this repository, this cluster and service, these two roles
################################################################################

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["codebuild.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "this" {
  #checkov:skip=CKV_AWS_356:The "*" resources are only for ecr:GetAuthorizationToken and ecs:DescribeTaskDefinition/RegisterTaskDefinition, which have no resource-level permissions.
  #checkov:skip=CKV_AWS_111:Same three actions: AWS defines no resource type for them.
  statement {
    sid       = "BuildLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  statement {
    sid = "EcrLogin"
    # No resource-level permissions for this action.
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "PushThisRepository"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:CompleteLayerUpload",
      "ecr:DescribeImages",
      "ecr:GetDownloadUrlForLayer",
      "ecr:InitiateLayerUpload",
      "ecr:PutImage",
      "ecr:UploadLayerPart",
    ]
    resources = [var.deploy_target.ecr_repository_arn]
  }

  statement {
    sid = "TaskDefinitions"
    # AWS defines no resource type for these two actions (a revision has no ARN before it
    # is registered), so no policy can narrow them to this family: "*" is the only
    # resource they accept. What a registered revision can do is bounded instead by
    # PassTheTaskRoles below (only this service's two roles, only to ECS tasks) and by
    # DeployThisService (only this service runs it).
    actions   = ["ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition"]
    resources = ["*"]
  }

  statement {
    sid       = "TagNewRevisions"
    actions   = ["ecs:TagResource"]
    resources = [local.task_family_arn]

    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RegisterTaskDefinition"]
    }
  }

  statement {
    sid       = "DeployThisService"
    actions   = ["ecs:DescribeServices", "ecs:UpdateService"]
    resources = [var.deploy_target.service_arn]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [var.deploy_target.cluster_arn]
    }
  }

  statement {
    sid       = "PassTheTaskRoles"
    actions   = ["iam:PassRole"]
    resources = [var.deploy_target.execution_role_arn, var.deploy_target.task_role_arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = "${var.name}-build"
  description        = "CodeBuild: test, push ${var.name} images, deploy ${var.name}"
  assume_role_policy = data.aws_iam_policy_document.assume.json

  tags = var.tags
}

resource "aws_iam_role_policy" "this" {
  name   = "build-push-deploy"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

################################################################################
# Project
################################################################################

resource "aws_codebuild_project" "this" {
  #checkov:skip=CKV_AWS_316:Privileged mode is what lets the build run Docker to build the image (there is no managed Rust runtime).
  #checkov:skip=CKV_AWS_147:Build has no artifacts and its logs use CloudWatch's own encryption; a customer-managed key adds a key policy for no requirement.
  name           = "${var.name}-build"
  description    = "Test, build the image, push it tagged by commit, deploy ${var.name}"
  service_role   = aws_iam_role.this.arn
  build_timeout  = var.build_timeout_minutes
  source_version = var.source_branch

  source {
    type            = "GITHUB"
    location        = var.source_repository_url
    git_clone_depth = 1
    buildspec       = "buildspec.yml"
  }

  artifacts {
    type = "NO_ARTIFACTS"
  }

  # Reuse Docker layers (the cooked dependencies) between builds on the same host.
  cache {
    type  = "LOCAL"
    modes = ["LOCAL_DOCKER_LAYER_CACHE", "LOCAL_SOURCE_CACHE"]
  }

  environment {
    type            = "LINUX_CONTAINER"
    compute_type    = var.compute_type
    image           = var.build_image
    privileged_mode = true

    environment_variable {
      name  = "ECR_REPOSITORY_URL"
      value = var.deploy_target.ecr_repository_url
    }
    environment_variable {
      name  = "ECS_CLUSTER"
      value = var.deploy_target.cluster_name
    }
    environment_variable {
      name  = "ECS_SERVICE"
      value = var.deploy_target.service_name
    }
    environment_variable {
      name  = "TASK_FAMILY"
      value = var.deploy_target.task_family
    }
    environment_variable {
      name  = "CONTAINER_NAME"
      value = var.deploy_target.container_name
    }
  }

  logs_config {
    cloudwatch_logs {
      group_name = aws_cloudwatch_log_group.this.name
    }
  }

  tags = var.tags
}

resource "aws_codebuild_webhook" "this" {
  count = var.enable_webhook ? 1 : 0

  project_name = aws_codebuild_project.this.name
  build_type   = "BUILD"

  filter_group {
    filter {
      type    = "EVENT"
      pattern = "PUSH"
    }
    filter {
      type    = "HEAD_REF"
      pattern = "^refs/heads/${var.source_branch}$"
    }
  }
}
