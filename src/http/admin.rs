//! `/v1/admin/`: what only a `shows.admin` token may do, as routes of their own rather
//! than flags on the partners' routes (OWASP API5: broken function level authorization).
//! `POST /v1/admin/owners` hands shows to a partner in bulk: the way shows with no owner
//! (the Go service's, an `import` without `--owner`) become a partner's, and the way a
//! show moves from one partner to another. Every admin write is logged at INFO with the
//! acting client and what it changed.

use super::AppState;
use super::extract::{Admin, Authorized, json_body};
use super::shows::{actor_of, spawn_write};
use crate::domain::{Partner, PartnerMap, Problem, Slug};
use crate::error::{ApiError, ErrorBody, NOT_JSON};
use axum::extract::{Request, State};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use utoipa::ToSchema;

/// The most slugs one assignment may name.
pub const MAX_ASSIGNED: usize = 1000;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/admin/owners", post(assign_owners))
}

/// `POST /v1/admin/owners` body. (Documentation only: the body is checked by
/// [`Assignment::parse`], which reports every problem with its path.)
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct OwnersRequest {
    /// A partner of `APP__AUTH__PARTNERS`, or a client id (a client not in the map is
    /// its own partner).
    #[schema(example = "acme", pattern = "^[A-Za-z0-9._+-]{1,128}$")]
    owner: String,
    /// 1 to 1000 distinct show slugs.
    #[schema(schema_with = slugs_schema, example = json!(["show/thetaste"]))]
    slugs: Vec<String>,
}

/// `slugs`: 1 to [`MAX_ASSIGNED`] distinct show slugs.
fn slugs_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^show/[a-z0-9][a-z0-9-]{0,194}$"))
                .examples([serde_json::json!("show/thetaste")]),
        )
        .min_items(Some(1))
        .max_items(Some(MAX_ASSIGNED))
        .unique_items(true)
        .description(Some("1 to 1000 distinct show slugs"))
        .build()
}

/// `POST /v1/admin/owners` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct OwnersResponse {
    /// The new owner.
    #[schema(value_type = String, example = "acme")]
    pub owner: Partner,
    /// The slugs the owner now has (those it had already included).
    pub assigned: Vec<String>,
    /// The slugs the store does not hold; nothing was done for them.
    pub unknown: Vec<String>,
}

/// A checked assignment: who is to own which shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub owner: Partner,
    pub slugs: Vec<Slug>,
}

impl Assignment {
    /// Checks a body: `owner` a partner the map knows (or a well-formed client id), `slugs`
    /// 1 to [`MAX_ASSIGNED`] distinct valid slugs, nothing else; every problem listed.
    pub fn parse(body: &[u8], partners: &PartnerMap) -> Result<Assignment, ApiError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|_| ApiError::bad_request(NOT_JSON))?;
        let Some(obj) = value.as_object() else {
            return Err(ApiError::invalid(vec![Problem::new(
                "$",
                "the body must be an object {\"owner\", \"slugs\"}",
            )]));
        };
        let mut problems = Vec::new();
        for key in obj
            .keys()
            .filter(|k| !matches!(k.as_str(), "owner" | "slugs"))
        {
            problems.push(Problem::new(key.clone(), "is not a field of an assignment"));
        }
        let owner = match obj.get("owner") {
            None | Some(Value::Null) => {
                problems.push(Problem::new("owner", "is required"));
                None
            }
            Some(Value::String(s)) if partners.knows(s) => Partner::parse(s.as_str()).ok(),
            Some(Value::String(_)) => {
                problems.push(Problem::new(
                    "owner",
                    "must be a partner of the partner map or a client id \
                     (1 to 128 of A-Z a-z 0-9 . _ + -)",
                ));
                None
            }
            Some(_) => {
                problems.push(Problem::new("owner", "must be a string"));
                None
            }
        };
        let mut slugs = Vec::new();
        match obj.get("slugs") {
            None | Some(Value::Null) => problems.push(Problem::new("slugs", "is required")),
            Some(Value::Array(items)) if items.is_empty() || items.len() > MAX_ASSIGNED => problems
                .push(Problem::new(
                    "slugs",
                    format!("must hold 1 to {MAX_ASSIGNED} slugs, not {}", items.len()),
                )),
            Some(Value::Array(items)) => {
                let mut first_at: HashMap<&str, usize> = HashMap::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let path = format!("slugs[{i}]");
                    let Some(s) = item.as_str() else {
                        problems.push(Problem::new(path, "must be a string"));
                        continue;
                    };
                    if let Some(first) = first_at.get(s) {
                        problems.push(Problem::new(
                            path,
                            format!("duplicates slugs[{first}] ({s:?})"),
                        ));
                        continue;
                    }
                    first_at.insert(s, i);
                    match Slug::parse(s) {
                        Ok(slug) => slugs.push(slug),
                        Err(rule) => problems.push(Problem::new(path, rule)),
                    }
                }
            }
            Some(_) => problems.push(Problem::new("slugs", "must be an array of slugs")),
        }
        match owner {
            Some(owner) if problems.is_empty() => Ok(Assignment { owner, slugs }),
            _ => Err(ApiError::invalid(problems)),
        }
    }
}

