output "api_id" {
  description = "ID of the HTTP API."
  value       = aws_apigatewayv2_api.this.id
}

output "api_endpoint" {
  description = "Invoke URL of the $default stage (no stage prefix in paths)."
  value       = aws_apigatewayv2_stage.this.invoke_url
}

output "token_url" {
  description = "The API's own token URL (POST /oauth/token, proxied to Cognito)."
  value       = "${trimsuffix(aws_apigatewayv2_stage.this.invoke_url, "/")}/oauth/token"
}

output "vpc_link_security_group_id" {
  description = "Security group of the VPC link ENIs (the only source the ALB admits)."
  value       = aws_security_group.vpc_link.id
}

output "access_log_group_name" {
  description = "CloudWatch log group of the stage's access logs."
  value       = aws_cloudwatch_log_group.access.name
}

output "route_keys" {
  description = "Every route key of the API."
  value       = concat(keys(local.protected_routes), local.public_routes, [local.token_route])
}

output "stage_name" {
  description = "Name of the stage ($default): its Stage dimension in CloudWatch."
  value       = aws_apigatewayv2_stage.this.name
}
