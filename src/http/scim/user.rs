//! Users: an account (and its SCIM record) as a SCIM resource, and a SCIM
//! resource read back into the state the service applies.
//!
//! The mapping: `id` = username, `userName` and `externalId` as the client
//! set them, `displayName` = display name, the primary of `emails` = email,
//! `active` = not disabled, `preferredLanguage` = language, enterprise
//! `organization` = company, `manager` = sponsor, the tenure extension =
//! kind, project, start and end dates, status and the custom fields.
//! Other attributes (name, title, phoneNumbers…) are kept as sent.

use chrono::NaiveDate;
use serde_json::{json, Map, Value};

use super::filter::get_ci;
use super::schema::{ENTERPRISE, TENURE, USER};
use crate::config::Config;
use crate::domain::lifecycle::effective;
use crate::domain::{Account, Kind, Status};
use crate::service::scim::{UserMeta, UserState};

/// Top-level attributes kept as sent.
const KEPT: [&str; 11] = [
    "name",
    "nickName",
    "title",
    "userType",
    "locale",
    "timezone",
    "profileUrl",
    "phoneNumbers",
    "addresses",
    "emails",
    "displayName",
];
/// Attributes the server sets or ignores on input (readOnly, or Okta's
/// `password`, which tenure never takes from an identity provider).
const IGNORED: [&str; 5] = ["schemas", "id", "meta", "groups", "password"];
const ENTERPRISE_KEPT: [&str; 4] = ["employeeNumber", "costCenter", "division", "department"];

pub struct Bad(pub &'static str, pub String);

fn bad(scim_type: &'static str, m: impl Into<String>) -> Bad {
    Bad(scim_type, m.into())
}

fn text(v: &Value, what: &str) -> Result<Option<String>, Bad> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(bad("invalidValue", format!("{what} must be a string"))),
    }
}

fn date(v: &Value, what: &str) -> Result<Option<NaiveDate>, Bad> {
    let Some(s) = text(v, what)? else {
        return Ok(None);
    };
    if let Ok(d) = NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
        return Ok(Some(d));
    }
    chrono::DateTime::parse_from_rfc3339(&s)
        .map(|t| Some(t.date_naive()))
        .map_err(|_| {
            bad(
                "invalidValue",
                format!("{what}: '{s}' is not a date (YYYY-MM-DD or RFC 3339)"),
            )
        })
}

/// Entra sends booleans as strings ("False") in PATCH values.
fn boolean(v: &Value, what: &str) -> Result<Option<bool>, Bad> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        _ => Err(bad("invalidValue", format!("{what} must be true or false"))),
    }
}

