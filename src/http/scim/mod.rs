//! The SCIM 2.0 server (RFC 7643, RFC 7644) under `/scim/v2`: Users and
//! Groups with filters, sorting, paging, attribute selection, PATCH, PUT,
//! DELETE and ETags; ServiceProviderConfig, ResourceTypes and Schemas.
//! Authenticated with an API token; writes go through `service::scim`.

pub mod filter;
pub mod group;
pub mod patch;
pub mod schema;
pub mod user;

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{blocking, AppState, Failure};
use crate::service::{Actor, Services};
use filter::Filter;
use schema::{LIST, USER};

const CONTENT_TYPE: &str = "application/scim+json";

/// A weak ETag over the resource's representation (without `meta`).
pub fn etag(doc: &Value) -> String {
    let digest = Sha256::digest(doc.to_string().as_bytes());
    format!("W/\"{}\"", hex::encode(&digest[..8]))
}

fn scim_json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

/// An error in SCIM's format (RFC 7644 §3.12).
pub fn failure(f: Failure) -> Response {
    let mut body = json!({
        "schemas": [schema::ERROR],
        "status": f.status.as_u16().to_string(),
        "detail": f.message,
    });
    if let Some(t) = f.scim_type {
        body["scimType"] = json!(t);
    }
    let mut r = scim_json(f.status, &body);
    if f.status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"tenure\""),
        );
    }
    r
}

/// One resource with its ETag and Location headers.
fn resource(status: StatusCode, doc: Value) -> Response {
    let mut r = scim_json(status, &doc);
    let meta = &doc["meta"];
    if let Some(v) = meta["version"]
        .as_str()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        r.headers_mut().insert(header::ETAG, v);
    }
    if status == StatusCode::CREATED {
        if let Some(l) = meta["location"]
            .as_str()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            r.headers_mut().insert(header::LOCATION, l);
        }
    }
    r
}

/// What every SCIM handler needs: the caller and the server's base URL.
pub struct Ctx {
    pub actor: Actor,
    pub base: String,
    pub services: Services,
    pub headers: HeaderMap,
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Ctx, Response> {
        let actor = super::request_actor(parts, state).await.map_err(failure)?;
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".:-[]".contains(c))
            })
            .map(str::to_string)
            .unwrap_or_else(|| "localhost".into());
        let forwarded_https = parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|h| h.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"));
        let scheme = if state.tls || forwarded_https {
            "https"
        } else {
            "http"
        };
        Ok(Ctx {
            actor,
            base: format!("{scheme}://{host}/scim/v2"),
            services: state.services.clone(),
            headers: parts.headers.clone(),
        })
    }
}

impl Ctx {
    /// `If-Match` against the current version (412 when it differs).
    fn check_if_match(&self, current: &Value) -> Result<(), Failure> {
        let Some(wanted) = self
            .headers
            .get(header::IF_MATCH)
            .and_then(|h| h.to_str().ok())
        else {
            return Ok(());
        };
        let version = current["meta"]["version"].as_str().unwrap_or("");
        let strip = |t: &str| {
            t.trim()
                .trim_start_matches("W/")
                .trim_matches('"')
                .to_string()
        };
        let ok = wanted
            .split(',')
            .any(|t| t.trim() == "*" || strip(t) == strip(version));
        if ok {
            Ok(())
        } else {
            Err(Failure::new(
                StatusCode::PRECONDITION_FAILED,
                5,
                "the resource changed since that version (If-Match)",
            ))
        }
    }

    fn not_modified(&self, doc: &Value) -> bool {
        let version = doc["meta"]["version"].as_str().unwrap_or("");
        self.headers
            .get(header::IF_NONE_MATCH)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|t| t.split(',').any(|t| t.trim() == version || t.trim() == "*"))
    }
}

fn parse_body(body: &Bytes) -> Result<Value, Failure> {
    if body.is_empty() {
        return Err(Failure::bad("a JSON body is required").scim("invalidSyntax"));
    }
    serde_json::from_slice(body)
        .map_err(|e| Failure::bad(format!("malformed JSON: {e}")).scim("invalidSyntax"))
}

// ----- listing: paging, sorting, attribute selection

