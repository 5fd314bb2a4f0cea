//! How hosts look: `host list` and `host show` (text or one JSON document).

use std::io::Write;

use super::output::{print_json, say};
use crate::service::hosts::HostView;
use crate::service::Result;

pub fn print_hosts(out: &mut dyn Write, hosts: &[HostView], json: bool) -> Result<()> {
    if json {
        return print_json(out, hosts);
    }
    if hosts.is_empty() {
        return say(
            out,
            "no hosts (register one with: host add NAME --group G < host_key.pub)",
        );
    }
    say(
        out,
        &format!("{:<20} {:<10} {:<24} KEY", "HOST", "STATUS", "GROUPS"),
    )?;
    for h in hosts {
        say(
            out,
            &format!(
                "{:<20} {:<10} {:<24} {}",
                h.name,
                h.status,
                if h.groups.is_empty() {
                    "-".to_string()
                } else {
                    h.groups.join(",")
                },
                h.fingerprint.as_deref().unwrap_or("-")
            ),
        )?;
    }
    Ok(())
}

pub fn print_host(
    out: &mut dyn Write,
    h: &HostView,
    zone: crate::locale::Zone,
    json: bool,
) -> Result<()> {
    if json {
        return print_json(out, h);
    }
    let row = |k: &str, v: String| format!("{k:<13} {v}");
    say(out, &row("host", h.name.clone()))?;
    say(out, &row("status", h.status.clone()))?;
    say(out, &row("groups", h.groups.join(", ")))?;
    say(out, &row("key", h.fingerprint.clone().unwrap_or_default()))?;
    if !h.allowlist.is_empty() {
        say(out, &row("allowlist", h.allowlist.join(", ")))?;
    }
    say(
        out,
        &row(
            "added",
            format!("{} by {}", zone.minute(h.added_at), h.added_by),
        ),
    )?;
    say(
        out,
        &row(
            "last seen",
            h.last_seen
                .map_or("never (logs in when sshd first asks)".to_string(), |t| {
                    format!("{} (updated hourly)", zone.minute(t))
                }),
        ),
    )?;
    let logins = h.logins.as_deref().unwrap_or_default();
    if logins.is_empty() {
        return say(out, &row("logins", "nobody may log in here now".into()));
    }
    say(
        out,
        &row(
            "logins",
            format!("{} account(s) may log in here:", logins.len()),
        ),
    )?;
    for l in logins {
        say(
            out,
            &format!(
                "  {:<20} {:<28} ends {:<10}  via {}",
                l.username,
                l.display_name,
                l.end_date.map_or("-".to_string(), |d| d.to_string()),
                l.via.join(",")
            ),
        )?;
    }
    Ok(())
}
