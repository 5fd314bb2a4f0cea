//! PATCH (RFC 7644 §3.5.2) applied to a rendered resource. The result is
//! then read back like a PUT body, so a PATCH obeys every rule a PUT does
//! and commits in one transaction.
//!
//! Lenient where identity providers are known to deviate: operation names
//! in any case (Entra sends "Replace"), `add`/`replace` on a value-filtered
//! path with no match creates the value (Entra's `emails[type eq
//! "work"].value`), `remove` on `members` with a `value` list (Entra).

use serde_json::{Map, Value};

use super::filter::{self, get_ci, AttrPath, Filter, PatchPath};

#[derive(Debug)]
pub struct PatchError {
    pub scim_type: &'static str,
    pub detail: String,
}

fn err(scim_type: &'static str, detail: impl Into<String>) -> PatchError {
    PatchError {
        scim_type,
        detail: detail.into(),
    }
}

/// The key of `obj` matching `name` in any case, or `name` itself.
fn key_ci(obj: &Map<String, Value>, name: &str) -> String {
    obj.keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_string())
}

fn get_mut_ci<'a>(obj: &'a mut Map<String, Value>, name: &str) -> Option<&'a mut Value> {
    let key = key_ci(obj, name);
    obj.get_mut(&key)
}

fn set_ci(obj: &mut Map<String, Value>, name: &str, value: Value) {
    let key = key_ci(obj, name);
    obj.insert(key, value);
}

fn remove_ci(obj: &mut Map<String, Value>, name: &str) {
    let key = key_ci(obj, name);
    obj.remove(&key);
}

/// The object an attribute path lives in (the resource, or its extension object).
fn container<'a>(
    resource: &'a mut Map<String, Value>,
    path: &AttrPath,
    core: &str,
    create: bool,
) -> Result<Option<&'a mut Map<String, Value>>, PatchError> {
    match &path.urn {
        None => Ok(Some(resource)),
        Some(urn) if urn.eq_ignore_ascii_case(core) => Ok(Some(resource)),
        Some(urn) => {
            let key = key_ci(resource, urn);
            if !resource.contains_key(&key) {
                if !create {
                    return Ok(None);
                }
                resource.insert(key.clone(), Value::Object(Map::new()));
            }
            match resource.get_mut(&key) {
                Some(Value::Object(o)) => Ok(Some(o)),
                _ => Err(err(
                    "invalidPath",
                    format!("{urn} is not an extension object"),
                )),
            }
        }
    }
}

fn is_primary(v: &Value) -> bool {
    get_ci(v, "primary").and_then(Value::as_bool) == Some(true)
}

/// A new primary value makes the others non-primary (RFC 7643 §2.4).
fn one_primary(items: &mut [Value], keep: usize) {
    if items.get(keep).is_some_and(is_primary) {
        for (i, item) in items.iter_mut().enumerate() {
            if i != keep {
                if let Some(o) = item.as_object_mut() {
                    if o.keys().any(|k| k.eq_ignore_ascii_case("primary")) {
                        set_ci(o, "primary", Value::Bool(false));
                    }
                }
            }
        }
    }
}

/// Merges `value` into `target` the way `add` does: arrays gain the new
/// values, objects gain or replace sub-attributes, anything else is replaced.
fn add_into(target: &mut Map<String, Value>, name: &str, value: Value) {
    match (get_mut_ci(target, name), value) {
        (Some(Value::Array(items)), Value::Array(new)) => {
            for v in new {
                if !items.contains(&v) {
                    items.push(v);
                    let last = items.len() - 1;
                    one_primary(items, last);
                }
            }
        }
        (Some(Value::Array(items)), v) => {
            if !items.contains(&v) {
                items.push(v);
                let last = items.len() - 1;
                one_primary(items, last);
            }
        }
        (Some(Value::Object(existing)), Value::Object(new)) => {
            for (k, v) in new {
                set_ci(existing, &k, v);
            }
        }
        (_, v) => set_ci(target, name, v),
    }
}

/// A value built from a filter of `a eq "x" and b eq "y"` (what Entra means
/// by a path with no matching value yet).
fn seed_from_filter(f: &Filter, into: &mut Map<String, Value>) -> bool {
    match f {
        Filter::Compare(p, filter::Op::Eq, v) if p.urn.is_none() && p.sub.is_none() => {
            into.insert(p.attr.clone(), v.clone());
            true
        }
        Filter::And(a, b) => seed_from_filter(a, into) && seed_from_filter(b, into),
        _ => false,
    }
}

