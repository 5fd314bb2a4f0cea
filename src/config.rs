//! The typed configuration. Errors name the file, the line and what is wrong.
//! Relative paths resolve against the config file's own directory.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::domain::validate::{validate_email, validate_group_name};
use crate::domain::{CustomField, FieldType, Policy, Role, Template};
use crate::text::escape_text;

/// The example config, embedded: it is also the default when no file is given.
pub const EXAMPLE: &str = include_str!("../config.example.toml");

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: Vec<SocketAddr>,
    pub data_dir: PathBuf,
    pub keys_dir: PathBuf,
    pub hardened: bool,
    /// Global allowlist checked at TCP accept; empty admits any address.
    pub allowlist: Vec<ipnet::IpNet>,
    pub login_grace_seconds: u64,
    pub max_unauthenticated: usize,
    /// Unauthenticated connections one address may hold (sshd's PerSourceMaxStartups).
    pub max_unauthenticated_per_address: usize,
    /// Random early drop (sshd's MaxStartups start:rate:full): past `start`
    /// unauthenticated connections, a new one is dropped with probability
    /// `rate` %, rising linearly to 100 % at `max_unauthenticated`.
    pub early_drop_start: usize,
    pub early_drop_rate: u32,
    /// Channels (exec or console) one connection may hold open (sshd's MaxSessions).
    pub max_channels_per_connection: usize,
    /// Live sessions one account may hold, and the whole server.
    pub max_sessions_per_account: usize,
    pub max_sessions: usize,
    /// Consoles one account may have open at once (each holds two frame
    /// buffers of up to 500×200 cells, ~10 MB while drawing).
    pub max_consoles_per_account: usize,
}

/// A way to log in: one or two factors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
pub enum LoginMethod {
    #[serde(rename = "key")]
    Key,
    #[serde(rename = "key+totp")]
    KeyTotp,
    #[serde(rename = "password+totp")]
    PasswordTotp,
    #[serde(rename = "password")]
    Password,
}

impl LoginMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginMethod::Key => "key",
            LoginMethod::KeyTotp => "key+totp",
            LoginMethod::PasswordTotp => "password+totp",
            LoginMethod::Password => "password",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The login methods each role may use. An account with several roles
    /// follows its strongest role (admin, operator, sponsor, user).
    #[serde(default = "default_methods")]
    pub methods: BTreeMap<Role, Vec<LoginMethod>>,
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    #[serde(default = "default_failure_window")]
    pub failure_window_seconds: u64,
    #[serde(default = "default_lockout")]
    pub lockout_seconds: u64,
    #[serde(default = "default_lockout_max")]
    pub lockout_max_seconds: u64,
    /// At most this many password hashes are checked at once.
    #[serde(default = "default_argon2_concurrency")]
    pub argon2_concurrency: usize,
    /// Password and code attempts one connection may make before it is
    /// disconnected (sshd's MaxAuthTries).
    #[serde(default = "default_max_auth_tries")]
    pub max_auth_tries: u32,
    /// Addresses whose failures never lock anything out (the admins'
    /// bastion; sshd's PerSourcePenaltyExemptList): CIDRs or addresses.
    #[serde(default, deserialize_with = "nets")]
    pub throttle_exempt: Vec<ipnet::IpNet>,
}

fn default_max_auth_tries() -> u32 {
    6
}

/// CIDRs or plain addresses (a plain address is its /32 or /128).
fn nets<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
    let texts: Vec<String> = Deserialize::deserialize(d)?;
    texts
        .iter()
        .map(|text| {
            text.parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| {
                    serde::de::Error::custom(format!("'{text}' is not a CIDR (e.g. 10.0.0.0/8)"))
                })
        })
        .collect()
}

fn default_methods() -> BTreeMap<Role, Vec<LoginMethod>> {
    Role::ALL
        .iter()
        .map(|r| (*r, vec![LoginMethod::Key]))
        .collect()
}
fn default_max_failures() -> u32 {
    5
}
fn default_failure_window() -> u64 {
    300
}
fn default_lockout() -> u64 {
    60
}
fn default_lockout_max() -> u64 {
    3600
}
fn default_argon2_concurrency() -> usize {
    2
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            methods: default_methods(),
            max_failures: default_max_failures(),
            failure_window_seconds: default_failure_window(),
            lockout_seconds: default_lockout(),
            lockout_max_seconds: default_lockout_max(),
            argon2_concurrency: default_argon2_concurrency(),
            max_auth_tries: default_max_auth_tries(),
            throttle_exempt: Vec::new(),
        }
    }
}

impl AuthConfig {
    /// The methods for an account with these roles (its strongest role decides).
    pub fn methods_for(&self, roles: &BTreeSet<Role>) -> Vec<LoginMethod> {
        let strongest = [Role::Admin, Role::Operator, Role::Sponsor, Role::User]
            .into_iter()
            .find(|r| roles.contains(r))
            .unwrap_or(Role::User);
        self.methods
            .get(&strongest)
            .cloned()
            .unwrap_or_else(|| vec![LoginMethod::Key])
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    /// Close a session without input for this many minutes (0 = never).
    #[serde(default = "default_idle")]
    pub idle_timeout_minutes: f64,
    /// Close any session after this many hours (0 = never).
    #[serde(default = "default_max_hours")]
    pub max_session_hours: f64,
}

fn default_idle() -> f64 {
    30.0
}
fn default_max_hours() -> f64 {
    12.0
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            idle_timeout_minutes: default_idle(),
            max_session_hours: default_max_hours(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Who hears about every created account (IT, security…).
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Also tell the account's sponsor.
    #[serde(default = "yes")]
    pub notify_sponsor: bool,
    /// Also tell the account holder (expiry warnings).
    #[serde(default)]
    pub notify_account: bool,
    /// Email delivery; without it no mail is queued.
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    /// JSON POSTs signed with HMAC-SHA256 (header `X-Tenure-Signature: sha256=HEX`).
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// Subject and body per event (created, expiry_warning, disabled, deleted),
    /// with {placeholders}; the built-in text is used for events not listed.
    #[serde(default)]
    pub templates: BTreeMap<String, MessageTemplate>,
    /// Seconds before the first retry of a failed delivery; doubles each time, capped at an hour.
    #[serde(default = "default_retry")]
    pub retry_seconds: u64,
    /// A digest is sent once its oldest notice is this many hours old (`prefs set NAME --digest on`).
    #[serde(default = "default_digest_hours")]
    pub digest_hours: u32,
}

fn default_digest_hours() -> u32 {
    24
}

fn default_retry() -> u64 {
    30
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    pub from: String,
    /// "starttls" (required), or "plain" for a relay on this host.
    #[serde(default = "default_security")]
    pub security: String,
    #[serde(default)]
    pub username: Option<String>,
    /// A file holding the SMTP password (never the password itself in the config).
    #[serde(default)]
    pub password_file: Option<String>,
}

fn default_smtp_port() -> u16 {
    587
}
fn default_security() -> String {
    "starttls".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// A file holding the HMAC key.
    pub secret_file: String,
    /// Events to send (default: all).
    #[serde(default)]
    pub events: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageTemplate {
    pub subject: String,
    /// The body text, or…
    #[serde(default)]
    pub body: Option<String>,
    /// …a file holding it (relative to the config's directory), read at start.
    #[serde(default)]
    pub body_file: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from, for messages: a path or "embedded defaults".
    pub source: String,
    pub base_dir: PathBuf,
    pub server: ServerConfig,
    pub policy: Policy,
    pub custom_fields: Vec<CustomField>,
    pub templates: BTreeMap<String, Template>,
    pub notify: NotifyConfig,
    pub auth: AuthConfig,
    pub sessions: SessionsConfig,
    pub scheduler: SchedulerConfig,
    pub console: ConsoleConfig,
    /// Provisioning targets (`[[connectors]]`); none by default.
    pub connectors: Vec<ConnectorConfig>,
    /// `[passwords]`: length, common passwords, maximum age.
    pub passwords: crate::domain::password_policy::PasswordPolicy,
    /// `[requests]`: how long an account request waits.
    pub requests: RequestsConfig,
    /// Target hosts and the user CA (`[hosts]`).
    pub hosts: HostsConfig,
    /// The HTTP front door (`[http]`); off unless `listen` is set.
    pub http: Option<crate::http::config::HttpConfig>,
    /// Directories accounts are synced in from (`[[sources]]`); none by default.
    pub sources: Vec<SourceConfig>,
}

impl Config {
    /// The `[[sources]]` entry of that name.
    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.rules.name == name)
    }
}

/// How much of the tree under `base_dn` a source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchScope {
    /// The base entry and everything below it.
    Sub,
    /// The entries directly below the base.
    One,
}

