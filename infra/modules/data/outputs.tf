output "table_name" {
  description = "Name of the shows table (shows-<env>)."
  value       = aws_dynamodb_table.this.name
}

output "table_arn" {
  description = "ARN of the shows table."
  value       = aws_dynamodb_table.this.arn
}

output "gsi_name" {
  description = "Name of the DRM/episode-count global secondary index."
  value       = local.gsi_name
}

output "index_arns" {
  description = "ARN pattern covering the table's indexes (for IAM)."
  value       = "${aws_dynamodb_table.this.arn}/index/*"
}
