//! The table and its index: `show-service table create`, and the schema check behind it.
//!
//! Table: hash key `slug` (S), PAY_PER_REQUEST. GSI (name from settings, default
//! `gsi_drm_episode`): hash `drmKey` (N), range `episodeCount` (N), projection ALL.
//! [`ensure`] waits (a minute at most) for DynamoDB to answer, creates whatever is missing
//! (the table with its index, or only the index), waits until the table and the index
//! are ACTIVE, and changes nothing that exists. An
//! existing table with another key schema is an error naming the difference.

use crate::store::layout::{GSI_HASH_KEY, GSI_RANGE_KEY, TABLE_HASH_KEY};
use anyhow::{Context, bail};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::describe_table::{DescribeTableError, DescribeTableOutput};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, IndexStatus, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TableDescription, TableStatus,
};
use std::time::Duration;
use tokio::time::Instant;

/// What [`ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The table (with its index) was created.
    Created,
    /// The table existed; its index was added.
    IndexAdded,
    /// Both existed (and are now ACTIVE).
    AlreadyPresent,
}

/// Creates the table and index when missing and waits (at most `wait`) until both are
/// ACTIVE. See the module doc.
pub async fn ensure(
    client: &Client,
    table: &str,
    gsi: &str,
    wait: Duration,
) -> anyhow::Result<Outcome> {
    let outcome = match describe_when_reachable(client, table, REACH_TIMEOUT).await? {
        None if create(client, table, gsi).await? => Outcome::Created,
        // Created by someone else meanwhile, or present: check it, add the index if needed.
        _ => check_and_add_index(client, table, gsi).await?,
    };
    wait_active(client, table, gsi, wait).await?;
    Ok(outcome)
}

async fn check_and_add_index(client: &Client, table: &str, gsi: &str) -> anyhow::Result<Outcome> {
    let desc = describe(client, table)
        .await?
        .with_context(|| format!("the DynamoDB table {table} vanished while being checked"))?;
    if check_schema(&desc, gsi)? {
        return Ok(Outcome::AlreadyPresent);
    }
    client
        .update_table()
        .table_name(table)
        .set_attribute_definitions(Some(attribute_definitions()?))
        .global_secondary_index_updates(
            GlobalSecondaryIndexUpdate::builder()
                .create(
                    CreateGlobalSecondaryIndexAction::builder()
                        .index_name(gsi)
                        .set_key_schema(Some(index_key_schema()?))
                        .projection(projection())
                        .build()?,
                )
                .build(),
        )
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
        .with_context(|| format!("cannot add the index {gsi} to the DynamoDB table {table}"))?;
    Ok(Outcome::IndexAdded)
}

/// How long [`ensure`] waits for DynamoDB to accept connections at all (an emulator or
/// DynamoDB Local started at the same time, as in `compose.yaml`).
pub const REACH_TIMEOUT: Duration = Duration::from_secs(60);

/// [`describe`], retried while DynamoDB cannot be reached (connection refused, timeouts),
/// for at most `reach`.
async fn describe_when_reachable(
    client: &Client,
    table: &str,
    reach: Duration,
) -> anyhow::Result<Option<TableDescription>> {
    let started = Instant::now();
    let mut logged = false;
    loop {
        let res = client.describe_table().table_name(table).send().await;
        match &res {
            Err(SdkError::DispatchFailure(_) | SdkError::TimeoutError(_))
                if started.elapsed() < reach =>
            {
                if !logged {
                    tracing::info!(table, "DynamoDB does not answer yet; waiting for it");
                    logged = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            _ => return described(res, table),
        }
    }
}

/// The table's description, or `None` when it does not exist.
pub async fn describe(client: &Client, table: &str) -> anyhow::Result<Option<TableDescription>> {
    described(
        client.describe_table().table_name(table).send().await,
        table,
    )
}

fn described(
    res: Result<DescribeTableOutput, SdkError<DescribeTableError>>,
    table: &str,
) -> anyhow::Result<Option<TableDescription>> {
    match res {
        Ok(out) => Ok(out.table),
        Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
        Err(e) => Err(anyhow::anyhow!("{}", DisplayErrorContext(&e)))
            .with_context(|| format!("cannot describe the DynamoDB table {table}")),
    }
}

/// Checks the table's key schema and its index's; `Ok(false)` when the index is missing.
pub fn check_schema(desc: &TableDescription, gsi: &str) -> anyhow::Result<bool> {
    let table = desc.table_name().unwrap_or("?");
    let hash = desc
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type().clone()))
        .collect::<Vec<_>>();
    if hash != [(TABLE_HASH_KEY, KeyType::Hash)] {
        bail!(
            "the DynamoDB table {table} has the key schema {hash:?}; expected a hash key \
             {TABLE_HASH_KEY} only"
        );
    }
    let Some(index) = desc
        .global_secondary_indexes()
        .iter()
        .find(|i| i.index_name() == Some(gsi))
    else {
        return Ok(false);
    };
    let keys = index
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type().clone()))
        .collect::<Vec<_>>();
    if keys
        != [
            (GSI_HASH_KEY, KeyType::Hash),
            (GSI_RANGE_KEY, KeyType::Range),
        ]
    {
        bail!(
            "the index {gsi} of the DynamoDB table {table} has the key schema {keys:?}; \
             expected hash {GSI_HASH_KEY}, range {GSI_RANGE_KEY}"
        );
    }
    let projected = index.projection().and_then(|p| p.projection_type());
    if projected != Some(&ProjectionType::All) {
        bail!("the index {gsi} of the DynamoDB table {table} projects {projected:?}; expected ALL");
    }
    Ok(true)
}

