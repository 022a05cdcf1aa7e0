data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  # The service's own metrics: CloudWatch Embedded Metric Format lines on stdout, turned
  # into metrics by CloudWatch Logs. Every one carries Environment (= APP_ENV) and the
  # metric's own EMF dimensions (show_service's metrics table; tests/infra_consistency.rs
  # checks every name and dimension used here against it).
  service_namespace = "ShowService"
  service_dims      = { Environment = var.env }

  # The DynamoDB data-plane calls the service's store makes, as the SystemErrors
  # metric's Operation names them (tests/infra_consistency.rs reads them from the
  # store's code). A metric math alarm holds at most 10 metrics.
  table_operations = ["BatchGetItem", "DeleteItem", "GetItem", "PutItem", "Query", "TransactWriteItems", "UpdateItem"]

  api_dims = { ApiId = var.api.id, Stage = var.api.stage }
  alb_dims = { LoadBalancer = var.load_balancer.arn_suffix }
  tg_dims  = { LoadBalancer = var.load_balancer.arn_suffix, TargetGroup = var.load_balancer.target_group_arn_suffix }
  ecs_dims = { ClusterName = var.ecs.cluster_name, ServiceName = var.ecs.service_name }

  t = var.thresholds

  # Single-metric alarms, after CloudWatch's "recommended alarms" for API Gateway, ALB
  # and ECS (statistic, period and datapoints as recommended; thresholds per
  # environment), and the service's own signals. Counters without traffic publish
  # nothing, so missing data is "not breaching" throughout.
  alarms = {
    api-5xx = {
      description = "More than ${local.t.api_5xx_rate * 100} % of API requests answered 5xx (API Gateway, the ALB or the service). Check the service's 5xx alarm and its logs, then the ALB's."
      namespace   = "AWS/ApiGateway"
      metric_name = "5xx"
      dimensions  = local.api_dims
      statistic   = "Average"
      threshold   = local.t.api_5xx_rate
      periods     = 3
      datapoints  = 3
    }
    api-latency = {
      description = "API p90 latency above ${local.t.api_latency_p90_ms} ms. Compare the ALB's target response time: slow tasks, or slow in front of them."
      namespace   = "AWS/ApiGateway"
      metric_name = "Latency"
      dimensions  = local.api_dims
      statistic   = "p90"
      threshold   = local.t.api_latency_p90_ms
      periods     = 5
      datapoints  = 5
    }
    alb-5xx = {
      description = "The ALB itself answered 5xx (502/503/504: no healthy target, a target closed the connection, a timeout) more than ${local.t.alb_5xx_per_minute} times a minute."
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_ELB_5XX_Count"
      dimensions  = local.alb_dims
      statistic   = "Sum"
      threshold   = local.t.alb_5xx_per_minute
      periods     = 5
      datapoints  = 5
    }
    target-5xx = {
      description = "The tasks answered 5xx more than ${local.t.target_5xx_per_minute} times a minute. See the service's logs (/ecs/${var.name})."
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_Target_5XX_Count"
      dimensions  = local.tg_dims
      statistic   = "Sum"
      threshold   = local.t.target_5xx_per_minute
      periods     = 5
      datapoints  = 5
    }
    target-response-time = {
      description = "Tasks' p90 response time above ${local.t.target_response_time_p90_seconds} s. Check CPU, the store's latency and throttling."
      namespace   = "AWS/ApplicationELB"
      metric_name = "TargetResponseTime"
      dimensions  = local.tg_dims
      statistic   = "p90"
      threshold   = local.t.target_response_time_p90_seconds
      periods     = 5
      datapoints  = 5
    }
    unhealthy-targets = {
      description = "More than ${local.t.unhealthy_targets} task(s) failing the ALB's health check (/health) for 3 minutes."
      namespace   = "AWS/ApplicationELB"
      metric_name = "UnHealthyHostCount"
      dimensions  = local.tg_dims
      statistic   = "Maximum"
      threshold   = local.t.unhealthy_targets
      periods     = 3
      datapoints  = 3
    }
    task-cpu = {
      description = "Service CPU above ${local.t.task_cpu_percent} % of the task size for 5 minutes while autoscaling should have added tasks: at its maximum, or scaling is failing."
      namespace   = "AWS/ECS"
      metric_name = "CPUUtilization"
      dimensions  = local.ecs_dims
      statistic   = "Average"
      threshold   = local.t.task_cpu_percent
      periods     = 5
      datapoints  = 5
    }
    task-memory = {
      description = "Service memory above ${local.t.task_memory_percent} % of the task size for 5 minutes: a task near its limit is killed (OOM)."
      namespace   = "AWS/ECS"
      metric_name = "MemoryUtilization"
      dimensions  = local.ecs_dims
      statistic   = "Average"
      threshold   = local.t.task_memory_percent
      periods     = 5
      datapoints  = 5
    }
    store-unavailable = {
      description = "The service could not reach its store (store_calls_total{outcome=unavailable}) more than ${local.t.store_unavailable_per_minute} times a minute, 3 minutes in a row: requests get 503."
      namespace   = local.service_namespace
      metric_name = "store_calls_total"
      dimensions  = merge(local.service_dims, { outcome = "unavailable" })
      statistic   = "Sum"
      threshold   = local.t.store_unavailable_per_minute
      periods     = 3
      datapoints  = 3
    }
    jwks-fetch-errors = {
      description = "Fetching the issuer's JWKS failed (auth_jwks_fetches_total{outcome=error}) more than ${local.t.jwks_fetch_errors_per_minute} times a minute: the JWKS is reached through NAT; tokens signed with a new key are refused until it works."
      namespace   = local.service_namespace
      metric_name = "auth_jwks_fetches_total"
      dimensions  = merge(local.service_dims, { outcome = "error" })
      statistic   = "Sum"
      threshold   = local.t.jwks_fetch_errors_per_minute
      periods     = 3
      datapoints  = 3
    }
    partial-feeds = {
      description = "Feeds only partly written (feeds_total{outcome=partial}) more than ${local.t.partial_feeds_per_minute} times a minute: the sender must retry them. Look for DynamoDB throttling."
      namespace   = local.service_namespace
      metric_name = "feeds_total"
      dimensions  = merge(local.service_dims, { outcome = "partial" })
      statistic   = "Sum"
      threshold   = local.t.partial_feeds_per_minute
      periods     = 1
      datapoints  = 1
    }
    shed-requests = {
      description = "The service shed more than ${local.t.shed_requests_per_minute} requests a minute (503, at its concurrency limit) for 3 minutes: too few tasks for the load."
      namespace   = local.service_namespace
      metric_name = "http_requests_shed_total"
      dimensions  = local.service_dims
      statistic   = "Sum"
      threshold   = local.t.shed_requests_per_minute
      periods     = 3
      datapoints  = 3
    }
    service-5xx = {
      description = "The service answered 5xx (http_requests_total{status_class=5xx}) more than ${local.t.service_5xx_per_minute} times a minute for 3 minutes. See its logs (/ecs/${var.name})."
      namespace   = local.service_namespace
      metric_name = "http_requests_total"
      dimensions  = merge(local.service_dims, { status_class = "5xx" })
      statistic   = "Sum"
      threshold   = local.t.service_5xx_per_minute
      periods     = 3
      datapoints  = 3
    }
  }

  # DynamoDB throttling, table and index, read and write (the recommended
  # ReadThrottleEvents / WriteThrottleEvents alarms, summed into one).
  throttle_metrics = [
    { metric_name = "ReadThrottleEvents", dimensions = { TableName = var.table.name } },
    { metric_name = "WriteThrottleEvents", dimensions = { TableName = var.table.name } },
    { metric_name = "ReadThrottleEvents", dimensions = { TableName = var.table.name, GlobalSecondaryIndexName = var.table.gsi_name } },
    { metric_name = "WriteThrottleEvents", dimensions = { TableName = var.table.name, GlobalSecondaryIndexName = var.table.gsi_name } },
  ]

  alarm_actions = [aws_sns_topic.alarms.arn]
}

