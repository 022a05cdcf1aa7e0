provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      Project     = "show-service"
      Environment = var.env
      ManagedBy   = "terraform"
    })
  }
}
