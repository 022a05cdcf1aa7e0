data "aws_region" "current" {}

locals {
  container_name = "show-service"
  # The service's default port (show_service::config::DEFAULT_PORT) and its liveness route
  # (show_service::http::LIVENESS_PATH): tests/infra_consistency.rs checks both.
  container_port = 8080
  # The Prometheus exposition (show_service's metrics listener, APP__METRICS__PORT's
  # default outside local): only the VPC may reach it, never the ALB or API Gateway.
  metrics_port      = 9464
  health_check_path = "/health"
  listener_port     = 80
  log_group_name    = "/ecs/${var.name}"
  # Below the service's keep-alive idle timeout (APP__SERVER__IDLETIMEOUTSECONDS, 75 s
  # by default): the ALB must be the side that closes an idle connection, or it may send
  # a request on a connection the service is closing and answer 502
  # (tests/infra_consistency.rs compares the two).
  alb_idle_timeout_seconds = 60

  # Only variables the service reads (show_service::config::ENV_VARS), in its own
  # spelling; tests/infra_consistency.rs fails on any other.
  environment = {
    APP_ENV                   = var.env
    APP__SERVER__PORT         = tostring(local.container_port)
    APP__STORE__KIND          = "dynamodb"
    APP__DYNAMODB__REGION     = var.app_environment.region
    APP__DYNAMODB__SHOWSTABLE = var.app_environment.table_name
    APP__DYNAMODB__SHOWSGSI   = var.app_environment.gsi_name
    APP__COGNITO__USERPOOLID  = var.app_environment.user_pool_id
    APP__COGNITO__REGION      = var.app_environment.region
    APP__COGNITO__CLIENTID    = join(",", var.app_environment.client_ids)
    APP__AUTH__MODE           = "jwt"
    APP__AUTH__RESOURCESERVER = var.app_environment.resource_server_identifier
    # Which partner each client id acts for (show_service::domain::PartnerMap's
    # `partner=id|id,partner2=id`): every client of a partner owns the same shows.
    APP__AUTH__PARTNERS = join(",", [for partner, ids in var.app_environment.partner_client_ids : "${partner}=${join("|", ids)}"])
    APP__LOG__FORMAT    = "json"
    # Prometheus text on its own listener, reachable from inside the VPC only (the
    # tasks' security group); CloudWatch gets the same metrics as EMF on stdout.
    APP__METRICS__HOST               = "0.0.0.0"
    APP__METRICS__PORT               = tostring(local.metrics_port)
    APP__METRICS__EMFINTERVALSECONDS = "60"
  }
}

################################################################################
# Image repository
################################################################################

resource "aws_ecr_repository" "this" {
  #checkov:skip=CKV_AWS_136:Encrypted with ECR's AES-256 default; the image holds no secrets and a customer-managed key would need grants for every puller.
  name                 = var.name
  image_tag_mutability = "IMMUTABLE"
  force_delete         = var.force_delete_images

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "AES256"
  }

  tags = var.tags
}

resource "aws_ecr_lifecycle_policy" "this" {
  repository = aws_ecr_repository.this.name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Drop untagged layers after a week"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = 7
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the 50 most recent commit images (rollback window)"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = 50
        }
        action = { type = "expire" }
      },
    ]
  })
}

################################################################################
# Cluster and logs
################################################################################

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  tags = var.tags
}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_158:Encrypted at rest by CloudWatch Logs' own keys; the service never logs tokens or bodies, so a customer-managed key adds cost and a key policy for no requirement.
  name              = local.log_group_name
  retention_in_days = var.log_retention_days

  tags = var.tags
}

################################################################################
# IAM: execution role (pull the image, write logs) and task role (the table only)
################################################################################

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid = "EcrToken"
    # GetAuthorizationToken has no resource-level permissions.
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "PullThisImage"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [aws_ecr_repository.this.arn]
  }

  statement {
    sid       = "WriteServiceLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  description        = "ECS agent: pull ${var.name} images and write its logs"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json

  tags = var.tags
}

