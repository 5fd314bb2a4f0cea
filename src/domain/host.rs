//! Hosts (target OpenSSH servers) and what they are told: who may log in
//! there, the `authorized_keys` lines sshd reads from `tenure
//! authorized-keys`, and how long a certificate may last. Pure: the caller
//! passes the time.

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::lifecycle::login_allowed;
use super::{Account, Role, SshKey};

/// Is this account a registered host?
pub fn is_host(account: &Account) -> bool {
    account.has_role(Role::Host)
}

/// The groups through which `account` may log in on `host` (empty: none).
/// An account may log in on a host when they share a group.
pub fn shared_groups<'a>(host: &'a Account, account: &Account) -> Vec<&'a str> {
    host.groups
        .iter()
        .filter(|g| account.groups.contains(*g))
        .map(String::as_str)
        .collect()
}

/// May `account` log in on `host` today? Both must be usable (active and
/// within their dates), the account must not be a host, and they must
/// share a group.
pub fn may_log_in(host: &Account, account: &Account, today: NaiveDate) -> bool {
    is_host(host)
        && !is_host(account)
        && login_allowed(host, today).is_ok()
        && login_allowed(account, today).is_ok()
        && !shared_groups(host, account).is_empty()
}

/// The first instant a date no longer covers: its next midnight, UTC. An
/// end date or a key's expiry date is the last day access works.
pub fn end_of_day(date: NaiveDate) -> DateTime<Utc> {
    (date + Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc()
}

/// When a key of this account stops working: the earlier of the key's
/// expiry and the account's end date (None: neither is set).
pub fn key_deadline(account: &Account, key: &SshKey) -> Option<DateTime<Utc>> {
    let ends = [account.end_date, key.expires_on];
    ends.into_iter().flatten().min().map(end_of_day)
}

/// The `authorized_keys` lines sshd gets for `account` on `host` (empty
/// when it may not log in there): every unexpired key, with
/// `expiry-time` (the key's deadline, UTC) and `from` (the account's
/// allowlist), so sshd itself enforces both even from a cached answer.
pub fn authorized_lines(host: &Account, account: &Account, now: DateTime<Utc>) -> Vec<String> {
    let today = now.date_naive();
    if !may_log_in(host, account, today) {
        return Vec::new();
    }
    let from = (!account.allowlist.is_empty()).then(|| {
        account
            .allowlist
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",")
    });
    account
        .credentials
        .keys
        .iter()
        .filter(|k| k.expires_on.is_none_or(|d| d >= today))
        .filter(|k| safe_key_text(&k.public_key))
        .map(|k| {
            let mut options = Vec::new();
            if let Some(deadline) = key_deadline(account, k) {
                options.push(format!(
                    "expiry-time=\"{}Z\"",
                    deadline.format("%Y%m%d%H%M%S")
                ));
            }
            if let Some(from) = &from {
                options.push(format!("from=\"{from}\""));
            }
            if options.is_empty() {
                k.public_key.clone()
            } else {
                format!("{} {}", options.join(","), k.public_key)
            }
        })
        .collect()
}

/// A stored key line is `type base64` and nothing else; anything that is
/// not (which `key add` never stores) is left out rather than printed.
fn safe_key_text(line: &str) -> bool {
    let mut parts = line.split(' ');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=@.-".contains(&b))
        })
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

/// Parses a duration: `8h`, `30m`, `2d`, `1w`, `90s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || format!("invalid duration '{text}' (e.g. 8h, 30m, 2d)");
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number.parse().map_err(|_| bad())?;
    if n <= 0 {
        return Err(bad());
    }
    let d = match unit {
        "s" => Duration::try_seconds(n),
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        "w" => Duration::try_weeks(n),
        _ => None,
    };
    d.ok_or_else(bad)
}