fn display_fallback(doc: &Value, user_name: &str) -> String {
    let name = get_ci(doc, "name");
    if let Some(f) = name
        .and_then(|n| get_ci(n, "formatted"))
        .and_then(Value::as_str)
    {
        if !f.trim().is_empty() {
            return f.trim().to_string();
        }
    }
    let part = |k: &str| {
        name.and_then(|n| get_ci(n, k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let joined = format!("{} {}", part("givenName"), part("familyName"))
        .trim()
        .to_string();
    if joined.is_empty() {
        user_name.to_string()
    } else {
        joined
    }
}

/// The state a POST or PUT body (or a patched resource) asks for. Unknown
/// attributes are refused (`invalidSyntax`), as are values of the wrong type.
pub fn parse(doc: &Value, config: &Config) -> Result<UserState, Bad> {
    let Some(obj) = doc.as_object() else {
        return Err(bad("invalidSyntax", "the body must be a JSON object"));
    };
    let mut state = UserState::default();
    let mut extra = Map::new();
    let mut enterprise = Map::new();
    for (key, value) in obj {
        let k = key.as_str();
        let is = |name: &str| k.eq_ignore_ascii_case(name);
        if IGNORED.iter().any(|n| is(n)) {
            continue;
        }
        if is("userName") {
            state.meta.user_name = text(value, "userName")?.unwrap_or_default();
        } else if is("externalId") {
            state.meta.external_id = text(value, "externalId")?;
        } else if is("active") {
            state.active = boolean(value, "active")?;
            if state.active.is_some() {
                // The client states `active`: it is shown from then on.
                extra.insert("active".into(), Value::Bool(true));
            }
        } else if is("roles") {
            // Entra sends an empty roles list with every user.
            let empty = value.is_null() || value.as_array().is_some_and(Vec::is_empty);
            if !empty {
                return Err(bad(
                    "invalidValue",
                    "roles are not taken from SCIM (tenure's roles are set by an admin)",
                ));
            }
        } else if is("preferredLanguage") {
            state.language = text(value, "preferredLanguage")?;
        } else if let Some(canonical) = KEPT.iter().find(|n| is(n)) {
            if !value.is_null() {
                extra.insert((*canonical).to_string(), value.clone());
            }
        } else if is(ENTERPRISE) {
            let Some(ext) = value.as_object() else {
                return Err(bad(
                    "invalidSyntax",
                    format!("{ENTERPRISE} must be an object"),
                ));
            };
            for (ek, ev) in ext {
                let eis = |n: &str| ek.eq_ignore_ascii_case(n);
                if eis("schemas") {
                    continue;
                }
                if eis("organization") {
                    state.company = text(ev, "organization")?;
                } else if eis("manager") {
                    state.sponsor = match ev {
                        // Entra sends the manager's id as a bare string.
                        Value::String(_) | Value::Null => text(ev, "manager")?,
                        Value::Object(_) => match get_ci(ev, "value") {
                            Some(v) => text(v, "manager.value")?,
                            None => None,
                        },
                        _ => return Err(bad("invalidValue", "manager must be an object")),
                    };
                } else if let Some(c) = ENTERPRISE_KEPT.iter().find(|n| eis(n)) {
                    if let Some(t) = text(ev, c)? {
                        enterprise.insert((*c).to_string(), Value::String(t));
                    }
                } else {
                    return Err(bad(
                        "invalidSyntax",
                        format!("unknown attribute '{ek}' in the enterprise extension"),
                    ));
                }
            }
        } else if is(TENURE) {
            let Some(ext) = value.as_object() else {
                return Err(bad("invalidSyntax", format!("{TENURE} must be an object")));
            };
            let mut set = Map::new();
            for (tk, tv) in ext {
                let tis = |n: &str| tk.eq_ignore_ascii_case(n);
                if tis("schemas") {
                    continue;
                }
                // Which of kind, project and the fields the client manages.
                if !tv.is_null() {
                    set.insert(tk.to_ascii_lowercase(), Value::Bool(true));
                }
                if tis("kind") {
                    state.kind = match text(tv, "kind")? {
                        Some(k) => Some(k.parse::<Kind>().map_err(|e| bad("invalidValue", e))?),
                        None => None,
                    };
                } else if tis("project") {
                    state.project = text(tv, "project")?;
                } else if tis("startDate") {
                    state.start_date = date(tv, "startDate")?;
                } else if tis("endDate") {
                    state.end_date = date(tv, "endDate")?;
                } else if tis("status") {
                    // readOnly
                } else if let Some(field) = config
                    .custom_fields
                    .iter()
                    .find(|f| f.name.eq_ignore_ascii_case(tk))
                {
                    if let Some(t) = text(tv, &field.name)? {
                        state.fields.insert(field.name.clone(), t);
                    }
                } else {
                    return Err(bad(
                        "invalidSyntax",
                        format!("unknown attribute '{tk}' in the tenure extension"),
                    ));
                }
            }
            if !set.is_empty() {
                extra.insert(TENURE.to_string(), Value::Object(set));
            }
        } else {
            return Err(bad("invalidSyntax", format!("unknown attribute '{key}'")));
        }
    }
    if state.meta.user_name.trim().is_empty() {
        return Err(bad("invalidValue", "userName is required"));
    }
    // The primary email (or the first) is the account's email.
    let emails = match extra.get("emails") {
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err(bad("invalidValue", "emails must be a list")),
        None => vec![],
    };
    let mut primary = None;
    for item in &emails {
        let value = get_ci(item, "value")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("invalidValue", "each of emails needs a value"))?;
        if get_ci(item, "primary").and_then(Value::as_bool) == Some(true) {
            if primary.is_some() {
                return Err(bad("invalidValue", "at most one of emails may be primary"));
            }
            primary = Some(value.to_string());
        }
    }
    state.email = primary
        .or_else(|| {
            emails
                .first()
                .and_then(|e| get_ci(e, "value"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .ok_or_else(|| bad("invalidValue", "emails: tenure needs an email address"))?;
    state.display_name = match extra.get("displayName").and_then(Value::as_str) {
        Some(d) if !d.trim().is_empty() => d.trim().to_string(),
        _ => {
            extra.remove("displayName");
            display_fallback(doc, &state.meta.user_name)
        }
    };
    if !enterprise.is_empty() {
        extra.insert(ENTERPRISE.to_string(), Value::Object(enterprise));
    }
    state.meta.extra = extra;
    Ok(state)
}

/// The resource as the client sees it, `base` the `/scim/v2` URL.
/// `lifecycle`: include the tenure extension's `returned: request`
/// attributes (startDate, endDate, status).
pub fn render(
    account: &Account,
    meta: &UserMeta,
    base: &str,
    config: &Config,
    today: NaiveDate,
    lifecycle: bool,
) -> Value {
    let mut doc = meta.extra.clone();
    let fallback = display_fallback(&Value::Object(doc.clone()), &meta.user_name);
    let mut out = Map::new();
    out.insert("id".into(), json!(account.username));
    if let Some(x) = &meta.external_id {
        out.insert("externalId".into(), json!(x));
    }
    out.insert("userName".into(), json!(meta.user_name));
    for key in [
        "name",
        "nickName",
        "title",
        "userType",
        "locale",
        "timezone",
        "profileUrl",
    ] {
        if let Some(v) = doc.remove(key) {
            out.insert(key.into(), v);
        }
    }
    if doc.contains_key("displayName") || account.display_name != fallback {
        out.insert("displayName".into(), json!(account.display_name));
    }
    let emails = match doc.remove("emails") {
        Some(Value::Array(mut items)) => {
            let has = items.iter().any(|e| {
                get_ci(e, "value")
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.eq_ignore_ascii_case(&account.email))
            });
            if !has {
                // Changed outside SCIM: the account's email replaces the primary.
                let at = items
                    .iter()
                    .position(|e| get_ci(e, "primary").and_then(Value::as_bool) == Some(true))
                    .unwrap_or(0);
                match items.get_mut(at).and_then(Value::as_object_mut) {
                    Some(o) => {
                        o.insert("value".into(), json!(account.email));
                    }
                    None => items = vec![json!({"value": account.email, "primary": true})],
                }
            }
            items
        }
        _ => vec![json!({"value": account.email, "type": "work", "primary": true})],
    };
    out.insert("emails".into(), Value::Array(emails));
    for key in ["phoneNumbers", "addresses"] {
        if let Some(v) = doc.remove(key) {
            out.insert(key.into(), v);
        }
    }
    // `active` once the client states it; otherwise only when tenure itself
    // disabled the account (expired, inactive…), so a client that removed
    // its statement is not contradicted by its own earlier one.
    let disabled_here = account.status == Status::Disabled
        && account.disable_reason != Some(crate::domain::DisableReason::SourceRemoved);
    if doc.remove("active").is_some() || disabled_here {
        out.insert("active".into(), json!(account.status != Status::Disabled));
    }
    if let Some(lang) = &account.language {
        out.insert("preferredLanguage".into(), json!(lang));
    }
    if !account.groups.is_empty() {
        let groups: Vec<Value> = account
            .groups
            .iter()
            .map(|g| json!({"value": g, "$ref": format!("{base}/Groups/{g}"), "display": g}))
            .collect();
        out.insert("groups".into(), Value::Array(groups));
    }
    let mut schemas = vec![json!(USER)];
    let mut enterprise = match doc.remove(ENTERPRISE) {
        Some(Value::Object(o)) => o,
        _ => Map::new(),
    };
    if let Some(c) = &account.company {
        enterprise.insert("organization".into(), json!(c));
    }
    if let Some(s) = &account.sponsor {
        enterprise.insert(
            "manager".into(),
            json!({"value": s, "$ref": format!("{base}/Users/{s}")}),
        );
    }
    if !enterprise.is_empty() {
        schemas.push(json!(ENTERPRISE));
        out.insert(ENTERPRISE.into(), Value::Object(enterprise));
    }
    // kind, project and fields as far as the client manages them; the
    // lifecycle dates and status when asked for.
    let managed = match doc.remove(TENURE) {
        Some(Value::Object(o)) => o,
        _ => Map::new(),
    };
    let wants = |k: &str| managed.contains_key(&k.to_ascii_lowercase());
    let mut tenure = Map::new();
    if wants("kind") {
        tenure.insert("kind".into(), json!(account.kind.as_str()));
    }
    if let Some(p) = account.project.as_ref().filter(|_| wants("project")) {
        tenure.insert("project".into(), json!(p));
    }
    for field in &config.custom_fields {
        if let Some(v) = account
            .fields
            .get(&field.name)
            .filter(|_| wants(&field.name))
        {
            tenure.insert(field.name.clone(), json!(v));
        }
    }
    if lifecycle {
        tenure.insert(
            "startDate".into(),
            json!(format!("{}T00:00:00Z", account.start_date)),
        );
        if let Some(end) = account.end_date {
            tenure.insert("endDate".into(), json!(format!("{end}T00:00:00Z")));
        }
        tenure.insert("status".into(), json!(effective(account, today).as_str()));
    }
    if !tenure.is_empty() {
        schemas.push(json!(TENURE));
        out.insert(TENURE.into(), Value::Object(tenure));
    }
    out.insert("schemas".into(), Value::Array(schemas));
    let version = super::etag(&Value::Object(out.clone()));
    out.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": account.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "lastModified": account.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "location": format!("{base}/Users/{}", account.username),
            "version": version,
        }),
    );
    Value::Object(out)
}
