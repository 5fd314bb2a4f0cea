//! Rules an account must satisfy on its own (no other records needed).
//! Uniqueness and references to other accounts are checked by the service,
//! which has the indexes.

use chrono::{Duration, NaiveDate};

use super::account::Account;
use super::dates::parse_date;
use super::policy::{CustomField, FieldType, Policy};

pub const USERNAME_RULE: &str =
    "1-32 characters: a lowercase letter, then lowercase letters, digits, '.', '_' or '-'";

/// The console themes shipped in `themes/` (the console checks it embeds each).
pub const THEMES: [&str; 3] = ["default", "light", "high-contrast"];

pub fn validate_username(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_' || c == '-');
    if first_ok && rest_ok && name.len() <= 32 {
        Ok(())
    } else {
        Err(format!("invalid username '{name}': {USERNAME_RULE}"))
    }
}

/// A practical email check: one '@', a non-empty local part, a dotted domain,
/// no spaces or control characters. Deliverability is not our business.
pub fn validate_email(email: &str) -> Result<(), String> {
    let bad = || Err(format!("invalid email '{email}': expected name@domain.tld"));
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad();
    }
    let Some((local, domain)) = email.split_once('@') else {
        return bad();
    };
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return bad();
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let labels_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if labels_ok {
        Ok(())
    } else {
        bad()
    }
}

/// Free text a person typed (names, notes, key comments): no control
/// characters, no bidirectional controls that make it display as something
/// it is not, at most `max` characters.
pub fn validate_text(label: &str, value: &str, max: usize) -> Result<(), String> {
    if value.chars().any(char::is_control) {
        return Err(format!("{label} must not contain control characters"));
    }
    if value.chars().any(crate::text::is_bidi_control) {
        return Err(format!(
            "{label} must not contain bidirectional control characters"
        ));
    }
    if value.chars().count() > max {
        return Err(format!("{label} is longer than {max} characters"));
    }
    Ok(())
}

/// The latest end date policy allows for an account starting on `start`:
/// `max_days` from the later of its start and today ("at most N days at a time").
pub fn latest_end(policy: &Policy, account: &Account, today: NaiveDate) -> Option<NaiveDate> {
    let days = policy.max_duration(account.kind)?;
    let from = account.start_date.max(today);
    from.checked_add_signed(Duration::days(i64::from(days)))
}

/// Checks the end date against the kind's policy.
pub fn validate_dates(policy: &Policy, account: &Account, today: NaiveDate) -> Result<(), String> {
    if let Some(end) = account.end_date {
        if end < account.start_date {
            return Err(format!(
                "end date {end} is before start date {}",
                account.start_date
            ));
        }
    }
    if let Some(days) = policy.max_duration(account.kind) {
        let Some(end) = account.end_date else {
            return Err(format!(
                "a {} account needs an end date (--end, at most {days} days ahead)",
                account.kind
            ));
        };
        if let Some(latest) = latest_end(policy, account, today) {
            if end > latest {
                return Err(format!(
                    "end date {end} is beyond the {days}-day maximum for a {} (latest {latest})",
                    account.kind
                ));
            }
        }
    }
    Ok(())
}

