//! `/v1/shows` (and the seed's `/shows` aliases): the catalogue, feed ingest, one show.

use super::AppState;
use super::changes::{CHANGES_CURSOR, cursor_header};
use super::extract::{Authorized, FeedBody, Read, Write};
use crate::catalogue::{CLOCK_MARGIN, Snapshot};
use crate::domain::{Actor, Partner, Problem, Show, Slug, Timestamp};
use crate::error::{ApiError, ErrorBody};
use crate::store::cursor::Position;
use crate::store::{ChangeRecord, DynStore, ListItem, PageRequest, StoreError};
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;
use utoipa::{IntoParams, ToSchema};

/// The largest page a client may ask for.
pub const MAX_PAGE: u32 = 1000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/shows", get(list).post(create))
        .route("/shows", get(list).post(create))
        .route("/v1/shows/{*slug}", get(get_one).delete(delete_one))
        .route("/shows/{*slug}", get(get_one).delete(delete_one))
}

/// `GET /v1/shows` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListResponse {
    pub response: Vec<ListItem>,
    /// Present when more items remain: pass it back as `cursor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `POST /v1/shows` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WriteResponse {
    #[schema(example = "shows stored")]
    pub message: String,
    /// How many shows were written.
    pub written: usize,
}

/// `GET /v1/shows/{slug}` answer: the show, its owner, and who changed it when.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShowResponse {
    #[serde(flatten)]
    pub show: Show,
    /// The partner that owns the show; `null` when it has none (written by the Go
    /// service, or by `show-service import` without `--owner`: only an admin may change it).
    #[schema(value_type = Option<String>, example = "acme")]
    pub owner: Option<Partner>,
    /// When the show was first written through this service; `null` when unknown.
    #[schema(value_type = Option<String>, format = DateTime, example = "2026-12-07T22:47:45.123Z")]
    pub created_at: Option<Timestamp>,
    /// When it was last written; `null` when unknown.
    #[schema(value_type = Option<String>, format = DateTime, example = "2026-12-07T22:47:45.123Z")]
    pub updated_at: Option<Timestamp>,
    /// The client id of its last write; `null` when unknown.
    #[schema(example = "acme-feeds")]
    pub updated_by: Option<String>,
}

/// Paging of the catalogue.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// At most this many items (1 to 1000); without it, the whole catalogue.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// The `next` value of the previous page (opaque; only values this service issued
    /// are accepted, others get 400).
    #[param(pattern = "^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
}

/// The feed a partner posts. (Documentation only: the body is parsed by `domain::Feed`,
/// which reports every problem with its path.)
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct FeedRequest {
    /// 1 to 1000 shows with distinct slugs.
    #[schema(min_items = 1, max_items = 1000)]
    payload: Vec<Show>,
    #[schema(value_type = Option<i64>, minimum = 0)]
    skip: Option<u64>,
    #[schema(value_type = Option<i64>, minimum = 0)]
    take: Option<u64>,
    #[schema(value_type = Option<i64>, minimum = 0)]
    total_records: Option<u64>,
}

/// The catalogue: every show with `drm == true` and `episodeCount > 0`.
#[utoipa::path(
    get, path = "/v1/shows", tag = "shows",
    params(ListParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The catalogue (all of it, or one page)", body = ListResponse,
         headers(("etag" = String, description = "Strong validator of the whole catalogue"),
                 ("changes-cursor" = String, description = "On the whole list and a first page: the list's position in the change log; follow changes after it with `GET /v1/shows/changes?since=`"))),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
        (status = 400, description = "Bad limit or cursor", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Token lacks shows.read", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    )
)]
pub async fn list(
    _auth: Authorized<Read>,
    State(state): State<AppState>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
    conditions: Conditions,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|_| ApiError::bad_request("invalid query string"))?;
    let limit = match params.limit.as_deref() {
        None => None,
        Some(s) => Some(
            s.parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .and_then(NonZeroU32::new)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "limit must be a whole number from 1 to {MAX_PAGE}"
                    ))
                })?,
        ),
    };
    let cursor = params.cursor.filter(|c| !c.is_empty());
    let paged = limit.is_some() || cursor.is_some();
    // The cursor is checked before the store is asked anything.
    let after = cursor.as_deref().map(Position::decode).transpose()?;
    // A whole list or a first page says where it stands in the change log. Without a
    // cache (TTL 0) that is the change record read before the list.
    let uncached = state.cache.ttl().is_zero();
    let before = match after.is_none() && uncached {
        true => record_position(&state).await?,
        false => None,
    };
    if !paged || !uncached {
        let snapshot = state.cache.current(&state.store).await?;
        let position = match after {
            Some(_) => None,
            None if uncached => before,
            None => (state.cache.position_of(&snapshot))
                .or_else(|| state.cache.log_id().map(|log| (log, 0))),
        };
        let mut res = if paged {
            let limit = limit.map_or(usize::MAX, |n| n.get() as usize);
            let body = snapshot.page(after.as_ref(), limit);
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response()
        } else {
            cached_response(&snapshot, &conditions)
        };
        with_position(&mut res, position);
        return Ok(res);
    }
    // No cache (TTL 0): the page straight from the store.
    let page = state
        .store
        .list_eligible(PageRequest { limit, cursor })
        .await?;
    let mut res = Json(ListResponse {
        response: page.items,
        next: page.next,
    })
    .into_response();
    with_position(&mut res, before);
    Ok(res)
}