#[derive(Debug, Default, serde::Deserialize)]
pub struct ListParams {
    filter: Option<String>,
    #[serde(rename = "startIndex")]
    start_index: Option<String>,
    count: Option<String>,
    #[serde(rename = "sortBy")]
    sort_by: Option<String>,
    #[serde(rename = "sortOrder")]
    sort_order: Option<String>,
    attributes: Option<String>,
    #[serde(rename = "excludedAttributes")]
    excluded_attributes: Option<String>,
}

/// A list request, checked.
pub struct ListQuery {
    pub filter: Option<Filter>,
    /// 1-based.
    pub start: usize,
    pub count: usize,
    pub sort_by: Option<filter::AttrPath>,
    pub descending: bool,
    pub projection: Projection,
    /// The filter, sorting or selection name the tenure extension: render
    /// its `returned: request` attributes.
    pub lifecycle: bool,
}

fn number(v: &Option<String>, what: &str) -> Result<Option<i64>, Failure> {
    v.as_deref()
        .map(|s| {
            s.trim().parse::<i64>().map_err(|_| {
                Failure::bad(format!("{what} must be an integer")).scim("invalidValue")
            })
        })
        .transpose()
}

impl ListQuery {
    fn from(p: &ListParams) -> Result<ListQuery, Failure> {
        let filter = match p.filter.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
            Some(f) => Some(filter::parse(f).map_err(|e| Failure::bad(e).scim("invalidFilter"))?),
            None => None,
        };
        let start = number(&p.start_index, "startIndex")?.unwrap_or(1).max(1) as usize;
        let count = number(&p.count, "count")?
            .unwrap_or(100)
            .clamp(0, schema::MAX_RESULTS as i64) as usize;
        let sort_by = match p
            .sort_by
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(s) => {
                Some(filter::parse_attr_path(s).map_err(|e| Failure::bad(e).scim("invalidPath"))?)
            }
            None => None,
        };
        let descending = match p
            .sort_order
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("ascending") => false,
            Some("descending") => true,
            Some(other) => {
                return Err(
                    Failure::bad(format!("sortOrder '{other}' (ascending or descending)"))
                        .scim("invalidValue"),
                )
            }
        };
        let lifecycle = [&p.filter, &p.sort_by, &p.attributes].iter().any(|t| {
            t.as_deref()
                .is_some_and(|t| t.to_ascii_lowercase().contains(":tenure:"))
        });
        Ok(ListQuery {
            lifecycle,
            filter,
            start,
            count,
            sort_by,
            descending,
            projection: Projection::from(&p.attributes, &p.excluded_attributes)?,
        })
    }
}

/// `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5).
#[derive(Default, Clone)]
pub struct Projection {
    only: Vec<filter::AttrPath>,
    except: Vec<filter::AttrPath>,
}

fn paths(list: &Option<String>) -> Result<Vec<filter::AttrPath>, Failure> {
    list.as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| filter::parse_attr_path(s).map_err(|e| Failure::bad(e).scim("invalidPath")))
        .collect()
}

impl Projection {
    pub fn from(only: &Option<String>, except: &Option<String>) -> Result<Projection, Failure> {
        Ok(Projection {
            only: paths(only)?,
            except: paths(except)?,
        })
    }

