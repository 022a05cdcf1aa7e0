output "apigw_url" {
  description = "Public base URL of the API (GET /shows, /v1/shows, POST /oauth/token, ...)."
  value       = module.api.api_endpoint
}

output "alb_url" {
  description = "URL of the internal ALB (reachable only from the API Gateway VPC link)."
  value       = "http://${module.service.alb_dns_name}"
}

output "codebuild_project_name" {
  description = "CodeBuild project that tests, builds and deploys the service."
  value       = module.pipeline.project_name
}

output "cognito_user_pool_id" {
  description = "Cognito user pool ID."
  value       = module.identity.user_pool_id
}

output "cognito_client_ids" {
  description = "App client id of each consumer (name => id): terraform output -json cognito_client_ids | jq -r .partner"
  value       = module.identity.client_ids
}

output "cognito_client_secrets" {
  description = "App client secret of each consumer (name => secret): terraform output -json cognito_client_secrets | jq -r .partner"
  value       = module.identity.client_secrets
  sensitive   = true
}

output "cognito_partners" {
  description = "App client ids of each partner (partner => ids): the service's APP__AUTH__PARTNERS, and the owner names POST /v1/admin/owners takes."
  value       = module.identity.partner_client_ids
}

output "cognito_client_scopes" {
  description = "Full scope names each app client may request (name => scopes)."
  value       = module.identity.client_scopes
}

output "cognito_issuer_url" {
  description = "Issuer of the access tokens."
  value       = module.identity.issuer_url
}

output "cognito_token_endpoint" {
  description = "Cognito's own token endpoint (the API's /oauth/token proxies to it)."
  value       = module.identity.token_endpoint
}

output "token_url" {
  description = "Token URL to use: the API's POST /oauth/token."
  value       = module.api.token_url
}

output "resource_server_identifier" {
  description = "Scope prefix: request <this>/shows.read and/or <this>/shows.write."
  value       = module.identity.resource_server_identifier
}

output "table_name" {
  description = "DynamoDB table of this environment."
  value       = module.data.table_name
}

output "ecr_repository_url" {
  description = "Image repository (tags are commit SHAs)."
  value       = module.service.ecr_repository_url
}

output "ecs_cluster_name" {
  description = "ECS cluster name."
  value       = module.service.cluster_name
}

output "ecs_service_name" {
  description = "ECS service name."
  value       = module.service.service_name
}

output "service_log_group" {
  description = "CloudWatch log group of the service (aws logs tail <this> --follow)."
  value       = module.service.log_group_name
}

output "api_access_log_group" {
  description = "CloudWatch log group of the API's access logs."
  value       = module.api.access_log_group_name
}

output "alarm_topic_arn" {
  description = "SNS topic every alarm notifies (subscribe with alarm_subscriptions)."
  value       = module.monitoring.alarm_topic_arn
}

output "dashboard_url" {
  description = "The environment's CloudWatch dashboard."
  value       = "https://console.aws.amazon.com/cloudwatch/home?region=${data.aws_region.current.name}#dashboards:name=${module.monitoring.dashboard_name}"
}
