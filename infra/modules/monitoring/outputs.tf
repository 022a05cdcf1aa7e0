output "alarm_topic_arn" {
  description = "SNS topic every alarm notifies (on ALARM and on OK); subscribe more endpoints with alarm_subscriptions."
  value       = aws_sns_topic.alarms.arn
}

output "alarm_key_arn" {
  description = "KMS key encrypting the alarm topic."
  value       = aws_kms_key.alarms.arn
}

output "alarm_names" {
  description = "Names of every alarm of this stack."
  value = concat(
    [for a in aws_cloudwatch_metric_alarm.this : a.alarm_name],
    [aws_cloudwatch_metric_alarm.running_tasks.alarm_name, aws_cloudwatch_metric_alarm.dynamodb_throttles.alarm_name, aws_cloudwatch_metric_alarm.dynamodb_system_errors.alarm_name],
  )
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}