    /// Applies to a rendered resource whose core schema is `core`.
    pub fn apply(&self, doc: Value, core: &str) -> Value {
        let Value::Object(mut obj) = doc else {
            return doc;
        };
        let always = ["id", "schemas"];
        if !self.only.is_empty() {
            let mut kept = Map::new();
            for (k, v) in &obj {
                if always.iter().any(|a| k.eq_ignore_ascii_case(a)) {
                    kept.insert(k.clone(), v.clone());
                }
            }
            for p in &self.only {
                select(&obj, &mut kept, p, core);
            }
            obj = kept;
        }
        for p in &self.except {
            if always.iter().any(|a| p.attr.eq_ignore_ascii_case(a)) && p.urn.is_none() {
                continue;
            }
            let whole = p.to_string();
            if let Some(k) = obj.keys().find(|k| k.eq_ignore_ascii_case(&whole)).cloned() {
                obj.remove(&k);
                continue;
            }
            let target = match &p.urn {
                Some(urn) if !urn.eq_ignore_ascii_case(core) => {
                    match obj.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(urn)) {
                        Some((_, Value::Object(o))) => o,
                        _ => continue,
                    }
                }
                _ => &mut obj,
            };
            let key = target
                .keys()
                .find(|k| k.eq_ignore_ascii_case(&p.attr))
                .cloned();
            if let Some(key) = key {
                match &p.sub {
                    None => {
                        target.remove(&key);
                    }
                    Some(sub) => match target.get_mut(&key) {
                        Some(Value::Object(o)) => {
                            o.retain(|k, _| !k.eq_ignore_ascii_case(sub));
                        }
                        Some(Value::Array(items)) => {
                            for item in items {
                                if let Some(o) = item.as_object_mut() {
                                    o.retain(|k, _| !k.eq_ignore_ascii_case(sub));
                                }
                            }
                        }
                        _ => {}
                    },
                }
            }
        }
        Value::Object(obj)
    }
}

fn select(
    from: &Map<String, Value>,
    into: &mut Map<String, Value>,
    p: &filter::AttrPath,
    core: &str,
) {
    // `attributes=urn:…:enterprise:2.0:User`: the whole extension.
    if p.sub.is_none() {
        let whole = p.to_string();
        if let Some((k, v)) = from.iter().find(|(k, _)| k.eq_ignore_ascii_case(&whole)) {
            into.insert(k.clone(), v.clone());
            return;
        }
    }
    let (src, dst): (&Map<String, Value>, &mut Map<String, Value>) = match &p.urn {
        Some(urn) if !urn.eq_ignore_ascii_case(core) => {
            let Some((k, Value::Object(ext))) =
                from.iter().find(|(k, _)| k.eq_ignore_ascii_case(urn))
            else {
                return;
            };
            if p.attr.is_empty() {
                return;
            }
            let entry = into
                .entry(k.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(dst) = entry else { return };
            (ext, dst)
        }
        _ => (from, into),
    };
    // A bare extension URN as attribute name selects the whole extension.
    if let Some((k, v)) = src.iter().find(|(k, _)| k.eq_ignore_ascii_case(&p.attr)) {
        match (&p.sub, v) {
            (None, v) => {
                dst.insert(k.clone(), v.clone());
            }
            (Some(sub), Value::Object(o)) => {
                let picked: Map<String, Value> = o
                    .iter()
                    .filter(|(sk, _)| sk.eq_ignore_ascii_case(sub))
                    .map(|(a, b)| (a.clone(), b.clone()))
                    .collect();
                if !picked.is_empty() {
                    let e = dst
                        .entry(k.clone())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(e) = e {
                        e.extend(picked);
                    }
                }
            }
            (Some(sub), Value::Array(items)) => {
                let picked: Vec<Value> = items
                    .iter()
                    .filter_map(|item| {
                        let o = item.as_object()?;
                        let m: Map<String, Value> = o
                            .iter()
                            .filter(|(sk, _)| sk.eq_ignore_ascii_case(sub))
                            .map(|(a, b)| (a.clone(), b.clone()))
                            .collect();
                        (!m.is_empty()).then_some(Value::Object(m))
                    })
                    .collect();
                if !picked.is_empty() {
                    dst.insert(k.clone(), Value::Array(picked));
                }
            }
            _ => {}
        }
    }
}

fn sort_key(doc: &Value, by: &filter::AttrPath, core: &str) -> String {
    let Some(base) = filter::scope(doc, by, core) else {
        return String::new();
    };
    let Some(v) = filter::get_ci(base, &by.attr) else {
        return String::new();
    };
    let v = match v {
        Value::Array(items) => items
            .iter()
            .find(|i| filter::get_ci(i, "primary").and_then(Value::as_bool) == Some(true))
            .or(items.first())
            .cloned()
            .unwrap_or(Value::Null),
        v => v.clone(),
    };
    let v = match (&by.sub, &v) {
        (Some(sub), _) => filter::get_ci(&v, sub).cloned().unwrap_or(Value::Null),
        (None, Value::Object(_)) => filter::get_ci(&v, "value").cloned().unwrap_or(Value::Null),
        _ => v,
    };
    match v {
        Value::String(s) => s.to_lowercase(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Collects a page from a stream of rendered resources: keeps only the
/// requested window (or, when sorting, the sort keys) — bounded memory.
pub struct Pager<'q> {
    query: &'q ListQuery,
    core: &'static str,
    pub total: usize,
    page: Vec<Value>,
    sorted: Vec<(String, Value)>,
}

impl<'q> Pager<'q> {
    pub fn new(query: &'q ListQuery, core: &'static str) -> Pager<'q> {
        Pager {
            query,
            core,
            total: 0,
            page: Vec::new(),
            sorted: Vec::new(),
        }
    }

    /// Offers one resource (already filtered by `wants`).
    pub fn offer(&mut self, doc: Value) {
        self.total += 1;
        if let Some(by) = &self.query.sort_by {
            let key = sort_key(&doc, by, self.core);
            self.sorted.push((key, doc));
            return;
        }
        let index = self.total; // 1-based
        if index >= self.query.start && self.page.len() < self.query.count {
            self.page.push(doc);
        }
    }

    /// Takes a page counted elsewhere: `total` matches, `page` the window.
    pub fn counted(&mut self, total: usize, page: Vec<Value>) {
        self.total += total;
        self.page.extend(page);
    }

    pub fn wants(&self, doc: &Value) -> bool {
        self.query
            .filter
            .as_ref()
            .is_none_or(|f| filter::matches(f, doc, self.core))
    }

    pub fn finish(mut self) -> Value {
        if self.query.sort_by.is_some() {
            let mut sorted = std::mem::take(&mut self.sorted);
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            if self.query.descending {
                sorted.reverse();
            }
            self.page = sorted
                .into_iter()
                .skip(self.query.start - 1)
                .take(self.query.count)
                .map(|(_, d)| d)
                .collect();
        }
        let resources: Vec<Value> = self
            .page
            .into_iter()
            .map(|d| self.query.projection.apply(d, self.core))
            .collect();
        json!({
            "schemas": [LIST],
            "totalResults": self.total,
            "startIndex": self.query.start,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        })
    }
}

// ----- discovery

async fn service_provider_config(ctx: Ctx, State(state): State<AppState>) -> Response {
    let max = state.max_body;
    scim_json(
        StatusCode::OK,
        &schema::service_provider_config(&ctx.base, max),
    )
}

fn list_of(items: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST],
        "totalResults": items.len(),
        "startIndex": 1,
        "itemsPerPage": items.len(),
        "Resources": items,
    })
}

