variable "name" {
  description = "Name prefix and ECS service/cluster/family/repository name, e.g. show-service-dev."
  type        = string
}

variable "env" {
  description = "Environment name passed to the service as APP_ENV (dev, test or prod)."
  type        = string
}

variable "vpc_id" {
  description = "VPC for the ALB, the tasks and their security groups."
  type        = string
}

variable "vpc_cidr_block" {
  description = "IPv4 CIDR of the VPC: the only source the metrics listener admits."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets for the internal ALB and the tasks (one per AZ)."
  type        = list(string)
}

variable "vpc_link_security_group_id" {
  description = "Security group of the API Gateway VPC link: the only source the ALB admits."
  type        = string
}

variable "endpoints" {
  description = "VPC endpoints the tasks reach AWS through: the interface endpoints' security group and the DynamoDB and S3 gateway endpoints' prefix lists."
  type = object({
    security_group_id       = string
    dynamodb_prefix_list_id = string
    s3_prefix_list_id       = string
  })
}

variable "task" {
  description = "Fargate task size and count: cpu units, memory MiB, desired (= autoscaling minimum) and maximum tasks."
  type = object({
    cpu           = number
    memory        = number
    desired_count = number
    max_count     = number
  })

  validation {
    condition     = var.task.desired_count >= 1 && var.task.max_count >= var.task.desired_count
    error_message = "task.desired_count must be at least 1 and task.max_count at least desired_count."
  }
}

variable "image_tag" {
  description = "Image tag (a commit SHA: the repository's tags are immutable) for the task definition Terraform registers. The pipeline registers later revisions itself."
  type        = string
}

variable "log_retention_days" {
  description = "Days to keep the service's logs in /ecs/<name>."
  type        = number
}

variable "app_environment" {
  description = "Settings the service needs from the rest of the stack."
  type = object({
    region                     = string
    table_name                 = string
    gsi_name                   = string
    user_pool_id               = string
    client_ids                 = list(string)
    partner_client_ids         = map(list(string))
    resource_server_identifier = string
  })
}

variable "table_arn" {
  description = "ARN of the shows table; the task role may use it and its indexes only."
  type        = string
}

variable "autoscaling_cpu_target" {
  description = "Average CPU utilisation (%) that target tracking keeps the service at."
  type        = number
  default     = 60
}

variable "deletion_protection" {
  description = "Protect the ALB from deletion (prod)."
  type        = bool
  default     = false
}

variable "force_delete_images" {
  description = "Let destroy delete the ECR repository even when it holds images."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Extra tags for every resource of this module."
  type        = map(string)
  default     = {}
}
