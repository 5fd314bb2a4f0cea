//! Groups: `id` = the tenure group name, `displayName` as the client set
//! it, `members` = the accounts in the group (users only).

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::schema::GROUP;
use super::{
    apply_patch, blocking, failure, member_ids, parse_body, resource, scim_error, scim_json,
    search_params, Ctx, ListParams, ListQuery, Pager, Projection,
};
use crate::http::Failure;
use crate::service::scim::{GroupMeta, ScimGroup};

pub fn render(g: &ScimGroup, base: &str) -> Value {
    let members: Vec<Value> = g
        .members
        .iter()
        .map(|m| json!({"value": m, "$ref": format!("{base}/Users/{m}"), "type": "User"}))
        .collect();
    let mut doc = json!({
        "schemas": [GROUP],
        "id": g.group.name,
        "displayName": g.meta.display_name,
    });
    if let Some(x) = &g.meta.external_id {
        doc["externalId"] = json!(x);
    }
    if !members.is_empty() {
        doc["members"] = Value::Array(members);
    }
    let version = super::etag(&doc);
    let at = g
        .group
        .created_at
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    doc["meta"] = json!({
        "resourceType": "Group",
        "created": at,
        "lastModified": at,
        "location": format!("{base}/Groups/{}", g.group.name),
        "version": version,
    });
    doc
}

fn parse(doc: &Value) -> Result<(GroupMeta, std::collections::BTreeSet<String>), Failure> {
    let Some(obj) = doc.as_object() else {
        return Err(Failure::bad("the body must be a JSON object").scim("invalidSyntax"));
    };
    let mut meta = GroupMeta::default();
    for (k, v) in obj {
        let is = |n: &str| k.eq_ignore_ascii_case(n);
        if is("schemas") || is("id") || is("meta") || is("members") {
            continue;
        }
        if is("displayName") {
            meta.display_name = v
                .as_str()
                .ok_or_else(|| Failure::bad("displayName must be a string").scim("invalidValue"))?
                .trim()
                .to_string();
        } else if is("externalId") {
            meta.external_id = match v {
                Value::Null => None,
                Value::String(s) if s.is_empty() => None,
                Value::String(s) => Some(s.clone()),
                _ => return Err(Failure::bad("externalId must be a string").scim("invalidValue")),
            };
        } else {
            return Err(Failure::bad(format!("unknown attribute '{k}'")).scim("invalidSyntax"));
        }
    }
    if meta.display_name.is_empty() {
        return Err(Failure::bad("displayName is required").scim("invalidValue"));
    }
    Ok((meta, member_ids(doc)?))
}

fn run_list(ctx: Ctx, params: ListParams) -> Result<Value, Failure> {
    let query = ListQuery::from(&params)?;
    let mut pager = Pager::new(&query, GROUP);
    fill(&ctx, &mut pager)?;
    Ok(pager.finish())
}

/// Offers every group the query selects.
pub(super) fn fill(ctx: &Ctx, pager: &mut Pager<'_>) -> Result<(), Failure> {
    for g in ctx.services.scim_groups(&ctx.actor)? {
        let doc = render(&g, &ctx.base);
        if pager.wants(&doc) {
            pager.offer(doc);
        }
    }
    Ok(())
}

pub async fn list(ctx: Ctx, Query(params): Query<ListParams>) -> Response {
    match blocking(move || run_list(ctx, params)).await {
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
    Ok(render(&ctx.services.scim_group(&ctx.actor, id)?, &ctx.base))
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
    match blocking(move || {
        let doc = current(&ctx, &id)?;
        Ok((ctx.not_modified(&doc), doc))
    })
    .await
    {
        Ok((true, _)) => StatusCode::NOT_MODIFIED.into_response(),
        Ok((false, doc)) => {
            let etag = doc["meta"]["version"].clone();
            let mut r = scim_json(StatusCode::OK, &projection.apply(doc, GROUP));
            if let Some(v) = etag.as_str().and_then(|v| HeaderValue::from_str(v).ok()) {
                r.headers_mut().insert(axum::http::header::ETAG, v);
            }
            r
        }
        Err(f) => failure(f),
    }
}

pub async fn create(ctx: Ctx, body: Bytes) -> Response {
    let result = blocking(move || {
        let doc = parse_body(&body)?;
        let (meta, members) = parse(&doc)?;
        let g = ctx
            .services
            .scim_create_group(&ctx.actor, &meta, &members)
            .map_err(scim_error)?;
        Ok(render(&g, &ctx.base))
    })
    .await;
    match result {
        Ok(doc) => resource(StatusCode::CREATED, doc),
        Err(f) => failure(f),
    }
}

fn write(ctx: &Ctx, id: &str, doc: &Value) -> Result<Value, Failure> {
    let (meta, members) = parse(doc)?;
    let g = ctx
        .services
        .scim_replace_group(&ctx.actor, id, &meta, &members)
        .map_err(scim_error)?;
    Ok(render(&g, &ctx.base))
}

pub async fn replace(ctx: Ctx, Path(id): Path<String>, body: Bytes) -> Response {
    let result = blocking(move || {
        let doc = parse_body(&body)?;
        let before = current(&ctx, &id)?;
        ctx.check_if_match(&before)?;
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
        apply_patch(&mut doc, &body, GROUP, &["id", "meta"])?;
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
        ctx.services.scim_delete_group(&ctx.actor, &id)?;
        Ok(())
    })
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(f) => failure(f),
    }
}
