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

/// A store on a new, empty table (with its index) of `emulator`.
pub async fn fresh_store(emulator: &Dynalite, prefix: &str) -> DynamoStore {
    let settings = dynamo_settings(&emulator.endpoint(), &unique_table(prefix));
    let store = DynamoStore::connect(&settings).await.expect("client");
    store
        .ensure_table(Duration::from_secs(10))
        .await
        .expect("table create");
    store
}
