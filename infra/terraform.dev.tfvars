env                 = "dev"
region              = "ap-southeast-2"
task_cpu            = 256
task_memory         = 512
desired_count       = 1
max_count           = 2
log_retention_days  = 3
nat_gateway_per_az  = false
deletion_protection = false
vpc_cidr            = "10.40.0.0/16"

# Alarm thresholds (modules/monitoring). Rates are shares of requests; counts per minute.
alarm_thresholds = {
  api_5xx_rate                      = 0.1
  api_latency_p90_ms                = 2500
  alb_5xx_per_minute                = 10
  target_5xx_per_minute             = 10
  target_response_time_p90_seconds  = 2
  unhealthy_targets                 = 0
  task_cpu_percent                  = 90
  task_memory_percent               = 80
  dynamodb_throttles_per_minute     = 5
  dynamodb_system_errors_per_minute = 1
  store_unavailable_per_minute      = 1
  jwks_fetch_errors_per_minute      = 1
  partial_feeds_per_minute          = 0
  shed_requests_per_minute          = 50
  service_5xx_per_minute            = 10
}