/// The validity window of a certificate asked for at `now` for `wanted`:
/// from a minute ago (clocks drift) to `now + wanted`, but never past the
/// end of the account's last day, nor past the key's expiry.
/// Err when nothing is left (the account ends today at midnight: no).
pub fn cert_window(
    account: &Account,
    key: &SshKey,
    now: DateTime<Utc>,
    wanted: Duration,
) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let after = now - Duration::minutes(1);
    let mut before = now + wanted;
    if let Some(deadline) = key_deadline(account, key) {
        before = before.min(deadline);
    }
    if before <= now {
        return Err("the account or the key ends now: no certificate".into());
    }
    Ok((after, before))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::account::sample;
    use crate::domain::Status;

    fn key(expires: Option<&str>) -> SshKey {
        SshKey {
            fingerprint: "SHA256:x".into(),
            algorithm: "ssh-ed25519".into(),
            public_key:
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
                    .into(),
            comment: "c".into(),
            added_at: Utc::now(),
            added_by: "a".into(),
            last_used: None,
            expires_on: expires.map(|d| d.parse().unwrap()),
        }
    }

    fn host() -> Account {
        let mut h = sample(Status::Active, "2026-01-01", None);
        h.username = "web1".into();
        h.roles = [Role::Host].into();
        h.groups = ["web".to_string()].into();
        h
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_shared_group_lets_an_active_account_in_with_deadlines_and_allowlist() {
        let mut bob = sample(Status::Active, "2026-01-01", Some("2026-06-30"));
        bob.credentials.keys = vec![key(Some("2026-06-10")), key(None)];
        bob.allowlist = vec![
            "10.0.0.0/8".parse().unwrap(),
            "192.0.2.7/32".parse().unwrap(),
        ];
        let now = at("2026-06-01T12:00:00Z");
        assert!(
            authorized_lines(&host(), &bob, now).is_empty(),
            "no shared group"
        );
        bob.groups.insert("web".into());
        let lines = authorized_lines(&host(), &bob, now);
        assert_eq!(
            lines,
            [
                "expiry-time=\"20260611000000Z\",from=\"10.0.0.0/8,192.0.2.7/32\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
                "expiry-time=\"20260701000000Z\",from=\"10.0.0.0/8,192.0.2.7/32\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
            ]
        );
        // The expired key goes; past the end date, everything goes.
        assert_eq!(
            authorized_lines(&host(), &bob, at("2026-06-11T00:00:01Z")).len(),
            1
        );
        assert!(authorized_lines(&host(), &bob, at("2026-07-01T00:00:01Z")).is_empty());
        bob.status = Status::Disabled;
        assert!(authorized_lines(&host(), &bob, now).is_empty());
    }

    #[test]
    fn hosts_are_never_served_and_a_disabled_host_serves_nobody() {
        let mut other = host();
        other.username = "web2".into();
        other.credentials.keys = vec![key(None)];
        assert!(authorized_lines(&host(), &other, at("2026-06-01T12:00:00Z")).is_empty());
        let mut bob = sample(Status::Active, "2026-01-01", None);
        bob.groups.insert("web".into());
        bob.credentials.keys = vec![key(None)];
        let mut h = host();
        assert_eq!(
            authorized_lines(&h, &bob, at("2026-06-01T12:00:00Z")),
            [key(None).public_key]
        );
        h.status = Status::Disabled;
        assert!(authorized_lines(&h, &bob, at("2026-06-01T12:00:00Z")).is_empty());
    }

    #[test]
    fn a_stored_line_with_anything_odd_in_it_is_never_printed() {
        let mut bob = sample(Status::Active, "2026-01-01", None);
        bob.groups.insert("web".into());
        let mut k = key(None);
        k.public_key = "ssh-ed25519 AAAA\ncommand=\"sh\" ssh-ed25519 AAAA".into();
        bob.credentials.keys = vec![k];
        assert!(authorized_lines(&host(), &bob, at("2026-06-01T12:00:00Z")).is_empty());
    }

    #[test]
    fn a_certificate_never_outlives_the_account_s_last_day() {
        let bob = sample(Status::Active, "2026-01-01", Some("2026-06-01"));
        let k = key(None);
        let eight = Duration::hours(8);
        // At 20:00 on the last day, 8 h would run to 04:00 the next day.
        let (_, before) = cert_window(&bob, &k, at("2026-06-01T20:00:00Z"), eight).unwrap();
        assert_eq!(before, at("2026-06-02T00:00:00Z"));
        let (after, before) = cert_window(&bob, &k, at("2026-05-20T08:00:00Z"), eight).unwrap();
        assert_eq!(
            (after, before),
            (at("2026-05-20T07:59:00Z"), at("2026-05-20T16:00:00Z"))
        );
        assert!(cert_window(&bob, &k, at("2026-06-02T00:00:00Z"), eight).is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("8h").unwrap(), Duration::hours(8));
        assert_eq!(parse_duration("2d").unwrap(), Duration::days(2));
        assert_eq!(parse_duration("90s").unwrap(), Duration::seconds(90));
        for bad in ["", "h", "0h", "-1h", "8x", "8 h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
