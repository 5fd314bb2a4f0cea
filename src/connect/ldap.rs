//! The LDAP connector: puts an account into a directory as one entry
//! (`inetOrgPerson` + `posixAccount` + `ldapPublicKey`) and its groups, and
//! converges that entry on what tenure says it should be, whatever the job's
//! action: applying the same job twice, or a later one first, ends the same.
//!
//! - The password is tenure's own argon2 PHC string as `{ARGON2}<phc>`
//!   (slapd's `argon2` module verifies it): no plaintext ever leaves tenure.
//! - A locked entry has `pwdAccountLockedTime: 000001010000Z` (ppolicy with
//!   `pwdLockout: TRUE` refuses its binds); the start and end dates are
//!   `pwdStartTime` and `pwdEndTime`, so the directory refuses binds outside
//!   them even while tenure is down. These are written with the relax control.
//! - Groups: `groupOfNames`/`member` (created when the first member arrives,
//!   removed when the last one leaves) or `posixGroup`/`memberUid` (the
//!   groups must exist).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use chrono::NaiveDate;
use ldap3::controls::RawControl;
use ldap3::{
    dn_escape, ldap_escape, LdapConn, LdapConnSettings, LdapError, Mod, Scope, SearchEntry,
};
use serde_json::Value;

use crate::config::{ConnectorConfig, GroupStyle, LdapConfig, TargetAction};
use crate::service::connect::{disputed, Drift, TargetObject, Verdict};

/// The relax control (draft-zeilenga-ldap-relax): lets the bind DN write the
/// ppolicy operational attributes.
const RELAX: &str = "1.3.6.1.4.1.4203.666.5.12";
/// What ppolicy reads as "locked until an administrator unlocks".
pub const LOCKED: &str = "000001010000Z";