resource "aws_iam_role_policy" "execution" {
  name   = "pull-image-write-logs"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

data "aws_iam_policy_document" "task" {
  statement {
    sid = "ShowsTable"
    # Exactly the actions the DynamoDB store's calls need (a transaction needs those of
    # the items it holds: Put -> PutItem, Update -> UpdateItem, ConditionCheck ->
    # ConditionCheckItem); tests/infra_consistency.rs reads the calls from the code.
    actions = [
      "dynamodb:BatchGetItem",
      "dynamodb:DeleteItem",
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:Query",
      "dynamodb:UpdateItem",
    ]
    resources = [var.table_arn, "${var.table_arn}/index/*"]
  }
}

resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  description        = "show-service application: the shows table only"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json

  tags = var.tags
}

resource "aws_iam_role_policy" "task" {
  name   = "shows-table"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

################################################################################
# Security groups: VPC link -> ALB -> tasks, nothing else inbound
################################################################################

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "Internal ALB: reachable only from the API Gateway VPC link"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-alb" })
}

resource "aws_vpc_security_group_ingress_rule" "alb_from_vpc_link" {
  #checkov:skip=CKV_AWS_260:False positive: the source is the VPC link's security group (referenced_security_group_id), not 0.0.0.0/0.
  security_group_id            = aws_security_group.alb.id
  description                  = "Listener, from the VPC link only"
  ip_protocol                  = "tcp"
  from_port                    = local.listener_port
  to_port                      = local.listener_port
  referenced_security_group_id = var.vpc_link_security_group_id
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  security_group_id            = aws_security_group.alb.id
  description                  = "Forward and health-check to the tasks"
  ip_protocol                  = "tcp"
  from_port                    = local.container_port
  to_port                      = local.container_port
  referenced_security_group_id = aws_security_group.tasks.id
}

resource "aws_security_group" "tasks" {
  name        = "${var.name}-tasks"
  description = "show-service tasks: reachable only from the ALB"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-tasks" })
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_alb" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "Service port, from the ALB only"
  ip_protocol                  = "tcp"
  from_port                    = local.container_port
  to_port                      = local.container_port
  referenced_security_group_id = aws_security_group.alb.id
}

# The metrics listener, for a scraper inside the VPC; no load balancer or API route
# leads to it.
resource "aws_vpc_security_group_ingress_rule" "tasks_metrics_from_vpc" {
  security_group_id = aws_security_group.tasks.id
  description       = "Prometheus metrics, from inside the VPC only"
  ip_protocol       = "tcp"
  from_port         = local.metrics_port
  to_port           = local.metrics_port
  cidr_ipv4         = var.vpc_cidr_block
}

# HTTPS out, each destination by name: DynamoDB and S3 (ECR's image layers) through
# their gateway endpoints' prefix lists, the ECR API, the registry and CloudWatch Logs
# through the interface endpoints' security group.
resource "aws_vpc_security_group_egress_rule" "tasks_to_endpoints" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "HTTPS to the ECR and CloudWatch Logs interface endpoints"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = var.endpoints.security_group_id
}

resource "aws_vpc_security_group_egress_rule" "tasks_to_gateway_endpoints" {
  for_each = {
    dynamodb = var.endpoints.dynamodb_prefix_list_id
    s3       = var.endpoints.s3_prefix_list_id
  }

  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS to ${each.key} through its gateway endpoint"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = each.value
}

