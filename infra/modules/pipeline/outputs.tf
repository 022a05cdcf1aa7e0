output "project_name" {
  description = "CodeBuild project name (start a deploy with `aws codebuild start-build --project-name <this>`)."
  value       = aws_codebuild_project.this.name
}

output "project_arn" {
  description = "CodeBuild project ARN."
  value       = aws_codebuild_project.this.arn
}

output "role_arn" {
  description = "ARN of the build's service role."
  value       = aws_iam_role.this.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the builds."
  value       = aws_cloudwatch_log_group.this.name
}