/// The change record's position, read before an uncached list: its version when every
/// write it counts has landed, else 0 (a position every change is after).
async fn record_position(state: &AppState) -> Result<Option<(u64, u64)>, ApiError> {
    Ok(match state.store.change_record().await? {
        ChangeRecord::Version {
            version,
            unsettled_until,
            log: Some(log),
        } => {
            let landing =
                unsettled_until.is_some_and(|t| t + CLOCK_MARGIN > std::time::SystemTime::now());
            Some((log, if landing { 0 } else { version }))
        }
        _ => None,
    })
}

/// Adds the `Changes-Cursor` header of `position` (the change log's id, the version).
fn with_position(res: &mut Response, position: Option<(u64, u64)>) {
    if let Some(value) = position.and_then(|(log, version)| cursor_header(log, version)) {
        res.headers_mut().insert(CHANGES_CURSOR, value);
    }
}

/// What the catalogue's answer depends on in the request headers, read from them in
/// place (the `HeaderMap` extractor would clone every header of every request).
pub struct Conditions {
    /// The `If-None-Match` values (none in the common case: no allocation).
    if_none_match: Vec<HeaderValue>,
    /// `Accept-Encoding` allows gzip.
    gzip: bool,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Conditions {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Conditions {
            if_none_match: parts
                .headers
                .get_all(header::IF_NONE_MATCH)
                .iter()
                .cloned()
                .collect(),
            gzip: accepts_gzip(&parts.headers),
        })
    }
}

/// The cached catalogue, as gzip when the client accepts it, or 304 on a matching ETag.
fn cached_response(entry: &Snapshot, conditions: &Conditions) -> Response {
    let not_modified = conditions
        .if_none_match
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == entry.etag
        });
    let mut res = Response::new(Body::empty());
    let headers = res.headers_mut();
    headers.insert(header::ETAG, entry.etag_header.clone());
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    if not_modified {
        metrics::counter!("catalogue_not_modified_total").increment(1);
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        return res;
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = match &entry.gzip {
        Some(gz) if conditions.gzip => {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            gz.clone()
        }
        _ => entry.json.clone(),
    };
    *res.body_mut() = Body::from(body);
    res
}

/// True when `Accept-Encoding` lists gzip with a non-zero q-value.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let q_zero = parts.any(|p| {
                let p = p.trim().replace(' ', "");
                p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
        })
}

