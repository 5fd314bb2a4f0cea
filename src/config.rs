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

/// How a connector reaches its target. Only `command` exists so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectorType {
    /// A program run with the job as one JSON document on stdin (argv, no shell).
    Command { argv: Vec<String> },
}

impl ConnectorType {
    pub fn as_str(&self) -> &'static str {
        match self {
            ConnectorType::Command { .. } => "command",
        }
    }
}

/// One `[[connectors]]` entry.
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    pub name: String,
    pub kind: ConnectorType,
    /// The kinds of account this target receives.
    pub kinds: BTreeSet<crate::domain::Kind>,
    pub timeout_seconds: u64,
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
                "ldap" | "scim" => {
                    return Err(fail(
                        span,
                        format!(
                            "{at}.type: \"{}\" connectors are not supported yet (only \"command\")",
                            c.kind
                        ),
                    ))
                }
                other => {
                    return Err(fail(
                        span,
                        format!(
                            "{at}.type: unknown connector type '{other}' (expected \"command\")"
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
            connectors.push(ConnectorConfig {
                name: c.name.clone(),
                kind,
                kinds,
                timeout_seconds,
            });
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
        })
    }
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
            (
                "type = \"ldap\"\n",
                "connectors[0].type: \"ldap\" connectors are not supported yet",
            ),
            (
                "type = \"scim\"\n",
                "connectors[0].type: \"scim\" connectors are not supported yet",
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