/// The extension schemas a path may name as a whole.
const EXTENSIONS: [&str; 2] = [super::schema::ENTERPRISE, super::schema::TENURE];

/// Applies one operation. `core` is the resource's core schema URN.
pub fn apply(
    resource: &mut Value,
    op: &str,
    path: Option<&str>,
    value: Option<Value>,
    core: &str,
) -> Result<(), PatchError> {
    let op = op.to_ascii_lowercase();
    let Some(obj) = resource.as_object_mut() else {
        return Err(err("invalidSyntax", "the resource is not an object"));
    };
    // A path naming a whole extension (`urn:…:enterprise:2.0:User`).
    if let Some(p) = path.map(str::trim) {
        let is_extension = p.to_ascii_lowercase().starts_with("urn:")
            && !p.eq_ignore_ascii_case(core)
            && (obj.keys().any(|k| k.eq_ignore_ascii_case(p))
                || EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(p)));
        if is_extension {
            return match (op.as_str(), value) {
                ("remove", _) => {
                    remove_ci(obj, p);
                    Ok(())
                }
                ("add" | "replace", Some(Value::Object(values))) => {
                    let mut wrapped = Map::new();
                    wrapped.insert(p.to_string(), Value::Object(values));
                    if op == "replace" {
                        remove_ci(obj, p);
                    }
                    apply(resource, "add", None, Some(Value::Object(wrapped)), core)
                }
                (other, _) => Err(err(
                    "invalidValue",
                    format!("{other} on the extension {p} needs an object value"),
                )),
            };
        }
    }
    let path = match path.map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => Some(filter::parse_path(p).map_err(|e| err("invalidPath", e))?),
        None => None,
    };
    match (op.as_str(), path) {
        ("add" | "replace", None) => {
            let Some(Value::Object(values)) = value else {
                return Err(err(
                    "invalidValue",
                    format!("{op} without a path needs an object value"),
                ));
            };
            for (k, v) in values {
                let is_extension = k.to_ascii_lowercase().starts_with("urn:");
                if is_extension && !k.eq_ignore_ascii_case(core) {
                    if let Value::Object(inner) = v {
                        let ext = match get_mut_ci(obj, &k) {
                            Some(Value::Object(o)) => o,
                            _ => {
                                set_ci(obj, &k, Value::Object(Map::new()));
                                match get_mut_ci(obj, &k) {
                                    Some(Value::Object(o)) => o,
                                    _ => continue,
                                }
                            }
                        };
                        for (ik, iv) in inner {
                            if op == "add" {
                                add_into(ext, &ik, iv);
                            } else {
                                set_ci(ext, &ik, iv);
                            }
                        }
                        continue;
                    }
                    // An attribute named by its full path (`urn:…:User:department`).
                    let p = filter::parse_attr_path(&k).map_err(|e| err("invalidPath", e))?;
                    let Some(target) = container(obj, &p, core, true)? else {
                        continue;
                    };
                    set_attr(target, &p, v, op == "add");
                    continue;
                }
                if op == "add" {
                    add_into(obj, &k, v);
                } else {
                    // A complex single value is merged sub-attribute by sub-attribute.
                    match (get_mut_ci(obj, &k), v) {
                        (Some(Value::Object(existing)), Value::Object(new)) => {
                            for (ik, iv) in new {
                                set_ci(existing, &ik, iv);
                            }
                        }
                        (_, v) => set_ci(obj, &k, v),
                    }
                }
            }
            Ok(())
        }
        ("add" | "replace", Some(path)) => {
            let value = value.ok_or_else(|| err("invalidValue", format!("{op} needs a value")))?;
            let Some(target) = container(obj, &path.attr, core, true)? else {
                return Ok(());
            };
            match &path.filter {
                None => {
                    set_attr(target, &path.attr, value, op == "add");
                    Ok(())
                }
                Some(f) => with_filter(target, &path, f, Some(value), core, &op),
            }
        }
        ("remove", None) => Err(err("noTarget", "remove needs a path")),
        ("remove", Some(path)) => {
            let Some(target) = container(obj, &path.attr, core, false)? else {
                return Ok(());
            };
            match (&path.filter, value) {
                (None, Some(Value::Array(values))) if path.attr.sub.is_none() => {
                    // Entra: remove these members by value.
                    if let Some(Value::Array(items)) = get_mut_ci(target, &path.attr.attr) {
                        items.retain(|item| {
                            !values.iter().any(|v| {
                                get_ci(v, "value").is_some_and(|x| Some(x) == get_ci(item, "value"))
                            })
                        });
                    }
                    Ok(())
                }
                (None, _) => {
                    match &path.attr.sub {
                        None => remove_ci(target, &path.attr.attr),
                        Some(sub) => match get_mut_ci(target, &path.attr.attr) {
                            Some(Value::Object(o)) => remove_ci(o, sub),
                            Some(Value::Array(items)) => {
                                for item in items.iter_mut() {
                                    if let Some(o) = item.as_object_mut() {
                                        remove_ci(o, sub);
                                    }
                                }
                            }
                            _ => {}
                        },
                    }
                    Ok(())
                }
                (Some(f), _) => with_filter(target, &path, f, None, core, "remove"),
            }
        }
        (other, _) => Err(err(
            "invalidSyntax",
            format!("unknown PATCH op '{other}' (add, replace or remove)"),
        )),
    }
}