impl SearchScope {
    pub fn as_str(self) -> &'static str {
        match self {
            SearchScope::Sub => "sub",
            SearchScope::One => "one",
        }
    }
}

/// One `[[sources]]` entry (`type = "ldap"`): a directory read in full each
/// run, paged (RFC 2696), its entries made into accounts.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Name, mapping, groups, kind, template, the deprovision threshold.
    pub rules: crate::domain::source::SourceRules,
    /// `ldap://` (with `starttls = true` to upgrade) or `ldaps://` (rustls).
    pub url: String,
    pub starttls: bool,
    pub bind_dn: String,
    pub bind_password_file: PathBuf,
    pub base_dn: String,
    pub filter: String,
    pub scope: SearchScope,
    pub page_size: i32,
    /// A run every this many minutes in the server (None: only by hand).
    pub interval_minutes: Option<u32>,
    /// For connecting and for each page.
    pub timeout_seconds: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: String,
    #[serde(rename = "type")]
    kind_of_source: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    starttls: Option<bool>,
    #[serde(default)]
    bind_dn: Option<String>,
    #[serde(default)]
    bind_password_file: Option<String>,
    #[serde(default)]
    base_dn: Option<String>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    page_size: Option<i32>,
    #[serde(default)]
    map: Option<RawSourceMap>,
    #[serde(default)]
    id_attribute: Option<String>,
    #[serde(default)]
    member_of_attribute: Option<String>,
    #[serde(default)]
    groups: Option<BTreeMap<String, String>>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    interval_minutes: Option<u32>,
    #[serde(default)]
    max_deprovision_percent: Option<u32>,
    #[serde(default)]
    timeout_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSourceMap {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    company: Option<String>,
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    sponsor: Option<String>,
    #[serde(default)]
    start_date: Option<String>,
    #[serde(default)]
    end_date: Option<String>,
    #[serde(default)]
    fields: BTreeMap<String, String>,
}

/// `[requests]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestsConfig {
    /// A pending request is closed (and its requester told) after this many days.
    #[serde(default = "default_request_expiry")]
    pub expire_days: u32,
    /// Who may approve account requests of a kind (e.g. `vendor = ["sec-admin"]`);
    /// kinds not listed: any admin.
    #[serde(default)]
    pub approvers: BTreeMap<crate::domain::Kind, Vec<String>>,
}

fn default_request_expiry() -> u32 {
    14
}

impl Default for RequestsConfig {
    fn default() -> Self {
        RequestsConfig {
            expire_days: default_request_expiry(),
            approvers: BTreeMap::new(),
        }
    }
}

/// `[hosts]`: certificates tenure issues as an OpenSSH user CA.
#[derive(Debug, Clone)]
pub struct HostsConfig {
    /// Validity of a certificate when `cert --valid` is not given.
    pub cert_validity: chrono::Duration,
    /// The longest validity anyone may ask for.
    pub cert_max_validity: chrono::Duration,
    /// Add each of the account's groups as a principal (besides the username).
    pub group_principals: bool,
}

impl Default for HostsConfig {
    fn default() -> Self {
        HostsConfig {
            cert_validity: chrono::Duration::hours(8),
            cert_max_validity: chrono::Duration::days(7),
            group_principals: false,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHosts {
    #[serde(default)]
    cert_validity: Option<Spanned<String>>,
    #[serde(default)]
    cert_max_validity: Option<Spanned<String>>,
    #[serde(default)]
    group_principals: bool,
}

/// How a connector reaches its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectorType {
    /// A program run with the job as one JSON document on stdin (argv, no shell).
    Command { argv: Vec<String> },
    /// An LDAP directory (OpenLDAP with ppolicy in the tests).
    Ldap(Box<LdapConfig>),
    /// A SCIM 2.0 service provider (RFC 7643/7644).
    Scim(Box<ScimConfig>),
}

/// A `type = "scim"` connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimConfig {
    /// The base URL, e.g. `https://app.example.com/scim/v2`.
    pub url: String,
    pub bearer_token_file: PathBuf,
    /// `disable`: active=false; `remove_groups`: that and out of every group; `delete`: DELETE.
    pub on_disable: TargetAction,
    /// `delete`: DELETE; `disable`/`remove_groups`: kept with active=false.
    pub on_delete: TargetAction,
    /// tenure group → target group displayName; empty = every group, same name.
    pub group_map: BTreeMap<String, String>,
    /// Change group membership with PATCH (falling back to PUT when the
    /// target refuses it); false: always PUT the whole group.
    pub patch: bool,
}

impl ConnectorType {
    pub fn as_str(&self) -> &'static str {
        match self {
            ConnectorType::Command { .. } => "command",
            ConnectorType::Ldap(_) => "ldap",
            ConnectorType::Scim(_) => "scim",
        }
    }
}

/// What disabling or deleting an account does in a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetAction {
    /// Keep the object, locked (binds fail), groups kept.
    Disable,
    /// Locked, and taken out of every group tenure manages.
    RemoveGroups,
    /// The object is removed.
    Delete,
    /// LDAP `on_delete` only: the entry is locked, taken out of its groups
    /// and moved under `deleted_dn`; a restore moves it back.
    Move,
}

impl TargetAction {
    fn parse(text: &str) -> Option<TargetAction> {
        match text {
            "disable" => Some(TargetAction::Disable),
            "remove_groups" => Some(TargetAction::RemoveGroups),
            "delete" => Some(TargetAction::Delete),
            "move" => Some(TargetAction::Move),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TargetAction::Disable => "disable",
            TargetAction::RemoveGroups => "remove_groups",
            TargetAction::Delete => "delete",
            TargetAction::Move => "move",
        }
    }
}

/// How group membership is written in the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupStyle {
    /// `groupOfNames` with `member: <user DN>` (works with the memberof overlay).
    GroupOfNames,
    /// `posixGroup` with `memberUid: <username>`.
    PosixGroup,
}

