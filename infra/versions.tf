terraform {
  required_version = ">= 1.10" # the S3 backend's use_lockfile

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60, < 6.0"
    }
  }

  # Remote state: `terraform init -backend-config=backend.hcl` (see backend.hcl.example).
  backend "s3" {}
}