async fn resource_types(ctx: Ctx) -> Response {
    scim_json(StatusCode::OK, &list_of(schema::resource_types(&ctx.base)))
}

async fn resource_type(ctx: Ctx, Path(id): Path<String>) -> Response {
    match schema::resource_types(&ctx.base)
        .into_iter()
        .find(|r| r["id"].as_str() == Some(id.as_str()))
    {
        Some(r) => scim_json(StatusCode::OK, &r),
        None => failure(Failure::new(
            StatusCode::NOT_FOUND,
            3,
            format!("no resource type '{id}'"),
        )),
    }
}

async fn schemas(ctx: Ctx) -> Response {
    let list = schema::schemas(ctx.services.config(), &ctx.base);
    scim_json(StatusCode::OK, &list_of(list))
}

async fn schema_one(ctx: Ctx, Path(id): Path<String>) -> Response {
    match schema::schemas(ctx.services.config(), &ctx.base)
        .into_iter()
        .find(|s| {
            s["id"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case(&id))
        }) {
        Some(s) => scim_json(StatusCode::OK, &s),
        None => failure(Failure::new(
            StatusCode::NOT_FOUND,
            3,
            format!("no schema '{id}'"),
        )),
    }
}

/// Reads a `.search` POST body into list parameters (RFC 7644 §3.4.3).
fn search_params(body: &Bytes) -> Result<ListParams, Failure> {
    let v = parse_body(body)?;
    let s = |k: &str| {
        filter::get_ci(&v, k).map(|x| match x {
            Value::String(s) => s.clone(),
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        })
    };
    Ok(ListParams {
        filter: s("filter"),
        start_index: s("startIndex"),
        count: s("count"),
        sort_by: s("sortBy"),
        sort_order: s("sortOrder"),
        attributes: s("attributes"),
        excluded_attributes: s("excludedAttributes"),
    })
}