/// An `type = "ldap"` connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapConfig {
    /// `ldap://` or `ldaps://` (rustls).
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS.
    pub starttls: bool,
    pub bind_dn: String,
    pub bind_password_file: PathBuf,
    pub people_dn: String,
    pub groups_dn: String,
    pub on_disable: TargetAction,
    pub on_delete: TargetAction,
    pub group_style: GroupStyle,
    /// tenure group → directory group cn; empty = every group under its own name.
    pub group_map: BTreeMap<String, String>,
    /// Extra or overriding attributes: directory attribute → template
    /// (`{username}`, `{display_name}`, `{email}`, `{company}`, `{project}`,
    /// `{kind}`, `{sponsor}`, `{fields.NAME}`).
    pub attributes: BTreeMap<String, String>,
    /// The first uidNumber tenure hands out.
    pub uid_number_start: u32,
    /// Every account's gidNumber; unset = the account's own uidNumber.
    pub gid_number: Option<u32>,
    pub home_directory: String,
    pub login_shell: String,
    /// Write `ldapPublicKey`/`sshPublicKey` (needs the openssh-lpk schema).
    pub ssh_public_keys: bool,
    /// Where `on_delete = "move"` puts a deleted account's entry.
    pub deleted_dn: Option<String>,
}

/// One `[[connectors]]` entry.
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    pub name: String,
    pub kind: ConnectorType,
    /// The kinds of account this target receives.
    pub kinds: BTreeSet<crate::domain::Kind>,
    pub timeout_seconds: u64,
    /// Reconcile on a schedule, every this many hours (unset: only by hand).
    pub reconcile_hours: Option<u32>,
    /// The target takes the password itself (SCIM, command): the service
    /// hands it to this connector once, in memory, when it is set.
    pub passwords: bool,
}

