data "aws_region" "current" {}

locals {
  # The scopes the service's verifier requires (show_service::auth::Scope); checked by
  # tests/infra_consistency.rs.
  scopes = {
    "shows.read"  = "Read the show catalogue"
    "shows.write" = "Upload shows and delete the partner's own"
    "shows.admin" = "Write and delete any show, assign owners (/v1/admin/)"
  }
  # The partner each client acts for: the one its entry names, else the client's name.
  # Two clients of one partner (a secret rotation) own the same shows.
  partner_of = { for name, client in var.clients : name => coalesce(client.partner, name) }
  # A distinct identifier per environment: a dev token is never valid in prod.
  resource_server_identifier = "https://${var.name}.api"
}

################################################################################
# User pool and hosted domain (serves /oauth2/token)
################################################################################

resource "aws_cognito_user_pool" "this" {
  name                = var.name
  deletion_protection = var.deletion_protection ? "ACTIVE" : "INACTIVE"

  # Machine-to-machine only: nobody signs themselves up.
  admin_create_user_config {
    allow_admin_create_user_only = true
  }

  password_policy {
    minimum_length    = 14
    require_lowercase = true
    require_uppercase = true
    require_numbers   = true
    require_symbols   = true
  }

  tags = var.tags
}

resource "aws_cognito_user_pool_domain" "this" {
  domain       = var.domain_prefix
  user_pool_id = aws_cognito_user_pool.this.id
}

################################################################################
# Resource server and the client-credentials app clients
################################################################################

resource "aws_cognito_resource_server" "this" {
  identifier   = local.resource_server_identifier
  name         = var.name
  user_pool_id = aws_cognito_user_pool.this.id

  dynamic "scope" {
    for_each = local.scopes
    content {
      scope_name        = scope.key
      scope_description = scope.value
    }
  }
}

# One client per consumer, each allowed only the scopes it needs (var.clients): a
# read-only app cannot write because another consumer may. The API's JWT audiences and
# the service's allowed client ids are this map's ids, and its partner map
# (APP__AUTH__PARTNERS) groups them by partner (see the root module).
resource "aws_cognito_user_pool_client" "this" {
  for_each = var.clients

  name         = "${var.name}-${each.key}"
  user_pool_id = aws_cognito_user_pool.this.id

  generate_secret                      = true
  allowed_oauth_flows_user_pool_client = true
  allowed_oauth_flows                  = ["client_credentials"]
  allowed_oauth_scopes                 = [for s in sort(each.value.scopes) : "${aws_cognito_resource_server.this.identifier}/${s}"]
  supported_identity_providers         = ["COGNITO"]
  explicit_auth_flows                  = ["ALLOW_REFRESH_TOKEN_AUTH"]
  prevent_user_existence_errors        = "ENABLED"
  enable_token_revocation              = true

  access_token_validity = var.access_token_validity_minutes
  token_validity_units {
    access_token  = "minutes"
    id_token      = "minutes"
    refresh_token = "days"
  }

  lifecycle {
    precondition {
      condition     = length(each.value.scopes) > 0 && length(setsubtract(each.value.scopes, keys(local.scopes))) == 0
      error_message = "Client ${each.key}: needs at least one scope, each one of ${join(", ", keys(local.scopes))}."
    }
  }
}
