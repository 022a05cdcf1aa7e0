output "user_pool_id" {
  description = "Cognito user pool ID."
  value       = aws_cognito_user_pool.this.id
}

output "user_pool_arn" {
  description = "Cognito user pool ARN."
  value       = aws_cognito_user_pool.this.arn
}

output "client_ids" {
  description = "App client id of each client (name => id): the JWT authorizer's audiences and the service's allowed client ids."
  value       = { for name, client in aws_cognito_user_pool_client.this : name => client.id }
}

output "partner_client_ids" {
  description = "App client ids of each partner (partner => ids, in client-name order): the service's partner map, APP__AUTH__PARTNERS."
  value       = { for name, client in aws_cognito_user_pool_client.this : local.partner_of[name] => client.id... }
}

output "client_secrets" {
  description = "App client secret of each client (name => secret)."
  value       = { for name, client in aws_cognito_user_pool_client.this : name => client.client_secret }
  sensitive   = true
}

output "client_scopes" {
  description = "Full scope names each client may request (name => scopes)."
  value       = { for name, client in aws_cognito_user_pool_client.this : name => client.allowed_oauth_scopes }
}

output "issuer_url" {
  description = "Token issuer (iss claim): https://cognito-idp.<region>.amazonaws.com/<pool id>."
  value       = "https://cognito-idp.${data.aws_region.current.name}.amazonaws.com/${aws_cognito_user_pool.this.id}"
}

output "jwks_url" {
  description = "The issuer's JSON Web Key Set."
  value       = "https://cognito-idp.${data.aws_region.current.name}.amazonaws.com/${aws_cognito_user_pool.this.id}/.well-known/jwks.json"
}

output "token_endpoint" {
  description = "Cognito's OAuth 2.0 token endpoint for the hosted domain."
  value       = "https://${aws_cognito_user_pool_domain.this.domain}.auth.${data.aws_region.current.name}.amazoncognito.com/oauth2/token"
}

output "resource_server_identifier" {
  description = "Resource server identifier; scopes are <identifier>/shows.read, <identifier>/shows.write and <identifier>/shows.admin."
  value       = aws_cognito_resource_server.this.identifier
}

output "scope_names" {
  description = "Short scope names (shows.read, shows.write, shows.admin)."
  value       = keys(local.scopes)
}

output "scope_identifiers" {
  description = "Full scope names as they appear in tokens and route authorization scopes."
  value       = aws_cognito_resource_server.this.scope_identifiers
}
