locals {
  # Route key => short scope name the route requires. Every route that reaches the
  # service is listed here and needs a token carrying its scope; there is no catch-all
  # route. tests/infra_consistency.rs checks these against the service's router.
  # The authorizer checks scopes only: which shows a partner may change (its own) is
  # decided by the service, per show. Admin routes live under /v1/admin/ and require
  # shows.admin, which only the platform's client holds. The change feed
  # (GET /v1/shows/changes, shows.read) goes through "GET /v1/shows/{proxy+}", which
  # has the scope it needs; the consistency tests check that it does.
  protected_routes = {
    "GET /shows"                = "shows.read"
    "GET /v1/shows"             = "shows.read"
    "POST /v1/shows"            = "shows.write"
    "GET /v1/shows/{proxy+}"    = "shows.read"
    "DELETE /v1/shows/{proxy+}" = "shows.write"
    "POST /v1/admin/owners"     = "shows.admin"
  }

  # Routes to the service without a token: liveness, and the OpenAPI document the
  # /docs page renders.
  public_routes = ["GET /health", "GET /openapi.json"]

  # The /docs pages (static files; their API calls carry the user's token and go
  # through the protected routes). Served only where APP__DOCS__ENABLED is true,
  # 404 elsewhere. tests/infra_consistency.rs checks them against http::docs::ROUTES.
  docs_routes = ["GET /docs", "GET /docs/{proxy+}"]

  # Route served by Cognito's token endpoint, not by the service.
  token_route = "POST /oauth/token"
}

################################################################################
# HTTP API, JWT authorizer
################################################################################

resource "aws_apigatewayv2_api" "this" {
  name          = var.name
  protocol_type = "HTTP"
  description   = "Show catalogue API (${var.name})"

  cors_configuration {
    allow_origins  = var.cors.allow_origins
    allow_methods  = ["GET", "POST", "DELETE", "OPTIONS"]
    allow_headers  = ["authorization", "content-type", "x-request-id"]
    expose_headers = ["x-request-id"]
    max_age        = var.cors.max_age
  }

  tags = var.tags
}

resource "aws_apigatewayv2_authorizer" "this" {
  api_id           = aws_apigatewayv2_api.this.id
  name             = "cognito"
  authorizer_type  = "JWT"
  identity_sources = ["$request.header.Authorization"]

  jwt_configuration {
    issuer   = var.jwt_issuer
    audience = var.jwt_audiences
  }
}

################################################################################
# Private integration: VPC link -> internal ALB listener
################################################################################

resource "aws_security_group" "vpc_link" {
  name        = "${var.name}-vpc-link"
  description = "API Gateway VPC link ENIs: may only talk to the internal ALB"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-vpc-link" })
}

resource "aws_vpc_security_group_egress_rule" "vpc_link_to_alb" {
  security_group_id            = aws_security_group.vpc_link.id
  description                  = "To the internal ALB listener"
  ip_protocol                  = "tcp"
  from_port                    = var.alb_listener_port
  to_port                      = var.alb_listener_port
  referenced_security_group_id = var.alb_security_group_id
}

resource "aws_apigatewayv2_vpc_link" "this" {
  name               = var.name
  subnet_ids         = var.subnet_ids
  security_group_ids = [aws_security_group.vpc_link.id]

  tags = var.tags
}

resource "aws_apigatewayv2_integration" "service" {
  api_id             = aws_apigatewayv2_api.this.id
  description        = "Internal ALB in front of the ECS service"
  integration_type   = "HTTP_PROXY"
  integration_method = "ANY"
  connection_type    = "VPC_LINK"
  connection_id      = aws_apigatewayv2_vpc_link.this.id
  integration_uri    = var.alb_listener_arn

  payload_format_version = "1.0"
  timeout_milliseconds   = 29000

  # Send the caller's path unchanged (a named stage would otherwise prefix it).
  request_parameters = {
    "overwrite:path" = "$request.path"
  }
}