################################################################################
# Alarm topic, encrypted with a key CloudWatch may use
#
# CloudWatch can publish to an encrypted topic only when the key's policy lets
# cloudwatch.amazonaws.com use it, which the AWS-managed aws/sns key's policy does not:
# hence a customer-managed key, rotated yearly.
################################################################################

data "aws_iam_policy_document" "alarm_key" {
  #checkov:skip=CKV_AWS_109:A key policy's "*" resource is this key itself; the account statement is the standard delegation to IAM, without which the key could not be managed.
  #checkov:skip=CKV_AWS_111:Same: in a key policy "*" means this key only.
  #checkov:skip=CKV_AWS_356:Same: in a key policy "*" means this key only.
  statement {
    sid = "AccountManagesTheKey"
    actions = [
      "kms:CancelKeyDeletion",
      "kms:CreateAlias",
      "kms:DeleteAlias",
      "kms:DescribeKey",
      "kms:DisableKey",
      "kms:DisableKeyRotation",
      "kms:EnableKey",
      "kms:EnableKeyRotation",
      "kms:GetKeyPolicy",
      "kms:GetKeyRotationStatus",
      "kms:ListResourceTags",
      "kms:PutKeyPolicy",
      "kms:ScheduleKeyDeletion",
      "kms:TagResource",
      "kms:UntagResource",
      "kms:UpdateAlias",
      "kms:UpdateKeyDescription",
      # Publishing by hand (a test message) goes through SNS with the caller's rights.
      "kms:Decrypt",
      "kms:GenerateDataKey",
    ]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_kms_key" "alarms" {
  description             = "${var.name}: alarm topic"
  enable_key_rotation     = true
  deletion_window_in_days = var.key_deletion_window_days
  policy                  = data.aws_iam_policy_document.alarm_key.json

  tags = var.tags
}

resource "aws_kms_alias" "alarms" {
  name          = "alias/${var.name}-alarms"
  target_key_id = aws_kms_key.alarms.key_id
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = aws_kms_key.alarms.arn

  tags = var.tags
}

# Only this account's alarms of this stack may publish (the account's own principals
# keep what their IAM policies give them).
data "aws_iam_policy_document" "alarm_topic" {
  statement {
    sid       = "ThisAccountsAlarmsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${data.aws_partition.current.partition}:cloudwatch:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:alarm:${var.name}-*"]
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.alarm_topic.json
}

resource "aws_sns_topic_subscription" "alarms" {
  for_each = { for s in var.alarm_subscriptions : "${s.protocol}:${s.endpoint}" => s }

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = each.value.protocol
  endpoint  = each.value.endpoint
}

################################################################################
# Alarms
################################################################################

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric_name
  dimensions          = each.value.dimensions
  statistic           = startswith(each.value.statistic, "p") ? null : each.value.statistic
  extended_statistic  = startswith(each.value.statistic, "p") ? each.value.statistic : null
  period              = 60
  evaluation_periods  = each.value.periods
  datapoints_to_alarm = each.value.datapoints
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  tags = var.tags
}

