//! Helpers shared by test binaries: the DynamoDB emulator and stores on it.

#![allow(dead_code)] // each test binary uses a different part

pub mod dynalite;

use dynalite::{Dynalite, unique_table};
use show_service::config::DynamoSettings;
use show_service::store::dynamodb::DynamoStore;
use std::time::Duration;

/// Settings for a store on `table` of the emulator at `endpoint`.
pub fn dynamo_settings(endpoint: &str, table: &str) -> DynamoSettings {
    DynamoSettings {
        region: None,
        endpoint_override: Some(endpoint.to_string()),
        table: table.to_string(),
        gsi: show_service::store::layout::GSI_NAME.to_string(),
        write_concurrency: 4,
        write_deadline: Duration::from_secs(8),
        call_timeout: Duration::from_secs(5),
    }
}

/// The endpoint of the DynamoDB emulator tests use: `SHOW_TEST_DYNAMODB_ENDPOINT` when
/// set (an emulator started by whoever runs the tests, e.g. `moto_server -H 127.0.0.1 -p
/// 5000`), else this test binary's shared dynalite.
pub fn emulator_endpoint() -> String {
    match std::env::var("SHOW_TEST_DYNAMODB_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => endpoint,
        _ => Dynalite::shared().endpoint(),
    }
}

/// A store on a new, empty table (with its index) of `emulator`.
pub async fn fresh_store(emulator: &Dynalite, prefix: &str) -> DynamoStore {
    fresh_store_on(&emulator.endpoint(), prefix).await
}

/// A store on a new, empty table (with its index) of the emulator at `endpoint`.
pub async fn fresh_store_on(endpoint: &str, prefix: &str) -> DynamoStore {
    let mut settings = dynamo_settings(endpoint, &unique_table(prefix));
    if std::env::var("SHOW_TEST_DYNAMODB_ENDPOINT").is_ok_and(|e| e == endpoint) {
        // moto copies the whole table for each transaction: seconds, not milliseconds.
        settings.call_timeout = Duration::from_secs(60);
        settings.write_deadline = Duration::from_secs(180);
    }
    let store = DynamoStore::connect(&settings).await.expect("client");
    store
        .ensure_table(Duration::from_secs(10))
        .await
        .expect("table create");
    store
}
