variable "name" {
  description = "Name prefix for every resource, e.g. show-service-dev."
  type        = string
}

variable "cidr_block" {
  description = "IPv4 CIDR of the VPC. Public subnets take the first /20s, private subnets start at the ninth /20."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.cidr_block, 0)) && tonumber(split("/", var.cidr_block)[1]) <= 20
    error_message = "cidr_block must be a valid IPv4 CIDR of /20 or larger (subnets are /netmask+4)."
  }
}

variable "az_count" {
  description = "How many availability zones to spread subnets over (the ALB needs at least two)."
  type        = number
  default     = 2

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 4
    error_message = "az_count must be between 2 and 4."
  }
}

variable "nat_gateway_per_az" {
  description = "One NAT gateway per AZ (true: an AZ outage does not cut the others off, used in prod) or a single shared one (false: cheaper, for dev/test)."
  type        = bool
  default     = false
}

variable "flow_log_retention_days" {
  description = "Days to keep VPC flow logs in CloudWatch."
  type        = number
  default     = 14
}

variable "tags" {
  description = "Extra tags for every resource of this module."
  type        = map(string)
  default     = {}
}