# What is left for the NAT gateway: the issuer's JWKS (cognito-idp.<region>.amazonaws.com/
# <pool>/.well-known/jwks.json). Cognito's interface endpoint refuses requests for a
# user pool with a domain, and the pool needs its domain for the client-credentials
# token endpoint; Cognito publishes no prefix list, and a security group cannot name a
# host. So this one rule stays open to any address on 443; the route to it is the NAT.
resource "aws_vpc_security_group_egress_rule" "tasks_to_jwks" {
  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS to the token issuer's JWKS (Cognito, through NAT)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

# The interface endpoints admit the tasks and nothing else.
resource "aws_vpc_security_group_ingress_rule" "endpoints_from_tasks" {
  security_group_id            = var.endpoints.security_group_id
  description                  = "HTTPS from the show-service tasks"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.tasks.id
}

################################################################################
# Internal ALB
################################################################################

resource "aws_lb" "this" {
  #checkov:skip=CKV_AWS_91:Every request is access-logged at API Gateway, the only client this internal ALB admits; an S3 log bucket would duplicate those records.
  #checkov:skip=CKV2_AWS_20:No HTTP listener faces users: the only client is API Gateway's VPC link, which terminates TLS; see the listener's CKV_AWS_2.
  #checkov:skip=CKV2_AWS_28:Internal ALB behind API Gateway (AWS WAF cannot attach to HTTP API stages; throttling is done there).
  name                       = var.name
  internal                   = true
  load_balancer_type         = "application"
  subnets                    = var.private_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection
  idle_timeout               = local.alb_idle_timeout_seconds

  tags = var.tags
}

resource "aws_lb_target_group" "this" {
  #checkov:skip=CKV_AWS_378:ALB to task traffic stays inside the private subnets between two locked-down security groups; TLS ends at API Gateway.
  name                 = "${var.name}-tg"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  protocol             = "HTTP"
  port                 = local.container_port
  deregistration_delay = 10

  health_check {
    path                = local.health_check_path
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = var.tags
}

resource "aws_lb_listener" "this" {
  #checkov:skip=CKV_AWS_2:TLS ends at API Gateway; this listener is internal and admits only the VPC link's security group. HTTPS here needs a certificate for a domain the project does not own.
  #checkov:skip=CKV_AWS_103:Same listener: plain HTTP inside the VPC, see CKV_AWS_2.
  load_balancer_arn = aws_lb.this.arn
  port              = local.listener_port
  protocol          = "HTTP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this.arn
  }

  tags = var.tags
}

################################################################################
# Task definition and service
################################################################################

resource "aws_ecs_task_definition" "this" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task.cpu
  memory                   = var.task.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  container_definitions = jsonencode([
    {
      name      = local.container_name
      image     = "${aws_ecr_repository.this.repository_url}:${var.image_tag}"
      essential = true
      portMappings = [
        { containerPort = local.container_port, protocol = "tcp" },
        { containerPort = local.metrics_port, protocol = "tcp" },
      ]
      environment            = [for k, v in local.environment : { name = k, value = v }]
      readonlyRootFilesystem = true
      # distroless "nonroot" user; the image's USER too.
      user        = "65532:65532"
      stopTimeout = 30
      healthCheck = {
        command     = ["CMD", "/show-service", "healthcheck"]
        interval    = 15
        timeout     = 5
        retries     = 3
        startPeriod = 10
      }
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.this.name
          awslogs-region        = data.aws_region.current.name
          awslogs-stream-prefix = "ecs"
        }
      }
    }
  ])

  tags = var.tags
}

resource "aws_ecs_service" "this" {
  name             = var.name
  cluster          = aws_ecs_cluster.this.id
  task_definition  = aws_ecs_task_definition.this.arn
  desired_count    = var.task.desired_count
  launch_type      = "FARGATE"
  platform_version = "LATEST"

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = 30
  # After an AZ outage, move tasks back so they are spread over the AZs again.
  availability_zone_rebalancing = "ENABLED"
  propagate_tags                = "SERVICE"
  enable_ecs_managed_tags       = true

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.this.arn
    container_name   = local.container_name
    container_port   = local.container_port
  }

  lifecycle {
    # desired_count belongs to autoscaling once created; task_definition to the pipeline,
    # which registers a revision per commit and points the service at it.
    ignore_changes = [desired_count, task_definition]
  }

  tags = var.tags

  depends_on = [aws_lb_listener.this, aws_iam_role_policy.task, aws_iam_role_policy.execution]
}

################################################################################
# Autoscaling on CPU
################################################################################

resource "aws_appautoscaling_target" "this" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.this.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.task.desired_count
  max_capacity       = var.task.max_count

  tags = var.tags
}

resource "aws_appautoscaling_policy" "cpu" {
  name               = "${var.name}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.autoscaling_cpu_target
    scale_in_cooldown  = 120
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}
