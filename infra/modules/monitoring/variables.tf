variable "name" {
  description = "Name prefix for the topic, the alarms and the dashboard, e.g. show-service-dev."
  type        = string
}

variable "env" {
  description = "Environment name: the value of the Environment dimension on the service's own metrics (its APP_ENV)."
  type        = string
}

variable "api" {
  description = "The HTTP API and its stage (AWS/ApiGateway dimensions ApiId and Stage)."
  type = object({
    id    = string
    stage = string
  })
}

variable "load_balancer" {
  description = "ARN suffixes of the internal ALB and its target group (AWS/ApplicationELB dimensions LoadBalancer and TargetGroup)."
  type = object({
    arn_suffix              = string
    target_group_arn_suffix = string
  })
}

variable "ecs" {
  description = "ECS cluster and service names (AWS/ECS and ECS/ContainerInsights dimensions ClusterName and ServiceName)."
  type = object({
    cluster_name = string
    service_name = string
  })
}

variable "table" {
  description = "The shows table and its GSI (AWS/DynamoDB dimensions TableName and GlobalSecondaryIndexName)."
  type = object({
    name     = string
    gsi_name = string
  })
}

variable "thresholds" {
  description = "Alarm thresholds of this environment (terraform.<env>.tfvars). Rates are shares of requests (0.05 = 5 %); counts are per minute."
  type = object({
    api_5xx_rate                      = number
    api_latency_p90_ms                = number
    alb_5xx_per_minute                = number
    target_5xx_per_minute             = number
    target_response_time_p90_seconds  = number
    unhealthy_targets                 = number
    task_cpu_percent                  = number
    task_memory_percent               = number
    dynamodb_throttles_per_minute     = number
    dynamodb_system_errors_per_minute = number
    store_unavailable_per_minute      = number
    jwks_fetch_errors_per_minute      = number
    partial_feeds_per_minute          = number
    shed_requests_per_minute          = number
    service_5xx_per_minute            = number
  })
}

variable "alarm_subscriptions" {
  description = "Who the alarm topic notifies: a list of { protocol, endpoint }, e.g. { protocol = \"email\", endpoint = \"oncall@example.com\" } or an HTTPS paging webhook."
  type = list(object({
    protocol = string
    endpoint = string
  }))
  default = []

  validation {
    condition     = alltrue([for s in var.alarm_subscriptions : contains(["email", "email-json", "https", "sms", "sqs", "lambda", "firehose", "application"], s.protocol)])
    error_message = "Each subscription's protocol must be one SNS supports: email, email-json, https, sms, sqs, lambda, firehose or application."
  }
}

variable "key_deletion_window_days" {
  description = "Days a deleted alarm-topic key can still be restored (7 to 30)."
  type        = number
  default     = 7
}

variable "tags" {
  description = "Extra tags for every resource of this module."
  type        = map(string)
  default     = {}
}
