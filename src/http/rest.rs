//! The REST API under `/api/v1`: what the exec grammar does, as JSON.
//! Errors are `{"error": "...", "code": N}` with N the exec exit code and
//! the HTTP status of its class (400 usage, 401, 403 denied, 404 not
//! found, 409 conflict). Lists stream (accounts, audit, orphans): rows are
//! written as the service hands them over, never all held at once.
//! `/api/v1/openapi.json` describes every route (built from `ROUTES`).

use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{AppState, Failure};
use crate::cli::account_view;
use crate::domain::dates::parse_date;
use crate::domain::{DisableReason, Kind, Role};
use crate::service::accounts::{AccountInput, ListFilter};
use crate::service::integrity::AuditFilter;
use crate::service::tokens::TokenScope;
use crate::service::{Actor, Error, Services, Source};

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

/// The caller of a REST route: a read or write token's actor.
pub struct Rest {
    actor: Actor,
    services: Services,
}

impl FromRequestParts<AppState> for Rest {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Rest, Response> {
        let actor = super::request_actor(parts, state).await.map_err(failure)?;
        match &actor.source {
            Source::Http {
                scope: Some(TokenScope::Read | TokenScope::Write),
                ..
            } => Ok(Rest {
                actor,
                services: state.services.clone(),
            }),
            _ => Err(failure(Failure::new(
                StatusCode::FORBIDDEN,
                4,
                "this token's scope is scim: the REST API needs a read or write token",
            ))),
        }
    }
}

type Done = Result<Value, Failure>;

impl Rest {
    /// Runs `f` on the blocking pool; its value is the JSON answer.
    async fn run(
        self,
        status: StatusCode,
        f: impl FnOnce(&Services, &Actor) -> Done + Send + 'static,
    ) -> Response {
        let Rest { actor, services } = self;
        match super::blocking(move || f(&services, &actor)).await {
            Ok(v) => (status, Json(v)).into_response(),
            Err(e) => failure(e),
        }
    }

    /// Streams a JSON array: `produce` hands rows to `emit` one at a time.
    /// An error before the first row is an error answer; after it, the
    /// stream is cut (the client sees an unterminated array).
    async fn stream(
        self,
        produce: impl FnOnce(
                &Services,
                &Actor,
                &mut dyn FnMut(Value) -> crate::service::Result<()>,
            ) -> crate::service::Result<()>
            + Send
            + 'static,
    ) -> Response {
        const CHUNK: usize = 32 * 1024;
        let Rest { actor, services } = self;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, Failure>>(8);
        tokio::task::spawn_blocking(move || {
            let mut buf: Vec<u8> = Vec::with_capacity(CHUNK * 2);
            let mut started = false;
            let result = {
                let mut emit = |v: Value| -> crate::service::Result<()> {
                    buf.push(if started { b',' } else { b'[' });
                    started = true;
                    serde_json::to_writer(&mut buf, &v)
                        .map_err(|e| Error::Failed(format!("encode: {e}")))?;
                    buf.push(b'\n');
                    if buf.len() >= CHUNK {
                        let chunk =
                            Bytes::from(std::mem::replace(&mut buf, Vec::with_capacity(CHUNK * 2)));
                        tx.blocking_send(Ok(chunk))
                            .map_err(|_| Error::Failed("the client went away".into()))?;
                    }
                    Ok(())
                };
                produce(&services, &actor, &mut emit)
            };
            let last = match result {
                Ok(()) => {
                    if !started {
                        buf.push(b'[');
                    }
                    buf.push(b']');
                    Ok(Bytes::from(buf))
                }
                Err(e) => Err(Failure::from(e)),
            };
            let _ = tx.blocking_send(last);
        });
        let first = match rx.recv().await {
            Some(Ok(bytes)) => bytes,
            Some(Err(f)) => return failure(f),
            None => {
                return failure(Failure::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    1,
                    "the listing stopped",
                ))
            }
        };
        let rest = futures_util::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Some(Ok(bytes)) => Some((Ok::<Bytes, std::io::Error>(bytes), rx)),
                Some(Err(f)) => Some((Err(std::io::Error::other(f.message)), rx)),
                None => None,
            }
        });
        let body = futures_util::stream::once(async move { Ok(first) });
        use futures_util::StreamExt;
        (
            [(header::CONTENT_TYPE, "application/json")],
            Body::from_stream(body.chain(rest)),
        )
            .into_response()
    }
}

