################################################################################
# Environment
################################################################################

variable "env" {
  description = "Environment name: dev, test or prod. Names every resource (show-service-<env>, shows-<env>)."
  type        = string

  validation {
    condition     = contains(["dev", "test", "prod"], var.env)
    error_message = "env must be dev, test or prod."
  }
}

variable "region" {
  description = "AWS region to deploy to; no default: each terraform.<env>.tfvars says it."
  type        = string
}

variable "tags" {
  description = "Extra tags for every resource (merged into the provider's default tags)."
  type        = map(string)
  default     = {}
}

################################################################################
# Network
################################################################################

variable "vpc_cidr" {
  description = "IPv4 CIDR of the environment's VPC."
  type        = string
  default     = "10.40.0.0/16"
}

variable "nat_gateway_per_az" {
  description = "One NAT gateway per AZ (prod) instead of one shared gateway (dev, test)."
  type        = bool
  default     = false
}

################################################################################
# Service sizing (the seed's per-environment table)
################################################################################

variable "task_cpu" {
  description = "Fargate task CPU units (256, 512, 1024, ...)."
  type        = number

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096], var.task_cpu)
    error_message = "task_cpu must be a Fargate CPU size: 256, 512, 1024, 2048 or 4096."
  }
}

variable "task_memory" {
  description = "Fargate task memory in MiB; must be valid for task_cpu (256: 512-2048; 512: 1024-4096; 1024: 2048-8192; ...)."
  type        = number

  validation {
    condition = (
      (var.task_cpu == 256 && contains([512, 1024, 2048], var.task_memory)) ||
      (var.task_cpu == 512 && var.task_memory >= 1024 && var.task_memory <= 4096 && var.task_memory % 1024 == 0) ||
      (var.task_cpu == 1024 && var.task_memory >= 2048 && var.task_memory <= 8192 && var.task_memory % 1024 == 0) ||
      (var.task_cpu == 2048 && var.task_memory >= 4096 && var.task_memory <= 16384 && var.task_memory % 1024 == 0) ||
      (var.task_cpu == 4096 && var.task_memory >= 8192 && var.task_memory <= 30720 && var.task_memory % 1024 == 0)
    )
    error_message = "task_memory is not a valid Fargate memory size for task_cpu."
  }
}

variable "desired_count" {
  description = "Tasks to run; also the autoscaling minimum."
  type        = number
}

variable "max_count" {
  description = "Autoscaling maximum number of tasks."
  type        = number
}

variable "log_retention_days" {
  description = "Days to keep the service's, the API's and the build's logs."
  type        = number

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, ...)."
  }
}

variable "image_tag" {
  description = "Image tag (commit SHA) for the task definition Terraform registers; later deploys come from the pipeline."
  type        = string
  default     = "bootstrap"
}

################################################################################
# Data protection
################################################################################

variable "deletion_protection" {
  description = "Protect the table, the user pool and the ALB from deletion. On in prod; must be turned off (and applied) before a destroy."
  type        = bool
  default     = true
}

################################################################################
# API
################################################################################

variable "cors_allowed_origins" {
  description = "Origins allowed to call the API from a browser."
  type        = list(string)
  default     = []
}

variable "api_throttling" {
  description = "Stage-wide rate/burst limits and the tighter token-route limits."
  type = object({
    rate_limit        = number
    burst_limit       = number
    token_rate_limit  = number
    token_burst_limit = number
  })
  default = {
    rate_limit        = 100
    burst_limit       = 200
    token_rate_limit  = 5
    token_burst_limit = 10
  }
}

variable "cognito_clients" {
  description = <<-EOT
    Cognito app clients (client credentials), one per consumer: name => { scopes, partner }.
    scopes: the short scopes it may request (a read-only app never holds shows.write;
    only the platform's own client holds shows.admin). partner: who owns the shows the
    client creates (APP__AUTH__PARTNERS); defaults to the client's name. A second client
    naming the same partner keeps that partner's shows through a secret rotation
    (docs/deploy.md section 7).
  EOT
  type = map(object({
    scopes  = list(string)
    partner = optional(string)
  }))
  default = {
    partner  = { scopes = ["shows.write"] }
    app      = { scopes = ["shows.read"] }
    platform = { scopes = ["shows.read", "shows.write", "shows.admin"] }
  }

  validation {
    condition = alltrue([
      for c in values(var.cognito_clients) :
      length(c.scopes) > 0 && alltrue([for s in c.scopes : contains(["shows.read", "shows.write", "shows.admin"], s)])
    ])
    error_message = "Each client needs at least one scope, each one of shows.read, shows.write, shows.admin."
  }

  validation {
    condition = alltrue([
      for name, c in var.cognito_clients :
      can(regex("^[A-Za-z0-9._+-]{1,128}$", coalesce(c.partner, name)))
    ])
    error_message = "A partner name is 1 to 128 of A-Z a-z 0-9 . _ + - (the service's PartnerMap refuses anything else)."
  }
}

variable "cognito_domain_prefix" {
  description = "Cognito hosted domain prefix; null derives show-service-<env>-<account id> (unique per region)."
  type        = string
  default     = null
}

################################################################################
# Pipeline
################################################################################

variable "source_repository_url" {
  description = "HTTPS clone URL of the GitHub repository CodeBuild builds (set it once, e.g. export TF_VAR_source_repository_url=...)."
  type        = string

  validation {
    condition     = can(regex("^https://[^[:space:]]+$", var.source_repository_url))
    error_message = "source_repository_url must be an https clone URL."
  }
}

variable "source_branch" {
  description = "Branch CodeBuild builds and deploys."
  type        = string
  default     = "main"
}

variable "enable_webhook" {
  description = "Build on every push (needs the account's CodeBuild GitHub connection first)."
  type        = bool
  default     = false
}

################################################################################
# Monitoring
################################################################################

variable "alarm_thresholds" {
  description = "Alarm thresholds of the environment (set in terraform.<env>.tfvars; see modules/monitoring for what each one watches)."
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
  description = "Who the alarm topic notifies: a list of { protocol, endpoint } (email, https, sms, ...). Email subscriptions must be confirmed from the mail before they deliver."
  type = list(object({
    protocol = string
    endpoint = string
  }))
  default = []
}