/// POST /.search at the root: Users and Groups together.
async fn root_search(ctx: Ctx, body: Bytes) -> Response {
    let params = match search_params(&body) {
        Ok(p) => p,
        Err(f) => return failure(f),
    };
    let result = blocking(move || {
        let query = ListQuery::from(&params)?;
        let mut pager = Pager::new(&query, USER);
        users::fill(&ctx, &query, &mut pager)?;
        group::fill(&ctx, &mut pager)?;
        Ok(pager.finish())
    })
    .await;
    match result {
        Ok(v) => scim_json(StatusCode::OK, &v),
        Err(f) => failure(f),
    }
}

async fn not_supported() -> Response {
    failure(Failure::new(
        StatusCode::NOT_IMPLEMENTED,
        1,
        "bulk operations are not supported",
    ))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/ResourceTypes", get(resource_types))
        .route("/ResourceTypes/{id}", get(resource_type))
        .route("/Schemas", get(schemas))
        .route("/Schemas/{id}", get(schema_one))
        .route("/Bulk", axum::routing::post(not_supported))
        .route("/.search", axum::routing::post(root_search))
        .route("/Users", get(users::list).post(users::create))
        .route("/Users/.search", axum::routing::post(users::search))
        .route(
            "/Users/{id}",
            get(users::get_one)
                .put(users::replace)
                .patch(users::modify)
                .delete(users::delete),
        )
        .route("/Groups", get(group::list).post(group::create))
        .route("/Groups/.search", axum::routing::post(group::search))
        .route(
            "/Groups/{id}",
            get(group::get_one)
                .put(group::replace)
                .patch(group::modify)
                .delete(group::delete),
        )
        .fallback(|| async {
            failure(Failure::new(
                StatusCode::NOT_FOUND,
                3,
                "no such SCIM endpoint",
            ))
        })
}

/// The Operations of a PATCH body.
fn operations(body: &Value) -> Result<Vec<(String, Option<String>, Option<Value>)>, Failure> {
    let schemas_ok = filter::get_ci(body, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|x| x.as_str() == Some(schema::PATCH_OP)));
    if !schemas_ok {
        return Err(Failure::bad(format!(
            "a PATCH body lists the schema {}",
            schema::PATCH_OP
        ))
        .scim("invalidSyntax"));
    }
    let Some(Value::Array(ops)) = filter::get_ci(body, "Operations") else {
        return Err(Failure::bad("a PATCH body needs Operations").scim("invalidSyntax"));
    };
    if ops.is_empty() {
        return Err(Failure::bad("Operations is empty").scim("invalidSyntax"));
    }
    ops.iter()
        .map(|op| {
            let name = filter::get_ci(op, "op")
                .and_then(Value::as_str)
                .ok_or_else(|| Failure::bad("each operation needs an op").scim("invalidSyntax"))?;
            let path = filter::get_ci(op, "path")
                .and_then(Value::as_str)
                .map(str::to_string);
            let value = filter::get_ci(op, "value").cloned();
            Ok((name.to_string(), path, value))
        })
        .collect()
}

fn apply_patch(
    doc: &mut Value,
    body: &Value,
    core: &str,
    read_only: &[&str],
) -> Result<(), Failure> {
    for (op, path, value) in operations(body)? {
        if let Some(p) = &path {
            let attr = p.split(['[', '.']).next().unwrap_or("");
            let attr = attr.rsplit(':').next().unwrap_or(attr);
            if read_only.iter().any(|r| r.eq_ignore_ascii_case(attr)) {
                return Err(Failure::bad(format!("{attr} is read-only")).scim("mutability"));
            }
        }
        patch::apply(doc, &op, path.as_deref(), value, core)
            .map_err(|e| Failure::bad(e.detail).scim(e.scim_type))?;
    }
    Ok(())
}

