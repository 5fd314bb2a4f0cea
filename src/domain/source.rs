//! Directory sources (`[[sources]]`): what a directory entry says an
//! account should be, and what one sync run changes. Pure: the entries come
//! from the directory reader (src/sources), the accounts from the store, `today`
//! from the caller; the service applies the plan and writes.
//!
//! Safety rules decided here: an account is disabled only when a complete
//! read no longer holds its entry; an empty read never disables; a run that
//! would disable more than `max_deprovision_percent` of the source's live
//! accounts is refused as a whole (`threshold_exceeded`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

use super::account::{Account, DisableReason, Kind, Status};

/// Where a source-owned account comes from, kept on the account. (Fields
/// in name order: the fast JSON account view writes them as declared, and
/// must match `account_view`'s sorted object.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceLink {
    /// The entry's DN at the last sync (it may move: the id decides).
    pub dn: String,
    /// The directory's immutable id (entryUUID, or objectGUID as text).
    pub id: String,
    /// The account fields the directory set at the last sync (read-only in
    /// tenure): `display_name`, `email`, …, `fields.NAME`, `group:NAME`.
    #[serde(default)]
    pub owned: BTreeSet<String>,
    /// The `[[sources]]` name.
    pub source: String,
}

impl SourceLink {
    pub fn owns(&self, field: &str) -> bool {
        self.owned.contains(field)
    }
}

/// Directory attribute names for tenure's fields (`map = { … }`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AttrMap {
    pub username: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub project: Option<String>,
    /// An attribute holding a DN (`manager`): its account becomes the sponsor.
    pub sponsor: Option<String>,
    pub start_date: Option<String>,
    /// `accountExpires` (AD), a generalized time, or a date.
    pub end_date: Option<String>,
    /// tenure custom field → attribute.
    pub fields: BTreeMap<String, String>,
}

/// What the sync needs to know of one source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceRules {
    pub name: String,
    pub map: AttrMap,
    /// `entryUUID` (OpenLDAP, 389-ds…) or `objectGUID` (Active Directory).
    pub id_attribute: String,
    /// Where an entry lists its groups (`memberOf`).
    pub member_of_attribute: String,
    /// Directory group (its cn or its whole DN, lowercase) → tenure group.
    pub groups: BTreeMap<String, String>,
    pub kind: Kind,
    pub template: Option<String>,
    pub max_deprovision_percent: u32,
}

impl SourceRules {
    /// Every attribute a read must ask for.
    pub fn attributes(&self) -> Vec<String> {
        let m = &self.map;
        let mut out: Vec<String> = [
            Some(&self.id_attribute),
            Some(&m.username),
            m.display_name.as_ref(),
            m.email.as_ref(),
            m.company.as_ref(),
            m.project.as_ref(),
            m.sponsor.as_ref(),
            m.start_date.as_ref(),
            m.end_date.as_ref(),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .chain(m.fields.values().cloned())
        .collect();
        if !self.groups.is_empty() {
            out.push(self.member_of_attribute.clone());
        }
        out.push("userAccountControl".into());
        out.sort_by_key(|a| a.to_ascii_lowercase());
        out.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        out
    }

    /// The tenure groups this source decides membership of.
    pub fn managed_groups(&self) -> BTreeSet<String> {
        self.groups.values().cloned().collect()
    }
}

/// One entry as read: its DN and attributes (names lowercased; binary ids
/// already turned into text by the reader).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirEntry {
    pub dn: String,
    pub attrs: BTreeMap<String, Vec<String>>,
}

impl DirEntry {
    pub fn first(&self, attr: &str) -> Option<&str> {
        self.attrs
            .get(&attr.to_ascii_lowercase())
            .and_then(|v| v.first())
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    pub fn all(&self, attr: &str) -> &[String] {
        self.attrs
            .get(&attr.to_ascii_lowercase())
            .map_or(&[], Vec::as_slice)
    }
}

/// What one entry says an account should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub id: String,
    pub dn: String,
    pub username: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub project: Option<String>,
    pub sponsor_dn: Option<String>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub fields: BTreeMap<String, String>,
    pub groups: BTreeSet<String>,
    /// Disabled in the directory (AD userAccountControl bit 0x2).
    pub disabled: bool,
}