/// Makes `owner` the owner of every listed show the store holds, keeping their content
/// (the catalogue does not change). Unknown slugs are listed in the answer.
#[utoipa::path(
    post, path = "/v1/admin/owners", tag = "admin",
    request_body(content = OwnersRequest, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The shows held are the owner's now; unknown slugs listed", body = OwnersResponse),
        (status = 400, description = "Not JSON, an owner that is neither a partner nor a client id, or not 1 to 1000 distinct valid slugs (every problem listed in details); nothing changed", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Token lacks shows.admin", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 503, description = "Store unavailable, or too many writes in progress; nothing changed", body = ErrorBody),
    )
)]
pub async fn assign_owners(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    req: Request,
) -> Result<Json<OwnersResponse>, ApiError> {
    let body = json_body(req, &state).await?;
    let Assignment { owner, slugs } = Assignment::parse(&body, state.auth.partners())?;
    let actor = actor_of(&state, &auth.0)?;
    let client = actor.client.clone();
    let to = owner.clone();
    let done = spawn_write(&state, move |store| async move {
        store.assign_owner(&to, &slugs, &actor).await
    })
    .await??;
    tracing::info!(
        admin = %client,
        owner = %owner,
        assigned = done.assigned.len(),
        unknown = done.unknown.len(),
        slugs = ?done.assigned,
        "admin assigned owners"
    );
    Ok(Json(OwnersResponse {
        owner,
        assigned: done.assigned,
        unknown: done.unknown,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(body: &str, partners: &PartnerMap) -> Vec<String> {
        match Assignment::parse(body.as_bytes(), partners) {
            Err(ApiError::BadRequest { details, message }) => {
                assert!(!message.is_empty());
                details.into_iter().map(|p| p.path).collect()
            }
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn an_assignment_names_a_known_owner_and_distinct_valid_slugs() {
        let map = PartnerMap::parse("acme=c1|c2").unwrap();
        let ok =
            Assignment::parse(br#"{"owner":"acme","slugs":["show/a","show/b"]}"#, &map).unwrap();
        assert_eq!(ok.owner.as_str(), "acme");
        assert_eq!(ok.slugs.len(), 2);
        // A client id is its own partner.
        assert!(Assignment::parse(br#"{"owner":"c9","slugs":["show/a"]}"#, &map).is_ok());

        assert_eq!(problems(r#"{"slugs":["show/a"]}"#, &map), ["owner"]);
        assert_eq!(
            problems(r#"{"owner":"no such","slugs":["show/a"]}"#, &map),
            ["owner"]
        );
        assert_eq!(
            problems(r#"{"owner":7,"slugs":["show/a"]}"#, &map),
            ["owner"]
        );
        assert_eq!(problems(r#"{"owner":"acme"}"#, &map), ["slugs"]);
        assert_eq!(problems(r#"{"owner":"acme","slugs":[]}"#, &map), ["slugs"]);
        assert_eq!(
            problems(
                r#"{"owner":"acme","slugs":["show/a","BAD","show/a",3]}"#,
                &map
            ),
            ["slugs[1]", "slugs[2]", "slugs[3]"]
        );
        assert_eq!(
            problems(r#"{"owner":"acme","slugs":["show/a"],"admin":true}"#, &map),
            ["admin"]
        );
        assert_eq!(problems("[]", &map), ["$"]);
        let many: Vec<String> = (0..=MAX_ASSIGNED).map(|i| format!("show/s{i}")).collect();
        let body = serde_json::json!({"owner": "acme", "slugs": many}).to_string();
        assert_eq!(problems(&body, &map), ["slugs"]);
        assert!(matches!(
            Assignment::parse(b"{", &map),
            Err(ApiError::BadRequest { ref message, .. }) if message == NOT_JSON
        ));
    }
}