# Running tasks below desired (Container Insights' task counts, which the cluster
# publishes with containerInsights enabled). No data means Container Insights cannot see
# the service at all: treated as breaching.
resource "aws_cloudwatch_metric_alarm" "running_tasks" {
  alarm_name          = "${var.name}-running-tasks"
  alarm_description   = "Fewer tasks running than the service wants for 5 minutes: tasks crash or fail their health check (see the service's events and /ecs/${var.name})."
  evaluation_periods  = 5
  datapoints_to_alarm = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "missing"
    expression  = "desired - running"
    label       = "Tasks below desired"
    return_data = true
  }

  metric_query {
    id = "desired"
    metric {
      namespace   = "ECS/ContainerInsights"
      metric_name = "DesiredTaskCount"
      dimensions  = local.ecs_dims
      period      = 60
      stat        = "Maximum"
    }
  }

  metric_query {
    id = "running"
    metric {
      namespace   = "ECS/ContainerInsights"
      metric_name = "RunningTaskCount"
      dimensions  = local.ecs_dims
      period      = 60
      stat        = "Minimum"
    }
  }

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "dynamodb_throttles" {
  alarm_name          = "${var.name}-dynamodb-throttles"
  alarm_description   = "DynamoDB throttled more than ${local.t.dynamodb_throttles_per_minute} reads/writes a minute on ${var.table.name} or its index (on-demand tables throttle beyond twice their previous peak, or on a hot key): feeds may be written only in part."
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = local.t.dynamodb_throttles_per_minute
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "throttles"
    expression  = "SUM(METRICS())"
    label       = "Throttle events"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = local.throttle_metrics
    content {
      id = "m${metric_query.key}"
      metric {
        namespace   = "AWS/DynamoDB"
        metric_name = metric_query.value.metric_name
        dimensions  = metric_query.value.dimensions
        period      = 60
        stat        = "Sum"
      }
    }
  }

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "dynamodb_system_errors" {
  alarm_name          = "${var.name}-dynamodb-system-errors"
  alarm_description   = "DynamoDB answered more than ${local.t.dynamodb_system_errors_per_minute} of the service's calls a minute with a 500 (its own fault; the SDK retries them)."
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = local.t.dynamodb_system_errors_per_minute
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "errors"
    expression  = "SUM(METRICS())"
    label       = "System errors"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = local.table_operations
    content {
      id = "m${metric_query.key}"
      metric {
        namespace   = "AWS/DynamoDB"
        metric_name = "SystemErrors"
        dimensions  = { TableName = var.table.name, Operation = metric_query.value }
        period      = 60
        stat        = "Sum"
      }
    }
  }

  tags = var.tags
}

