output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "IPv4 CIDR of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "public_subnet_ids" {
  description = "Public subnet IDs, one per AZ (NAT gateways live here)."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Private subnet IDs, one per AZ (ALB, tasks and VPC link live here)."
  value       = aws_subnet.private[*].id
}

output "private_route_table_ids" {
  description = "Private route table IDs, one per AZ."
  value       = aws_route_table.private[*].id
}

output "nat_gateway_ids" {
  description = "NAT gateway IDs (one per AZ when nat_gateway_per_az, else one)."
  value       = aws_nat_gateway.this[*].id
}

output "dynamodb_endpoint_id" {
  description = "ID of the DynamoDB gateway endpoint on the private route tables."
  value       = aws_vpc_endpoint.dynamodb.id
}

output "dynamodb_prefix_list_id" {
  description = "AWS-managed prefix list of DynamoDB in this region (the gateway endpoint's destinations)."
  value       = aws_vpc_endpoint.dynamodb.prefix_list_id
}

output "s3_prefix_list_id" {
  description = "AWS-managed prefix list of S3 in this region (the gateway endpoint's destinations; ECR's image layers)."
  value       = aws_vpc_endpoint.s3.prefix_list_id
}

output "endpoints_security_group_id" {
  description = "Security group of the interface endpoints (ECR API, ECR registry, CloudWatch Logs); callers add their own ingress rule."
  value       = aws_security_group.endpoints.id
}

output "interface_endpoint_services" {
  description = "Services reached through interface endpoints (ecr.api, ecr.dkr, logs)."
  value       = local.interface_endpoints
}
