//! The SCIM 2.0 client connector (RFC 7643/7644): an account is a User
//! (`externalId` = tenure's username, `active` follows tenure), groups are
//! Groups whose `members` tenure adds and removes — by PATCH, falling back
//! to a PUT of the whole group for a target that refuses PATCH. Like the
//! LDAP connector, a job converges the target on what tenure says.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{json, Value};

use crate::config::{ConnectorConfig, ScimConfig, TargetAction};
use crate::service::connect::{disputed, Drift, TargetObject, Verdict};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const PAGE: usize = 100;

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// What tenure wants the target to hold for one account.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub username: String,
    /// `None`: no User at all.
    pub user: Option<Value>,
    /// Group displayNames.
    pub groups: BTreeSet<String>,
}

pub fn desired(cfg: &ScimConfig, document: &Value) -> Result<Desired, String> {
    let state = &document["account"];
    let username = text(state, "username")
        .or_else(|| text(&document["previous"], "username"))
        .ok_or("the job names no account")?
        .to_string();
    let status = text(state, "status").unwrap_or("active");
    let action = match status {
        "disabled" => Some(cfg.on_disable),
        "deleted" => Some(cfg.on_delete),
        _ => None,
    };
    if state.is_null() || action == Some(TargetAction::Delete) {
        return Ok(Desired {
            username,
            user: None,
            groups: BTreeSet::new(),
        });
    }
    let display = text(state, "display_name").unwrap_or(&username).to_string();
    let words: Vec<&str> = display.split_whitespace().collect();
    let (given, family) = match words.split_last() {
        Some((last, rest)) if !rest.is_empty() => (rest.join(" "), (*last).to_string()),
        _ => (String::new(), display.clone()),
    };
    let mut name = json!({ "familyName": family, "formatted": display });
    if !given.is_empty() {
        name["givenName"] = Value::String(given);
    }
    let mut user = json!({
        "schemas": [USER],
        "userName": username,
        "externalId": username,
        "displayName": display,
        "name": name,
        "active": status == "active",
    });
    if let Some(email) = text(state, "email") {
        user["emails"] = json!([{ "value": email, "type": "work", "primary": true }]);
    }
    if let Some(kind) = text(state, "kind") {
        user["userType"] = Value::String(kind.to_string());
    }
    let groups = if action == Some(TargetAction::RemoveGroups) {
        BTreeSet::new()
    } else {
        state
            .get("groups")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .filter_map(|g| {
                        if cfg.group_map.is_empty() {
                            Some(g.to_string())
                        } else {
                            cfg.group_map.get(g).cloned()
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(Desired {
        username,
        user: Some(user),
        groups,
    })
}

fn manages_group(cfg: &ScimConfig, name: &str) -> bool {
    cfg.group_map.is_empty() || cfg.group_map.values().any(|g| g == name)
}

/// The fields tenure compares, flattened: field → value.
fn fields_of(user: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        out.insert(k.to_string(), v.unwrap_or_default());
    };
    put("userName", text(user, "userName").map(str::to_string));
    put("externalId", text(user, "externalId").map(str::to_string));
    put("displayName", text(user, "displayName").map(str::to_string));
    put(
        "name.givenName",
        text(&user["name"], "givenName").map(str::to_string),
    );
    put(
        "name.familyName",
        text(&user["name"], "familyName").map(str::to_string),
    );
    put(
        "emails",
        user.get("emails").and_then(Value::as_array).and_then(|a| {
            a.iter()
                .find(|e| e["primary"] == true)
                .or_else(|| a.first())
                .and_then(|e| text(e, "value"))
                .map(str::to_string)
        }),
    );
    // A provider that leaves `active` out means active (RFC 7643 §4.1.1).
    put(
        "active",
        Some(
            user.get("active")
                .and_then(Value::as_bool)
                .unwrap_or(true)
                .to_string(),
        ),
    );
    out
}

fn object_of(user: &Value) -> TargetObject {
    let fields = fields_of(user);
    TargetObject {
        id: text(user, "id").unwrap_or_default().to_string(),
        username: text(user, "userName").map(str::to_string),
        enabled: fields.get("active").is_some_and(|a| a == "true"),
        attrs: fields
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_ascii_lowercase(),
                    if v.is_empty() { vec![] } else { vec![v] },
                )
            })
            .collect(),
        groups: BTreeSet::new(),
        unreadable: BTreeSet::new(),
    }
}

