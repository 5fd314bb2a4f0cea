//! Notifications as data: which events exist, who hears of them, and the
//! text, rendered from templates with {placeholders}. Pure.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::account::Account;

pub const EVENTS: [&str; 9] = [
    "created",
    "expiry_warning",
    "disabled",
    "deleted",
    "password_expiry",
    "password_reset",
    "request_approved",
    "request_denied",
    "request_expired",
];

/// The values a template may use.
pub fn variables(
    account: &Account,
    today: NaiveDate,
    extra: &[(&str, String)],
) -> BTreeMap<String, String> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut vars = BTreeMap::from([
        ("username".to_string(), account.username.clone()),
        ("display_name".to_string(), account.display_name.clone()),
        ("email".to_string(), account.email.clone()),
        ("kind".to_string(), account.kind.to_string()),
        ("company".to_string(), opt(&account.company)),
        ("sponsor".to_string(), opt(&account.sponsor)),
        ("project".to_string(), opt(&account.project)),
        ("start_date".to_string(), account.start_date.to_string()),
        (
            "end_date".to_string(),
            account
                .end_date
                .map_or_else(|| "none".into(), |d| d.to_string()),
        ),
        (
            "days_left".to_string(),
            account
                .end_date
                .map_or_else(|| "-".into(), |d| (d - today).num_days().to_string()),
        ),
        (
            "groups".to_string(),
            account
                .groups
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("status".to_string(), account.status.to_string()),
        (
            "reason".to_string(),
            account
                .disable_note
                .clone()
                .or(account.disable_reason.map(|r| r.to_string()))
                .unwrap_or_default(),
        ),
    ]);
    for (k, v) in extra {
        vars.insert((*k).to_string(), v.clone());
    }
    vars
}

/// Replaces `{name}` with its value; unknown names stay as they are.
/// Values are not rendered again. Linear in the template: a name never holds
/// a brace, so the search for its end stops at the next `{` or `}`.
pub fn render(template: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after
            .find(['{', '}'])
            .filter(|&end| after[end..].starts_with('}'))
            .and_then(|close| Some((close, vars.get(&after[..close])?)));
        match value {
            Some((close, value)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The built-in subject and body of each event in `lang`, from the
/// catalogue (`assets/i18n/*.toml`, section `notice.EVENT`).
pub fn default_template(event: &str, lang: crate::locale::Lang) -> (&'static str, &'static str) {
    let event = if EVENTS.contains(&event) {
        event
    } else {
        "other"
    };
    (
        lang.tr(&format!("notice.{event}.subject")),
        lang.tr(&format!("notice.{event}.body")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_replaced_and_unknown_braces_kept() {
        let vars = BTreeMap::from([("username".to_string(), "bob".to_string())]);
        assert_eq!(render("hi {username}, {nope} {", &vars), "hi bob, {nope} {");
        assert_eq!(render("{{username}}", &vars), "{bob}");
        assert_eq!(render("{ {username}", &vars), "{ bob");
    }

    #[test]
    fn many_open_braces_render_in_linear_time() {
        // Found writing the notice_render fuzz target: each `{` searched the rest of
        // the template for a `}`, so a template of braces took quadratic time.
        let vars = BTreeMap::from([("username".to_string(), "bob".to_string())]);
        let template = format!("{}{{username}}", "{x".repeat(200_000));
        let started = std::time::Instant::now();
        let out = render(&template, &vars);
        assert!(out.ends_with("{xbob"), "{}", &out[out.len() - 10..]);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