impl ConnectorConfig {
    pub fn covers(&self, account: &crate::domain::Account) -> bool {
        self.kinds.contains(&account.kind)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnector {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    command: Option<Vec<String>>,
    #[serde(default)]
    scope: Option<RawScope>,
    #[serde(default)]
    timeout_seconds: Option<u64>,
    #[serde(default)]
    reconcile_hours: Option<u32>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    starttls: Option<bool>,
    #[serde(default)]
    bind_dn: Option<String>,
    #[serde(default)]
    bind_password_file: Option<String>,
    #[serde(default)]
    people_dn: Option<String>,
    #[serde(default)]
    groups_dn: Option<String>,
    #[serde(default)]
    on_disable: Option<String>,
    #[serde(default)]
    on_delete: Option<String>,
    #[serde(default)]
    group_style: Option<String>,
    #[serde(default)]
    groups: Option<BTreeMap<String, String>>,
    #[serde(default)]
    attributes: Option<BTreeMap<String, String>>,
    #[serde(default)]
    uid_number_start: Option<u32>,
    #[serde(default)]
    gid_number: Option<u32>,
    #[serde(default)]
    home_directory: Option<String>,
    #[serde(default)]
    login_shell: Option<String>,
    #[serde(default)]
    ssh_public_keys: Option<bool>,
    #[serde(default)]
    bearer_token_file: Option<String>,
    #[serde(default)]
    patch: Option<bool>,
    #[serde(default)]
    deleted_dn: Option<String>,
    #[serde(default)]
    passwords: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScope {
    #[serde(default)]
    kinds: Option<Vec<String>>,
}

/// The console's defaults.
#[derive(Debug, Clone, Default)]
pub struct ConsoleConfig {
    /// The theme for accounts that chose none (a name from `themes/`).
    pub theme: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConsole {
    #[serde(default)]
    theme: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Seconds between lifecycle passes (one also runs at start).
    #[serde(default = "default_interval")]
    pub interval_seconds: u64,
}

fn default_interval() -> u64 {
    60
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            interval_seconds: default_interval(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    #[serde(default = "default_listen")]
    listen: Vec<Spanned<String>>,
    #[serde(default = "default_data_dir")]
    data_dir: String,
    #[serde(default = "default_keys_dir")]
    keys_dir: String,
    #[serde(default)]
    hardened: bool,
    #[serde(default)]
    allowlist: Vec<Spanned<String>>,
    #[serde(default = "default_grace")]
    login_grace_seconds: u64,
    #[serde(default = "default_max_unauth")]
    max_unauthenticated: usize,
    #[serde(default = "default_max_unauth_per_address")]
    max_unauthenticated_per_address: usize,
    #[serde(default)]
    early_drop_start: Option<usize>,
    #[serde(default = "default_early_drop_rate")]
    early_drop_rate: u32,
    #[serde(default = "default_max_channels")]
    max_channels_per_connection: usize,
    #[serde(default = "default_max_sessions_per_account")]
    max_sessions_per_account: usize,
    #[serde(default = "default_max_sessions")]
    max_sessions: usize,
    #[serde(default = "default_max_consoles_per_account")]
    max_consoles_per_account: usize,
}

fn default_max_consoles_per_account() -> usize {
    4
}

fn default_max_unauth_per_address() -> usize {
    16
}
fn default_early_drop_rate() -> u32 {
    30
}
fn default_max_channels() -> usize {
    10
}
fn default_max_sessions_per_account() -> usize {
    10
}
fn default_max_sessions() -> usize {
    512
}

fn default_grace() -> u64 {
    30
}
fn default_max_unauth() -> usize {
    64
}

fn default_listen() -> Vec<Spanned<String>> {
    vec![Spanned::new(0..0, "127.0.0.1:2222".to_string())]
}
fn default_data_dir() -> String {
    "data".into()
}
fn default_keys_dir() -> String {
    "keys".into()
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: default_listen(),
            data_dir: default_data_dir(),
            keys_dir: default_keys_dir(),
            hardened: false,
            allowlist: vec![],
            login_grace_seconds: default_grace(),
            max_unauthenticated: default_max_unauth(),
            max_unauthenticated_per_address: default_max_unauth_per_address(),
            early_drop_start: None,
            early_drop_rate: default_early_drop_rate(),
            max_channels_per_connection: default_max_channels(),
            max_sessions_per_account: default_max_sessions_per_account(),
            max_sessions: default_max_sessions(),
            max_consoles_per_account: default_max_consoles_per_account(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    policy: Policy,
    #[serde(default)]
    custom_fields: Vec<Spanned<CustomField>>,
    #[serde(default)]
    templates: BTreeMap<String, Spanned<Template>>,
    #[serde(default = "default_notify")]
    notify: Spanned<NotifyConfig>,
    #[serde(default)]
    auth: AuthConfig,
    #[serde(default)]
    sessions: SessionsConfig,
    #[serde(default)]
    scheduler: SchedulerConfig,
    #[serde(default)]
    console: RawConsole,
    #[serde(default)]
    connectors: Vec<Spanned<RawConnector>>,
    #[serde(default)]
    passwords: crate::domain::password_policy::PasswordPolicy,
    #[serde(default)]
    requests: RequestsConfig,
    #[serde(default)]
    hosts: RawHosts,
    #[serde(default)]
    http: crate::http::config::RawHttp,
    #[serde(default)]
    sources: Vec<Spanned<RawSource>>,
}

fn default_notify() -> Spanned<NotifyConfig> {
    Spanned::new(0..0, NotifyConfig::default())
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |before| before.matches('\n').count() + 1)
}

impl Config {
    /// Loads `path`, or the embedded example (paths relative to the current directory).
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError(format!("cannot read config {}: {e}", path.display()))
                })?;
                let base = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from("."));
                let base = std::fs::canonicalize(&base).unwrap_or(base);
                Config::parse(&text, &path.display().to_string(), &base)
            }
            None => {
                let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
                Config::parse(EXAMPLE, "embedded defaults", &base)
            }
        }
    }

    /// The config in `text` (from `source`, relative paths against
    /// `base_dir`). An error is one line: values quoted in it (a field name,
    /// a pattern) have their control characters escaped.
    pub fn parse(text: &str, source: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        Self::parse_unescaped(text, source, base_dir)
            .map_err(|ConfigError(message)| ConfigError(escape_text(&message).into_owned()))
    }

    fn parse_unescaped(text: &str, source: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|span| format!(" line {}:", line_of(text, span.start)))
                .unwrap_or_default();
            ConfigError(format!("config {source}:{at} {}", e.message().trim()))
        })?;
        let fail = |span: std::ops::Range<usize>, what: String| {
            ConfigError(format!(
                "config {source}: line {}: {what}",
                line_of(text, span.start)
            ))
        };

        if let Some(theme) = &raw.console.theme {
            if crate::tui::theme::Theme::named(theme.get_ref()).is_err() {
                return Err(fail(
                    theme.span(),
                    format!(
                        "console.theme: unknown theme '{}' (shipped: {})",
                        theme.get_ref(),
                        crate::tui::theme::SHIPPED
                            .iter()
                            .map(|(name, _)| *name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        let mut listen = Vec::new();
        for addr in &raw.server.listen {
            let parsed = addr.get_ref().parse::<SocketAddr>().map_err(|_| {
                fail(
                    addr.span(),
                    format!(
                        "server.listen: '{}' is not an ADDR:PORT (e.g. 127.0.0.1:2222)",
                        addr.get_ref()
                    ),
                )
            })?;
            listen.push(parsed);
        }

        let mut allowlist = Vec::new();
        for net in &raw.server.allowlist {
            let text = net.get_ref().trim();
            let parsed = text
                .parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    fail(
                        net.span(),
                        format!("server.allowlist: '{text}' is not a CIDR (e.g. 10.0.0.0/8)"),
                    )
                })?;
            allowlist.push(parsed.trunc());
        }
        for (role, methods) in &raw.auth.methods {
            if methods.is_empty() {
                return Err(ConfigError(format!(
                    "config {source}: auth.methods.{role} must list at least one method"
                )));
            }
        }
        if raw.auth.max_failures == 0 || raw.auth.argon2_concurrency == 0 {
            return Err(ConfigError(format!(
                "config {source}: auth.max_failures and auth.argon2_concurrency must be at least 1"
            )));
        }

        let mut custom_fields = Vec::new();
        let mut seen = BTreeSet::new();
        for spanned in raw.custom_fields {
            let span = spanned.span();
            let mut field = spanned.into_inner();
            let name_ok = field
                .name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase())
                && field
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !name_ok {
                return Err(fail(
                    span,
                    format!(
                        "custom_fields.name: '{}' must be lowercase letters, digits and '_'",
                        field.name
                    ),
                ));
            }
            if !seen.insert(field.name.clone()) {
                return Err(fail(
                    span,
                    format!("custom_fields.name: '{}' is declared twice", field.name),
                ));
            }
            match field.field_type {
                FieldType::Choice if field.choices.is_empty() => {
                    return Err(fail(
                        span,
                        format!(
                            "custom_fields '{}': type \"choice\" needs a non-empty choices list",
                            field.name
                        ),
                    ))
                }
                FieldType::Choice => {}
                _ if !field.choices.is_empty() => {
                    return Err(fail(
                        span,
                        format!(
                            "custom_fields '{}': choices are only for type \"choice\"",
                            field.name
                        ),
                    ))
                }
                _ => {}
            }
            if let Some(pattern) = &field.pattern {
                let anchored = format!("^(?:{pattern})$");
                let re = regex::Regex::new(&anchored).map_err(|e| {
                    let first = e.to_string().lines().last().unwrap_or_default().trim().to_string();
                    fail(span.clone(), format!("custom_fields '{}': pattern is not a valid regular expression: {first}", field.name))
                })?;
                field.compiled = Some(re);
            }
            custom_fields.push(field);
        }

        let mut templates = BTreeMap::new();
        for (name, spanned) in raw.templates {
            let span = spanned.span();
            let template = spanned.into_inner();
            for group in &template.groups {
                validate_group_name(group)
                    .map_err(|e| fail(span.clone(), format!("templates.{name}.groups: {e}")))?;
            }
            for field in template
                .required_fields
                .iter()
                .chain(template.fields.keys())
            {
                if !seen.contains(field) {
                    return Err(fail(
                        span,
                        format!(
                            "templates.{name}: field '{field}' is not declared in custom_fields"
                        ),
                    ));
                }
            }
            if template.duration_days == Some(0) {
                return Err(fail(
                    span,
                    format!("templates.{name}.duration_days must be at least 1"),
                ));
            }
            templates.insert(name, template);
        }

        let notify_span = raw.notify.span();
        let mut notify = raw.notify.into_inner();
        for recipient in &notify.recipients {
            validate_email(recipient)
                .map_err(|e| fail(notify_span.clone(), format!("notify.recipients: {e}")))?;
        }
        if let Some(smtp) = &notify.smtp {
            if !matches!(smtp.security.as_str(), "starttls" | "plain") {
                return Err(fail(
                    notify_span.clone(),
                    format!(
                        "notify.smtp.security: '{}' must be \"starttls\" or \"plain\"",
                        smtp.security
                    ),
                ));
            }
        }
        for (name, template) in notify.templates.iter_mut() {
            match (&template.body, &template.body_file) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(fail(
                        notify_span.clone(),
                        format!("notify.templates.{name}: give exactly one of body and body_file"),
                    ));
                }
                (None, Some(file)) => {
                    let path = if Path::new(file).is_absolute() {
                        PathBuf::from(file)
                    } else {
                        base_dir.join(file)
                    };
                    let text = std::fs::read_to_string(&path).map_err(|e| {
                        fail(
                            notify_span.clone(),
                            format!(
                                "notify.templates.{name}.body_file: cannot read {}: {e}",
                                path.display()
                            ),
                        )
                    })?;
                    template.body = Some(text);
                }
                (Some(_), None) => {}
            }
            if !crate::domain::notice::EVENTS.contains(&name.as_str()) {
                return Err(fail(
                    notify_span.clone(),
                    format!(
                        "notify.templates.{name}: unknown event (known: {})",
                        crate::domain::notice::EVENTS.join(", ")
                    ),
                ));
            }
        }
        if raw.policy.password_min_length < 8 {
            return Err(ConfigError(format!(
                "config {source}: policy.password_min_length must be at least 8"
            )));
        }
        if raw.passwords.min_length.is_some_and(|n| n < 8) {
            return Err(ConfigError(format!(
                "config {source}: passwords.min_length must be at least 8"
            )));
        }
        if raw.requests.expire_days == 0 {
            return Err(ConfigError(format!(
                "config {source}: requests.expire_days must be at least 1"
            )));
        }

        let resolve = |p: &str| {
            let path = PathBuf::from(p);
            if path.is_absolute() {
                path
            } else {
                base_dir.join(path)
            }
        };
        let mut connectors: Vec<ConnectorConfig> = Vec::new();
        for (i, spanned) in raw.connectors.iter().enumerate() {
            let span = spanned.span();
            let c = spanned.get_ref();
            let at = format!("connectors[{i}]");
            let valid_name = !c.name.is_empty()
                && c.name.len() <= 64
                && c.name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !valid_name {
                return Err(fail(
                    span,
                    format!("{at}.name: '{}' must be 1-64 of a-z, 0-9, - and _", c.name),
                ));
            }
            if connectors.iter().any(|o| o.name == c.name) {
                return Err(fail(
                    span,
                    format!(
                        "{at}.name: a connector named '{}' is already configured",
                        c.name
                    ),
                ));
            }
            // A setting the connector's type cannot do without.
            let which = if c.kind == "ldap" {
                "an ldap"
            } else {
                "a scim"
            };
            let need = |value: &Option<String>, key: &str, example: &str| {
                value
                    .clone()
                    .filter(|v| !v.trim().is_empty())
                    .ok_or_else(|| {
                        fail(
                            span.clone(),
                            format!("{at}.{key}: required for {which} connector, e.g. {example}"),
                        )
                    })
            };
            let kind = match c.kind.as_str() {
                "command" => {
                    let argv = c.command.clone().unwrap_or_default();
                    let Some(program) = argv.first().filter(|p| !p.trim().is_empty()) else {
                        return Err(fail(
                            span,
                            format!("{at}.command: give the program and its arguments, e.g. [\"/usr/local/bin/push\", \"--quiet\"]"),
                        ));
                    };
                    let mut argv = argv.clone();
                    if program.contains('/') {
                        argv[0] = resolve(program).display().to_string();
                    }
                    ConnectorType::Command { argv }
                }
                "ldap" => {
                    let url = need(&c.url, "url", "\"ldap://127.0.0.1:389\"")?;
                    if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
                        return Err(fail(
                            span,
                            format!("{at}.url: '{}' must start with ldap:// or ldaps://", crate::text::escape_text(&url)),
                        ));
                    }
                    let action = |value: &Option<String>, key: &str, default: TargetAction| match value {
                        None => Ok(default),
                        Some(v) => TargetAction::parse(v).ok_or_else(|| {
                            fail(span.clone(), format!("{at}.{key}: '{}' must be \"disable\", \"remove_groups\" or \"delete\" (on_delete may also be \"move\")", crate::text::escape_text(v)))
                        }),
                    };
                    let group_style = match c.group_style.as_deref() {
                        None | Some("groupOfNames") => GroupStyle::GroupOfNames,
                        Some("posixGroup") => GroupStyle::PosixGroup,
                        Some(other) => {
                            return Err(fail(
                                span,
                                format!("{at}.group_style: '{}' must be \"groupOfNames\" or \"posixGroup\"", crate::text::escape_text(other)),
                            ))
                        }
                    };
                    let on_delete = action(&c.on_delete, "on_delete", TargetAction::Delete)?;
                    let deleted_dn = c.deleted_dn.clone().filter(|d| !d.trim().is_empty());
                    if on_delete == TargetAction::Move && deleted_dn.is_none() {
                        return Err(fail(
                            span,
                            format!("{at}.deleted_dn: required with on_delete = \"move\", e.g. \"ou=deleted,dc=example,dc=com\""),
                        ));
                    }
                    if c.passwords == Some(true) {
                        return Err(fail(
                            span,
                            format!("{at}.passwords: an ldap connector gets tenure's argon2 hash, never the password (leave it out)"),
                        ));
                    }
                    ConnectorType::Ldap(Box::new(LdapConfig {
                        url,
                        starttls: c.starttls.unwrap_or(false),
                        bind_dn: need(&c.bind_dn, "bind_dn", "\"cn=admin,dc=example,dc=com\"")?,
                        bind_password_file: resolve(&need(
                            &c.bind_password_file,
                            "bind_password_file",
                            "\"keys/ldap_password\"",
                        )?),
                        people_dn: need(&c.people_dn, "people_dn", "\"ou=people,dc=example,dc=com\"")?,
                        groups_dn: need(&c.groups_dn, "groups_dn", "\"ou=groups,dc=example,dc=com\"")?,
                        on_disable: action(&c.on_disable, "on_disable", TargetAction::Disable)?,
                        on_delete,
                        group_style,
                        group_map: c.groups.clone().unwrap_or_default(),
                        attributes: c.attributes.clone().unwrap_or_default(),
                        uid_number_start: c.uid_number_start.unwrap_or(10000),
                        gid_number: c.gid_number,
                        home_directory: c.home_directory.clone().unwrap_or_else(|| "/home/{username}".into()),
                        login_shell: c.login_shell.clone().unwrap_or_else(|| "/bin/bash".into()),
                        ssh_public_keys: c.ssh_public_keys.unwrap_or(true),
                        deleted_dn,
                    }))
                }
                "scim" => {
                    let url = need(&c.url, "url", "\"https://app.example.com/scim/v2\"")?;
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(fail(
                            span,
                            format!("{at}.url: '{}' must start with http:// or https://", escape_text(&url)),
                        ));
                    }
                    let action = |value: &Option<String>, key: &str, default: TargetAction| match value {
                        None => Ok(default),
                        Some(v) => TargetAction::parse(v).ok_or_else(|| {
                            fail(span.clone(), format!("{at}.{key}: '{}' must be \"disable\", \"remove_groups\" or \"delete\"", escape_text(v)))
                        }),
                    };
                    ConnectorType::Scim(Box::new(ScimConfig {
                        url: url.trim_end_matches('/').to_string(),
                        bearer_token_file: resolve(&need(
                            &c.bearer_token_file,
                            "bearer_token_file",
                            "\"keys/scim_token\"",
                        )?),
                        on_disable: action(&c.on_disable, "on_disable", TargetAction::Disable)?,
                        on_delete: action(&c.on_delete, "on_delete", TargetAction::Delete)?,
                        group_map: c.groups.clone().unwrap_or_default(),
                        patch: c.patch.unwrap_or(true),
                    }))
                }
                other => {
                    return Err(fail(
                        span,
                        format!(
                            "{at}.type: unknown connector type '{}' (expected \"command\", \"ldap\" or \"scim\")",
                            crate::text::escape_text(other)
                        ),
                    ))
                }
            };
            let kinds = match c.scope.as_ref().and_then(|s| s.kinds.as_ref()) {
                Some(list) => {
                    let mut kinds = BTreeSet::new();
                    for k in list {
                        let kind: crate::domain::Kind = k.parse().map_err(|e: String| {
                            fail(span.clone(), format!("{at}.scope.kinds: {e}"))
                        })?;
                        kinds.insert(kind);
                    }
                    if kinds.is_empty() {
                        return Err(fail(
                            span,
                            format!("{at}.scope.kinds: name at least one kind"),
                        ));
                    }
                    kinds
                }
                None => crate::domain::Kind::ALL
                    .iter()
                    .copied()
                    .filter(|k| *k != crate::domain::Kind::Employee)
                    .collect(),
            };
            let timeout_seconds = c.timeout_seconds.unwrap_or(30);
            if timeout_seconds == 0 || timeout_seconds > 3600 {
                return Err(fail(
                    span,
                    format!("{at}.timeout_seconds: {timeout_seconds} must be 1 to 3600"),
                ));
            }
            if c.reconcile_hours == Some(0) {
                return Err(fail(
                    span,
                    format!("{at}.reconcile_hours: must be at least 1 (leave it out to reconcile only by hand)"),
                ));
            }
            let moves = |a: TargetAction| a == TargetAction::Move;
            let misplaced_move = match &kind {
                ConnectorType::Ldap(l) => moves(l.on_disable).then_some("on_disable"),
                ConnectorType::Scim(s) => moves(s.on_disable)
                    .then_some("on_disable")
                    .or(moves(s.on_delete).then_some("on_delete")),
                ConnectorType::Command { .. } => None,
            };
            if let Some(key) = misplaced_move {
                return Err(fail(
                    span,
                    format!("{at}.{key}: \"move\" is only for an ldap connector's on_delete"),
                ));
            }
            if c.deleted_dn.is_some() && !matches!(kind, ConnectorType::Ldap(_)) {
                return Err(fail(
                    span,
                    format!("{at}.deleted_dn: only an ldap connector moves entries"),
                ));
            }
            connectors.push(ConnectorConfig {
                name: c.name.clone(),
                kind,
                kinds,
                timeout_seconds,
                reconcile_hours: c.reconcile_hours,
                passwords: c.passwords.unwrap_or(false),
            });
        }
        let mut hosts = HostsConfig {
            group_principals: raw.hosts.group_principals,
            ..HostsConfig::default()
        };
        for (value, slot, key) in [
            (
                &raw.hosts.cert_validity,
                &mut hosts.cert_validity,
                "cert_validity",
            ),
            (
                &raw.hosts.cert_max_validity,
                &mut hosts.cert_max_validity,
                "cert_max_validity",
            ),
        ] {
            if let Some(text) = value {
                *slot = crate::domain::host::parse_duration(text.get_ref())
                    .map_err(|e| fail(text.span(), format!("hosts.{key}: {e}")))?;
            }
        }
        if hosts.cert_validity > hosts.cert_max_validity {
            return Err(ConfigError(format!(
                "config {source}: hosts.cert_validity is longer than hosts.cert_max_validity"
            )));
        }
        let http = raw
            .http
            .resolve(&|p: &str| resolve(p), &templates)
            .map_err(|e| ConfigError(format!("config {source}: {e}")))?;
        let mut sources: Vec<SourceConfig> = Vec::new();
        for (i, spanned) in raw.sources.iter().enumerate() {
            let span = spanned.span();
            let fail = |what: String| fail(span.clone(), format!("sources[{i}].{what}"));
            let parsed = source_config(spanned.get_ref(), &templates, &custom_fields, &resolve)
                .map_err(fail)?;
            if sources.iter().any(|o| o.rules.name == parsed.rules.name) {
                return Err(fail(format!(
                    "name: a source named '{}' is already configured",
                    parsed.rules.name
                )));
            }
            sources.push(parsed);
        }
        Ok(Config {
            source: source.to_string(),
            base_dir: base_dir.to_path_buf(),
            server: ServerConfig {
                listen,
                data_dir: resolve(&raw.server.data_dir),
                keys_dir: resolve(&raw.server.keys_dir),
                hardened: raw.server.hardened,
                allowlist,
                login_grace_seconds: raw.server.login_grace_seconds.max(1),
                max_unauthenticated: raw.server.max_unauthenticated.max(1),
                max_unauthenticated_per_address: raw
                    .server
                    .max_unauthenticated_per_address
                    .clamp(1, raw.server.max_unauthenticated.max(1)),
                // Past three quarters of the slots, start dropping at random
                // (sshd: 10:30:100): above what one address may hold, so a
                // single flooding address does not make others' logins a lottery.
                early_drop_start: raw
                    .server
                    .early_drop_start
                    .unwrap_or((raw.server.max_unauthenticated * 3 / 4).max(8))
                    .min(raw.server.max_unauthenticated.max(1)),
                early_drop_rate: raw.server.early_drop_rate.min(100),
                max_channels_per_connection: raw.server.max_channels_per_connection.max(1),
                max_sessions_per_account: raw.server.max_sessions_per_account.max(1),
                max_sessions: raw.server.max_sessions.max(1),
                max_consoles_per_account: raw.server.max_consoles_per_account.max(1),
            },
            policy: raw.policy,
            custom_fields,
            templates,
            notify,
            auth: raw.auth,
            sessions: raw.sessions,
            scheduler: raw.scheduler,
            console: ConsoleConfig {
                theme: raw.console.theme.map(Spanned::into_inner),
            },
            connectors,
            passwords: raw.passwords,
            requests: raw.requests,
            hosts,
            http,
            sources,
        })
    }
}