pub fn drift(want: &Value, groups: &BTreeSet<String>, have: &TargetObject) -> Vec<Drift> {
    let mut out = Vec::new();
    for (field, value) in fields_of(want) {
        let there = have.values(&field).join(", ");
        if value != there {
            out.push(Drift {
                field,
                tenure: if value.is_empty() {
                    "(none)".into()
                } else {
                    value
                },
                target: if there.is_empty() {
                    "(none)".into()
                } else {
                    there
                },
            });
        }
    }
    let want_groups: BTreeSet<String> = groups.iter().map(|g| g.to_ascii_lowercase()).collect();
    if want_groups != have.groups {
        out.push(Drift {
            field: "groups".into(),
            tenure: want_groups.into_iter().collect::<Vec<_>>().join(", "),
            target: have.groups.iter().cloned().collect::<Vec<_>>().join(", "),
        });
    }
    out
}

/// Why the User found under the account's userName is someone else's: it
/// carries another externalId (tenure writes its username there). None: it
/// is ours, it came through the link, or the admin said to adopt it.
fn dispute(username: &str, document: &Value, found: &Value) -> Option<String> {
    if document.get("adopt").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    let id = text(found, "id").unwrap_or_default();
    if text(document, "link_id") == Some(id) {
        return None;
    }
    let external = text(found, "externalId")?;
    (external != username).then(|| {
        format!(
            "User {id} has userName '{username}' but externalId '{external}': it looks like someone else's"
        )
    })
}

pub fn compare(
    cfg: &ScimConfig,
    document: &Value,
    found: Option<&TargetObject>,
) -> Result<Verdict, String> {
    let want = desired(cfg, document)?;
    if let Some(f) = found {
        let external = f.values("externalId");
        let linked = text(document, "link_id") == Some(f.id.as_str());
        let adopt = document.get("adopt").and_then(Value::as_bool) == Some(true);
        if let Some(e) = external
            .first()
            .filter(|e| **e != want.username && !linked && !adopt)
        {
            return Ok(Verdict::Disputed(format!(
                "User {} has userName '{}' but externalId '{e}': it looks like someone else's",
                f.id, want.username
            )));
        }
    }
    Ok(match (&want.user, found) {
        (None, None) => Verdict::InSync,
        (None, Some(_)) => Verdict::Unwanted,
        (Some(_), None) => Verdict::Missing,
        (Some(user), Some(have)) => {
            let d = drift(user, &want.groups, have);
            if d.is_empty() {
                Verdict::InSync
            } else {
                Verdict::Drifted(d)
            }
        }
    })
}

/// One HTTP exchange's outcome: status and parsed body (Null if none).
struct Reply {
    status: u16,
    body: Value,
}

/// A client for one connector's service provider.
pub struct Client<'a> {
    cfg: &'a ScimConfig,
    agent: ureq::Agent,
    token: String,
}