################################################################################
# Dashboard: the same signals, one row per layer, newest alarm states on top
################################################################################

locals {
  dashboard_rows = [
    {
      title = "API Gateway"
      left = {
        title   = "Requests and errors"
        metrics = [["AWS/ApiGateway", "Count", "ApiId", var.api.id, "Stage", var.api.stage], ["AWS/ApiGateway", "4xx", "ApiId", var.api.id, "Stage", var.api.stage], ["AWS/ApiGateway", "5xx", "ApiId", var.api.id, "Stage", var.api.stage]]
        stat    = "Sum"
      }
      right = {
        title   = "Latency p90 (ms)"
        metrics = [["AWS/ApiGateway", "Latency", "ApiId", var.api.id, "Stage", var.api.stage], ["AWS/ApiGateway", "IntegrationLatency", "ApiId", var.api.id, "Stage", var.api.stage]]
        stat    = "p90"
      }
    },
    {
      title = "Load balancer"
      left = {
        title   = "Target and ALB 5xx, unhealthy targets"
        metrics = [["AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "LoadBalancer", var.load_balancer.arn_suffix, "TargetGroup", var.load_balancer.target_group_arn_suffix], ["AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", "LoadBalancer", var.load_balancer.arn_suffix], ["AWS/ApplicationELB", "UnHealthyHostCount", "LoadBalancer", var.load_balancer.arn_suffix, "TargetGroup", var.load_balancer.target_group_arn_suffix, { stat = "Maximum" }]]
        stat    = "Sum"
      }
      right = {
        title   = "Target response time p90 (s)"
        metrics = [["AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer", var.load_balancer.arn_suffix, "TargetGroup", var.load_balancer.target_group_arn_suffix]]
        stat    = "p90"
      }
    },
    {
      title = "ECS service"
      left = {
        title   = "CPU and memory (% of the task size)"
        metrics = [["AWS/ECS", "CPUUtilization", "ClusterName", var.ecs.cluster_name, "ServiceName", var.ecs.service_name], ["AWS/ECS", "MemoryUtilization", "ClusterName", var.ecs.cluster_name, "ServiceName", var.ecs.service_name]]
        stat    = "Average"
      }
      right = {
        title   = "Tasks: running and desired"
        metrics = [["ECS/ContainerInsights", "RunningTaskCount", "ClusterName", var.ecs.cluster_name, "ServiceName", var.ecs.service_name], ["ECS/ContainerInsights", "DesiredTaskCount", "ClusterName", var.ecs.cluster_name, "ServiceName", var.ecs.service_name]]
        stat    = "Maximum"
      }
    },
    {
      title = "DynamoDB"
      left = {
        title = "Throttle events and system errors"
        metrics = concat(
          [
            ["AWS/DynamoDB", "ReadThrottleEvents", "TableName", var.table.name],
            ["AWS/DynamoDB", "WriteThrottleEvents", "TableName", var.table.name],
            ["AWS/DynamoDB", "ReadThrottleEvents", "TableName", var.table.name, "GlobalSecondaryIndexName", var.table.gsi_name],
            ["AWS/DynamoDB", "WriteThrottleEvents", "TableName", var.table.name, "GlobalSecondaryIndexName", var.table.gsi_name],
          ],
          [for op in local.table_operations : ["AWS/DynamoDB", "SystemErrors", "TableName", var.table.name, "Operation", op]],
        )
        stat = "Sum"
      }
      right = {
        title   = "Consumed capacity units"
        metrics = [["AWS/DynamoDB", "ConsumedReadCapacityUnits", "TableName", var.table.name], ["AWS/DynamoDB", "ConsumedWriteCapacityUnits", "TableName", var.table.name], ["AWS/DynamoDB", "ConsumedReadCapacityUnits", "TableName", var.table.name, "GlobalSecondaryIndexName", var.table.gsi_name]]
        stat    = "Sum"
      }
    },
    {
      title = "Service: requests"
      left = {
        title   = "Responses by class, shed and timed out"
        metrics = concat([for c in ["2xx", "4xx", "5xx"] : [local.service_namespace, "http_requests_total", "Environment", var.env, "status_class", c]], [[local.service_namespace, "http_requests_shed_total", "Environment", var.env], [local.service_namespace, "http_requests_timed_out_total", "Environment", var.env]])
        stat    = "Sum"
      }
      right = {
        title   = "Feeds by outcome"
        metrics = [for o in ["accepted", "rejected", "partial", "failed"] : [local.service_namespace, "feeds_total", "Environment", var.env, "outcome", o]]
        stat    = "Sum"
      }
    },
    {
      title = "Service: store and tokens"
      left = {
        title   = "Store calls by outcome"
        metrics = [for o in ["ok", "unavailable", "throttled", "error"] : [local.service_namespace, "store_calls_total", "Environment", var.env, "outcome", o]]
        stat    = "Sum"
      }
      right = {
        title   = "JWKS fetches by outcome"
        metrics = [for o in ["ok", "error"] : [local.service_namespace, "auth_jwks_fetches_total", "Environment", var.env, "outcome", o]]
        stat    = "Sum"
      }
    },
    {
      title = "Service: read cost"
      left = {
        title   = "Capacity units the service consumed"
        metrics = [[local.service_namespace, "store_consumed_read_units_total", "Environment", var.env], [local.service_namespace, "store_consumed_write_units_total", "Environment", var.env]]
        stat    = "Sum"
      }
      right = {
        title   = "Catalogue refills and change checks"
        metrics = concat([[local.service_namespace, "catalogue_refills_total", "Environment", var.env]], [for o in ["changed", "error"] : [local.service_namespace, "catalogue_change_checks_total", "Environment", var.env, "outcome", o]])
        stat    = "Sum"
      }
    },
  ]

  alarm_arns = concat(
    [for a in aws_cloudwatch_metric_alarm.this : a.arn],
    [aws_cloudwatch_metric_alarm.running_tasks.arn, aws_cloudwatch_metric_alarm.dynamodb_throttles.arn, aws_cloudwatch_metric_alarm.dynamodb_system_errors.arn],
  )

  # 24 columns: alarm states across the top, then two graphs per row.
  widgets = concat(
    [{
      type   = "alarm"
      x      = 0
      y      = 0
      width  = 24
      height = 4
      properties = {
        title  = "Alarms"
        alarms = local.alarm_arns
      }
    }],
    flatten([for i, row in local.dashboard_rows : [
      for side, graph in { left = row.left, right = row.right } : {
        type                    = "metric"
        x                       = side == "left" ? 0 : 12
        y                       = 4 + 6 * i
        width                   = 12
        height                  = 6
        properties = {
          title   = "${row.title}: ${graph.title}"
          region  = data.aws_region.current.name
          view    = "timeSeries"
          stacked = false
          period  = 60
          stat    = graph.stat
          metrics = graph.metrics
        }
      }
    ]]),
  )
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name
  dashboard_body = jsonencode({ widgets = local.widgets })
}
