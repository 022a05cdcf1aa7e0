output "ecr_repository_url" {
  description = "URL of the image repository (tags are commit SHAs)."
  value       = aws_ecr_repository.this.repository_url
}

output "ecr_repository_arn" {
  description = "ARN of the image repository."
  value       = aws_ecr_repository.this.arn
}

output "cluster_name" {
  description = "ECS cluster name."
  value       = aws_ecs_cluster.this.name
}

output "cluster_arn" {
  description = "ECS cluster ARN."
  value       = aws_ecs_cluster.this.arn
}

output "service_name" {
  description = "ECS service name."
  value       = aws_ecs_service.this.name
}

output "service_arn" {
  description = "ECS service ARN."
  value       = aws_ecs_service.this.id
}

output "task_family" {
  description = "Task definition family the pipeline registers new revisions in."
  value       = aws_ecs_task_definition.this.family
}

output "container_name" {
  description = "Name of the service's container in the task definition."
  value       = local.container_name
}

output "execution_role_arn" {
  description = "Task execution role ARN (image pull, logs)."
  value       = aws_iam_role.execution.arn
}

output "task_role_arn" {
  description = "Task role ARN (the application's DynamoDB access)."
  value       = aws_iam_role.task.arn
}

output "alb_dns_name" {
  description = "DNS name of the internal ALB."
  value       = aws_lb.this.dns_name
}

output "alb_listener_arn" {
  description = "ARN of the ALB listener the API's private integration targets."
  value       = aws_lb_listener.this.arn
}

output "alb_listener_port" {
  description = "Port of that listener."
  value       = local.listener_port
}

output "alb_security_group_id" {
  description = "Security group of the internal ALB."
  value       = aws_security_group.alb.id
}

output "tasks_security_group_id" {
  description = "Security group of the tasks."
  value       = aws_security_group.tasks.id
}

output "log_group_name" {
  description = "CloudWatch log group of the service (/ecs/<name>)."
  value       = aws_cloudwatch_log_group.this.name
}

output "alb_arn_suffix" {
  description = "ARN suffix of the ALB (app/<name>/<id>): its LoadBalancer dimension in CloudWatch."
  value       = aws_lb.this.arn_suffix
}

output "target_group_arn_suffix" {
  description = "ARN suffix of the target group (targetgroup/<name>/<id>): its TargetGroup dimension in CloudWatch."
  value       = aws_lb_target_group.this.arn_suffix
}
