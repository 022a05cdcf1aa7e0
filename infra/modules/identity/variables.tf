variable "name" {
  description = "Name prefix, e.g. show-service-dev; also the resource server identifier's host (https://<name>.api)."
  type        = string
}

variable "domain_prefix" {
  description = "Cognito hosted domain prefix (must be unique in the region and may not contain aws, amazon or cognito)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$", var.domain_prefix)) && !can(regex("aws|amazon|cognito", var.domain_prefix))
    error_message = "domain_prefix must be lower-case letters, digits and hyphens, and must not contain aws, amazon or cognito."
  }
}

variable "clients" {
  description = "Client-credentials app clients: name => { scopes, partner }. scopes: the short scopes it may request (shows.read, shows.write, shows.admin); partner: who owns what it creates, the client's name when null. One client per consumer, e.g. { partner = { scopes = [\"shows.write\"] }, app = { scopes = [\"shows.read\"] } }."
  type = map(object({
    scopes  = list(string)
    partner = optional(string)
  }))

  validation {
    condition     = length(var.clients) > 0
    error_message = "clients must name at least one app client."
  }

  validation {
    condition     = alltrue([for name in keys(var.clients) : can(regex("^[a-z0-9][a-z0-9-]{0,40}$", name))])
    error_message = "Client names are lower-case letters, digits and hyphens (at most 41 characters)."
  }

  validation {
    condition     = alltrue([for name, c in var.clients : can(regex("^[A-Za-z0-9._+-]{1,128}$", coalesce(c.partner, name)))])
    error_message = "A partner name is 1 to 128 of A-Z a-z 0-9 . _ + -."
  }
}

variable "access_token_validity_minutes" {
  description = "Lifetime of the client-credentials access tokens, in minutes (5 to 1440)."
  type        = number
  default     = 60

  validation {
    condition     = var.access_token_validity_minutes >= 5 && var.access_token_validity_minutes <= 1440
    error_message = "access_token_validity_minutes must be between 5 and 1440."
  }
}

variable "deletion_protection" {
  description = "Protect the user pool from deletion (ACTIVE) or not (INACTIVE)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Extra tags for the user pool."
  type        = map(string)
  default     = {}
}