/// Sets `path` (with its optional sub-attribute) in `target`.
fn set_attr(target: &mut Map<String, Value>, path: &AttrPath, value: Value, add: bool) {
    match &path.sub {
        None => {
            if add {
                add_into(target, &path.attr, value)
            } else {
                set_ci(target, &path.attr, value)
            }
        }
        Some(sub) => {
            match get_mut_ci(target, &path.attr) {
                Some(Value::Object(o)) => {
                    set_ci(o, sub, value);
                    return;
                }
                Some(Value::Array(items)) if !items.is_empty() => {
                    // `emails.value` on a multi-valued attribute: the primary one (or all).
                    let primary = items.iter().position(is_primary);
                    for (i, item) in items.iter_mut().enumerate() {
                        if primary.is_none_or(|p| p == i) {
                            if let Some(o) = item.as_object_mut() {
                                set_ci(o, sub, value.clone());
                            }
                        }
                    }
                    return;
                }
                _ => {}
            }
            let mut o = Map::new();
            o.insert(sub.clone(), value);
            set_ci(target, &path.attr, Value::Object(o));
        }
    }
}

fn with_filter(
    target: &mut Map<String, Value>,
    path: &PatchPath,
    f: &Filter,
    value: Option<Value>,
    core: &str,
    op: &str,
) -> Result<(), PatchError> {
    let name = &path.attr.attr;
    let items = match get_mut_ci(target, name) {
        Some(Value::Array(items)) => items,
        Some(_) => return Err(err("invalidFilter", format!("{name} is not multi-valued"))),
        None => {
            if op == "remove" {
                return Ok(());
            }
            set_ci(target, name, Value::Array(vec![]));
            match get_mut_ci(target, name) {
                Some(Value::Array(items)) => items,
                _ => return Err(err("invalidPath", name.clone())),
            }
        }
    };
    let hits: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, item)| filter::matches(f, item, core))
        .map(|(i, _)| i)
        .collect();
    if op == "remove" {
        match &path.sub_after_filter {
            None => {
                let mut i = 0;
                items.retain(|_| {
                    let keep = !hits.contains(&i);
                    i += 1;
                    keep
                });
            }
            Some(sub) => {
                for i in hits {
                    if let Some(o) = items.get_mut(i).and_then(Value::as_object_mut) {
                        remove_ci(o, sub);
                    }
                }
            }
        }
        return Ok(());
    }
    let value = value.ok_or_else(|| err("invalidValue", format!("{op} needs a value")))?;
    if hits.is_empty() {
        let mut seed = Map::new();
        if !seed_from_filter(f, &mut seed) {
            return Err(err(
                "noTarget",
                format!("no value of {name} matches the filter"),
            ));
        }
        match &path.sub_after_filter {
            Some(sub) => {
                seed.insert(sub.clone(), value);
            }
            None => {
                if let Value::Object(o) = value {
                    seed.extend(o);
                }
            }
        }
        items.push(Value::Object(seed));
        let last = items.len() - 1;
        one_primary(items, last);
        return Ok(());
    }
    for &i in &hits {
        let Some(item) = items.get_mut(i) else {
            continue;
        };
        match &path.sub_after_filter {
            Some(sub) => {
                if let Some(o) = item.as_object_mut() {
                    set_ci(o, sub, value.clone());
                }
            }
            None => match (item.as_object_mut(), &value) {
                (Some(o), Value::Object(new)) if op == "add" => {
                    for (k, v) in new {
                        set_ci(o, k, v.clone());
                    }
                }
                _ => *item = value.clone(),
            },
        }
    }
    if let Some(&i) = hits.last() {
        one_primary(items, i);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CORE: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

    fn doc() -> Value {
        json!({
            "userName": "bjensen",
            "name": {"givenName": "Barbara"},
            "emails": [{"value": "b@x.io", "type": "work", "primary": true}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "IT"}
        })
    }

    #[test]
    fn add_replace_remove_with_and_without_paths() {
        let mut d = doc();
        apply(
            &mut d,
            "add",
            None,
            Some(json!({"title": "Dr", "name": {"familyName": "Jensen"}})),
            CORE,
        )
        .unwrap();
        assert_eq!(d["title"], "Dr");
        assert_eq!(
            d["name"],
            json!({"givenName": "Barbara", "familyName": "Jensen"})
        );
        apply(
            &mut d,
            "Replace",
            Some("name.givenName"),
            Some(json!("Babs")),
            CORE,
        )
        .unwrap();
        assert_eq!(d["name"]["givenName"], "Babs");
        apply(
            &mut d,
            "add",
            Some("emails"),
            Some(json!([{"value": "h@x.io", "type": "home", "primary": true}])),
            CORE,
        )
        .unwrap();
        assert_eq!(d["emails"][0]["primary"], false, "one primary");
        apply(
            &mut d,
            "replace",
            Some("emails[type eq \"work\"].value"),
            Some(json!("w@x.io")),
            CORE,
        )
        .unwrap();
        assert_eq!(d["emails"][0]["value"], "w@x.io");
        apply(
            &mut d,
            "remove",
            Some("emails[type eq \"home\"]"),
            None,
            CORE,
        )
        .unwrap();
        assert_eq!(d["emails"].as_array().unwrap().len(), 1);
        apply(
            &mut d,
            "Add",
            Some("phoneNumbers[type eq \"work\"].value"),
            Some(json!("555")),
            CORE,
        )
        .unwrap();
        assert_eq!(d["phoneNumbers"], json!([{"type": "work", "value": "555"}]));
        apply(
            &mut d,
            "replace",
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"),
            Some(json!("Ops")),
            CORE,
        )
        .unwrap();
        assert_eq!(
            d["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
            "Ops"
        );
        apply(&mut d, "remove", Some("title"), None, CORE).unwrap();
        assert!(d.get("title").is_none());
        apply(&mut d, "replace", None, Some(json!({"active": false, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "7"}})), CORE).unwrap();
        assert_eq!(d["active"], false);
        assert_eq!(
            d["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            json!({"department": "Ops", "employeeNumber": "7"})
        );
        assert_eq!(
            apply(&mut d, "remove", None, None, CORE)
                .unwrap_err()
                .scim_type,
            "noTarget"
        );
        assert_eq!(
            apply(&mut d, "move", Some("title"), None, CORE)
                .unwrap_err()
                .scim_type,
            "invalidSyntax"
        );
        assert_eq!(
            apply(
                &mut d,
                "replace",
                Some("emails[type eq \"x\" or value pr]"),
                Some(json!("v")),
                CORE
            )
            .map(|_| ())
            .err()
            .map(|e| e.scim_type),
            None
        );
    }

    #[test]
    fn members_are_removed_by_filter_or_by_value_list() {
        let core = "urn:ietf:params:scim:schemas:core:2.0:Group";
        let mut g = json!({"displayName": "g", "members": [{"value": "a"}, {"value": "b"}, {"value": "c"}]});
        apply(
            &mut g,
            "remove",
            Some("members[value eq \"a\"]"),
            None,
            core,
        )
        .unwrap();
        apply(
            &mut g,
            "Remove",
            Some("members"),
            Some(json!([{"value": "b"}])),
            core,
        )
        .unwrap();
        assert_eq!(g["members"], json!([{"value": "c"}]));
        apply(
            &mut g,
            "add",
            Some("members"),
            Some(json!([{"value": "d"}])),
            core,
        )
        .unwrap();
        assert_eq!(g["members"].as_array().unwrap().len(), 2);
    }
}