/// AD `userAccountControl`: bit 0x2 is ACCOUNTDISABLE.
pub fn uac_disabled(value: &str) -> Result<bool, String> {
    let v: i64 = value
        .trim()
        .parse()
        .map_err(|_| format!("userAccountControl '{value}' is not a number"))?;
    Ok(v & 0x2 != 0)
}

/// AD `accountExpires`: 100-ns intervals since 1601-01-01 UTC; 0 and
/// 0x7FFFFFFFFFFFFFFF mean never. The account works until that instant, so
/// its last day is the day before when the instant is midnight.
pub fn filetime_last_day(value: &str) -> Result<Option<NaiveDate>, String> {
    let v: i64 = value
        .trim()
        .parse()
        .map_err(|_| format!("accountExpires '{value}' is not a number"))?;
    if v <= 0 || v == i64::MAX {
        return Ok(None);
    }
    // Seconds between 1601-01-01 and 1970-01-01.
    const EPOCH_DIFF: i64 = 11_644_473_600;
    let secs = v / 10_000_000 - EPOCH_DIFF;
    let at = DateTime::from_timestamp(secs, 0)
        .ok_or_else(|| format!("accountExpires '{value}' is out of range"))?;
    Ok(Some(last_day_before(at.naive_utc())))
}

fn last_day_before(at: NaiveDateTime) -> NaiveDate {
    let day = at.date();
    if at.time() == chrono::NaiveTime::MIN {
        day.pred_opt().unwrap_or(day)
    } else {
        day
    }
}

/// A date attribute: AD's 100-ns count (accountExpires), a generalized time
/// (`20261231000000Z`, taken as the instant it ends), or `YYYY-MM-DD` /
/// `YYYYMMDD` (the day itself). `end` says whether it is an end (an instant
/// at midnight ends the day before).
pub fn parse_date_attr(value: &str, end: bool) -> Result<Option<NaiveDate>, String> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let digits = v.bytes().all(|b| b.is_ascii_digit());
    if (digits && v.len() >= 15) || v == "0" || v == "9223372036854775807" {
        return filetime_last_day(v);
    }
    if digits && v.len() == 8 {
        return NaiveDate::parse_from_str(v, "%Y%m%d")
            .map(Some)
            .map_err(|_| format!("'{v}' is not a date"));
    }
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Ok(Some(d));
    }
    let stem = v.trim_end_matches('Z');
    let stem = stem.split(['.', ',']).next().unwrap_or(stem);
    if stem.len() == 14 {
        if let Ok(at) = NaiveDateTime::parse_from_str(stem, "%Y%m%d%H%M%S") {
            return Ok(Some(if end { last_day_before(at) } else { at.date() }));
        }
    }
    Err(format!(
        "'{v}' is not a date (YYYY-MM-DD, a generalized time, or an AD 100-ns count)"
    ))
}

/// The first RDN value of a DN (`uid=bob,ou=x` → `bob`).
pub fn rdn_value(dn: &str) -> Option<&str> {
    let first = dn.split(',').next()?;
    let (_, value) = first.split_once('=')?;
    Some(value.trim()).filter(|v| !v.is_empty())
}

