//! The SCIM 2.0 server (RFC 7643, RFC 7644) under `/scim/v2`.

use axum::Router;

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}