/// A JSON body of `T` (unknown fields refused), or 400.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, Failure> {
    if bytes.is_empty() {
        return Err(Failure::bad("a JSON body is required"));
    }
    serde_json::from_slice(bytes).map_err(|e| Failure::bad(format!("bad JSON body: {e}")))
}

fn date(services: &Services, text: &Option<String>) -> Result<Option<chrono::NaiveDate>, Failure> {
    text.as_deref()
        .map(|t| parse_date(t, services.today()).map_err(Failure::bad))
        .transpose()
}

/// The fields of an account in a body (create, clone, update).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountBody {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    kind: Option<Kind>,
    #[serde(default)]
    company: Option<String>,
    #[serde(default)]
    sponsor: Option<String>,
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    start_date: Option<String>,
    #[serde(default)]
    end_date: Option<String>,
    #[serde(default)]
    groups: Option<Vec<String>>,
    #[serde(default)]
    roles: Option<Vec<Role>>,
    #[serde(default)]
    fields: BTreeMap<String, String>,
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    theme: Option<String>,
    #[serde(default)]
    notes: Option<String>,
    #[serde(default)]
    inactivity_exempt: Option<bool>,
}

impl AccountBody {
    fn input(self, s: &Services) -> Result<AccountInput, Failure> {
        Ok(AccountInput {
            start_date: date(s, &self.start_date)?,
            end_date: date(s, &self.end_date)?,
            display_name: self.display_name,
            email: self.email,
            kind: self.kind,
            company: self.company,
            sponsor: self.sponsor,
            project: self.project,
            groups: self.groups,
            roles: self.roles,
            fields: self.fields,
            template: self.template,
            timezone: self.timezone,
            language: self.language,
            theme: self.theme,
            notes: self.notes,
            inactivity_exempt: self.inactivity_exempt,
            allowlist: None,
            source: None,
        })
    }
}

// ----- accounts

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    kind: Option<Kind>,
    sponsor: Option<String>,
    project: Option<String>,
    expiring_within: Option<u32>,
    after: Option<String>,
    limit: Option<usize>,
}

async fn accounts_list(
    r: Rest,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return failure(Failure::bad(e.body_text())),
    };
    let filter = ListFilter {
        status: q.status,
        kind: q.kind,
        sponsor: q.sponsor,
        project: q.project,
        expiring_within: q.expiring_within,
        after: q.after,
        limit: q.limit,
    };
    r.stream(move |s, a, emit| {
        let today = s.today();
        s.list_each(a, &filter, &mut |acc| emit(account_view(&acc, today)))
    })
    .await
}

async fn account_show(r: Rest, Path(name): Path<String>) -> Response {
    r.run(StatusCode::OK, move |s, a| {
        Ok(account_view(&s.show(a, &name)?, s.today()))
    })
    .await
}

async fn account_create(r: Rest, bytes: Bytes) -> Response {
    r.run(StatusCode::CREATED, move |s, a| {
        let b: AccountBody = body(&bytes)?;
        let name = b
            .username
            .clone()
            .ok_or_else(|| Failure::bad("username is required"))?;
        let account = s.create(a, &name, b.input(s)?)?;
        Ok(account_view(&account, s.today()))
    })
    .await
}

async fn account_clone(r: Rest, Path(source): Path<String>, bytes: Bytes) -> Response {
    r.run(StatusCode::CREATED, move |s, a| {
        let b: AccountBody = body(&bytes)?;
        let name = b
            .username
            .clone()
            .ok_or_else(|| Failure::bad("username (of the new account) is required"))?;
        let account = s.clone_account(a, &source, &name, b.input(s)?)?;
        Ok(account_view(&account, s.today()))
    })
    .await
}

