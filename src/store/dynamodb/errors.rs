//! How DynamoDB failures become [`StoreError`]s.
//!
//! Anything that says "not now" is [`StoreError::Unavailable`] (503 + `Retry-After`):
//! throttling (`ThrottlingException`, `ProvisionedThroughputExceededException`,
//! `RequestLimitExceeded`, …), timeouts, connection and dispatch failures, 5xx answers,
//! and a missing table or index (also logged at error level, naming it: that one needs
//! an operator, not a retry). Everything else — a request DynamoDB refused as invalid,
//! credentials it rejected — is [`StoreError::Internal`] (500, logged by the HTTP layer).
//!
//! The SDK has already retried the transient ones (see `client.rs`) by the time they get
//! here.

use crate::store::StoreError;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use std::time::Duration;

/// `Retry-After` when DynamoDB throttled us: a second is enough for its buckets to refill.
pub const RETRY_AFTER_THROTTLED: Duration = Duration::from_secs(1);
/// `Retry-After` when DynamoDB could not be reached or timed out.
pub const RETRY_AFTER_OUTAGE: Duration = Duration::from_secs(2);
/// `Retry-After` when the table or index is missing: someone has to create it first.
pub const RETRY_AFTER_MISSING: Duration = Duration::from_secs(5);

/// Error codes DynamoDB (and the AWS front end) use for "slow down".
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "TooManyRequestsException",
    "TransactionInProgressException",
];

/// Error codes of a server-side failure that is worth retrying later.
const SERVER_CODES: &[&str] = &["InternalServerError", "ServiceUnavailable"];

/// What a call was about, for messages and the missing-table log line.
#[derive(Debug, Clone, Copy)]
pub struct CallContext<'a> {
    /// The operation, e.g. `Query`.
    pub operation: &'static str,
    pub table: &'a str,
    /// The index the call used, if any.
    pub index: Option<&'a str>,
}

/// Maps a failed SDK call to a store error (see the module doc).
pub fn from_sdk<E>(err: SdkError<E, HttpResponse>, cx: CallContext<'_>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let op = cx.operation;
    match &err {
        SdkError::TimeoutError(_) => {
            unavailable(format!("DynamoDB {op} timed out"), RETRY_AFTER_OUTAGE)
        }
        SdkError::DispatchFailure(failure) if failure.is_user() => StoreError::Internal(
            anyhow::anyhow!("DynamoDB {op}: {}", DisplayErrorContext(&err)),
        ),
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => unavailable(
            format!(
                "DynamoDB {op}: cannot reach DynamoDB: {}",
                DisplayErrorContext(&err)
            ),
            RETRY_AFTER_OUTAGE,
        ),
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("");
            let message = service.err().message().unwrap_or("");
            let status = service.raw().status().as_u16();
            if THROTTLING_CODES.contains(&code) {
                unavailable(
                    format!("DynamoDB {op} throttled: {code}"),
                    RETRY_AFTER_THROTTLED,
                )
            } else if code == "ResourceNotFoundException" {
                tracing::error!(
                    table = cx.table,
                    operation = op,
                    "DynamoDB table {} not found: create it (`show-service table create`) or \
                     check APP__DYNAMODB__SHOWSTABLE and the region",
                    cx.table
                );
                unavailable(
                    format!("DynamoDB {op}: table {} not found", cx.table),
                    RETRY_AFTER_MISSING,
                )
            } else if code == "ValidationException" && message.contains("specified index") {
                let index = cx.index.unwrap_or("?");
                tracing::error!(
                    table = cx.table,
                    index,
                    operation = op,
                    "DynamoDB table {} has no index {index}: create it (`show-service table \
                     create`) or check APP__DYNAMODB__SHOWSGSI",
                    cx.table
                );
                unavailable(
                    format!("DynamoDB {op}: index {index} of {} not found", cx.table),
                    RETRY_AFTER_MISSING,
                )
            } else if SERVER_CODES.contains(&code) || status >= 500 {
                unavailable(
                    format!("DynamoDB {op} failed on the server side: {status} {code}"),
                    RETRY_AFTER_OUTAGE,
                )
            } else {
                StoreError::Internal(anyhow::anyhow!(
                    "DynamoDB {op} on {}: {status} {code}: {message}",
                    cx.table
                ))
            }
        }
        _ => StoreError::Internal(anyhow::anyhow!(
            "DynamoDB {op}: {}",
            DisplayErrorContext(&err)
        )),
    }
}

fn unavailable(reason: String, retry_after: Duration) -> StoreError {
    StoreError::Unavailable {
        reason,
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_dynamodb::operation::get_item::GetItemError;
    use aws_smithy_types::body::SdkBody;

    const CX: CallContext<'static> = CallContext {
        operation: "GetItem",
        table: "shows-test",
        index: None,
    };

    fn service(status: u16, code: &str, message: &str) -> SdkError<GetItemError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message(message).build();
        let raw = HttpResponse::new(status.try_into().expect("status"), SdkBody::from("{}"));
        SdkError::service_error(GetItemError::generic(meta), raw)
    }

    fn retry_after(e: &StoreError) -> Option<Duration> {
        match e {
            StoreError::Unavailable { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    #[test]
    fn throttling_codes_are_unavailable_for_a_second() {
        for code in [
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "RequestLimitExceeded",
        ] {
            let e = from_sdk(service(400, code, "slow down"), CX);
            assert_eq!(
                retry_after(&e),
                Some(RETRY_AFTER_THROTTLED),
                "{code}: {e:?}"
            );
        }
    }

    #[test]
    fn outages_and_server_errors_are_unavailable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let cases: Vec<SdkError<GetItemError, HttpResponse>> = vec![
            SdkError::timeout_error("operation timeout"),
            SdkError::dispatch_failure(ConnectorError::io(Box::new(io))),
            SdkError::dispatch_failure(ConnectorError::timeout("connect".into())),
            service(500, "InternalServerError", "oops"),
            service(503, "", ""),
        ];
        for case in cases {
            let shown = format!("{case:?}");
            let e = from_sdk(case, CX);
            assert_eq!(retry_after(&e), Some(RETRY_AFTER_OUTAGE), "{shown}: {e:?}");
        }
    }

    #[test]
    fn a_missing_table_or_index_is_unavailable_and_names_it() {
        let e = from_sdk(
            service(
                400,
                "ResourceNotFoundException",
                "Requested resource not found",
            ),
            CX,
        );
        assert_eq!(retry_after(&e), Some(RETRY_AFTER_MISSING));
        assert!(e.to_string().contains("shows-test"), "{e}");

        let cx = CallContext {
            operation: "Query",
            index: Some("gsi_x"),
            ..CX
        };
        let e = from_sdk(
            service(
                400,
                "ValidationException",
                "The table does not have the specified index: gsi_x",
            ),
            cx,
        );
        assert_eq!(retry_after(&e), Some(RETRY_AFTER_MISSING));
        assert!(e.to_string().contains("gsi_x"), "{e}");
    }

    #[test]
    fn a_refused_request_is_internal() {
        for (code, msg) in [
            (
                "ValidationException",
                "One or more parameter values were invalid",
            ),
            (
                "UnrecognizedClientException",
                "The security token is invalid",
            ),
        ] {
            let e = from_sdk(service(400, code, msg), CX);
            assert!(matches!(e, StoreError::Internal(_)), "{code}: {e:?}");
        }
    }
}