/// One `[[sources]]` entry checked; the error names the key (`url: …`).
fn source_config(
    c: &RawSource,
    templates: &BTreeMap<String, Template>,
    custom_fields: &[CustomField],
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<SourceConfig, String> {
    use crate::domain::source::{AttrMap, SourceRules};
    let valid_name = !c.name.is_empty()
        && c.name.len() <= 64
        && c.name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid_name {
        return Err(format!(
            "name: '{}' must be 1-64 of a-z, 0-9, - and _",
            c.name
        ));
    }
    if c.kind_of_source != "ldap" {
        return Err(format!(
            "type: unknown source type '{}' (expected \"ldap\")",
            c.kind_of_source
        ));
    }
    let need = |value: &Option<String>, key: &str, example: &str| {
        value
            .clone()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{key}: required, e.g. {key} = {example}"))
    };
    let url = need(&c.url, "url", "\"ldap://127.0.0.1:389\"")?;
    if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
        return Err(format!("url: '{url}' must start with ldap:// or ldaps://"));
    }
    let starttls = c.starttls.unwrap_or(false);
    if starttls && url.starts_with("ldaps://") {
        return Err("starttls: an ldaps:// URL is already TLS (leave starttls out)".into());
    }
    let bind_dn = need(&c.bind_dn, "bind_dn", "\"cn=admin,dc=example,dc=com\"")?;
    let bind_password_file = resolve(&need(
        &c.bind_password_file,
        "bind_password_file",
        "\"keys/ldap_password\"",
    )?);
    let base_dn = need(&c.base_dn, "base_dn", "\"ou=vendors,dc=example,dc=com\"")?;
    let filter = c
        .filter
        .clone()
        .map(|f| f.trim().to_string())
        .unwrap_or_else(|| "(objectClass=inetOrgPerson)".into());
    if !(filter.starts_with('(') && filter.ends_with(')')) {
        return Err(format!(
            "filter: '{filter}' must be an LDAP filter in parentheses, e.g. \"(objectClass=inetOrgPerson)\""
        ));
    }
    let scope = match c.scope.as_deref() {
        None | Some("sub") | Some("subtree") => SearchScope::Sub,
        Some("one") | Some("onelevel") => SearchScope::One,
        Some(other) => return Err(format!("scope: '{other}' must be \"sub\" or \"one\"")),
    };
    let page_size = c.page_size.unwrap_or(500);
    if !(1..=10_000).contains(&page_size) {
        return Err(format!("page_size: {page_size} must be 1 to 10000"));
    }
    let Some(map) = &c.map else {
        return Err(
            "map: required, e.g. map = { username = \"uid\", display_name = \"cn\", email = \"mail\" }"
                .into(),
        );
    };
    let attr = |value: &Option<String>, key: &str| -> Result<Option<String>, String> {
        match value.as_deref().map(str::trim) {
            None => Ok(None),
            Some(v)
                if !v.is_empty()
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b';') =>
            {
                Ok(Some(v.to_string()))
            }
            Some(v) => Err(format!("map.{key}: '{v}' is not an attribute name")),
        }
    };
    let username = attr(&map.username, "username")?
        .ok_or("map.username: required (the attribute holding the username, e.g. \"uid\" or \"sAMAccountName\")")?;
    let display_name = attr(&map.display_name, "display_name")?;
    let email = attr(&map.email, "email")?;
    if display_name.is_none() || email.is_none() {
        return Err("map: display_name and email are required (every account has them)".into());
    }
    let mut fields = BTreeMap::new();
    for (field, a) in &map.fields {
        if !custom_fields.iter().any(|f| &f.name == field) {
            return Err(format!(
                "map.fields.{field}: no custom field of that name (declare it in [[custom_fields]])"
            ));
        }
        let a = attr(&Some(a.clone()), &format!("fields.{field}"))?.unwrap_or_default();
        fields.insert(field.clone(), a);
    }
    let template = c.template.clone();
    if let Some(t) = &template {
        if !templates.contains_key(t) {
            let known: Vec<&String> = templates.keys().collect();
            return Err(format!(
                "template: no template named '{t}' (known: {known:?})"
            ));
        }
    }
    let kind = match &c.kind {
        Some(k) => k.parse::<crate::domain::Kind>().map_err(|e| format!("kind: {e}"))?,
        None => template
            .as_ref()
            .and_then(|t| templates.get(t))
            .and_then(|t| t.kind)
            .ok_or("kind: required (the kind of the accounts made from this source), e.g. kind = \"vendor\"")?,
    };
    let mut groups = BTreeMap::new();
    for (dir, tenure) in c.groups.clone().unwrap_or_default() {
        crate::domain::validate::validate_group_name(&tenure)
            .map_err(|e| format!("groups.{dir}: {e}"))?;
        groups.insert(dir.trim().to_ascii_lowercase(), tenure);
    }
    if c.interval_minutes == Some(0) {
        return Err(
            "interval_minutes: must be at least 1 (leave it out to sync only by hand)".into(),
        );
    }
    let max = c.max_deprovision_percent.unwrap_or(10);
    if max > 100 {
        return Err(format!("max_deprovision_percent: {max} must be 0 to 100"));
    }
    let timeout_seconds = c.timeout_seconds.unwrap_or(30);
    if timeout_seconds == 0 || timeout_seconds > 3600 {
        return Err(format!(
            "timeout_seconds: {timeout_seconds} must be 1 to 3600"
        ));
    }
    let id_attribute = attr(&c.id_attribute, "id_attribute")
        .map_err(|e| e.replace("map.", ""))?
        .unwrap_or_else(|| "entryUUID".into());
    let member_of_attribute = attr(&c.member_of_attribute, "member_of_attribute")
        .map_err(|e| e.replace("map.", ""))?
        .unwrap_or_else(|| "memberOf".into());
    Ok(SourceConfig {
        rules: SourceRules {
            name: c.name.clone(),
            map: AttrMap {
                username,
                display_name,
                email,
                company: attr(&map.company, "company")?,
                project: attr(&map.project, "project")?,
                sponsor: attr(&map.sponsor, "sponsor")?,
                start_date: attr(&map.start_date, "start_date")?,
                end_date: attr(&map.end_date, "end_date")?,
                fields,
            },
            id_attribute,
            member_of_attribute,
            groups,
            kind,
            template,
            max_deprovision_percent: max,
        },
        url,
        starttls,
        bind_dn,
        bind_password_file,
        base_dn,
        filter,
        scope,
        page_size,
        interval_minutes: Some(c.interval_minutes.unwrap_or(15)),
        timeout_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "test.toml", Path::new("/srv/tenure"))
    }

    #[test]
    fn the_console_theme_must_be_a_shipped_one() {
        let ok = parse("[console]\ntheme = \"light\"\n").unwrap();
        assert_eq!(ok.console.theme.as_deref(), Some("light"));
        let err = parse("\n[console]\ntheme = \"neon\"\n").unwrap_err().0;
        assert_eq!(
            err,
            "config test.toml: line 3: console.theme: unknown theme 'neon' (shipped: default, light, high-contrast)"
        );
    }

    #[test]
    fn sources_parse_from_the_example_and_bad_ones_name_the_key() {
        // The example's commented-out [[sources]], uncommented, is a working config.
        let block: String = EXAMPLE
            .lines()
            .skip_while(|l| !l.starts_with("# [[sources]]"))
            .take_while(|l| l.starts_with('#'))
            .map(|l| l.strip_prefix("# ").unwrap_or(""))
            .take_while(|l| !l.starts_with("Active Directory"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(block.contains("[[sources]]"), "{block}");
        let c = parse(&format!("{EXAMPLE}\n{block}\n")).unwrap();
        let s = &c.sources[0];
        assert_eq!(s.rules.name, "corp");
        assert_eq!(s.rules.kind, crate::domain::Kind::Vendor);
        assert_eq!(s.rules.max_deprovision_percent, 10);
        assert_eq!(s.rules.id_attribute, "entryUUID");
        assert_eq!(s.rules.map.username, "uid");
        assert_eq!(
            s.rules.groups.get("vendor-devs").map(String::as_str),
            Some("developers")
        );
        assert_eq!((s.page_size, s.interval_minutes), (500, Some(15)));
        assert_eq!(
            s.bind_password_file,
            PathBuf::from("/srv/tenure/keys/ldap_password")
        );
        // As a table of its own, with AD's names and a custom field.
        let ad = parse(&format!(
            "{EXAMPLE}\n[[sources]]\nname = \"ad\"\ntype = \"ldap\"\nurl = \"ldaps://dc1.example.com\"\n\
             bind_dn = \"CN=sync,DC=example,DC=com\"\nbind_password_file = \"keys/ad\"\nbase_dn = \"OU=Vendors,DC=example,DC=com\"\n\
             id_attribute = \"objectGUID\"\nkind = \"contractor\"\n[sources.map]\nusername = \"sAMAccountName\"\n\
             display_name = \"displayName\"\nemail = \"mail\"\nend_date = \"accountExpires\"\nfields = {{ cost_center = \"departmentNumber\" }}\n"
        ))
        .unwrap();
        assert_eq!(
            ad.sources[0].rules.map.end_date.as_deref(),
            Some("accountExpires")
        );
        assert_eq!(ad.sources[0].rules.max_deprovision_percent, 10);

        let base = "[[sources]]\nname = \"corp\"\ntype = \"ldap\"\nurl = \"ldap://x\"\nbind_dn = \"cn=a\"\n\
                    bind_password_file = \"p\"\nbase_dn = \"ou=v\"\nkind = \"vendor\"\n";
        let map = "map = { username = \"uid\", display_name = \"cn\", email = \"mail\" }\n";
        for (text, wanted) in [
            (base.replace("ldap://x", "http://x") + map, "sources[0].url: 'http://x' must start with ldap:// or ldaps://"),
            (base.replace("type = \"ldap\"", "type = \"ad\"") + map, "sources[0].type: unknown source type 'ad'"),
            (base.to_string(), "sources[0].map: required"),
            (base.to_string() + "map = { username = \"uid\" }\n", "sources[0].map: display_name and email are required"),
            (base.to_string() + map + "max_deprovision_percent = 150\n", "sources[0].max_deprovision_percent: 150 must be 0 to 100"),
            (base.to_string() + map + "page_size = 0\n", "sources[0].page_size: 0 must be 1 to 10000"),
            (base.to_string() + map + "filter = \"uid=*\"\n", "sources[0].filter: 'uid=*' must be an LDAP filter in parentheses"),
            (base.to_string() + map + "starttls = true\n" , ""),
            (base.replace("ldap://x", "ldaps://x") + map + "starttls = true\n", "sources[0].starttls: an ldaps:// URL is already TLS"),
            (base.replace("kind = \"vendor\"\n", "") + map, "sources[0].kind: required"),
            (base.to_string() + "map = { username = \"uid\", display_name = \"cn\", email = \"mail\", fields = { shoe = \"x\" } }\n", "sources[0].map.fields.shoe: no custom field of that name"),
            (base.to_string() + map + "template = \"nope\"\n", "sources[0].template: no template named 'nope'"),
            (base.to_string() + map + "bogus = 1\n", "unknown field `bogus`"),
            (format!("{base}{map}{base}{map}"), "sources[1].name: a source named 'corp' is already configured"),
        ] {
            let result = parse(&text);
            if wanted.is_empty() {
                assert!(result.is_ok(), "{text}: {:?}", result.err());
                continue;
            }
            let err = result.unwrap_err().0;
            assert!(err.contains(wanted), "{text}\n→ {err}");
        }
    }

    #[test]
    fn shipped_example_parses_and_resolves_paths_against_its_directory() {
        let config = parse(EXAMPLE).unwrap();
        assert_eq!(config.server.data_dir, PathBuf::from("/srv/tenure/data"));
        assert!(
            !config.custom_fields.iter().any(|f| f.required),
            "example fields stay optional"
        );
    }

    #[test]
    fn connectors_parse_with_defaults_and_bad_ones_name_the_file_and_key() {
        let ok = parse(
            "[[connectors]]\nname = \"hr\"\ntype = \"command\"\ncommand = [\"bin/push\", \"-q\"]\n",
        )
        .unwrap();
        let c = &ok.connectors[0];
        assert_eq!(
            c.kind,
            ConnectorType::Command {
                argv: vec!["/srv/tenure/bin/push".into(), "-q".into()]
            }
        );
        assert_eq!(c.timeout_seconds, 30);
        assert!(!c.kinds.contains(&crate::domain::Kind::Employee));
        assert!(c.kinds.contains(&crate::domain::Kind::Contractor));
        assert!(parse(EXAMPLE).unwrap().connectors.is_empty());

        let cases = [
            ("type = \"ldap\"\n", "connectors[0].url: required"),
            (
                "type = \"ldap\"\nurl = \"http://x\"\n",
                "connectors[0].url: 'http://x' must start with ldap://",
            ),
            (
                "type = \"ldap\"\nurl = \"ldap://x\"\nbind_dn = \"cn=a\"\nbind_password_file = \"p\"\npeople_dn = \"ou=p\"\ngroups_dn = \"ou=g\"\non_disable = \"wipe\"\n",
                "connectors[0].on_disable: 'wipe' must be",
            ),
            ("type = \"scim\"\n", "connectors[0].url: required for a scim connector"),
            (
                "type = \"scim\"\nurl = \"https://x/scim/v2\"\n",
                "connectors[0].bearer_token_file: required",
            ),
            ("type = \"command\"\n", "connectors[0].command"),
            (
                "type = \"command\"\ncommand = [\"/x\"]\nscope = { kinds = [\"robot\"] }\n",
                "connectors[0].scope.kinds: unknown kind 'robot'",
            ),
            (
                "type = \"command\"\ncommand = [\"/x\"]\ntimeout_seconds = 0\n",
                "connectors[0].timeout_seconds",
            ),
        ];
        for (rest, want) in cases {
            let err = parse(&format!("[[connectors]]\nname = \"hr\"\n{rest}"))
                .unwrap_err()
                .0;
            assert!(
                err.starts_with("config test.toml: line 1: ") && err.contains(want),
                "{err}"
            );
        }
        let twice = "[[connectors]]\nname = \"hr\"\ntype = \"command\"\ncommand = [\"/x\"]\n";
        let err = parse(&format!("{twice}{twice}")).unwrap_err().0;
        assert!(
            err.contains("line 5") && err.contains("connectors[1].name"),
            "{err}"
        );
    }

    #[test]
    fn move_on_delete_and_passwords_are_checked_where_they_apply() {
        let ldap = "[[connectors]]\nname = \"d\"\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:3890\"\nbind_dn = \"cn=a\"\nbind_password_file = \"p\"\npeople_dn = \"ou=p\"\ngroups_dn = \"ou=g\"\n";
        let ok = parse(&format!(
            "{ldap}on_delete = \"move\"\ndeleted_dn = \"ou=gone\"\n"
        ))
        .unwrap();
        let ConnectorType::Ldap(l) = &ok.connectors[0].kind else {
            panic!("not ldap")
        };
        assert_eq!(
            (l.on_delete, l.deleted_dn.as_deref()),
            (TargetAction::Move, Some("ou=gone"))
        );
        assert!(!ok.connectors[0].passwords);
        let scim = "[[connectors]]\nname = \"s\"\ntype = \"scim\"\nurl = \"http://x\"\nbearer_token_file = \"t\"\n";
        assert!(
            parse(&format!("{scim}passwords = true\n"))
                .unwrap()
                .connectors[0]
                .passwords
        );
        for (text, want) in [
            (
                format!("{ldap}on_delete = \"move\"\n"),
                "connectors[0].deleted_dn: required",
            ),
            (
                format!("{ldap}on_disable = \"move\"\n"),
                "connectors[0].on_disable: \"move\" is only",
            ),
            (
                format!("{ldap}passwords = true\n"),
                "connectors[0].passwords: an ldap connector gets",
            ),
            (
                format!("{scim}on_delete = \"move\"\n"),
                "connectors[0].on_delete: \"move\" is only",
            ),
            (
                format!("{scim}deleted_dn = \"ou=x\"\n"),
                "connectors[0].deleted_dn: only an ldap",
            ),
        ] {
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn an_ldap_connector_parses_with_its_defaults() {
        let c = parse(
            "[[connectors]]\nname = \"directory\"\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:3890\"\nbind_dn = \"cn=admin,dc=example,dc=com\"\nbind_password_file = \"keys/ldap_password\"\npeople_dn = \"ou=people,dc=example,dc=com\"\ngroups_dn = \"ou=groups,dc=example,dc=com\"\nscope = { kinds = [\"contractor\"] }\non_disable = \"remove_groups\"\ngroups = { dev = \"developers\" }\nreconcile_hours = 6\n",
        )
        .unwrap()
        .connectors
        .remove(0);
        assert_eq!(c.reconcile_hours, Some(6));
        let ConnectorType::Ldap(l) = c.kind else {
            panic!("not ldap: {:?}", c.kind)
        };
        assert_eq!(
            l.bind_password_file,
            PathBuf::from("/srv/tenure/keys/ldap_password")
        );
        assert_eq!(
            (l.on_disable, l.on_delete, l.group_style),
            (
                TargetAction::RemoveGroups,
                TargetAction::Delete,
                GroupStyle::GroupOfNames
            )
        );
        assert_eq!(l.group_map["dev"], "developers");
        assert_eq!((l.uid_number_start, l.gid_number), (10000, None));
        assert!(l.ssh_public_keys && !l.starttls);
    }

    #[test]
    fn an_error_quoting_a_value_with_a_newline_stays_one_line() {
        // Found by the config_parse fuzz target: a custom field named
        // "coc\nter" was quoted raw, so the error spanned two lines.
        let err = parse("[[custom_fields]]\nname = \"coc\\nter\\u001b[2J\"\ntype = \"text\"\n")
            .unwrap_err()
            .0;
        assert!(!err.contains('\n') && !err.contains('\x1b'), "{err:?}");
        assert!(err.contains("'coc\\nter\\x1b[2J'"), "{err}");
        assert!(
            err.starts_with("config test.toml: line 1: custom_fields.name:"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_line_and_the_key() {
        let err = parse("[server]\nlisten = [\"127.0.0.1:2222\"]\nbogus = 1\n")
            .unwrap_err()
            .0;
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("bogus"), "{err}");

        let err = parse("[policy]\ninactivity_days = \"ninety\"\n")
            .unwrap_err()
            .0;
        assert!(err.contains("line 2"), "{err}");

        let err = parse("\n[[custom_fields]]\nname = \"cc\"\npattern = \"([\"\n")
            .unwrap_err()
            .0;
        assert!(err.contains("line 2") && err.contains("pattern"), "{err}");

        let err = parse("[server]\nlisten = [\"nowhere\"]\n").unwrap_err().0;
        assert!(
            err.contains("line 2") && err.contains("server.listen"),
            "{err}"
        );
    }
}