/// What an account should be in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub dn: String,
    pub username: String,
    /// `None`: no entry at all.
    pub entry: Option<DesiredEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredEntry {
    pub object_classes: Vec<String>,
    /// Attribute name (as tenure writes it) → values; empty = must be absent.
    pub attrs: BTreeMap<String, Vec<String>>,
    /// Group cns the account should be a member of.
    pub groups: BTreeSet<String>,
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// `{username}`, `{fields.NAME}`… filled from the account's state.
pub fn fill(template: &str, state: &Value) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let key = &after[..close];
        let value = match key.strip_prefix("fields.") {
            Some(field) => state.get("fields").and_then(|f| text(f, field)),
            None => text(state, key),
        };
        out.push_str(value.unwrap_or(""));
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

fn generalized(date: NaiveDate) -> String {
    format!("{}000000Z", date.format("%Y%m%d"))
}

pub fn person_dn(cfg: &LdapConfig, username: &str) -> String {
    format!("uid={},{}", dn_escape(username), cfg.people_dn)
}

pub fn group_dn(cfg: &LdapConfig, cn: &str) -> String {
    format!("cn={},{}", dn_escape(cn), cfg.groups_dn)
}

/// The directory group cn of a tenure group, if the connector carries it.
fn target_group<'a>(cfg: &'a LdapConfig, group: &'a str) -> Option<&'a str> {
    if cfg.group_map.is_empty() {
        Some(group)
    } else {
        cfg.group_map.get(group).map(String::as_str)
    }
}

/// Whether tenure manages this directory group (may add and remove members).
fn manages_group(cfg: &LdapConfig, cn: &str) -> bool {
    cfg.group_map.is_empty() || cfg.group_map.values().any(|g| g.eq_ignore_ascii_case(cn))
}

/// What the job document says the entry should be. `account` is the state
/// after the change (null once purged), `password_hash` the PHC string.
pub fn desired(cfg: &LdapConfig, document: &Value) -> Result<Desired, String> {
    let state = &document["account"];
    let username = text(state, "username")
        .or_else(|| text(&document["previous"], "username"))
        .ok_or("the job names no account")?
        .to_string();
    let mut dn = person_dn(cfg, &username);
    if state.is_null() {
        return Ok(Desired {
            dn,
            username,
            entry: None,
        });
    }
    let status = text(state, "status").unwrap_or("active");
    let action = match status {
        "disabled" => Some(cfg.on_disable),
        "deleted" => Some(cfg.on_delete),
        _ => None,
    };
    if action == Some(TargetAction::Delete) {
        return Ok(Desired {
            dn,
            username,
            entry: None,
        });
    }
    if action == Some(TargetAction::Move) {
        if let Some(base) = &cfg.deleted_dn {
            dn = format!("uid={},{base}", dn_escape(&username));
        }
    }
    let uid_number = state
        .get("uid_number")
        .and_then(Value::as_u64)
        .ok_or("the account has no uidNumber yet")?;
    let display = text(state, "display_name").unwrap_or(&username).to_string();
    let words: Vec<&str> = display.split_whitespace().collect();
    let sn = if words.len() > 1 {
        words[words.len() - 1..].join(" ")
    } else {
        display.clone()
    };
    let given = (words.len() > 1).then(|| words[..words.len() - 1].join(" "));
    let mut attrs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut set = |k: &str, v: Option<String>| {
        attrs.insert(k.to_string(), v.into_iter().collect());
    };
    set("uid", Some(username.clone()));
    set("cn", Some(display.clone()));
    set("sn", Some(sn));
    set("givenName", given);
    set("displayName", Some(display.clone()));
    set("mail", text(state, "email").map(str::to_string));
    set("employeeType", text(state, "kind").map(str::to_string));
    set("o", text(state, "company").map(str::to_string));
    set("uidNumber", Some(uid_number.to_string()));
    set(
        "gidNumber",
        Some(cfg.gid_number.map_or(uid_number, u64::from).to_string()),
    );
    set("homeDirectory", Some(fill(&cfg.home_directory, state)));
    set("loginShell", Some(cfg.login_shell.clone()));
    set(
        "userPassword",
        text(document, "password_hash").map(|h| format!("{{ARGON2}}{h}")),
    );
    let date = |key: &str| text(state, key).and_then(|d| d.parse::<NaiveDate>().ok());
    set("pwdStartTime", date("start_date").map(generalized));
    // The end date is the last day the account may be used (UTC).
    set(
        "pwdEndTime",
        date("end_date").and_then(|d| d.succ_opt()).map(generalized),
    );
    let locked = status != "active";
    set("pwdAccountLockedTime", locked.then(|| LOCKED.to_string()));
    let mut object_classes = vec!["inetOrgPerson".to_string(), "posixAccount".to_string()];
    if cfg.ssh_public_keys {
        object_classes.push("ldapPublicKey".to_string());
        let keys: Vec<String> = state
            .get("ssh_keys")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        attrs.insert("sshPublicKey".into(), keys);
    }
    for (attr, template) in &cfg.attributes {
        let value = fill(template, state);
        attrs.insert(
            attr.clone(),
            (!value.is_empty()).then_some(value).into_iter().collect(),
        );
    }
    let groups = if matches!(
        action,
        Some(TargetAction::RemoveGroups | TargetAction::Move)
    ) {
        BTreeSet::new()
    } else {
        state
            .get("groups")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .filter_map(|g| target_group(cfg, g))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(Desired {
        dn,
        username,
        entry: Some(DesiredEntry {
            object_classes,
            attrs,
            groups,
        }),
    })
}

/// Where person entries live: people_dn, and deleted_dn unless it is
/// inside people_dn already.
fn bases(cfg: &LdapConfig) -> Vec<&str> {
    let mut out = vec![cfg.people_dn.as_str()];
    if let Some(d) = cfg.deleted_dn.as_deref() {
        let inside = d
            .to_ascii_lowercase()
            .ends_with(&format!(",{}", cfg.people_dn.to_ascii_lowercase()));
        if !inside {
            out.push(d);
        }
    }
    out
}

/// A person entry as tenure compares it.
fn object_of(entry: SearchEntry) -> TargetObject {
    let mut attrs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in entry.attrs {
        attrs.entry(k.to_ascii_lowercase()).or_default().extend(v);
    }
    let username = attrs.get("uid").and_then(|v| v.first().cloned());
    let enabled = !attrs.contains_key("pwdaccountlockedtime");
    TargetObject {
        id: entry.dn,
        username,
        enabled,
        attrs,
        groups: BTreeSet::new(),
        unreadable: BTreeSet::new(),
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// Field-by-field differences between what tenure wants and what is there.
pub fn drift(want: &DesiredEntry, have: &TargetObject) -> Vec<Drift> {
    let mut out = Vec::new();
    let classes: HashSet<String> = have
        .values("objectClass")
        .iter()
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let missing: Vec<&String> = want
        .object_classes
        .iter()
        .filter(|c| !classes.contains(&c.to_ascii_lowercase()))
        .collect();
    if !missing.is_empty() {
        out.push(Drift {
            field: "objectClass".into(),
            tenure: want.object_classes.join(", "),
            target: sorted(have.values("objectClass")).join(", "),
        });
    }
    for (attr, values) in &want.attrs {
        if have.unreadable.contains(&attr.to_ascii_lowercase()) {
            continue;
        }
        let (w, h) = (sorted(values.clone()), sorted(have.values(attr)));
        if w != h {
            let show = |v: &[String]| {
                if attr == "userPassword" {
                    // Never print a hash: say only whether it matches.
                    if v.is_empty() {
                        "(none)".into()
                    } else {
                        "(a hash)".into()
                    }
                } else if v.is_empty() {
                    "(none)".to_string()
                } else {
                    v.join(", ")
                }
            };
            let (tenure, target) = if attr == "userPassword" && !w.is_empty() && !h.is_empty() {
                ("(tenure's hash)".to_string(), "(another hash)".to_string())
            } else {
                (show(&w), show(&h))
            };
            out.push(Drift {
                field: attr.clone(),
                tenure,
                target,
            });
        }
    }
    let want_groups: BTreeSet<String> =
        want.groups.iter().map(|g| g.to_ascii_lowercase()).collect();
    if want_groups != have.groups {
        out.push(Drift {
            field: "groups".into(),
            tenure: want_groups.iter().cloned().collect::<Vec<_>>().join(", "),
            target: have.groups.iter().cloned().collect::<Vec<_>>().join(", "),
        });
    }
    out
}

/// An LDAP error as one line naming what was tried (cut to 400 bytes).
pub fn describe(what: &str, e: LdapError) -> String {
    let mut s = match e {
        LdapError::LdapResult { result } => format!("{what}: {result}"),
        other => format!("{what}: {other}"),
    };
    s.truncate(400);
    s
}

/// A connection to `url` bound as `bind_dn` with the password in
/// `password_file` (StartTLS first when asked): the connectors' and the
/// directory sources' one way in.
pub fn bound(
    url: &str,
    starttls: bool,
    bind_dn: &str,
    password_file: &std::path::Path,
    timeout: Duration,
) -> Result<LdapConn, String> {
    let password = std::fs::read_to_string(password_file).map_err(|e| {
        format!(
            "cannot read bind_password_file {}: {e}",
            password_file.display()
        )
    })?;
    let password = password.trim_end_matches(['\n', '\r']);
    let settings = LdapConnSettings::new()
        .set_conn_timeout(timeout)
        .set_starttls(starttls);
    let mut conn = LdapConn::with_settings(settings, url)
        .map_err(|e| describe(&format!("cannot reach {url}"), e))?;
    conn.with_timeout(timeout)
        .simple_bind(bind_dn, password)
        .and_then(|r| r.success())
        .map_err(|e| describe(&format!("bind as {bind_dn} refused"), e))?;
    Ok(conn)
}

fn rc_of(e: &LdapError) -> Option<u32> {
    match e {
        LdapError::LdapResult { result } => Some(result.rc),
        _ => None,
    }
}

fn relax() -> Vec<RawControl> {
    vec![RawControl {
        ctype: RELAX.into(),
        crit: true,
        val: None,
    }]
}

/// One bound connection to a directory.
pub struct Session {
    conn: LdapConn,
    timeout: Duration,
}

impl Session {
    pub fn open(cfg: &LdapConfig, timeout: Duration) -> Result<Session, String> {
        let conn = bound(
            &cfg.url,
            cfg.starttls,
            &cfg.bind_dn,
            &cfg.bind_password_file,
            timeout,
        )?;
        Ok(Session { conn, timeout })
    }

    fn search(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, LdapError> {
        let result =
            self.conn
                .with_timeout(self.timeout)
                .search(base, scope, filter, attrs.to_vec())?;
        if result.1.rc == 32 {
            return Ok(vec![]);
        }
        let (entries, _) = result.success()?;
        Ok(entries.into_iter().map(SearchEntry::construct).collect())
    }

    /// The person entry by its link DN, else by uid under people_dn.
    pub fn locate(
        &mut self,
        cfg: &LdapConfig,
        link: Option<&str>,
        username: &str,
    ) -> Result<Option<TargetObject>, String> {
        let attrs = ["*", "+"];
        if let Some(dn) = link {
            let found = self
                .search(dn, Scope::Base, "(objectClass=*)", &attrs)
                .map_err(|e| describe(&format!("read {dn}"), e))?;
            if let Some(e) = found.into_iter().next() {
                return self.with_groups(cfg, object_of(e)).map(Some);
            }
        }
        let filter = format!("(uid={})", ldap_escape(username));
        let bases = bases(cfg);
        for base in bases {
            let mut found = self
                .search(base, Scope::Subtree, &filter, &attrs)
                .map_err(|e| describe(&format!("search {base} for {filter}"), e))?;
            if found.len() > 1 {
                let dns: Vec<String> = found.iter().map(|e| e.dn.clone()).collect();
                return Err(disputed(format!(
                    "{} entries carry {filter} under {base} ({}): remove the one that is not theirs",
                    found.len(),
                    dns.join("; ")
                )));
            }
            if let Some(e) = found.pop() {
                return self.with_groups(cfg, object_of(e)).map(Some);
            }
        }
        Ok(None)
    }

    /// Adds the entry of a new account; `None` if one exists already there.
    fn create_new(&mut self, cfg: &LdapConfig, want: &Desired) -> Result<Option<String>, String> {
        let Some(entry) = &want.entry else {
            return Ok(None);
        };
        match self.add(&want.dn, Self::entry_attrs(entry)) {
            Ok(()) => {}
            Err(e) if rc_of(&e) == Some(68) => return Ok(None),
            Err(e) => return Err(describe(&format!("create {}", want.dn), e)),
        }
        for cn in &entry.groups {
            self.join_group(cfg, cn, &want.dn, &want.username)?;
        }
        Ok(Some(want.dn.clone()))
    }

    fn entry_attrs(entry: &DesiredEntry) -> Vec<(String, HashSet<String>)> {
        let mut attrs: Vec<(String, HashSet<String>)> = vec![(
            "objectClass".into(),
            entry.object_classes.iter().cloned().collect(),
        )];
        for (k, v) in &entry.attrs {
            if !v.is_empty() {
                attrs.push((k.clone(), v.iter().cloned().collect()));
            }
        }
        attrs
    }

    /// Moves an entry to `to` (another parent, same rdn).
    fn rename(&mut self, from: &str, to: &str) -> Result<(), String> {
        let (rdn, parent) = to
            .split_once(',')
            .ok_or_else(|| format!("cannot move {from} to {to}: no parent"))?;
        self.conn
            .with_timeout(self.timeout)
            .modifydn(from, rdn, true, Some(parent))
            .and_then(|r| r.success())
            .map(|_| ())
            .map_err(|e| describe(&format!("move {from} to {to}"), e))
    }

    fn member_filter(cfg: &LdapConfig, dn: &str, username: &str) -> String {
        match cfg.group_style {
            GroupStyle::GroupOfNames => format!("(member={})", ldap_escape(dn)),
            GroupStyle::PosixGroup => format!("(memberUid={})", ldap_escape(username)),
        }
    }

    fn with_groups(
        &mut self,
        cfg: &LdapConfig,
        mut found: TargetObject,
    ) -> Result<TargetObject, String> {
        let username = found.username.clone().unwrap_or_default();
        let filter = Self::member_filter(cfg, &found.id, &username);
        let groups = self
            .search(&cfg.groups_dn, Scope::Subtree, &filter, &["cn"])
            .map_err(|e| describe(&format!("search {} for {filter}", cfg.groups_dn), e))?;
        found.groups = groups
            .into_iter()
            .filter_map(|g| g.attrs.get("cn").and_then(|v| v.first().cloned()))
            .filter(|cn| manages_group(cfg, cn))
            .map(|cn| cn.to_ascii_lowercase())
            .collect();
        Ok(found)
    }

    fn modify(&mut self, dn: &str, mods: Vec<Mod<String>>) -> Result<(), LdapError> {
        self.conn
            .with_controls(relax())
            .with_timeout(self.timeout)
            .modify(dn, mods)?
            .success()
            .map(|_| ())
    }

    fn add(&mut self, dn: &str, attrs: Vec<(String, HashSet<String>)>) -> Result<(), LdapError> {
        self.conn
            .with_controls(relax())
            .with_timeout(self.timeout)
            .add(dn, attrs)?
            .success()
            .map(|_| ())
    }

    fn delete(&mut self, dn: &str) -> Result<(), LdapError> {
        let r = self.conn.with_timeout(self.timeout).delete(dn)?;
        if r.rc == 32 {
            return Ok(());
        }
        r.success().map(|_| ())
    }

    fn member_value(cfg: &LdapConfig, dn: &str, username: &str) -> (String, String) {
        match cfg.group_style {
            GroupStyle::GroupOfNames => ("member".into(), dn.to_string()),
            GroupStyle::PosixGroup => ("memberUid".into(), username.to_string()),
        }
    }

    fn join_group(
        &mut self,
        cfg: &LdapConfig,
        cn: &str,
        dn: &str,
        username: &str,
    ) -> Result<(), String> {
        let gdn = group_dn(cfg, cn);
        let (attr, value) = Self::member_value(cfg, dn, username);
        let set = |v: &str| HashSet::from([v.to_string()]);
        match self.modify(&gdn, vec![Mod::Add(attr.clone(), set(&value))]) {
            Ok(()) => Ok(()),
            Err(e) if rc_of(&e) == Some(20) => Ok(()), // already a member
            Err(e) if rc_of(&e) == Some(32) && cfg.group_style == GroupStyle::GroupOfNames => self
                .add(
                    &gdn,
                    vec![
                        ("objectClass".into(), set("groupOfNames")),
                        ("cn".into(), set(cn)),
                        (attr, set(&value)),
                    ],
                )
                .map_err(|e| describe(&format!("create group {gdn}"), e)),
            Err(e) if rc_of(&e) == Some(32) => Err(format!(
                "group {gdn} does not exist (posixGroup groups are not created by tenure)"
            )),
            Err(e) => Err(describe(&format!("add {username} to {gdn}"), e)),
        }
    }

    fn leave_group(
        &mut self,
        cfg: &LdapConfig,
        cn: &str,
        dn: &str,
        username: &str,
    ) -> Result<(), String> {
        let gdn = group_dn(cfg, cn);
        let (attr, value) = Self::member_value(cfg, dn, username);
        match self.modify(&gdn, vec![Mod::Delete(attr, HashSet::from([value]))]) {
            Ok(()) => Ok(()),
            Err(e) if matches!(rc_of(&e), Some(16) | Some(32)) => Ok(()),
            // groupOfNames must keep a member: the last one leaving removes it.
            Err(e) if rc_of(&e) == Some(65) => self
                .delete(&gdn)
                .map_err(|e| describe(&format!("remove emptied group {gdn}"), e)),
            Err(e) => Err(describe(&format!("remove {username} from {gdn}"), e)),
        }
    }

    /// Makes the directory hold what `want` says. Returns the entry's DN
    /// (None when it is gone).
    pub fn converge(
        &mut self,
        cfg: &LdapConfig,
        want: &Desired,
        found: Option<TargetObject>,
    ) -> Result<Option<String>, String> {
        let Some(entry) = &want.entry else {
            if let Some(found) = found {
                for cn in found.groups.clone() {
                    self.leave_group(cfg, &cn, &found.id, &want.username)?;
                }
                self.delete(&found.id)
                    .map_err(|e| describe(&format!("delete {}", found.id), e))?;
            }
            return Ok(None);
        };
        let dn = match found {
            None => {
                self.add(&want.dn, Self::entry_attrs(entry))
                    .map_err(|e| describe(&format!("create {}", want.dn), e))?;
                for cn in &entry.groups {
                    self.join_group(cfg, cn, &want.dn, &want.username)?;
                }
                return Ok(Some(want.dn.clone()));
            }
            Some(mut found) => {
                // Moved on delete, or back on restore: out of its groups
                // under the old DN first (no referential integrity assumed).
                if !found.id.eq_ignore_ascii_case(&want.dn) {
                    for cn in std::mem::take(&mut found.groups) {
                        self.leave_group(cfg, &cn, &found.id, &want.username)?;
                    }
                    self.rename(&found.id, &want.dn)?;
                    found.id = want.dn.clone();
                }
                let mut mods: Vec<Mod<String>> = Vec::new();
                let classes: HashSet<String> = found
                    .values("objectClass")
                    .iter()
                    .map(|c| c.to_ascii_lowercase())
                    .collect();
                let missing: HashSet<String> = entry
                    .object_classes
                    .iter()
                    .filter(|c| !classes.contains(&c.to_ascii_lowercase()))
                    .cloned()
                    .collect();
                if !missing.is_empty() {
                    mods.push(Mod::Add("objectClass".into(), missing));
                }
                for (attr, values) in &entry.attrs {
                    let have = sorted(found.values(attr));
                    let want_v = sorted(values.clone());
                    if have == want_v {
                        continue;
                    }
                    if want_v.is_empty() {
                        mods.push(Mod::Delete(attr.clone(), HashSet::new()));
                    } else {
                        mods.push(Mod::Replace(attr.clone(), want_v.into_iter().collect()));
                    }
                }
                if !mods.is_empty() {
                    self.modify(&found.id, mods)
                        .map_err(|e| describe(&format!("update {}", found.id), e))?;
                }
                let want_groups: BTreeMap<String, &String> = entry
                    .groups
                    .iter()
                    .map(|g| (g.to_ascii_lowercase(), g))
                    .collect();
                for cn in &found.groups {
                    if !want_groups.contains_key(cn) {
                        self.leave_group(cfg, cn, &found.id, &want.username)?;
                    }
                }
                for (lower, cn) in &want_groups {
                    if !found.groups.contains(lower) {
                        self.join_group(cfg, cn, &found.id, &want.username)?;
                    }
                }
                found.id
            }
        };
        Ok(Some(dn))
    }

    /// Every person entry under people_dn (paged), with its groups.
    pub fn people(&mut self, cfg: &LdapConfig) -> Result<Vec<TargetObject>, String> {
        use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
        let mut out = Vec::new();
        let bases = bases(cfg);
        for base in bases {
            let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
                Box::new(EntriesOnly::new()),
                Box::new(PagedResults::new(500)),
            ];
            let mut stream = self
                .conn
                .streaming_search_with(
                    adapters,
                    base,
                    Scope::Subtree,
                    "(|(objectClass=inetOrgPerson)(objectClass=posixAccount))",
                    vec!["*", "+"],
                )
                .map_err(|e| describe(&format!("search {base}"), e))?;
            loop {
                match stream.next() {
                    Ok(Some(entry)) => out.push(object_of(SearchEntry::construct(entry))),
                    Ok(None) => break,
                    Err(e) => return Err(describe(&format!("search {base}"), e)),
                }
            }
            let result = stream.result();
            if result.rc != 0 && result.rc != 32 {
                return Err(format!("search {base}: {result}"));
            }
        }
        // A bind DN that may write userPassword but not read it (a common
        // ACL) shows it on no entry at all: then it cannot be compared, and
        // is not reported as drift on every run.
        if !out.is_empty() && !out.iter().any(|o| o.attrs.contains_key("userpassword")) {
            for o in &mut out {
                o.unreadable.insert("userpassword".into());
            }
        }
        // Group memberships in one pass over the managed groups.
        let attr = match cfg.group_style {
            GroupStyle::GroupOfNames => "member",
            GroupStyle::PosixGroup => "memberUid",
        };
        let groups = self
            .search(
                &cfg.groups_dn,
                Scope::Subtree,
                "(|(objectClass=groupOfNames)(objectClass=posixGroup))",
                &["cn", attr],
            )
            .map_err(|e| describe(&format!("search {}", cfg.groups_dn), e))?;
        let mut by_member: HashMap<String, BTreeSet<String>> = HashMap::new();
        for g in groups {
            let Some(cn) = g.attrs.get("cn").and_then(|v| v.first()).cloned() else {
                continue;
            };
            if !manages_group(cfg, &cn) {
                continue;
            }
            for m in g.attrs.get(attr).into_iter().flatten() {
                by_member
                    .entry(m.to_ascii_lowercase())
                    .or_default()
                    .insert(cn.to_ascii_lowercase());
            }
        }
        for f in &mut out {
            let key = match cfg.group_style {
                GroupStyle::GroupOfNames => f.id.to_ascii_lowercase(),
                GroupStyle::PosixGroup => {
                    f.username.clone().unwrap_or_default().to_ascii_lowercase()
                }
            };
            f.groups = by_member.remove(&key).unwrap_or_default();
        }
        Ok(out)
    }

    /// Locks an entry tenure does not know (`--disable-unmatched`).
    pub fn lock(&mut self, dn: &str) -> Result<(), String> {
        self.modify(
            dn,
            vec![Mod::Replace(
                "pwdAccountLockedTime".into(),
                HashSet::from([LOCKED.to_string()]),
            )],
        )
        .map_err(|e| describe(&format!("lock {dn}"), e))
    }
}

/// Why the entry found under the account's name (not through its link) is
/// someone else's: it carries another uidNumber than the one tenure gave the
/// account (uidNumbers are stable for an account's life). None: it is ours
/// to converge, or the admin said to adopt it.
pub fn dispute(want: &Desired, document: &Value, found: &TargetObject) -> Option<String> {
    if document.get("adopt").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    let linked = text(document, "link_id").is_some_and(|l| l.eq_ignore_ascii_case(&found.id));
    if linked {
        return None;
    }
    let ours = want.entry.as_ref()?.attrs.get("uidNumber")?.first()?;
    let theirs = found.values("uidNumber");
    let theirs = theirs.first()?;
    (theirs != ours).then(|| {
        format!(
            "{} carries uidNumber {theirs}, tenure gave '{}' {ours}: it looks like someone else's entry",
            found.id, want.username
        )
    })
}

/// How the entry `found` differs from what `document` asks for.
pub fn compare(
    cfg: &LdapConfig,
    document: &Value,
    found: Option<&TargetObject>,
) -> Result<Verdict, String> {
    let want = desired(cfg, document)?;
    if let Some(why) = found.and_then(|f| dispute(&want, document, f)) {
        return Ok(Verdict::Disputed(why));
    }
    Ok(match (&want.entry, found) {
        (None, None) => Verdict::InSync,
        (None, Some(_)) => Verdict::Unwanted,
        (Some(_), None) => Verdict::Missing,
        (Some(entry), Some(have)) => {
            let mut d = drift(entry, have);
            if !have.id.eq_ignore_ascii_case(&want.dn) {
                d.insert(
                    0,
                    Drift {
                        field: "dn".into(),
                        tenure: want.dn.clone(),
                        target: have.id.clone(),
                    },
                );
            }
            if d.is_empty() {
                Verdict::InSync
            } else {
                Verdict::Drifted(d)
            }
        }
    })
}

/// The connector's connections, one per configured LDAP connector, kept
/// between jobs and dropped after any error (the next job reconnects).
#[derive(Default)]
pub struct Pool {
    sessions: Mutex<HashMap<String, Session>>,
}

impl Pool {
    /// Runs `f` on the connector's session, opening it if needed.
    pub fn with<T>(
        &self,
        connector: &ConnectorConfig,
        cfg: &LdapConfig,
        f: impl FnOnce(&mut Session) -> Result<T, String>,
    ) -> Result<T, String> {
        let mut sessions = self
            .sessions
            .lock()
            .map_err(|_| "ldap session lock poisoned".to_string())?;
        let mut session = match sessions.remove(&connector.name) {
            Some(s) => s,
            None => Session::open(cfg, Duration::from_secs(connector.timeout_seconds))?,
        };
        let out = f(&mut session);
        if out.is_ok() {
            sessions.insert(connector.name.clone(), session);
        }
        out
    }

    /// Every person entry under people_dn.
    pub fn read_all(
        &self,
        connector: &ConnectorConfig,
        cfg: &LdapConfig,
    ) -> Result<Vec<TargetObject>, String> {
        self.with(connector, cfg, |s| s.people(cfg))
    }

    pub fn disable(
        &self,
        connector: &ConnectorConfig,
        cfg: &LdapConfig,
        dn: &str,
    ) -> Result<(), String> {
        self.with(connector, cfg, |s| s.lock(dn))
    }

    pub fn apply(
        &self,
        connector: &ConnectorConfig,
        cfg: &LdapConfig,
        document: &Value,
    ) -> Result<Option<String>, String> {
        let want = desired(cfg, document)?;
        let link = text(document, "link_id");
        let fresh = link.is_none() && text(document, "action") == Some("create");
        self.with(connector, cfg, |s| {
            // A new account's entry is most likely not there: add it in one
            // round trip, and look only if the directory says it exists.
            if fresh {
                if let Some(dn) = s.create_new(cfg, &want)? {
                    return Ok(Some(dn));
                }
            }
            let found = s.locate(cfg, link, &want.username)?;
            if let Some(why) = found.as_ref().and_then(|f| dispute(&want, document, f)) {
                return Err(disputed(why));
            }
            s.converge(cfg, &want, found)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg() -> LdapConfig {
        LdapConfig {
            url: "ldap://127.0.0.1:1".into(),
            starttls: false,
            bind_dn: "cn=admin,dc=x".into(),
            bind_password_file: "/nonexistent".into(),
            people_dn: "ou=people,dc=x".into(),
            groups_dn: "ou=groups,dc=x".into(),
            on_disable: TargetAction::Disable,
            on_delete: TargetAction::Delete,
            group_style: GroupStyle::GroupOfNames,
            group_map: BTreeMap::new(),
            attributes: BTreeMap::from([("title".into(), "{project} ({fields.team})".into())]),
            uid_number_start: 10000,
            gid_number: None,
            home_directory: "/home/{username}".into(),
            login_shell: "/bin/sh".into(),
            ssh_public_keys: true,
            deleted_dn: None,
        }
    }

    fn doc(status: &str) -> Value {
        json!({
            "action": "update",
            "account": {
                "username": "bob", "display_name": "Bob van Dam", "email": "bob@x.io",
                "kind": "contractor", "company": "Acme", "project": "apollo",
                "start_date": "2027-01-01", "end_date": "2027-03-31", "status": status,
                "groups": ["dev", "ops"], "fields": {"team": "red"}, "uid_number": 10007,
                "ssh_keys": ["ssh-ed25519 AAAA bob@laptop"],
            },
            "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
            "link_id": null,
        })
    }

    #[test]
    fn an_active_account_becomes_an_unlocked_posix_entry_with_its_dates_and_hash() {
        let d = desired(&cfg(), &doc("active")).unwrap();
        assert_eq!(d.dn, "uid=bob,ou=people,dc=x");
        let e = d.entry.unwrap();
        let one = |k: &str| e.attrs[k].join("|");
        assert_eq!(one("cn"), "Bob van Dam");
        assert_eq!(one("givenName"), "Bob van");
        assert_eq!(one("sn"), "Dam");
        assert_eq!(one("uidNumber"), "10007");
        assert_eq!(one("gidNumber"), "10007");
        assert_eq!(one("homeDirectory"), "/home/bob");
        assert_eq!(one("pwdStartTime"), "20270101000000Z");
        assert_eq!(
            one("pwdEndTime"),
            "20270401000000Z",
            "the day after the last day"
        );
        assert!(one("userPassword").starts_with("{ARGON2}$argon2id$"));
        assert_eq!(one("pwdAccountLockedTime"), "");
        assert_eq!(one("title"), "apollo (red)");
        assert_eq!(one("sshPublicKey"), "ssh-ed25519 AAAA bob@laptop");
        assert_eq!(e.groups, BTreeSet::from(["dev".into(), "ops".into()]));
    }

    #[test]
    fn disable_and_delete_follow_the_connector_settings() {
        let mut c = cfg();
        let d = desired(&c, &doc("disabled")).unwrap().entry.unwrap();
        assert_eq!(d.attrs["pwdAccountLockedTime"], [LOCKED]);
        assert_eq!(d.groups.len(), 2);
        c.on_disable = TargetAction::RemoveGroups;
        let d = desired(&c, &doc("disabled")).unwrap().entry.unwrap();
        assert!(d.groups.is_empty());
        assert!(desired(&c, &doc("deleted")).unwrap().entry.is_none());
        c.on_delete = TargetAction::Disable;
        assert!(desired(&c, &doc("deleted")).unwrap().entry.is_some());
        // Purged: the state is gone, the name comes from before.
        let purged = json!({"account": null, "previous": {"username": "bob"}});
        let d = desired(&c, &purged).unwrap();
        assert_eq!((d.dn.as_str(), d.entry), ("uid=bob,ou=people,dc=x", None));
        // A group map carries only the mapped groups, under their target names.
        c.group_map = BTreeMap::from([("dev".into(), "developers".into())]);
        let d = desired(&c, &doc("active")).unwrap().entry.unwrap();
        assert_eq!(d.groups, BTreeSet::from(["developers".into()]));
    }

    #[test]
    fn drift_names_the_field_and_never_prints_a_hash() {
        let want = desired(&cfg(), &doc("active")).unwrap().entry.unwrap();
        let mut attrs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in &want.attrs {
            attrs.insert(k.to_ascii_lowercase(), v.clone());
        }
        attrs.insert("objectclass".into(), want.object_classes.clone());
        let mut have = TargetObject {
            id: "uid=bob,ou=people,dc=x".into(),
            username: Some("bob".into()),
            enabled: true,
            attrs,
            groups: BTreeSet::from(["dev".into(), "ops".into()]),
            unreadable: BTreeSet::new(),
        };
        assert!(drift(&want, &have).is_empty());
        have.attrs.insert("mail".into(), vec!["evil@x.io".into()]);
        have.attrs
            .insert("userpassword".into(), vec!["{SSHA}abc".into()]);
        have.groups.remove("ops");
        let d = drift(&want, &have);
        let fields: Vec<&str> = d.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(fields, ["mail", "userPassword", "groups"]);
        assert_eq!(
            (d[0].tenure.as_str(), d[0].target.as_str()),
            ("bob@x.io", "evil@x.io")
        );
        assert!(!d[1].tenure.contains("argon2") && !d[1].target.contains("SSHA"));
    }
}