/// Checks the custom field values against their declarations.
pub fn validate_fields(
    account: &Account,
    declared: &[CustomField],
    extra_required: &[String],
    today: NaiveDate,
) -> Result<(), String> {
    for name in account.fields.keys() {
        if !declared.iter().any(|f| &f.name == name) {
            let known: Vec<&str> = declared.iter().map(|f| f.name.as_str()).collect();
            return Err(format!(
                "unknown field '{name}' (declared fields: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
    }
    for field in declared {
        let value = account
            .fields
            .get(&field.name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty());
        let Some(value) = value else {
            if field.required || extra_required.contains(&field.name) {
                return Err(format!(
                    "field '{}' ({}) is required (--field {}=VALUE)",
                    field.name,
                    field.label(),
                    field.name
                ));
            }
            continue;
        };
        check_field_value(field, value, today)?;
    }
    Ok(())
}

pub fn check_field_value(field: &CustomField, value: &str, today: NaiveDate) -> Result<(), String> {
    validate_text(&format!("field '{}'", field.name), value, 1024)?;
    match field.field_type {
        FieldType::Text => {}
        FieldType::Email => {
            validate_email(value).map_err(|e| format!("field '{}': {e}", field.name))?
        }
        FieldType::Date => {
            parse_date(value, today).map_err(|e| format!("field '{}': {e}", field.name))?;
        }
        FieldType::Choice => {
            if !field.choices.iter().any(|c| c == value) {
                return Err(format!(
                    "field '{}': '{value}' is not one of: {}",
                    field.name,
                    field.choices.join(", ")
                ));
            }
        }
    }
    if let Some(re) = &field.compiled {
        if !re.is_match(value) {
            let pattern = field.pattern.as_deref().unwrap_or_default();
            return Err(format!(
                "field '{}': '{value}' does not match {pattern}",
                field.name
            ));
        }
    }
    Ok(())
}

/// Everything about one account that can be checked without other records.
pub fn validate_account(
    account: &Account,
    policy: &Policy,
    declared: &[CustomField],
    extra_required: &[String],
    today: NaiveDate,
) -> Result<(), String> {
    validate_username(&account.username)?;
    let name = account.display_name.trim();
    if name.is_empty() {
        return Err("display name must not be empty".into());
    }
    validate_text("display name", name, 128)?;
    validate_email(&account.email)?;
    for (label, value) in [
        ("company", &account.company),
        ("project", &account.project),
        ("language", &account.language),
    ] {
        if let Some(v) = value {
            validate_text(label, v, 128)?;
        }
    }
    if let Some(notes) = &account.notes {
        validate_text("notes", &notes.replace(['\n', '\t'], " "), 4096)?;
    }
    if let Some(theme) = &account.theme {
        if !THEMES.contains(&theme.as_str()) {
            return Err(format!(
                "unknown theme '{theme}' (expected one of: {})",
                THEMES.join(", ")
            ));
        }
    }
    if let Some(tz) = &account.timezone {
        tz.parse::<chrono_tz::Tz>().map_err(|_| {
            format!("unknown timezone '{tz}' (expected an IANA name like Europe/Berlin)")
        })?;
    }
    for group in &account.groups {
        validate_group_name(group)?;
    }
    validate_dates(policy, account, today)?;
    validate_fields(account, declared, extra_required, today)
}

pub fn validate_group_name(name: &str) -> Result<(), String> {
    validate_username(name).map_err(|_| {
        format!("invalid group name '{name}': 1-32 characters: a lowercase letter, then lowercase letters, digits, '.', '_' or '-'")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_pattern() {
        for ok in ["a", "bob", "j.doe", "x_1-2", &"a".repeat(32)] {
            assert!(validate_username(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1bob",
            "Bob",
            "bob smith",
            "bob@x",
            &"a".repeat(33),
            "-x",
            "é",
        ] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_refuses_control_and_bidi_characters() {
        assert!(validate_text("notes", "Zoë from Åland, 日本", 64).is_ok());
        for bad in ["a\x1b[2J", "a\nb", "\u{9b}x", "abc\u{202e}exe", "\u{2066}x"] {
            assert!(validate_text("notes", bad, 64).is_err(), "{bad:?}");
        }
        assert!(validate_text("notes", &"x".repeat(65), 64).is_err());
    }

    #[test]
    fn emails_need_a_dotted_domain() {
        for ok in ["a@b.co", "Jane.Doe+x@Example.COM", "x@sub.domain.org"] {
            assert!(validate_email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a@@b.co", "a b@c.de", "a@b..co", "a@-b.co",
        ] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }
}