async fn account_update(r: Rest, Path(name): Path<String>, bytes: Bytes) -> Response {
    r.run(StatusCode::OK, move |s, a| {
        let b: AccountBody = body(&bytes)?;
        if b.username.as_ref().is_some_and(|u| u != &name) {
            return Err(Failure::bad("username cannot change"));
        }
        let account = s.update(a, &name, b.input(s)?)?;
        Ok(account_view(&account, s.today()))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    reason: String,
}

async fn account_disable(r: Rest, Path(name): Path<String>, bytes: Bytes) -> Response {
    r.run(StatusCode::OK, move |s, a| {
        let b: Reason = body(&bytes)?;
        let account = s.disable(a, &name, DisableReason::Manual, Some(b.reason))?;
        Ok(account_view(&account, s.today()))
    })
    .await
}

async fn account_enable(r: Rest, Path(name): Path<String>) -> Response {
    r.run(StatusCode::OK, move |s, a| {
        Ok(account_view(&s.enable(a, &name)?, s.today()))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct End {
    end_date: String,
}

async fn account_extend(r: Rest, Path(name): Path<String>, bytes: Bytes) -> Response {
    r.run(StatusCode::OK, move |s, a| {
        let b: End = body(&bytes)?;
        let end = parse_date(&b.end_date, s.today()).map_err(Failure::bad)?;
        Ok(account_view(&s.extend(a, &name, end)?, s.today()))
    })
    .await
}

async fn account_delete(r: Rest, Path(name): Path<String>) -> Response {
    r.run(StatusCode::OK, move |s, a| {
        Ok(account_view(&s.delete(a, &name)?, s.today()))
    })
    .await
}

async fn account_restore(r: Rest, Path(name): Path<String>) -> Response {
    r.run(StatusCode::OK, move |s, a| {
        Ok(account_view(&s.restore(a, &name)?, s.today()))
    })
    .await
}

// ----- keys

async fn keys_list(r: Rest, Path(name): Path<String>) -> Response {
    r.run(StatusCode::OK, move |s, a| {
        let keys = s.key_list(a, &name)?;
        Ok(Value::Array(
            keys.iter().map(crate::cli::key_view).collect(),
        ))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    public_key: String,
    #[serde(default)]
    expires_on: Option<String>,
}

async fn key_add(r: Rest, Path(name): Path<String>, bytes: Bytes) -> Response {
    r.run(StatusCode::CREATED, move |s, a| {
        let b: NewKey = body(&bytes)?;
        let expires = date(s, &b.expires_on)?;
        let key = s.key_add(a, &name, &b.public_key, expires)?;
        Ok(crate::cli::key_view(&key))
    })
    .await
}

async fn key_remove(r: Rest, Path((name, fingerprint)): Path<(String, String)>) -> Response {
    r.run(StatusCode::OK, move |s, a| {
        let key = s.key_remove(a, &name, &fingerprint)?;
        Ok(crate::cli::key_view(&key))
    })
    .await
}

// ----- groups

async fn groups_list(r: Rest) -> Response {
    r.run(StatusCode::OK, move |s, a| {
        serde_json::to_value(s.group_list(a)?)
            .map_err(|e| Failure::from(Error::Failed(e.to_string())))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGroup {
    name: String,
}

async fn group_create(r: Rest, bytes: Bytes) -> Response {
    r.run(StatusCode::CREATED, move |s, a| {
        let b: NewGroup = body(&bytes)?;
        s.group_create(a, &b.name)?;
        Ok(json!({"name": b.name}))
    })
    .await
}

async fn group_add(r: Rest, Path((group, name)): Path<(String, String)>) -> Response {
    r.run(StatusCode::OK, move |s, a| {
        s.group_add(a, &group, &name)?;
        Ok(json!({"group": group, "member": name}))
    })
    .await
}

async fn group_remove(r: Rest, Path((group, name)): Path<(String, String)>) -> Response {
    r.run(StatusCode::OK, move |s, a| {
        s.group_remove(a, &group, &name)?;
        Ok(json!({"group": group, "removed": name}))
    })
    .await
}

// ----- sessions

async fn sessions_list(r: Rest) -> Response {
    r.run(StatusCode::OK, move |s, a| {
        serde_json::to_value(s.session_list(a)?)
            .map_err(|e| Failure::from(Error::Failed(e.to_string())))
    })
    .await
}

async fn session_kill(r: Rest, Path(id): Path<String>) -> Response {
    r.run(StatusCode::OK, move |s, a| {
        let id: u64 = id
            .parse()
            .map_err(|_| Failure::bad(format!("session id '{id}' is not a number")))?;
        let info = s.session_kill(a, id)?;
        serde_json::to_value(info).map_err(|e| Failure::from(Error::Failed(e.to_string())))
    })
    .await
}

async fn sessions_kill_user(r: Rest, Path(name): Path<String>) -> Response {
    r.run(StatusCode::OK, move |s, a| {
        let n = s.session_kill_user(a, &name)?;
        Ok(json!({"account": name, "killed": n}))
    })
    .await
}

// ----- audit, lifecycle, reports, requests

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    n: Option<usize>,
    since: Option<u64>,
    actor: Option<String>,
    target: Option<String>,
    action: Option<String>,
}

async fn audit_tail(
    r: Rest,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return failure(Failure::bad(e.body_text())),
    };
    let filter = AuditFilter {
        limit: q.n.unwrap_or(20).clamp(1, 1_000_000),
        since: q.since,
        actor: q.actor,
        target: q.target,
        action: q.action,
    };
    r.stream(move |s, a, emit| {
        s.audit_tail_each(a, &filter, &mut |e| {
            emit(serde_json::to_value(e).map_err(|e| Error::Failed(e.to_string()))?)
        })
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Until {
    until: Option<String>,
}

async fn lifecycle_preview(
    r: Rest,
    q: Result<Query<Until>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return failure(Failure::bad(e.body_text())),
    };
    r.run(StatusCode::OK, move |s, a| {
        let until = date(s, &q.until)?.unwrap_or(s.today() + chrono::Duration::days(30));
        serde_json::to_value(s.lifecycle_preview(a, until)?)
            .map_err(|e| Failure::from(Error::Failed(e.to_string())))
    })
    .await
}

async fn orphans(r: Rest) -> Response {
    r.stream(move |s, a, emit| {
        s.report_orphans_each(a, &mut |o| {
            emit(serde_json::to_value(o).map_err(|e| Error::Failed(e.to_string()))?)
        })
    })
    .await
}

async fn requests_list(r: Rest) -> Response {
    r.run(StatusCode::OK, move |s, a| {
        serde_json::to_value(s.request_list(a)?)
            .map_err(|e| Failure::from(Error::Failed(e.to_string())))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRequest {
    account: String,
    end_date: String,
    reason: String,
}

async fn request_extend(r: Rest, bytes: Bytes) -> Response {
    r.run(StatusCode::CREATED, move |s, a| {
        let b: NewRequest = body(&bytes)?;
        let end = parse_date(&b.end_date, s.today()).map_err(Failure::bad)?;
        serde_json::to_value(s.request_extend(a, &b.account, end, &b.reason)?)
            .map_err(|e| Failure::from(Error::Failed(e.to_string())))
    })
    .await
}

fn request_id(id: &str) -> Result<u64, Failure> {
    id.parse()
        .map_err(|_| Failure::bad(format!("request id '{id}' is not a number")))
}

async fn request_approve(r: Rest, Path(id): Path<String>) -> Response {
    r.run(StatusCode::OK, move |s, a| {
        let decided = s.request_decide(a, request_id(&id)?, true, None)?;
        serde_json::to_value(decided).map_err(|e| Failure::from(Error::Failed(e.to_string())))
    })
    .await
}

async fn request_deny(r: Rest, Path(id): Path<String>, bytes: Bytes) -> Response {
    r.run(StatusCode::OK, move |s, a| {
        let b: Reason = body(&bytes)?;
        let decided = s.request_decide(a, request_id(&id)?, false, Some(b.reason))?;
        serde_json::to_value(decided).map_err(|e| Failure::from(Error::Failed(e.to_string())))
    })
    .await
}

async fn whoami(r: Rest) -> Response {
    r.run(StatusCode::OK, move |s, a| {
        let account = s.load(&a.name)?;
        Ok(json!({
            "username": account.username,
            "roles": account.roles,
            "source": a.source.to_string(),
        }))
    })
    .await
}

// ----- the route table and its OpenAPI description

/// Every route: method, path (axum syntax), summary, request body, success status.
pub const ROUTES: &[(&str, &str, &str, Option<&str>, u16)] = &[
    ("get", "/whoami", "The token's account and roles", None, 200),
    (
        "get",
        "/accounts",
        "List accounts (status, kind, sponsor, project, expiring_within, after, limit); streamed",
        None,
        200,
    ),
    (
        "post",
        "/accounts",
        "Create an account",
        Some("Account"),
        201,
    ),
    ("get", "/accounts/{name}", "Show an account", None, 200),
    (
        "patch",
        "/accounts/{name}",
        "Update an account",
        Some("Account"),
        200,
    ),
    (
        "delete",
        "/accounts/{name}",
        "Soft-delete an account (restorable)",
        None,
        200,
    ),
    (
        "post",
        "/accounts/{name}/clone",
        "Clone an account into a new one",
        Some("Account"),
        201,
    ),
    (
        "post",
        "/accounts/{name}/disable",
        "Disable an account",
        Some("Reason"),
        200,
    ),
    (
        "post",
        "/accounts/{name}/enable",
        "Enable an account",
        None,
        200,
    ),
    (
        "post",
        "/accounts/{name}/extend",
        "Move the end date",
        Some("EndDate"),
        200,
    ),
    (
        "post",
        "/accounts/{name}/restore",
        "Restore a deleted account",
        None,
        200,
    ),
    (
        "get",
        "/accounts/{name}/keys",
        "List an account's SSH keys",
        None,
        200,
    ),
    (
        "post",
        "/accounts/{name}/keys",
        "Add an SSH key",
        Some("NewKey"),
        201,
    ),
    (
        "delete",
        "/accounts/{name}/keys/{fingerprint}",
        "Remove an SSH key",
        None,
        200,
    ),
    (
        "delete",
        "/accounts/{name}/sessions",
        "Kill an account's live sessions",
        None,
        200,
    ),
    ("get", "/groups", "List groups and members", None, 200),
    ("post", "/groups", "Create a group", Some("NewGroup"), 201),
    (
        "put",
        "/groups/{group}/members/{name}",
        "Add an account to a group",
        None,
        200,
    ),
    (
        "delete",
        "/groups/{group}/members/{name}",
        "Remove an account from a group",
        None,
        200,
    ),
    ("get", "/sessions", "List live SSH sessions", None, 200),
    ("delete", "/sessions/{id}", "Kill a session", None, 200),
    (
        "get",
        "/audit",
        "Audit events (n, since, actor, target, action); streamed",
        None,
        200,
    ),
    (
        "get",
        "/lifecycle/preview",
        "What the lifecycle policies will do (until)",
        None,
        200,
    ),
    (
        "get",
        "/reports/orphans",
        "Accounts nobody is accountable for; streamed",
        None,
        200,
    ),
    ("get", "/requests", "Extension requests", None, 200),
    (
        "post",
        "/requests",
        "Ask for an extension",
        Some("NewRequest"),
        201,
    ),
    (
        "post",
        "/requests/{id}/approve",
        "Approve a request",
        None,
        200,
    ),
    (
        "post",
        "/requests/{id}/deny",
        "Deny a request",
        Some("Reason"),
        200,
    ),
    ("get", "/openapi.json", "This document", None, 200),
];

fn schemas() -> Value {
    let s = |t: &str| json!({"type": t});
    json!({
        "Account": {"type": "object", "additionalProperties": false, "properties": {
            "username": s("string"), "email": s("string"), "display_name": s("string"),
            "kind": {"type": "string", "enum": Kind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>()},
            "company": s("string"), "sponsor": s("string"), "project": s("string"),
            "start_date": {"type": "string", "description": "YYYY-MM-DD, today or +N(d|w|m|y)"},
            "end_date": {"type": "string", "description": "YYYY-MM-DD or +N(d|w|m|y)"},
            "groups": {"type": "array", "items": s("string")},
            "roles": {"type": "array", "items": {"type": "string", "enum": ["admin", "operator", "sponsor", "user"]}},
            "fields": {"type": "object", "additionalProperties": s("string")},
            "template": s("string"), "timezone": s("string"), "language": s("string"),
            "theme": s("string"), "notes": s("string"), "inactivity_exempt": s("boolean")}},
        "Reason": {"type": "object", "required": ["reason"], "properties": {"reason": s("string")}},
        "EndDate": {"type": "object", "required": ["end_date"], "properties": {"end_date": s("string")}},
        "NewKey": {"type": "object", "required": ["public_key"], "properties": {"public_key": s("string"), "expires_on": s("string")}},
        "NewGroup": {"type": "object", "required": ["name"], "properties": {"name": s("string")}},
        "NewRequest": {"type": "object", "required": ["account", "end_date", "reason"],
            "properties": {"account": s("string"), "end_date": s("string"), "reason": s("string")}},
        "Error": {"type": "object", "required": ["error", "code"], "properties": {
            "error": s("string"),
            "code": {"type": "integer", "description": "the exec exit code: 1 failure, 2 usage, 3 not found, 4 permission denied, 5 conflict"}}},
    })
}

pub fn openapi() -> Value {
    let mut paths = serde_json::Map::new();
    for (method, path, summary, request, status) in ROUTES {
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "summary": summary,
            "parameters": params,
            "responses": {
                status.to_string(): {"description": "OK", "content": {"application/json": {}}},
                "default": {"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        });
        if let Some(schema) = request {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "tenure REST API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Every operation of the exec grammar; Authorization: Bearer TOKEN (token create NAME --scope read|write)."},
        "servers": [{"url": "/api/v1"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
        },
        "security": [{"bearer": []}],
        "paths": paths,
    })
}

async fn openapi_json() -> Response {
    Json(openapi()).into_response()
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/openapi.json", get(openapi_json))
        .route("/accounts", get(accounts_list).post(account_create))
        .route(
            "/accounts/{name}",
            get(account_show)
                .patch(account_update)
                .delete(account_delete),
        )
        .route("/accounts/{name}/clone", post(account_clone))
        .route("/accounts/{name}/disable", post(account_disable))
        .route("/accounts/{name}/enable", post(account_enable))
        .route("/accounts/{name}/extend", post(account_extend))
        .route("/accounts/{name}/restore", post(account_restore))
        .route("/accounts/{name}/keys", get(keys_list).post(key_add))
        .route("/accounts/{name}/keys/{fingerprint}", delete(key_remove))
        .route("/accounts/{name}/sessions", delete(sessions_kill_user))
        .route("/groups", get(groups_list).post(group_create))
        .route(
            "/groups/{group}/members/{name}",
            put(group_add).delete(group_remove),
        )
        .route("/sessions", get(sessions_list))
        .route("/sessions/{id}", delete(session_kill))
        .route("/audit", get(audit_tail))
        .route("/lifecycle/preview", get(lifecycle_preview))
        .route("/reports/orphans", get(orphans))
        .route("/requests", get(requests_list).post(request_extend))
        .route("/requests/{id}/approve", post(request_approve))
        .route("/requests/{id}/deny", post(request_deny))
        .fallback(|| async { failure(Failure::new(StatusCode::NOT_FOUND, 3, "no such route")) })
}