/// Creates the table with its index; `Ok(false)` when it already exists (a race with
/// another `table create`).
async fn create(client: &Client, table: &str, gsi: &str) -> anyhow::Result<bool> {
    let index = GlobalSecondaryIndex::builder()
        .index_name(gsi)
        .set_key_schema(Some(index_key_schema()?))
        .projection(projection())
        .build()?;
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(attribute_definitions()?))
        .key_schema(key(TABLE_HASH_KEY, KeyType::Hash)?)
        .global_secondary_indexes(index)
        .send()
        .await;
    match created {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some("ResourceInUseException") => Ok(false),
        Err(e) => Err(anyhow::anyhow!("{}", DisplayErrorContext(&e)))
            .with_context(|| format!("cannot create the DynamoDB table {table}")),
    }
}

/// Polls until the table and the index are ACTIVE (index back-filled).
async fn wait_active(
    client: &Client,
    table: &str,
    gsi: &str,
    wait: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(50);
    let mut last_log = Instant::now();
    loop {
        let desc = describe(client, table)
            .await?
            .with_context(|| format!("the DynamoDB table {table} disappeared while waiting"))?;
        let table_status = desc.table_status().cloned();
        let index_status = desc
            .global_secondary_indexes()
            .iter()
            .find(|i| i.index_name() == Some(gsi))
            .map(|i| (i.index_status().cloned(), i.backfilling().unwrap_or(false)));
        // AWS lists an index from the moment UpdateTable accepts it (CREATING); an
        // endpoint that accepted the request but lists no index will never have it.
        if index_status.is_none() {
            bail!(
                "the DynamoDB table {table} has no index {gsi} after it was requested (does \
                 this endpoint support adding an index with UpdateTable?)"
            );
        }
        let ready = table_status == Some(TableStatus::Active)
            && matches!(index_status, Some((Some(IndexStatus::Active), false)));
        if ready {
            return Ok(());
        }
        if started.elapsed() >= wait {
            bail!(
                "the DynamoDB table {table} is not ACTIVE after {wait:?} (table {table_status:?}, \
                 index {gsi} {index_status:?})"
            );
        }
        if last_log.elapsed() >= Duration::from_secs(10) {
            tracing::info!(
                table,
                index = gsi,
                ?table_status,
                ?index_status,
                "waiting for ACTIVE"
            );
            last_log = Instant::now();
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, aws_sdk_dynamodb::error::BuildError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
}

fn index_key_schema() -> Result<Vec<KeySchemaElement>, aws_sdk_dynamodb::error::BuildError> {
    Ok(vec![
        key(GSI_HASH_KEY, KeyType::Hash)?,
        key(GSI_RANGE_KEY, KeyType::Range)?,
    ])
}

fn attribute_definitions() -> Result<Vec<AttributeDefinition>, aws_sdk_dynamodb::error::BuildError>
{
    [
        (TABLE_HASH_KEY, ScalarAttributeType::S),
        (GSI_HASH_KEY, ScalarAttributeType::N),
        (GSI_RANGE_KEY, ScalarAttributeType::N),
    ]
    .into_iter()
    .map(|(name, kind)| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
    })
    .collect()
}

fn projection() -> Projection {
    Projection::builder()
        .projection_type(ProjectionType::All)
        .build()
}
