//! `GET /v1/shows/changes`: what changed in the catalogue since a client's position (the
//! `Changes-Cursor` of its list, or the `next` of its last answer). The feed itself is
//! the catalogue's ([`crate::catalogue::changes`]); this module parses the query and
//! maps its answers and errors to HTTP.

use super::AppState;
use super::extract::{Authorized, Read};
use crate::catalogue::changes::{self, Change, Cursor, FeedError};
use crate::error::{ApiError, ErrorBody};
use crate::store::ListItem;
use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderValue;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The most changes one answer holds, and the default.
pub const MAX_CHANGES: u32 = 1000;

/// The header of `GET /v1/shows` (whole, or a first page) with the list's position.
pub const CHANGES_CURSOR: &str = "changes-cursor";

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/shows/changes", get(changes_since))
}

/// The query of `GET /v1/shows/changes`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesParams {
    /// The `Changes-Cursor` header of `GET /v1/shows`, or the `next` of the last answer
    /// (opaque).
    #[param(pattern = "^[A-Za-z0-9_-]+$")]
    pub since: Option<String>,
    /// At most this many changes (1 to 1000, default 1000): ask again while an answer
    /// holds this many.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// One change, to apply in order.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum ChangeBody {
    /// The show is in the catalogue now, as listed: add it or replace it (by slug).
    Put { item: ListItem },
    /// The show is not in the catalogue (deleted, no longer DRM, no episodes): drop it.
    Remove {
        #[schema(example = "show/thetaste")]
        slug: String,
    },
}

/// `GET /v1/shows/changes` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangesResponse {
    /// In the order they happened; a show changed several times appears once, at its
    /// latest change, with its state now.
    pub changes: Vec<ChangeBody>,
    /// The position after these changes: pass it as `since` next time (equal to `since`
    /// when nothing changed).
    pub next: String,
}

/// The catalogue's changes since a position: apply them in order to the list read at
/// `since` and it is the list at `next`.
#[utoipa::path(
    get, path = "/v1/shows/changes", tag = "shows",
    params(ChangesParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The changes since `since` (none: `next` equals `since`)", body = ChangesResponse),
        (status = 400, description = "`since` missing, not a changes cursor, or ahead of the catalogue; or `limit` not 1 to 1000", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Token lacks shows.read", body = ErrorBody),
        (status = 410, description = "`since` is older than the change log's retention, or from another deployment: list again (`GET /v1/shows`) and follow its `Changes-Cursor`", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    )
)]
pub async fn changes_since(
    _auth: Authorized<Read>,
    State(state): State<AppState>,
    params: Result<Query<ChangesParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ChangesResponse>, ApiError> {
    let Query(params) = params.map_err(|_| ApiError::bad_request("invalid query string"))?;
    let limit = match params.limit.as_deref() {
        None => MAX_CHANGES,
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_CHANGES).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "limit must be a whole number from 1 to {MAX_CHANGES}"
                ))
            })?,
    };
    let since = params.since.filter(|s| !s.is_empty()).ok_or_else(|| {
        ApiError::bad_request(
            "since is required: the Changes-Cursor header of GET /v1/shows, or the next of \
             the last answer",
        )
    })?;
    let since = Cursor::decode(&since).map_err(feed_error)?;
    let feed = changes::changes_since(
        state.store.as_ref(),
        since,
        limit as usize,
        std::time::SystemTime::now(),
    )
    .await
    .map_err(feed_error)?;
    Ok(Json(ChangesResponse {
        changes: feed
            .changes
            .into_iter()
            .map(|c| match c {
                Change::Put(item) => ChangeBody::Put { item },
                Change::Remove(slug) => ChangeBody::Remove { slug },
            })
            .collect(),
        next: feed.next.encode(),
    }))
}

fn feed_error(e: FeedError) -> ApiError {
    match e {
        FeedError::BadCursor(why) => {
            ApiError::bad_request(format!("since is not a changes cursor ({why})"))
        }
        FeedError::Future => {
            ApiError::bad_request("since is a position the catalogue has not reached")
        }
        FeedError::Expired => ApiError::Gone(
            "since is older than the change log keeps, or from another deployment: list the \
             catalogue again (GET /v1/shows) and follow changes from its Changes-Cursor"
                .into(),
        ),
        FeedError::Store(e) => e.into(),
    }
}

/// The `Changes-Cursor` header value of a list at `(log, version)`.
pub(super) fn cursor_header(log: u64, version: u64) -> Option<HeaderValue> {
    HeaderValue::from_str(
        &Cursor {
            log,
            version,
            offset: 0,
        }
        .encode(),
    )
    .ok()
}
