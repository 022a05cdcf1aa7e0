variable "name" {
  description = "Name prefix, e.g. show-service-dev."
  type        = string
}

variable "vpc_id" {
  description = "VPC holding the VPC link's security group."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the VPC link's network interfaces."
  type        = list(string)
}

variable "alb_security_group_id" {
  description = "Security group of the internal ALB; the VPC link may only send to it."
  type        = string
}

variable "alb_listener_arn" {
  description = "ARN of the internal ALB's listener that private integrations target."
  type        = string
}

variable "alb_listener_port" {
  description = "Port of that listener."
  type        = number
  default     = 80
}

variable "jwt_issuer" {
  description = "Issuer URL the JWT authorizer trusts (the Cognito user pool)."
  type        = string
}

variable "jwt_audiences" {
  description = "Allowed audiences / client ids of the JWT authorizer."
  type        = list(string)
}

variable "resource_server_identifier" {
  description = "Resource server identifier; route scopes are <identifier>/<scope>."
  type        = string
}

variable "token_endpoint" {
  description = "Cognito token endpoint that POST /oauth/token proxies to."
  type        = string
}

variable "cors" {
  description = "CORS answered by API Gateway itself (it ignores the backend's CORS headers)."
  type = object({
    allow_origins = list(string)
    max_age       = optional(number, 300)
  })
  default = {
    allow_origins = []
  }
}

variable "throttling" {
  description = "Stage-wide steady-state rate and burst limits, and tighter ones for the token route (each token request is billed by Cognito)."
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

variable "log_retention_days" {
  description = "Days to keep the stage's access logs."
  type        = number
  default     = 14
}

variable "tags" {
  description = "Extra tags for every resource of this module."
  type        = map(string)
  default     = {}
}