mod users {
    use super::*;
    use crate::domain::Status;

    fn render(ctx: &Ctx, account: &crate::domain::Account) -> Result<Value, Failure> {
        render_with(ctx, account, false)
    }

    fn render_with(
        ctx: &Ctx,
        account: &crate::domain::Account,
        lifecycle: bool,
    ) -> Result<Value, Failure> {
        let meta = ctx.services.scim_user_meta(account)?;
        Ok(user::render(
            account,
            &meta,
            &ctx.base,
            ctx.services.config(),
            ctx.services.today(),
            lifecycle,
        ))
    }

    fn bad(b: user::Bad) -> Failure {
        Failure::bad(b.1).scim(b.0)
    }

    /// Filters answered from an index (the candidates; each is checked
    /// against the whole filter after): `userName eq`, `userName sw` (an
    /// ordered range), `externalId eq`, `id eq`, `emails.value eq` /
    /// `emails eq`, `active eq false`; `and` with one indexed side, `or`
    /// with both. Anything else scans every account, one at a time.
    fn indexed(ctx: &Ctx, f: &Filter) -> Result<Option<Vec<String>>, Failure> {
        let s = &ctx.services;
        let core = |p: &filter::AttrPath| {
            p.urn
                .as_deref()
                .is_none_or(|u| u.eq_ignore_ascii_case(USER))
        };
        let one = |name: Option<String>| Ok(Some(name.into_iter().collect()));
        match f {
            Filter::And(a, b) => {
                return match indexed(ctx, a)? {
                    Some(names) => Ok(Some(names)),
                    None => indexed(ctx, b),
                };
            }
            Filter::Or(a, b) => {
                let (Some(mut left), Some(right)) = (indexed(ctx, a)?, indexed(ctx, b)?) else {
                    return Ok(None);
                };
                left.extend(right);
                left.sort();
                left.dedup();
                return Ok(Some(left));
            }
            Filter::Compare(p, filter::Op::Sw, Value::String(v))
                if p.attr.eq_ignore_ascii_case("userName") && p.sub.is_none() && core(p) =>
            {
                return Ok(Some(s.scim_user_name_prefix(v)?));
            }
            Filter::Compare(p, filter::Op::Eq, Value::Bool(false))
                if p.attr.eq_ignore_ascii_case("active") && p.sub.is_none() && core(p) =>
            {
                return Ok(Some(s.scim_disabled_names()?));
            }
            _ => {}
        }
        if let Some(v) = filter::simple_eq(f, "userName") {
            return one(s.scim_find_user_name(v)?);
        }
        if let Some(v) = filter::simple_eq(f, "externalId") {
            return one(s.scim_find_external_id(v)?);
        }
        if let Some(v) = filter::simple_eq(f, "id") {
            return one(s
                .store()
                .account(v)
                .map_err(crate::service::Error::from)?
                .map(|a| a.username));
        }
        if let Filter::Compare(p, filter::Op::Eq, Value::String(v)) = f {
            if p.attr.eq_ignore_ascii_case("emails")
                && p.sub
                    .as_deref()
                    .is_none_or(|s| s.eq_ignore_ascii_case("value"))
                && p.urn.is_none()
            {
                return one(s.find_by_email(v)?.map(|a| a.username));
            }
        }
        Ok(None)
    }

    fn run_list(ctx: Ctx, params: ListParams) -> Result<Value, Failure> {
        let query = ListQuery::from(&params)?;
        let mut pager = Pager::new(&query, USER);
        fill(&ctx, &query, &mut pager)?;
        Ok(pager.finish())
    }

