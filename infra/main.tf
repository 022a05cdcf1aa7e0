data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

locals {
  name = "show-service-${var.env}"

  # The app clients' ids, in one order: API Gateway's JWT audiences and the service's
  # allowed client ids (APP__COGNITO__CLIENTID) are both this list, so a client the
  # gateway admits is one the service admits too (tests/infra_consistency.rs).
  client_ids = values(module.identity.client_ids)
}

module "network" {
  source = "./modules/network"

  name                    = local.name
  cidr_block              = var.vpc_cidr
  nat_gateway_per_az      = var.nat_gateway_per_az
  flow_log_retention_days = var.log_retention_days
}

module "data" {
  source = "./modules/data"

  env                 = var.env
  deletion_protection = var.deletion_protection
}

module "identity" {
  source = "./modules/identity"

  name                = local.name
  domain_prefix       = coalesce(var.cognito_domain_prefix, "${local.name}-${data.aws_caller_identity.current.account_id}")
  clients             = var.cognito_clients
  deletion_protection = var.deletion_protection
}

module "service" {
  source = "./modules/service"

  name                       = local.name
  env                        = var.env
  vpc_id                     = module.network.vpc_id
  vpc_cidr_block             = module.network.vpc_cidr_block
  private_subnet_ids         = module.network.private_subnet_ids
  vpc_link_security_group_id = module.api.vpc_link_security_group_id

  endpoints = {
    security_group_id       = module.network.endpoints_security_group_id
    dynamodb_prefix_list_id = module.network.dynamodb_prefix_list_id
    s3_prefix_list_id       = module.network.s3_prefix_list_id
  }

  image_tag           = var.image_tag
  log_retention_days  = var.log_retention_days
  table_arn           = module.data.table_arn
  deletion_protection = var.deletion_protection
  force_delete_images = !var.deletion_protection

  task = {
    cpu           = var.task_cpu
    memory        = var.task_memory
    desired_count = var.desired_count
    max_count     = var.max_count
  }

  app_environment = {
    region                     = data.aws_region.current.name
    table_name                 = module.data.table_name
    gsi_name                   = module.data.gsi_name
    user_pool_id               = module.identity.user_pool_id
    client_ids                 = local.client_ids
    partner_client_ids         = module.identity.partner_client_ids
    resource_server_identifier = module.identity.resource_server_identifier
  }
}

module "api" {
  source = "./modules/api"

  name                       = local.name
  vpc_id                     = module.network.vpc_id
  subnet_ids                 = module.network.private_subnet_ids
  alb_security_group_id      = module.service.alb_security_group_id
  alb_listener_arn           = module.service.alb_listener_arn
  alb_listener_port          = module.service.alb_listener_port
  jwt_issuer                 = module.identity.issuer_url
  jwt_audiences              = local.client_ids
  resource_server_identifier = module.identity.resource_server_identifier
  token_endpoint             = module.identity.token_endpoint
  log_retention_days         = var.log_retention_days
  throttling                 = var.api_throttling

  cors = {
    allow_origins = var.cors_allowed_origins
  }
}

module "pipeline" {
  source = "./modules/pipeline"

  name                  = local.name
  source_repository_url = var.source_repository_url
  source_branch         = var.source_branch
  enable_webhook        = var.enable_webhook
  log_retention_days    = var.log_retention_days

  deploy_target = {
    ecr_repository_url = module.service.ecr_repository_url
    ecr_repository_arn = module.service.ecr_repository_arn
    cluster_name       = module.service.cluster_name
    cluster_arn        = module.service.cluster_arn
    service_name       = module.service.service_name
    service_arn        = module.service.service_arn
    task_family        = module.service.task_family
    container_name     = module.service.container_name
    execution_role_arn = module.service.execution_role_arn
    task_role_arn      = module.service.task_role_arn
  }
}

module "monitoring" {
  source = "./modules/monitoring"

  name                = local.name
  env                 = var.env
  thresholds          = var.alarm_thresholds
  alarm_subscriptions = var.alarm_subscriptions

  api = {
    id    = module.api.api_id
    stage = module.api.stage_name
  }

  load_balancer = {
    arn_suffix              = module.service.alb_arn_suffix
    target_group_arn_suffix = module.service.target_group_arn_suffix
  }

  ecs = {
    cluster_name = module.service.cluster_name
    service_name = module.service.service_name
  }

  table = {
    name     = module.data.table_name
    gsi_name = module.data.gsi_name
  }
}
