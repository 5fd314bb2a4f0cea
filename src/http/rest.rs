//! The REST API under `/api/v1`: JSON in, JSON out, errors as
//! `{"error": "...", "code": N}` with N the exec exit code and the HTTP
//! status of its class (400, 401, 403, 404, 409).

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::json;

use super::{authenticate, blocking, AppState, Failure, Peer, TokenNote};
use crate::service::tokens::TokenScope;
use crate::service::{Actor, Source};

pub fn failure(f: Failure) -> Response {
    let mut r = (f.status, Json(json!({"error": f.message, "code": f.code}))).into_response();
    if f.status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"tenure\""),
        );
    }
    r
}

/// The token's actor, refused unless the token is for the REST API.
pub(crate) async fn rest_actor(
    state: &AppState,
    peer: Peer,
    headers: &HeaderMap,
    note: &TokenNote,
) -> Result<Actor, Failure> {
    let actor = authenticate(state, peer, headers, Some(note)).await?;
    match &actor.source {
        Source::Http {
            scope: Some(TokenScope::Read | TokenScope::Write),
            ..
        } => Ok(actor),
        _ => Err(Failure::new(
            StatusCode::FORBIDDEN,
            4,
            "this token's scope is scim: the REST API needs a read or write token",
        )),
    }
}

async fn whoami(
    State(state): State<AppState>,
    Extension(peer): Extension<Peer>,
    Extension(note): Extension<TokenNote>,
    headers: HeaderMap,
) -> Response {
    let actor = match rest_actor(&state, peer, &headers, &note).await {
        Ok(a) => a,
        Err(f) => return failure(f),
    };
    let services = state.services.clone();
    match blocking(move || {
        let account = services.load(&actor.name)?;
        Ok(json!({
            "username": account.username,
            "roles": account.roles,
            "source": actor.source.to_string(),
        }))
    })
    .await
    {
        Ok(v) => Json(v).into_response(),
        Err(f) => failure(f),
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/whoami", get(whoami))
}