fn escape_filter(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

impl<'a> Client<'a> {
    pub fn new(connector: &ConnectorConfig, cfg: &'a ScimConfig) -> Result<Client<'a>, String> {
        let token = std::fs::read_to_string(&cfg.bearer_token_file).map_err(|e| {
            format!(
                "cannot read bearer_token_file {}: {e}",
                cfg.bearer_token_file.display()
            )
        })?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(connector.timeout_seconds)))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Client {
            cfg,
            agent,
            token: token.trim().to_string(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.cfg.url, path.trim_start_matches('/'))
    }

    fn finish(
        &self,
        what: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Reply, String> {
        let mut response = result.map_err(|e| format!("{what}: {e}"))?;
        let status = response.status().as_u16();
        let raw = response
            .body_mut()
            .with_config()
            .limit(16 * 1024 * 1024)
            .read_to_string()
            .unwrap_or_default();
        let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
        if status == 401 || status == 403 {
            return Err(format!(
                "{what}: refused with HTTP {status} (check the bearer token)"
            ));
        }
        Ok(Reply { status, body })
    }

    fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Reply, String> {
        let mut req = self
            .agent
            .get(self.url(path))
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Accept", "application/scim+json, application/json");
        for (k, v) in query {
            req = req.query(*k, v);
        }
        self.finish(&format!("GET {path}"), req.call())
    }

    fn send(&self, method: &str, path: &str, body: &Value) -> Result<Reply, String> {
        let url = self.url(path);
        let text = body.to_string();
        let auth = format!("Bearer {}", self.token);
        let with = |b: ureq::RequestBuilder<ureq::typestate::WithBody>| {
            b.header("Authorization", &auth)
                .header("Content-Type", "application/scim+json")
                .header("Accept", "application/scim+json, application/json")
                .send(&text)
        };
        let result = match method {
            "POST" => with(self.agent.post(&url)),
            "PUT" => with(self.agent.put(&url)),
            _ => with(self.agent.patch(&url)),
        };
        self.finish(&format!("{method} {path}"), result)
    }

    fn delete(&self, path: &str) -> Result<Reply, String> {
        let req = self
            .agent
            .delete(self.url(path))
            .header("Authorization", &format!("Bearer {}", self.token));
        self.finish(&format!("DELETE {path}"), req.call())
    }

    fn ok(what: &str, reply: &Reply) -> Result<(), String> {
        if (200..300).contains(&reply.status) {
            return Ok(());
        }
        let detail = text(&reply.body, "detail").unwrap_or("");
        let mut s = format!("{what}: HTTP {} {detail}", reply.status);
        s.truncate(400);
        Err(s.trim_end().to_string())
    }

    /// Every resource of an endpoint, page by page (startIndex/count).
    fn all(&self, endpoint: &str, filter: Option<String>) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        let mut start = 1usize;
        loop {
            let mut query = vec![
                ("startIndex", start.to_string()),
                ("count", PAGE.to_string()),
            ];
            if let Some(f) = &filter {
                query.push(("filter", f.clone()));
            }
            let reply = self.get(endpoint, &query)?;
            Self::ok(&format!("GET {endpoint}"), &reply)?;
            let page: Vec<Value> = reply.body["Resources"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total = reply.body["totalResults"].as_u64().unwrap_or(0) as usize;
            let n = page.len();
            out.extend(page);
            if n == 0 || out.len() >= total {
                return Ok(out);
            }
            start += n;
        }
    }

    fn user_by(&self, attr: &str, value: &str) -> Result<Option<Value>, String> {
        let filter = format!("{attr} eq \"{}\"", escape_filter(value));
        Ok(self.all("Users", Some(filter))?.into_iter().next())
    }

    /// The User by its link id, else by externalId, else by userName.
    fn locate(&self, link: Option<&str>, username: &str) -> Result<Option<Value>, String> {
        if let Some(id) = link {
            let reply = self.get(&format!("Users/{id}"), &[])?;
            if reply.status != 404 {
                Self::ok(&format!("GET Users/{id}"), &reply)?;
                return Ok(Some(reply.body));
            }
        }
        if let Some(u) = self.user_by("externalId", username)? {
            return Ok(Some(u));
        }
        self.user_by("userName", username)
    }

    /// Every group tenure manages: displayName → (id, member ids).
    fn groups(&self) -> Result<BTreeMap<String, (String, Vec<String>)>, String> {
        let mut out = BTreeMap::new();
        for g in self.all("Groups", None)? {
            let Some(name) = text(&g, "displayName") else {
                continue;
            };
            if !manages_group(self.cfg, name) {
                continue;
            }
            let members = g["members"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|m| text(m, "value").map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            out.insert(
                name.to_string(),
                (text(&g, "id").unwrap_or_default().to_string(), members),
            );
        }
        Ok(out)
    }

    /// Adds or removes one member: PATCH, or a PUT of the whole group when
    /// the target refuses PATCH (or the connector says `patch = false`).
    fn change_member(
        &self,
        group_id: &str,
        name: &str,
        user: &str,
        add: bool,
    ) -> Result<(), String> {
        let path = format!("Groups/{group_id}");
        if self.cfg.patch {
            let op = if add {
                json!({"op": "add", "path": "members", "value": [{"value": user}]})
            } else {
                json!({"op": "remove", "path": format!("members[value eq \"{}\"]", escape_filter(user))})
            };
            let reply = self.send(
                "PATCH",
                &path,
                &json!({"schemas": [PATCH_OP], "Operations": [op]}),
            )?;
            if !matches!(reply.status, 405 | 501) {
                return Self::ok(&format!("PATCH {path}"), &reply);
            }
        }
        let reply = self.get(&path, &[])?;
        Self::ok(&format!("GET {path}"), &reply)?;
        let mut members: Vec<Value> = reply.body["members"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| text(m, "value") != Some(user))
            .map(|m| json!({"value": m["value"]}))
            .collect();
        if add {
            members.push(json!({"value": user}));
        }
        let body =
            json!({"schemas": [GROUP], "id": group_id, "displayName": name, "members": members});
        let reply = self.send("PUT", &path, &body)?;
        Self::ok(&format!("PUT {path}"), &reply)
    }

    fn sync_groups(&self, user_id: &str, want: &BTreeSet<String>) -> Result<(), String> {
        let groups = self.groups()?;
        for (name, (id, members)) in &groups {
            let is_member = members.iter().any(|m| m == user_id);
            if is_member && !want.contains(name) {
                self.change_member(id, name, user_id, false)?;
            }
            if !is_member && want.contains(name) {
                self.change_member(id, name, user_id, true)?;
            }
        }
        for name in want.iter().filter(|n| !groups.contains_key(*n)) {
            let body =
                json!({"schemas": [GROUP], "displayName": name, "members": [{"value": user_id}]});
            let reply = self.send("POST", "Groups", &body)?;
            Self::ok(&format!("create group {name}"), &reply)?;
        }
        Ok(())
    }

    pub fn apply(&self, document: &Value) -> Result<Option<String>, String> {
        let want = desired(self.cfg, document)?;
        let link = text(document, "link_id");
        let found = self.locate(link, &want.username)?;
        if let Some(why) = found
            .as_ref()
            .and_then(|f| dispute(&want.username, document, f))
        {
            return Err(disputed(why));
        }
        // Handed over in memory for this one job when it was set; sent,
        // never stored or logged.
        let password = text(document, "password");
        let Some(user) = &want.user else {
            if let Some(f) = found {
                let id = text(&f, "id").unwrap_or_default();
                let reply = self.delete(&format!("Users/{id}"))?;
                if reply.status != 404 {
                    Self::ok(&format!("DELETE Users/{id}"), &reply)?;
                }
            }
            return Ok(None);
        };
        let id = match found {
            None => {
                let mut body = user.clone();
                if let Some(pw) = password {
                    body["password"] = Value::String(pw.to_string());
                }
                let reply = self.send("POST", "Users", &body)?;
                Self::ok(&format!("create user {}", want.username), &reply)?;
                text(&reply.body, "id")
                    .ok_or("the target answered the create without an id")?
                    .to_string()
            }
            Some(f) => {
                let id = text(&f, "id").unwrap_or_default().to_string();
                let changed = fields_of(user) != fields_of(&f);
                let mut patched = false;
                if let (false, Some(pw), true) = (changed, password, self.cfg.patch) {
                    let body = json!({"schemas": [PATCH_OP], "Operations": [
                        {"op": "replace", "path": "password", "value": pw}]});
                    let reply = self.send("PATCH", &format!("Users/{id}"), &body)?;
                    if !matches!(reply.status, 405 | 501) {
                        Self::ok(&format!("PATCH Users/{id}"), &reply)?;
                        patched = true;
                    }
                }
                if changed || (password.is_some() && !patched) {
                    let mut body = user.clone();
                    body["id"] = Value::String(id.clone());
                    if let Some(pw) = password {
                        body["password"] = Value::String(pw.to_string());
                    }
                    let reply = self.send("PUT", &format!("Users/{id}"), &body)?;
                    Self::ok(&format!("PUT Users/{id}"), &reply)?;
                }
                id
            }
        };
        self.sync_groups(&id, &want.groups)?;
        Ok(Some(id))
    }

    pub fn read_all(&self) -> Result<Vec<TargetObject>, String> {
        let groups = self.groups()?;
        let mut by_member: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for (name, (_, members)) in &groups {
            for m in members {
                by_member
                    .entry(m.as_str())
                    .or_default()
                    .insert(name.to_ascii_lowercase());
            }
        }
        Ok(self
            .all("Users", None)?
            .iter()
            .map(|u| {
                let mut o = object_of(u);
                o.groups = by_member.get(o.id.as_str()).cloned().unwrap_or_default();
                o
            })
            .collect())
    }

    pub fn disable(&self, id: &str) -> Result<(), String> {
        let path = format!("Users/{id}");
        if self.cfg.patch {
            let body = json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": false}]});
            let reply = self.send("PATCH", &path, &body)?;
            if !matches!(reply.status, 405 | 501) {
                return Self::ok(&format!("PATCH {path}"), &reply);
            }
        }
        let reply = self.get(&path, &[])?;
        Self::ok(&format!("GET {path}"), &reply)?;
        let mut body = reply.body;
        body["active"] = Value::Bool(false);
        if let Some(o) = body.as_object_mut() {
            o.remove("meta");
        }
        let reply = self.send("PUT", &path, &body)?;
        Self::ok(&format!("PUT {path}"), &reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ScimConfig {
        ScimConfig {
            url: "http://127.0.0.1:1/scim/v2".into(),
            bearer_token_file: "/nonexistent".into(),
            on_disable: TargetAction::Disable,
            on_delete: TargetAction::Delete,
            group_map: BTreeMap::new(),
            patch: true,
        }
    }

    fn doc(status: &str) -> Value {
        json!({"account": {"username": "bob", "display_name": "Bob van Dam", "email": "bob@x.io",
            "kind": "vendor", "status": status, "groups": ["dev"]}})
    }

    #[test]
    fn a_user_carries_tenure_fields_and_active_follows_the_status() {
        let d = desired(&cfg(), &doc("active")).unwrap();
        let u = d.user.unwrap();
        assert_eq!(u["externalId"], "bob");
        assert_eq!(u["name"]["givenName"], "Bob van");
        assert_eq!(u["name"]["familyName"], "Dam");
        assert_eq!(u["emails"][0]["value"], "bob@x.io");
        assert_eq!(u["active"], true);
        assert_eq!(d.groups, BTreeSet::from(["dev".to_string()]));
        let off = desired(&cfg(), &doc("disabled")).unwrap().user.unwrap();
        assert_eq!(off["active"], false);
        assert!(desired(&cfg(), &doc("deleted")).unwrap().user.is_none());
        let mut keep = cfg();
        keep.on_delete = TargetAction::RemoveGroups;
        let kept = desired(&keep, &doc("deleted")).unwrap();
        assert_eq!(kept.user.unwrap()["active"], false);
        assert!(kept.groups.is_empty());
    }

    #[test]
    fn drift_compares_the_fields_tenure_owns() {
        let d = desired(&cfg(), &doc("active")).unwrap();
        let user = d.user.unwrap();
        let mut there = user.clone();
        there["id"] = json!("u1");
        let mut have = object_of(&there);
        have.groups = BTreeSet::from(["dev".to_string()]);
        assert!(drift(&user, &d.groups, &have).is_empty());
        there["active"] = json!(false);
        there["displayName"] = json!("Robert");
        let have = object_of(&there);
        let fields: Vec<String> = drift(&user, &d.groups, &have)
            .into_iter()
            .map(|d| d.field)
            .collect();
        assert_eq!(fields, ["active", "displayName", "groups"]);
    }
}