/// Upserts every show of a feed, all or nothing: any invalid item and nothing is written.
/// A partner may create slugs nobody has and change shows it owns; a feed naming another
/// partner's show (or an unowned one, without `shows.admin`) is refused whole.
#[utoipa::path(
    post, path = "/v1/shows", tag = "shows",
    request_body(content = FeedRequest, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Every show was stored", body = WriteResponse),
        (status = 400, description = "Not JSON, or a rule broken (every problem listed in details); nothing written", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Token lacks shows.write; or the feed names shows that are not the client's partner's (another partner's, or unowned without shows.admin): one detail per such `payload[i].slug`, nothing written", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 503, description = "Store unavailable, too many writes in progress (nothing written), or only part written (details name the slugs not written)", body = ErrorBody),
    )
)]
pub async fn create(
    auth: Authorized<Write>,
    State(state): State<AppState>,
    feed: Result<FeedBody, ApiError>,
) -> Result<(StatusCode, Json<WriteResponse>), ApiError> {
    let feeds = |outcome: &'static str| metrics::counter!("feeds_total", "outcome" => outcome);
    let FeedBody(feed) = feed.inspect_err(|_| feeds("rejected").increment(1))?;
    let count = feed.shows.len();
    let actor = actor_of(&state, &auth.0).inspect_err(|_| feeds("refused").increment(1))?;
    let admin = actor.admin.then(|| actor.client.clone());
    // In feed order: a refusal names each slug at its `payload[i].slug`.
    let slugs: Vec<String> = feed
        .shows
        .iter()
        .map(|s| s.slug.as_str().to_string())
        .collect();
    let outcome = spawn_write(&state, move |store| async move {
        store.upsert(feed.shows, &actor).await
    })
    .await
    .inspect_err(|_| feeds("failed").increment(1))?;
    let written = match outcome {
        Ok(written) => written,
        Err(StoreError::Forbidden {
            slugs: refused,
            written,
        }) => {
            metrics::counter!("shows_written_total").increment(written as u64);
            feeds("refused").increment(1);
            tracing::info!(
                shows = count,
                refused = refused.len(),
                written,
                "feed refused: shows of another partner"
            );
            return Err(refusal(&slugs, &refused, written));
        }
        Err(e) => {
            if let StoreError::Partial { written, .. } = &e {
                metrics::counter!("shows_written_total").increment(*written as u64);
                feeds("partial").increment(1);
            } else {
                feeds("failed").increment(1);
            }
            return Err(e.into());
        }
    };
    metrics::counter!("shows_written_total").increment(written as u64);
    feeds("accepted").increment(1);
    match admin {
        // An admin may change any show: what it changed is on the record.
        Some(client) => {
            tracing::info!(admin = %client, shows = count, written, slugs = ?slugs, "admin feed stored")
        }
        None => tracing::info!(shows = count, written, "feed stored"),
    }
    Ok((
        StatusCode::CREATED,
        Json(WriteResponse {
            message: format!("{written} shows stored"),
            written,
        }),
    ))
}

/// The 403 of a feed naming shows the client may not change: one detail per refused slug
/// at its `payload[i].slug`, never naming the owner.
fn refusal(feed: &[String], refused: &[String], written: usize) -> ApiError {
    let at: std::collections::HashMap<&str, usize> = feed
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let mut indexed: Vec<(Option<usize>, &str)> = refused
        .iter()
        .map(|s| (at.get(s.as_str()).copied(), s.as_str()))
        .collect();
    indexed.sort();
    let details = indexed
        .into_iter()
        .map(|(i, slug)| {
            let path = i.map_or_else(|| slug.to_string(), |i| format!("payload[{i}].slug"));
            Problem::new(path, format!("{slug} is not yours to change: another partner's, or unowned (only an admin may change it)"))
        })
        .collect();
    let (shows, are, were) = match refused.len() {
        1 => ("1 show".to_string(), "is", "was"),
        n => (format!("{n} shows"), "are", "were"),
    };
    let message = if written == 0 {
        format!("{shows} of the feed {are} not yours to change; nothing was written")
    } else {
        format!(
            "{shows} of the feed {were} taken by another partner while it was written; \
             {written} of its other shows were stored"
        )
    };
    ApiError::NotYours { message, details }
}

/// Runs a store write in a task of its own, holding one of `state.writes`' permits, which
/// shutdown waits for; the snapshot is invalidated when it ends. When the client hangs up
/// (or the request times out) the handler is dropped where it stands; a write made of
/// several store calls (DynamoDB: the owners' read, the change record's bump, the
/// transactions of 100 or the delete, the bump after them) would stop half-way. The task finishes it instead.
/// No permit free: 503 + Retry-After, and nothing is written.
pub(super) async fn spawn_write<T, F>(
    state: &AppState,
    write: impl FnOnce(DynStore) -> F,
) -> Result<Result<T, StoreError>, ApiError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, StoreError>> + Send + 'static,
{
    let permit = state.writes.clone().try_acquire_owned().map_err(|_| {
        tracing::warn!("no write permit free: write refused");
        ApiError::Unavailable {
            message: "too many writes in progress; retry later".into(),
            retry_after: WRITES_BUSY_RETRY_AFTER,
            details: Vec::new(),
        }
    })?;
    let cache = state.cache.clone();
    let write = write(state.store.clone());
    let task = tokio::spawn(async move {
        let result = write.await;
        cache.invalidate();
        drop(permit);
        result
    });
    task.await.map_err(|e| ApiError::Internal(e.into()))
}

