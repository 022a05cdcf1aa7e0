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
