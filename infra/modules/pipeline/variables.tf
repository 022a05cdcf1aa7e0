variable "name" {
  description = "Name prefix, e.g. show-service-dev; the project is <name>-build."
  type        = string
}

variable "source_repository_url" {
  description = "HTTPS clone URL of the GitHub repository holding the service and buildspec.yml."
  type        = string
}

variable "source_branch" {
  description = "Branch (or other git ref) built by default."
  type        = string
  default     = "main"
}

variable "enable_webhook" {
  description = "Build on every push to source_branch. Needs the account's CodeBuild GitHub connection (source credential) to exist first, so it is off until that is set up."
  type        = bool
  default     = false
}

variable "compute_type" {
  description = "CodeBuild compute type; a release build of the service wants at least MEDIUM."
  type        = string
  default     = "BUILD_GENERAL1_MEDIUM"
}

variable "build_image" {
  description = "CodeBuild managed image (must have Docker; the Rust toolchain comes from the Dockerfile)."
  type        = string
  default     = "aws/codebuild/standard:7.0"
}

variable "build_timeout_minutes" {
  description = "Minutes before a build is stopped (tests, image build, deploy and wait)."
  type        = number
  default     = 45
}

variable "log_retention_days" {
  description = "Days to keep build logs."
  type        = number
  default     = 14
}

variable "deploy_target" {
  description = "What a build pushes to and deploys: the ECR repository, the ECS cluster/service/family/container, and the two roles the new task definition revision uses."
  type = object({
    ecr_repository_url = string
    ecr_repository_arn = string
    cluster_name       = string
    cluster_arn        = string
    service_name       = string
    service_arn        = string
    task_family        = string
    container_name     = string
    execution_role_arn = string
    task_role_arn      = string
  })
}

variable "tags" {
  description = "Extra tags for every resource of this module."
  type        = map(string)
  default     = {}
}
