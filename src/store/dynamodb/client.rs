//! Building the DynamoDB client from [`DynamoSettings`].
//!
//! - Region: `APP__DYNAMODB__REGION`, else the SDK's chain (`AWS_REGION`, profile, …). With
//!   an endpoint override and no region anywhere, `us-east-1` (emulators ignore it), so a
//!   local run never waits for the instance-metadata lookup.
//! - Endpoint: `APP__DYNAMODB__ENDPOINTOVERRIDE` for DynamoDB Local or an emulator.
//! - Credentials: the SDK's chain (environment, profile, web identity, ECS task role, …),
//!   resolved lazily at the first call. Only with an endpoint override *and* no credential
//!   source configured are static dummy credentials used.
//! - Every call: a timeout of `APP__DYNAMODB__CALLTIMEOUTMS` for the whole operation
//!   (retries included), each attempt at most half of that, and the SDK's standard retry
//!   (3 attempts, backoff from 50 ms with jitter) for throttling, 5xx and connection errors.
//!
//! Building the client makes no network call: it takes a few milliseconds, and a table
//! that is missing or unreachable shows at readiness and at the first request instead.

use crate::config::DynamoSettings;
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::retry::{RetryConfig, RetryPartition};
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{Builder, Credentials, Region};
use std::time::Duration;

/// Region used with an endpoint override when none is configured.
const EMULATOR_REGION: &str = "us-east-1";
/// Attempts per call (the first one included).
const MAX_ATTEMPTS: u32 = 3;
/// First retry backoff; it doubles per attempt, with full jitter.
const INITIAL_BACKOFF: Duration = Duration::from_millis(50);
/// Longest connection set-up.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Environment variables any of which means "credentials are configured".
const CREDENTIAL_SOURCES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_SHARED_CREDENTIALS_FILE",
];

/// The client configuration for `settings`.
pub async fn config(settings: &DynamoSettings) -> anyhow::Result<aws_sdk_dynamodb::Config> {
    let env_set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    } else if settings.endpoint_override.is_some()
        && !env_set("AWS_REGION")
        && !env_set("AWS_DEFAULT_REGION")
    {
        loader = loader.region(Region::from_static(EMULATOR_REGION));
    }
    if let Some(endpoint) = &settings.endpoint_override {
        loader = loader.endpoint_url(endpoint);
        if !credentials_configured(&env_set) {
            // Letters only: DynamoDB Local 2.x refuses other characters in the key id.
            loader = loader.credentials_provider(Credentials::new(
                "local",
                "local",
                None,
                None,
                "show-service-emulator",
            ));
        }
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        anyhow::bail!("no AWS region for DynamoDB: set APP__DYNAMODB__REGION (or AWS_REGION)");
    }
    Ok(with_call_policy(Builder::from(&sdk), settings).build())
}

/// Adds the per-call timeouts and retry policy (see the module doc) to a client config.
pub fn with_call_policy(builder: Builder, settings: &DynamoSettings) -> Builder {
    let call = settings.call_timeout;
    builder
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(call)
                .operation_attempt_timeout(call / 2)
                .connect_timeout(call.min(MAX_CONNECT_TIMEOUT))
                .build(),
        )
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_initial_backoff(INITIAL_BACKOFF)
                .with_max_backoff(call / 2),
        )
        // The retry quota is per table, not shared with every DynamoDB client in the
        // process (tests run many).
        .retry_partition(RetryPartition::new(format!(
            "show-service-dynamodb-{}",
            settings.table
        )))
}

/// True when the environment or the shared files name a credential source.
fn credentials_configured(env_set: &dyn Fn(&str) -> bool) -> bool {
    if CREDENTIAL_SOURCES.iter().any(|v| env_set(v)) {
        return true;
    }
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    home.is_some_and(|h| h.join(".aws/credentials").is_file())
}