/// Reads what `entry` says under `rules`.
pub fn read_entry(rules: &SourceRules, entry: &DirEntry) -> Result<Wanted, String> {
    let m = &rules.map;
    let id = entry
        .first(&rules.id_attribute)
        .ok_or_else(|| format!("{}: no {}", entry.dn, rules.id_attribute))?
        .to_ascii_lowercase();
    let username = entry
        .first(&m.username)
        .ok_or_else(|| format!("{}: no {} (the username)", entry.dn, m.username))?
        .to_ascii_lowercase();
    let text = |attr: &Option<String>| {
        attr.as_ref()
            .and_then(|a| entry.first(a))
            .map(str::to_string)
    };
    let date = |attr: &Option<String>, end: bool| -> Result<Option<NaiveDate>, String> {
        match attr.as_ref().and_then(|a| entry.first(a).map(|v| (a, v))) {
            Some((a, v)) => parse_date_attr(v, end).map_err(|e| format!("{}: {a}: {e}", entry.dn)),
            None => Ok(None),
        }
    };
    let mut fields = BTreeMap::new();
    for (field, attr) in &m.fields {
        if let Some(v) = entry.first(attr) {
            fields.insert(field.clone(), v.to_string());
        }
    }
    let mut groups = BTreeSet::new();
    for g in entry.all(&rules.member_of_attribute) {
        let dn = g.trim().to_ascii_lowercase();
        let cn = rdn_value(&dn).unwrap_or("").to_string();
        if let Some(t) = rules.groups.get(&dn).or_else(|| rules.groups.get(&cn)) {
            groups.insert(t.clone());
        }
    }
    let disabled = match entry.first("userAccountControl") {
        Some(v) => uac_disabled(v).map_err(|e| format!("{}: {e}", entry.dn))?,
        None => false,
    };
    Ok(Wanted {
        id,
        dn: entry.dn.clone(),
        username,
        display_name: text(&m.display_name),
        email: text(&m.email),
        company: text(&m.company),
        project: text(&m.project),
        sponsor_dn: text(&m.sponsor),
        start_date: date(&m.start_date, false)?,
        end_date: date(&m.end_date, true)?,
        fields,
        groups,
        disabled,
    })
}

/// The account `current` with what the directory says applied (and the
/// link refreshed). `sponsor`: the resolved manager, None when the entry
/// names none or it is not a tenure account (then tenure's own stays).
/// A field the directory set before and no longer has is cleared (but an
/// end date is never cleared: it becomes tenure's to keep).
pub fn apply(
    rules: &SourceRules,
    current: &Account,
    wanted: &Wanted,
    sponsor: Option<&str>,
) -> Account {
    let mut new = current.clone();
    let was = current
        .source
        .as_ref()
        .filter(|l| l.source == rules.name)
        .map(|l| l.owned.clone())
        .unwrap_or_default();
    let mut owned = BTreeSet::new();
    let m = &rules.map;
    let mut text = |key: &str, mapped: bool, value: &Option<String>, slot: &mut Option<String>| {
        if !mapped {
            return;
        }
        match value {
            Some(v) => {
                *slot = Some(v.clone());
                owned.insert(key.to_string());
            }
            None if was.contains(key) => *slot = None,
            None => {}
        }
    };
    text(
        "company",
        m.company.is_some(),
        &wanted.company,
        &mut new.company,
    );
    text(
        "project",
        m.project.is_some(),
        &wanted.project,
        &mut new.project,
    );
    if let Some(s) = sponsor {
        new.sponsor = Some(s.to_string());
        owned.insert("sponsor".to_string());
    } else if was.contains("sponsor") && wanted.sponsor_dn.is_none() {
        new.sponsor = None;
    }
    if m.display_name.is_some() {
        if let Some(v) = &wanted.display_name {
            new.display_name = v.clone();
            owned.insert("display_name".into());
        }
    }
    if m.email.is_some() {
        if let Some(v) = &wanted.email {
            new.email = v.clone();
            owned.insert("email".into());
        }
    }
    if let Some(d) = wanted.start_date {
        new.start_date = d;
        owned.insert("start_date".into());
    }
    if let Some(d) = wanted.end_date {
        new.end_date = Some(d);
        owned.insert("end_date".into());
    }
    for field in m.fields.keys() {
        let key = format!("fields.{field}");
        match wanted.fields.get(field) {
            Some(v) => {
                new.fields.insert(field.clone(), v.clone());
                owned.insert(key);
            }
            None if was.contains(&key) => {
                new.fields.remove(field);
            }
            None => {}
        }
    }
    for g in rules.managed_groups() {
        if wanted.groups.contains(&g) {
            new.groups.insert(g.clone());
        } else {
            new.groups.remove(&g);
        }
        owned.insert(format!("group:{g}"));
    }
    owned.insert("username".into());
    new.source = Some(SourceLink {
        source: rules.name.clone(),
        id: wanted.id.clone(),
        dn: wanted.dn.clone(),
        owned,
    });
    new
}

