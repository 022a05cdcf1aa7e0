################################################################################
# Shows table
#
# The layout is shared with the Go service's table (docs/dynamodb.md) and must match the
# store's constants (`show_service::store::layout`); tests/infra_consistency.rs checks
# the names and types below against them.
################################################################################

locals {
  gsi_name = "gsi_drm_episode"
}

resource "aws_dynamodb_table" "this" {
  #checkov:skip=CKV_AWS_119:Encrypted at rest with the AWS-managed DynamoDB key (server_side_encryption below). A customer-managed key would need KMS grants for every caller and the catalogue holds no secret data.
  name         = "shows-${var.env}"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "slug"

  attribute {
    name = "slug"
    type = "S"
  }

  attribute {
    name = "drmKey"
    type = "N"
  }

  attribute {
    name = "episodeCount"
    type = "N"
  }

  # Sparse index: only items that carry drmKey (DRM shows) enter it.
  global_secondary_index {
    name            = local.gsi_name
    hash_key        = "drmKey"
    range_key       = "episodeCount"
    projection_type = "ALL"
  }

  # The catalogue's change-log entries (meta/catalogue-change/{version}) carry expiresAt;
  # DynamoDB deletes them after it. No show has the attribute.
  ttl {
    attribute_name = "expiresAt"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  server_side_encryption {
    enabled = true
  }

  deletion_protection_enabled = var.deletion_protection

  tags = var.tags
}