    /// Offers every user the caller may see that the query selects.
    pub(super) fn fill(ctx: &Ctx, query: &ListQuery, pager: &mut Pager<'_>) -> Result<(), Failure> {
        let ctx = ctx;
        // No filter, no sorting: count from the index, read only the page.
        if query.filter.is_none() && query.sort_by.is_none() {
            if let Some((total, accounts)) =
                ctx.services
                    .scim_user_page(&ctx.actor, query.start - 1, query.count)?
            {
                let page = accounts
                    .iter()
                    .map(|a| render_with(ctx, a, query.lifecycle))
                    .collect::<Result<Vec<_>, _>>()?;
                pager.counted(total, page);
                return Ok(());
            }
        }
        let candidates = match &query.filter {
            Some(f) => indexed(ctx, f)?,
            None => None,
        };
        match candidates {
            Some(names) => {
                for name in names {
                    // Each one through the service: it checks the caller may read it.
                    match ctx.services.scim_user(&ctx.actor, &name) {
                        Ok((account, _)) => {
                            let doc = render_with(ctx, &account, query.lifecycle)?;
                            if pager.wants(&doc) {
                                pager.offer(doc);
                            }
                        }
                        Err(crate::service::Error::NotFound(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            None => {
                let filter = crate::service::accounts::ListFilter::default();
                let mut failed = None;
                ctx.services
                    .list_each(&ctx.actor, &filter, &mut |account| {
                        if account.status == Status::Deleted {
                            return Ok(());
                        }
                        match render_with(ctx, &account, query.lifecycle) {
                            Ok(doc) => {
                                if pager.wants(&doc) {
                                    pager.offer(doc);
                                }
                            }
                            Err(e) => failed = Some(e),
                        }
                        Ok(())
                    })?;
                if let Some(e) = failed {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// One account by an indexed `eq` (`userName`, `externalId`, `id`), for
    /// a caller who may read any account (so nothing is refused, nothing
    /// written): a few reads — answered on the request's own task. This is
    /// what identity providers send before each change. Anything else runs
    /// on the blocking pool.
    fn single_lookup(ctx: &Ctx, params: &ListParams) -> bool {
        let Ok(query) = ListQuery::from(params) else {
            return false;
        };
        let Some(f) = &query.filter else {
            return false;
        };
        query.sort_by.is_none()
            && ["userName", "externalId", "id"]
                .iter()
                .any(|a| filter::simple_eq(f, a).is_some())
            && crate::service::authz::allowed(
                &ctx.actor,
                crate::service::authz::Permission::ReadAccount,
                None,
            )
    }

    pub async fn list(ctx: Ctx, Query(params): Query<ListParams>) -> Response {
        let answer = if single_lookup(&ctx, &params) {
            run_list(ctx, params)
        } else {
            blocking(move || run_list(ctx, params)).await
        };
        match answer {
            Ok(v) => scim_json(StatusCode::OK, &v),
            Err(f) => failure(f),
        }
    }

    pub async fn search(ctx: Ctx, body: Bytes) -> Response {
        let params = match search_params(&body) {
            Ok(p) => p,
            Err(f) => return failure(f),
        };
        match blocking(move || run_list(ctx, params)).await {
            Ok(v) => scim_json(StatusCode::OK, &v),
            Err(f) => failure(f),
        }
    }

    fn current(ctx: &Ctx, id: &str) -> Result<Value, Failure> {
        current_with(ctx, id, false)
    }

    fn current_with(ctx: &Ctx, id: &str, lifecycle: bool) -> Result<Value, Failure> {
        let (account, _) = ctx.services.scim_user(&ctx.actor, id)?;
        render_with(ctx, &account, lifecycle)
    }

    pub async fn get_one(
        ctx: Ctx,
        Path(id): Path<String>,
        Query(params): Query<ListParams>,
    ) -> Response {
        let projection = match Projection::from(&params.attributes, &params.excluded_attributes) {
            Ok(p) => p,
            Err(f) => return failure(f),
        };
        let lifecycle = params
            .attributes
            .as_deref()
            .is_some_and(|a| a.to_ascii_lowercase().contains(":tenure:"));
        match blocking(move || {
            let doc = current_with(&ctx, &id, lifecycle)?;
            Ok((ctx.not_modified(&doc), doc))
        })
        .await
        {
            Ok((true, _)) => StatusCode::NOT_MODIFIED.into_response(),
            Ok((false, doc)) => {
                let etag = doc["meta"]["version"].clone();
                let mut doc = projection.apply(doc, USER);
                if doc.get("meta").is_none() {
                    doc["meta"] = json!({"version": etag});
                    if let Some(o) = doc.as_object_mut() {
                        o.remove("meta");
                    }
                }
                let mut r = scim_json(StatusCode::OK, &doc);
                if let Some(v) = etag.as_str().and_then(|v| HeaderValue::from_str(v).ok()) {
                    r.headers_mut().insert(header::ETAG, v);
                }
                r
            }
            Err(f) => failure(f),
        }
    }

    pub async fn create(ctx: Ctx, body: Bytes) -> Response {
        let result = blocking(move || {
            let doc = parse_body(&body)?;
            let state = user::parse(&doc, ctx.services.config()).map_err(bad)?;
            let account = ctx
                .services
                .scim_create_user(&ctx.actor, &state)
                .map_err(scim_error)?;
            render(&ctx, &account)
        })
        .await;
        match result {
            Ok(doc) => resource(StatusCode::CREATED, doc),
            Err(f) => failure(f),
        }
    }

    fn write(ctx: &Ctx, id: &str, doc: &Value) -> Result<Value, Failure> {
        let state = user::parse(doc, ctx.services.config()).map_err(bad)?;
        let account = ctx
            .services
            .scim_replace_user(&ctx.actor, id, &state)
            .map_err(scim_error)?;
        render(ctx, &account)
    }

    pub async fn replace(ctx: Ctx, Path(id): Path<String>, body: Bytes) -> Response {
        let result = blocking(move || {
            let doc = parse_body(&body)?;
            let before = current(&ctx, &id)?;
            ctx.check_if_match(&before)?;
            if let Some(given) = doc.get("id").and_then(Value::as_str) {
                if given != id {
                    return Err(Failure::bad("id cannot change").scim("mutability"));
                }
            }
            write(&ctx, &id, &doc)
        })
        .await;
        match result {
            Ok(doc) => resource(StatusCode::OK, doc),
            Err(f) => failure(f),
        }
    }

    pub async fn modify(ctx: Ctx, Path(id): Path<String>, body: Bytes) -> Response {
        let result = blocking(move || {
            let body = parse_body(&body)?;
            let before = current(&ctx, &id)?;
            ctx.check_if_match(&before)?;
            let mut doc = before.clone();
            apply_patch(&mut doc, &body, USER, &["id", "meta", "groups"])?;
            if doc == before {
                return Ok(before);
            }
            write(&ctx, &id, &doc)
        })
        .await;
        match result {
            Ok(doc) => resource(StatusCode::OK, doc),
            Err(f) => failure(f),
        }
    }

    pub async fn delete(ctx: Ctx, Path(id): Path<String>) -> Response {
        let result = blocking(move || {
            let before = current(&ctx, &id)?;
            ctx.check_if_match(&before)?;
            ctx.services.scim_delete_user(&ctx.actor, &id)?;
            Ok(())
        })
        .await;
        match result {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(f) => failure(f),
        }
    }
}

/// A service error with the scimType that fits it.
pub(crate) fn scim_error(e: crate::service::Error) -> Failure {
    use crate::service::Error;
    let sponsor_missing = matches!(&e, Error::NotFound(m) if m.contains("sponsor"));
    let mut f = Failure::from(e);
    if sponsor_missing {
        // A manager that does not exist is a bad value, not a missing resource.
        f.status = StatusCode::BAD_REQUEST;
        f.scim_type = Some("invalidValue");
    }
    if f.status == StatusCode::CONFLICT && f.scim_type.is_none() {
        f.scim_type = Some("uniqueness");
    }
    f
}

pub(crate) fn member_ids(doc: &Value) -> Result<BTreeSet<String>, Failure> {
    let mut out = BTreeSet::new();
    match filter::get_ci(doc, "members") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for m in items {
                if let Some(t) = filter::get_ci(m, "type").and_then(Value::as_str) {
                    if !t.eq_ignore_ascii_case("User") {
                        return Err(Failure::bad("members must be users (no nested groups)")
                            .scim("invalidValue"));
                    }
                }
                let v = filter::get_ci(m, "value")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        Failure::bad("each member needs a value").scim("invalidValue")
                    })?;
                out.insert(v.to_string());
            }
        }
        Some(_) => return Err(Failure::bad("members must be a list").scim("invalidValue")),
    }
    Ok(out)
}