/// One change a run makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Create {
        wanted: Wanted,
        sponsor: Option<String>,
    },
    /// `new` is the whole account as it should be (same username); `wanted`
    /// and `sponsor` let the writer apply it again to the record it loads.
    Update {
        username: String,
        wanted: Box<Wanted>,
        sponsor: Option<String>,
        new: Box<Account>,
        /// The fields that differ, for the dry run.
        fields: Vec<String>,
    },
    Disable {
        username: String,
        why: String,
    },
    Enable {
        username: String,
    },
}

impl Step {
    pub fn verb(&self) -> &'static str {
        match self {
            Step::Create { .. } => "create",
            Step::Update { .. } => "update",
            Step::Disable { .. } => "disable",
            Step::Enable { .. } => "enable",
        }
    }

    pub fn username(&self) -> &str {
        match self {
            Step::Create { wanted, .. } => &wanted.username,
            Step::Update { username, .. }
            | Step::Disable { username, .. }
            | Step::Enable { username } => username,
        }
    }

    /// One line saying what it does (dry runs, the summary).
    pub fn describe(&self) -> String {
        match self {
            Step::Create { wanted, .. } => format!(
                "create {} ({}){}",
                wanted.username,
                wanted.dn,
                if wanted.groups.is_empty() {
                    String::new()
                } else {
                    format!(
                        " groups {}",
                        wanted.groups.iter().cloned().collect::<Vec<_>>().join(",")
                    )
                }
            ),
            Step::Update {
                username, fields, ..
            } => format!("update {username}: {}", fields.join(", ")),
            Step::Disable { username, why } => format!("disable {username}: {why}"),
            Step::Enable { username } => format!("enable {username}: back in the directory"),
        }
    }
}

/// What a run would change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Entries skipped with the reason (bad values, a taken username…).
    pub problems: Vec<String>,
    pub unchanged: usize,
    /// The source's accounts neither disabled nor deleted before the run.
    pub live_before: usize,
}

impl Plan {
    pub fn count(&self, verb: &str) -> usize {
        self.steps.iter().filter(|s| s.verb() == verb).count()
    }
}

/// Whether disabling `disables` of `live` accounts is more than `percent` %.
pub fn threshold_exceeded(disables: usize, live: usize, percent: u32) -> bool {
    disables > 0 && live > 0 && disables * 100 > live * percent as usize
}

/// The fields in which two versions of an account differ (for the dry run).
pub fn changed_fields(old: &Account, new: &Account) -> Vec<String> {
    super::audit::diff(Some(old), Some(new))
        .into_iter()
        .map(|c| c.field)
        .collect()
}