/// `Retry-After` when every write permit is taken.
const WRITES_BUSY_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Who acts: the token's client, its partner, and whether it holds `shows.admin`.
pub(super) fn actor_of(
    state: &AppState,
    principal: &crate::auth::Principal,
) -> Result<Actor, ApiError> {
    state
        .auth
        .actor(principal)
        .map_err(|message| ApiError::NotYours {
            message,
            details: Vec::new(),
        })
}

fn slug_from_path(raw: &str) -> Result<Slug, ApiError> {
    Slug::parse(raw.trim_start_matches('/'))
        .map_err(|_| ApiError::NotFound(format!("no show {raw:?}")))
}

/// One stored show, whole, with its owner and who changed it when.
#[utoipa::path(
    get, path = "/v1/shows/{slug}", tag = "shows",
    params(("slug" = String, Path, description = "The show's slug, e.g. show/thetaste (its `/` is not escaped)",
            example = "show/thetaste", pattern = "^show/[a-z0-9][a-z0-9-]{0,194}$")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The show, its owner and who changed it when (each `null` when unknown)", body = ShowResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Token lacks shows.read", body = ErrorBody),
        (status = 404, description = "No such show", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    )
)]
pub async fn get_one(
    _auth: Authorized<Read>,
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<ShowResponse>, ApiError> {
    let slug = slug_from_path(&raw)?;
    match state.store.get(&slug).await? {
        Some(stored) => Ok(Json(ShowResponse {
            show: stored.show,
            owner: stored.provenance.owner,
            created_at: stored.provenance.created_at,
            updated_at: stored.provenance.updated_at,
            updated_by: stored.provenance.updated_by,
        })),
        None => Err(ApiError::NotFound(format!("no show {}", slug.as_str()))),
    }
}

/// Removes one show: the client partner's own, or with `shows.admin` any.
#[utoipa::path(
    delete, path = "/v1/shows/{slug}", tag = "shows",
    params(("slug" = String, Path, description = "The show's slug, e.g. show/thetaste",
            example = "show/thetaste", pattern = "^show/[a-z0-9][a-z0-9-]{0,194}$")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Token lacks shows.write; or the show is not the client's partner's (another partner's, or unowned without shows.admin); nothing deleted", body = ErrorBody),
        (status = 404, description = "No such show", body = ErrorBody),
        (status = 503, description = "Store unavailable, or too many writes in progress; nothing deleted", body = ErrorBody),
    )
)]
pub async fn delete_one(
    auth: Authorized<Write>,
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let slug = slug_from_path(&raw)?;
    let target = slug.clone();
    let actor = actor_of(&state, &auth.0)?;
    let admin = actor.admin.then(|| actor.client.clone());
    let deleted = spawn_write(&state, move |store| async move {
        store.delete(&target, &actor).await
    })
    .await?;
    match deleted {
        Ok(true) => {
            if let Some(client) = admin {
                tracing::info!(admin = %client, slug = slug.as_str(), "admin deleted a show");
            }
            Ok(StatusCode::NO_CONTENT)
        }
        Ok(false) => Err(ApiError::NotFound(format!("no show {}", slug.as_str()))),
        Err(StoreError::Forbidden { .. }) => Err(ApiError::NotYours {
            message: format!(
                "{} is not yours to delete: another partner's, or unowned (only an admin \
                 may delete it); nothing was deleted",
                slug.as_str()
            ),
            details: Vec::new(),
        }),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        let cases = [
            ("gzip", true),
            ("br, gzip;q=0.5", true),
            ("GZIP", true),
            ("*", true),
            ("gzip;q=0", false),
            ("identity", false),
            ("", false),
        ];
        for (value, want) in cases {
            let mut h = HeaderMap::new();
            h.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(value).unwrap(),
            );
            assert_eq!(accepts_gzip(&h), want, "{value}");
        }
    }
}
