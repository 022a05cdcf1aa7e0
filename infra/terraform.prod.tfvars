env                 = "prod"
region              = "ap-southeast-2"
task_cpu            = 512
task_memory         = 1024
desired_count       = 2
max_count           = 6
log_retention_days  = 14
nat_gateway_per_az  = true
deletion_protection = true
vpc_cidr            = "10.42.0.0/16"

# Alarm thresholds (modules/monitoring). Rates are shares of requests; counts per minute.
alarm_thresholds = {
  api_5xx_rate                      = 0.05
  api_latency_p90_ms                = 1000
  alb_5xx_per_minute                = 5
  target_5xx_per_minute             = 5
  target_response_time_p90_seconds  = 1
  unhealthy_targets                 = 0
  task_cpu_percent                  = 80
  task_memory_percent               = 80
  dynamodb_throttles_per_minute     = 0
  dynamodb_system_errors_per_minute = 0
  store_unavailable_per_minute      = 0
  jwks_fetch_errors_per_minute      = 0
  partial_feeds_per_minute          = 0
  shed_requests_per_minute          = 10
  service_5xx_per_minute            = 5
}