/// Decides a run. `linked`: every account linked to this source (any
/// status); `lookup`: any account by username (a name the directory wants
/// may belong to an account made in tenure). Managers come before the
/// people they sponsor, so a sponsor exists when its report is created.
pub fn plan(
    rules: &SourceRules,
    entries: &[DirEntry],
    linked: &[Account],
    lookup: &dyn Fn(&str) -> Option<Account>,
) -> Plan {
    let mut out = Plan {
        live_before: linked
            .iter()
            .filter(|a| !matches!(a.status, Status::Disabled | Status::Deleted))
            .count(),
        ..Plan::default()
    };
    let mut wanted: Vec<Wanted> = Vec::with_capacity(entries.len());
    let mut seen_ids: HashSet<String> = HashSet::with_capacity(entries.len());
    for e in entries {
        match read_entry(rules, e) {
            Ok(w) => {
                if !seen_ids.insert(w.id.clone()) {
                    out.problems
                        .push(format!("{}: the id {} is read twice", w.dn, w.id));
                    continue;
                }
                wanted.push(w);
            }
            Err(why) => out.problems.push(why),
        }
    }
    let by_id: HashMap<&str, &Account> = linked
        .iter()
        .filter_map(|a| a.source.as_ref().map(|l| (l.id.as_str(), a)))
        .collect();
    // DN (lowercase) → the username it has (or will have) in tenure.
    let mut dn_user: HashMap<String, String> = HashMap::new();
    for a in linked {
        if let Some(l) = &a.source {
            dn_user.insert(l.dn.to_ascii_lowercase(), a.username.clone());
        }
    }
    for w in &wanted {
        let name = by_id
            .get(w.id.as_str())
            .map_or(w.username.clone(), |a| a.username.clone());
        dn_user.insert(w.dn.to_ascii_lowercase(), name);
    }
    let resolve = |dn: &Option<String>| -> Option<String> {
        let dn = dn.as_ref()?;
        if let Some(u) = dn_user.get(&dn.to_ascii_lowercase()) {
            return Some(u.clone());
        }
        // A manager outside the scope: an account named by the DN's first RDN.
        let name = rdn_value(dn)?.to_ascii_lowercase();
        lookup(&name)
            .filter(|a| a.status != Status::Deleted)
            .map(|a| a.username)
    };
    // Managers first: depth in the manager chain within this read.
    let by_dn: HashMap<String, &Wanted> = wanted
        .iter()
        .map(|w| (w.dn.to_ascii_lowercase(), w))
        .collect();
    let depth = |w: &Wanted| {
        let mut d = 0usize;
        let mut at = w;
        let mut hops = HashSet::new();
        while let Some(m) = at.sponsor_dn.as_ref().map(|s| s.to_ascii_lowercase()) {
            if !hops.insert(m.clone()) || d > 64 {
                break;
            }
            match by_dn.get(&m) {
                Some(next) => {
                    d += 1;
                    at = next;
                }
                None => break,
            }
        }
        d
    };
    let mut order: Vec<(usize, &Wanted)> = wanted.iter().map(|w| (depth(w), w)).collect();
    order.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.username.cmp(&b.1.username)));

    let mut relinked: HashSet<String> = HashSet::new();
    for (_, w) in order {
        let mut sponsor = resolve(&w.sponsor_dn);
        if w.sponsor_dn.is_some() && sponsor.is_none() {
            out.problems.push(format!(
                "{}: manager {} is not a tenure account (sponsor left as it is)",
                w.username,
                w.sponsor_dn.clone().unwrap_or_default()
            ));
        }
        let current = match by_id.get(w.id.as_str()) {
            Some(a) => Some((*a).clone()),
            None => match lookup(&w.username) {
                None => None,
                Some(a) => match &a.source {
                    // Linked here under an id this read does not hold: the
                    // entry was deleted and made again (OpenLDAP gives a new
                    // entryUUID). The same person: follow the new id.
                    Some(l) if l.source == rules.name && !seen_ids.contains(&l.id) => {
                        relinked.insert(a.username.clone());
                        Some(a)
                    }
                    Some(l) => {
                        out.problems.push(format!(
                            "{}: username {} belongs to another entry ({} of source {})",
                            w.dn, w.username, l.dn, l.source
                        ));
                        continue;
                    }
                    // Made in tenure with the same email: adopt it.
                    None if w
                        .email
                        .as_ref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(&a.email))
                        && a.status != Status::Deleted =>
                    {
                        Some(a)
                    }
                    None => {
                        out.problems.push(format!(
                            "{}: username {} is taken by an account made in tenure (a different email)",
                            w.dn, w.username
                        ));
                        continue;
                    }
                },
            },
        };
        let Some(current) = current else {
            if w.disabled {
                out.problems.push(format!(
                    "{}: disabled in the directory, not created",
                    w.username
                ));
                continue;
            }
            out.steps.push(Step::Create {
                wanted: w.clone(),
                sponsor: sponsor.take(),
            });
            continue;
        };
        if current.status == Status::Deleted {
            out.problems.push(format!(
                "{}: deleted in tenure (restore it to sync it again)",
                current.username
            ));
            continue;
        }
        if current.username != w.username {
            out.problems.push(format!(
                "{}: the directory now says username {} (tenure keeps {})",
                current.username, w.username, current.username
            ));
        }
        if sponsor.as_deref() == Some(current.username.as_str()) {
            sponsor = None;
        }
        let mut want = w.clone();
        want.username = current.username.clone();
        let new = apply(rules, &current, &want, sponsor.as_deref());
        let source_disabled = current.status == Status::Disabled
            && current.disable_reason == Some(DisableReason::SourceRemoved);
        if !w.disabled && source_disabled {
            out.steps.push(Step::Enable {
                username: current.username.clone(),
            });
        }
        if new != current {
            out.steps.push(Step::Update {
                username: current.username.clone(),
                fields: changed_fields(&current, &new),
                new: Box::new(new),
                wanted: Box::new(want.clone()),
                sponsor: sponsor.clone(),
            });
        } else if !(w.disabled && current.status != Status::Disabled)
            && !(!w.disabled && source_disabled)
        {
            out.unchanged += 1;
        }
        if w.disabled && current.status != Status::Disabled {
            out.steps.push(Step::Disable {
                username: current.username.clone(),
                why: format!("disabled in source {}", rules.name),
            });
        }
    }
    for a in linked {
        let Some(l) = &a.source else { continue };
        if seen_ids.contains(&l.id) || relinked.contains(&a.username) {
            continue;
        }
        if matches!(a.status, Status::Disabled | Status::Deleted) {
            continue;
        }
        out.steps.push(Step::Disable {
            username: a.username.clone(),
            why: format!("gone from source {}", rules.name),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::account::sample;

    fn rules() -> SourceRules {
        SourceRules {
            name: "corp".into(),
            map: AttrMap {
                username: "uid".into(),
                display_name: Some("cn".into()),
                email: Some("mail".into()),
                company: Some("o".into()),
                sponsor: Some("manager".into()),
                end_date: Some("accountExpires".into()),
                fields: BTreeMap::from([("cost_center".into(), "departmentNumber".into())]),
                ..AttrMap::default()
            },
            id_attribute: "objectGUID".into(),
            member_of_attribute: "memberOf".into(),
            groups: BTreeMap::from([("vendor-devs".into(), "developers".into())]),
            kind: Kind::Vendor,
            template: None,
            max_deprovision_percent: 10,
        }
    }

    fn entry(uid: &str, id: &str, extra: &[(&str, &str)]) -> DirEntry {
        let mut attrs = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            attrs
                .entry(k.to_ascii_lowercase())
                .or_insert_with(Vec::new)
                .push(v.to_string());
        };
        put("objectGUID", id);
        put("uid", uid);
        put("cn", &format!("{uid} name"));
        put("mail", &format!("{uid}@example.com"));
        for (k, v) in extra {
            put(k, v);
        }
        DirEntry {
            dn: format!("cn={uid},ou=vendors,dc=example,dc=com"),
            attrs,
        }
    }

    fn linked(uid: &str, id: &str) -> Account {
        let mut a = sample(Status::Active, "2026-01-01", Some("2026-12-31"));
        a.username = uid.into();
        a.display_name = format!("{uid} name");
        a.email = format!("{uid}@example.com");
        a.source = Some(SourceLink {
            source: "corp".into(),
            id: id.into(),
            dn: format!("cn={uid},ou=vendors,dc=example,dc=com"),
            owned: BTreeSet::from([
                "username".into(),
                "display_name".into(),
                "email".into(),
                "group:developers".into(),
            ]),
        });
        a
    }

    #[test]
    fn user_account_control_bit_two_is_disabled() {
        assert!(!uac_disabled("512").unwrap()); // NORMAL_ACCOUNT
        assert!(uac_disabled("514").unwrap()); // NORMAL_ACCOUNT | ACCOUNTDISABLE
        assert!(uac_disabled("66050").unwrap()); // + DONT_EXPIRE_PASSWORD
        assert!(!uac_disabled("66048").unwrap());
        assert!(uac_disabled("x").is_err());
    }

    #[test]
    fn account_expires_zero_and_max_are_never_and_others_are_dates() {
        assert_eq!(filetime_last_day("0").unwrap(), None);
        assert_eq!(filetime_last_day("9223372036854775807").unwrap(), None);
        // 2027-01-01T00:00:00Z: works through 2026-12-31.
        assert_eq!(
            filetime_last_day("134432352000000000").unwrap(),
            NaiveDate::from_ymd_opt(2026, 12, 31)
        );
        // 2020-06-15T12:00:00Z: a date in the past, that day.
        assert_eq!(
            filetime_last_day("132366960000000000").unwrap(),
            NaiveDate::from_ymd_opt(2020, 6, 15)
        );
        assert_eq!(parse_date_attr("0", true).unwrap(), None);
        assert_eq!(
            parse_date_attr("20270101000000Z", true).unwrap(),
            NaiveDate::from_ymd_opt(2026, 12, 31)
        );
        assert_eq!(
            parse_date_attr("20270101000000Z", false).unwrap(),
            NaiveDate::from_ymd_opt(2027, 1, 1)
        );
        assert_eq!(
            parse_date_attr("2026-03-04", true).unwrap(),
            NaiveDate::from_ymd_opt(2026, 3, 4)
        );
        assert!(parse_date_attr("next tuesday", true).is_err());
    }

    #[test]
    fn an_ad_entry_reads_disabled_expired_groups_and_fields() {
        let e = entry(
            "Bob",
            "6F9619FF-8B86-D011-B42D-00C04FC964FF",
            &[
                ("userAccountControl", "514"),
                ("accountExpires", "132366960000000000"),
                ("memberOf", "CN=Vendor-Devs,OU=Groups,DC=example,DC=com"),
                ("memberOf", "CN=Other,OU=Groups,DC=example,DC=com"),
                ("departmentNumber", "CC-7"),
            ],
        );
        let w = read_entry(&rules(), &e).unwrap();
        assert_eq!(w.username, "bob");
        assert_eq!(w.id, "6f9619ff-8b86-d011-b42d-00c04fc964ff");
        assert!(w.disabled);
        assert_eq!(w.end_date, NaiveDate::from_ymd_opt(2020, 6, 15));
        assert_eq!(w.groups, BTreeSet::from(["developers".to_string()]));
        assert_eq!(
            w.fields.get("cost_center").map(String::as_str),
            Some("CC-7")
        );
        let never = entry(
            "amy",
            "1",
            &[("accountExpires", "0"), ("userAccountControl", "512")],
        );
        let w = read_entry(&rules(), &never).unwrap();
        assert_eq!((w.end_date, w.disabled), (None, false));
        let missing = DirEntry {
            dn: "cn=x".into(),
            attrs: BTreeMap::from([("uid".into(), vec!["x".into()])]),
        };
        assert!(read_entry(&rules(), &missing)
            .unwrap_err()
            .contains("no objectGUID"));
    }

    #[test]
    fn a_rename_with_the_same_id_is_an_update_and_nothing_changed_is_no_step() {
        let accounts = vec![linked("bob", "1"), linked("amy", "2")];
        let none = |_: &str| None;
        let same = [entry("bob", "1", &[]), entry("amy", "2", &[])];
        let p = plan(&rules(), &same, &accounts, &none);
        assert!(p.steps.is_empty(), "{:?}", p.steps);
        assert_eq!(p.unchanged, 2);
        let mut moved = entry("bob", "1", &[]);
        moved.dn = "cn=bob,ou=moved,dc=example,dc=com".into();
        moved.attrs.insert("cn".into(), vec!["Robert".into()]);
        let p = plan(&rules(), &[moved, entry("amy", "2", &[])], &accounts, &none);
        assert_eq!(p.steps.len(), 1, "{:?}", p.steps);
        let Step::Update {
            username,
            new,
            fields,
            ..
        } = &p.steps[0]
        else {
            panic!("{:?}", p.steps[0])
        };
        assert_eq!(username, "bob");
        assert_eq!(new.display_name, "Robert");
        assert!(fields.contains(&"display_name".to_string()), "{fields:?}");
    }

    #[test]
    fn gone_entries_are_disabled_returning_ones_enabled_and_the_share_is_counted() {
        let mut gone = linked("amy", "2");
        gone.status = Status::Disabled;
        gone.disable_reason = Some(DisableReason::SourceRemoved);
        let mut manual = linked("cat", "3");
        manual.status = Status::Disabled;
        manual.disable_reason = Some(DisableReason::Manual);
        let accounts = vec![linked("bob", "1"), gone, manual, linked("dan", "4")];
        let none = |_: &str| None;
        let p = plan(
            &rules(),
            &[
                entry("amy", "2", &[]),
                entry("cat", "3", &[]),
                entry("dan", "4", &[]),
            ],
            &accounts,
            &none,
        );
        let verbs: Vec<String> = p.steps.iter().map(Step::describe).collect();
        assert_eq!(
            verbs,
            [
                "enable amy: back in the directory",
                "disable bob: gone from source corp"
            ],
        );
        assert_eq!(p.live_before, 2);
        assert!(threshold_exceeded(1, 2, 10));
        assert!(!threshold_exceeded(1, 2, 50));
        assert!(!threshold_exceeded(1, 10, 10));
        assert!(threshold_exceeded(2, 10, 10));
        assert!(!threshold_exceeded(0, 0, 10));
    }

    #[test]
    fn managers_come_first_and_become_sponsors() {
        let none = |_: &str| None;
        let boss = entry("zed", "9", &[]);
        let report = entry(
            "amy",
            "2",
            &[("manager", "cn=zed,ou=vendors,dc=example,dc=com")],
        );
        let p = plan(&rules(), &[report, boss], &[], &none);
        let names: Vec<&str> = p.steps.iter().map(Step::username).collect();
        assert_eq!(names, ["zed", "amy"]);
        let Step::Create { sponsor, .. } = &p.steps[1] else {
            panic!()
        };
        assert_eq!(sponsor.as_deref(), Some("zed"));
    }

    #[test]
    fn a_taken_username_is_adopted_only_with_the_same_email() {
        let mut mine = sample(Status::Active, "2026-01-01", Some("2026-12-31"));
        mine.username = "bob".into();
        mine.email = "BOB@example.com".into();
        let same = mine.clone();
        let lookup = move |n: &str| (n == "bob").then(|| same.clone());
        let p = plan(&rules(), &[entry("bob", "1", &[])], &[], &lookup);
        assert!(matches!(&p.steps[0], Step::Update { new, .. } if new.source.is_some()));
        mine.email = "other@example.com".into();
        let lookup = move |n: &str| (n == "bob").then(|| mine.clone());
        let p = plan(&rules(), &[entry("bob", "1", &[])], &[], &lookup);
        assert!(p.steps.is_empty());
        assert!(p.problems[0].contains("taken"), "{:?}", p.problems);
    }
}
