variable "env" {
  description = "Environment name (dev, test, prod); the table is named shows-<env>."
  type        = string
}

variable "deletion_protection" {
  description = "Refuse to delete the table (true in prod). Must be false before a destroy can succeed."
  type        = bool
  default     = true
}

variable "point_in_time_recovery" {
  description = "Keep continuous backups for point-in-time restore (35 days)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Extra tags for the table."
  type        = map(string)
  default     = {}
}