resource "aws_apigatewayv2_integration" "token" {
  api_id             = aws_apigatewayv2_api.this.id
  description        = "Cognito OAuth 2.0 token endpoint"
  integration_type   = "HTTP_PROXY"
  integration_method = "POST"
  integration_uri    = var.token_endpoint

  payload_format_version = "1.0"
  timeout_milliseconds   = 10000
}

################################################################################
# Routes
################################################################################

resource "aws_apigatewayv2_route" "this" {
  for_each = local.protected_routes

  api_id             = aws_apigatewayv2_api.this.id
  route_key          = each.key
  target             = "integrations/${aws_apigatewayv2_integration.service.id}"
  authorization_type = "JWT"
  authorizer_id      = aws_apigatewayv2_authorizer.this.id
  # The full scope name, as Cognito puts it in the token's scope claim.
  authorization_scopes = ["${var.resource_server_identifier}/${each.value}"]
}

resource "aws_apigatewayv2_route" "public" {
  #checkov:skip=CKV_AWS_309:Liveness probe (answers {"message":"ok"} without touching data, so monitors can reach it without a token) and the OpenAPI document (public description of the API, no data).
  for_each = toset(local.public_routes)

  api_id             = aws_apigatewayv2_api.this.id
  route_key          = each.key
  target             = "integrations/${aws_apigatewayv2_integration.service.id}"
  authorization_type = "NONE"
}

resource "aws_apigatewayv2_route" "docs" {
  #checkov:skip=CKV_AWS_309:Static documentation pages (HTML, scripts, styles) with no data; the catalogue they show is fetched through the JWT-authorized routes with the user's own token.
  for_each = toset(local.docs_routes)

  api_id             = aws_apigatewayv2_api.this.id
  route_key          = each.key
  target             = "integrations/${aws_apigatewayv2_integration.service.id}"
  authorization_type = "NONE"
}

resource "aws_apigatewayv2_route" "token" {
  #checkov:skip=CKV_AWS_309:The token endpoint is where callers authenticate (HTTP Basic client credentials checked by Cognito); it cannot require the token it issues.
  api_id             = aws_apigatewayv2_api.this.id
  route_key          = local.token_route
  target             = "integrations/${aws_apigatewayv2_integration.token.id}"
  authorization_type = "NONE"
}

################################################################################
# Stage: access logs and throttling
################################################################################

resource "aws_cloudwatch_log_group" "access" {
  #checkov:skip=CKV_AWS_158:Encrypted at rest by CloudWatch Logs' own keys; access logs carry no secrets (no tokens or bodies), so a customer-managed key adds cost and a key policy for no requirement.
  name              = "/aws/apigateway/${var.name}"
  retention_in_days = var.log_retention_days

  tags = var.tags
}

resource "aws_apigatewayv2_stage" "this" {
  api_id      = aws_apigatewayv2_api.this.id
  name        = "$default"
  auto_deploy = true

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      requestTime        = "$context.requestTime"
      sourceIp           = "$context.identity.sourceIp"
      httpMethod         = "$context.httpMethod"
      path               = "$context.path"
      routeKey           = "$context.routeKey"
      status             = "$context.status"
      responseLength     = "$context.responseLength"
      responseLatency    = "$context.responseLatency"
      integrationStatus  = "$context.integrationStatus"
      integrationError   = "$context.integrationErrorMessage"
      integrationLatency = "$context.integrationLatency"
      clientId           = "$context.authorizer.claims.client_id"
      authorizerError    = "$context.authorizer.error"
      userAgent          = "$context.identity.userAgent"
    })
  }

  default_route_settings {
    throttling_rate_limit  = var.throttling.rate_limit
    throttling_burst_limit = var.throttling.burst_limit
  }

  route_settings {
    route_key              = aws_apigatewayv2_route.token.route_key
    throttling_rate_limit  = var.throttling.token_rate_limit
    throttling_burst_limit = var.throttling.token_burst_limit
  }

  tags = var.tags
}
