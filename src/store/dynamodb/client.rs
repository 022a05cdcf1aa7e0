//! Building the DynamoDB client from [`DynamoSettings`].
//!
//! - Region: `APP__DYNAMODB__REGION`, else `AWS_REGION` / `AWS_DEFAULT_REGION`, else the
//!   profile (`AWS_PROFILE`, `~/.aws/config`). Not instance metadata: ECS sets
//!   `AWS_REGION`, and on a machine without instance metadata the lookup only logs a
//!   multi-kilobyte warning before the "no region" error. With an endpoint override and no
//!   region anywhere, `us-east-1` (emulators ignore it).
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
//! [`preflight`] is the quick check `table create` makes first: credentials resolve, and
//! the endpoint accepts connections, each failure one line saying what to set.

use crate::config::DynamoSettings;
use aws_config::BehaviorVersion;
use aws_config::environment::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_sdk_dynamodb::config::ProvideCredentials;
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
    let sdk = shared_config(settings).await?;
    Ok(with_call_policy(Builder::from(&sdk), settings).build())
}

/// The SDK's shared configuration (region, endpoint, credentials) for `settings`.
async fn shared_config(settings: &DynamoSettings) -> anyhow::Result<aws_config::SdkConfig> {
    let env_set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    } else if settings.endpoint_override.is_some()
        && !env_set("AWS_REGION")
        && !env_set("AWS_DEFAULT_REGION")
    {
        loader = loader.region(Region::from_static(EMULATOR_REGION));
    } else {
        loader = loader.region(
            RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
                .or_else(ProfileFileRegionProvider::new()),
        );
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
    Ok(sdk)
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

/// Longest wait for the credential chain in [`preflight`].
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(5);

/// `table create`'s first step: the credentials resolve, and the endpoint accepts a
/// connection within `wait` (retried, for an emulator started at the same time). Each
/// failure is one line naming what is missing and what to set, instead of a minute of
/// retries that treat "no credentials" as "not up yet".
pub async fn preflight(settings: &DynamoSettings, wait: Duration) -> anyhow::Result<()> {
    let config = shared_config(settings).await?;
    let region = config.region().map(|r| r.to_string()).unwrap_or_default();
    let endpoint = settings
        .endpoint_override
        .clone()
        .unwrap_or_else(|| format!("https://dynamodb.{region}.amazonaws.com"));
    let provider = config
        .credentials_provider()
        .ok_or_else(|| anyhow::anyhow!("no AWS credential provider is configured"))?;
    match tokio::time::timeout(CREDENTIALS_TIMEOUT, provider.provide_credentials()).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) | Err(_) => anyhow::bail!(
            "no AWS credentials for DynamoDB at {endpoint}: set AWS_PROFILE, or \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (for a local emulator, \
             APP__DYNAMODB__ENDPOINTOVERRIDE alone is enough)"
        ),
    }
    let url = url::Url::parse(&endpoint)
        .map_err(|e| anyhow::anyhow!("APP__DYNAMODB__ENDPOINTOVERRIDE={endpoint:?}: {e}"))?;
    let host = url.host_str().unwrap_or_default().to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let started = tokio::time::Instant::now();
    loop {
        let attempt = tokio::time::timeout(
            MAX_CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await;
        let problem = match attempt {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {MAX_CONNECT_TIMEOUT:?}"),
        };
        if started.elapsed() >= wait {
            let what = if settings.endpoint_override.is_some() {
                "start the emulator there or fix APP__DYNAMODB__ENDPOINTOVERRIDE"
            } else {
                "check the network, or set APP__DYNAMODB__ENDPOINTOVERRIDE for an emulator"
            };
            anyhow::bail!(
                "DynamoDB at {endpoint} does not answer ({problem}) after {}s: {what} \
                 (--wait-seconds waits longer)",
                wait.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
