//! The command grammar, one definition for every front door: the offline
//! `tenure --config F <command>`, `ssh host <command>` and the console's `:`
//! line. `run` executes a parsed command for an actor and writes to `out`.

#[cfg(test)]
mod authz_table;
mod host_output;
mod output;
pub mod sources;
pub mod tokens;

use std::collections::BTreeMap;
use std::io::{Read, Write};

use clap::{Args, Subcommand, ValueEnum};

use crate::domain::dates::parse_date;
use crate::domain::{DisableReason, Kind, Role};
use crate::locale::Zone;
use crate::service::accounts::{AccountInput, ListFilter};
use crate::service::import::{ImportOptions, ImportRow, ImportRows};
use crate::service::integrity::AuditFilter;
use crate::service::{Actor, Error, Result, Services};

pub use output::{account_view, formula_guard, key_view, say, unformula, ACCOUNT_COLUMNS};

/// Longest stdin input a key line or a password may be (offline and over SSH)…
pub const STDIN_LIMIT: usize = 64 * 1024;
/// …and a CSV import sent over SSH (offline, the file is read as a stream).
pub const IMPORT_LIMIT: usize = 256 * 1024 * 1024;
/// The most stdin `request import` reads over SSH (a request holds at most
/// 5,000 accounts).
pub const REQUEST_IMPORT_LIMIT: usize = 4 * 1024 * 1024;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Who you are and what you may do
    Whoami {
        #[arg(long)]
        json: bool,
    },
    /// Accounts: list, show, create, clone, change, and their lifecycle
    #[command(subcommand)]
    User(UserCommand),
    /// SSH public keys of an account
    #[command(subcommand)]
    Key(KeyCommand),
    /// Passwords (argon2id)
    #[command(subcommand)]
    Password(PasswordCommand),
    /// Preferences of an account: timezone, language, muted notices, digest
    #[command(subcommand)]
    Prefs(PrefsCommand),
    /// Per-account IP allowlists
    #[command(subcommand)]
    Allow(AllowCommand),
    /// Groups and their members
    #[command(subcommand)]
    Group(GroupCommand),
    /// The tamper-evident audit trail
    #[command(subcommand)]
    Audit(AuditCommand),
    /// TOTP (RFC 6238) second factor
    #[command(subcommand)]
    Totp(TotpCommand),
    /// Live SSH sessions
    #[command(subcommand)]
    Session(SessionCommand),
    /// Login lockouts: list them, lift one
    #[command(subcommand)]
    Auth(AuthCommand),
    /// What the lifecycle policies will do, and a pass now
    #[command(subcommand)]
    Lifecycle(LifecycleCommand),
    /// Extension requests: ask, list, approve, deny
    #[command(subcommand)]
    Request(RequestCommand),
    /// Reports (orphans: accounts nobody is accountable for)
    #[command(subcommand)]
    Report(ReportCommand),
    /// Notifications waiting to go out (the outbox)
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Provisioning targets: their links, queued jobs, retries
    #[command(subcommand)]
    Connector(ConnectorCommand),
    /// Directory sources (LDAP / Active Directory) accounts are synced in from
    #[command(subcommand)]
    Source(sources::SourceCommand),
    /// Target hosts (OpenSSH servers that ask tenure for keys): register, list, show, remove
    #[command(subcommand)]
    Host(HostCommand),
    /// For a host: the authorized_keys lines of USER on it (sshd's AuthorizedKeysCommand)
    #[command(name = "authorized-keys")]
    AuthorizedKeys { user: String },
    /// For a host: the revocation list (KRL) for sshd's RevokedKeys, binary on stdout
    #[command(name = "revoked-keys")]
    RevokedKeys,
    /// An OpenSSH certificate for your login key (or NAME's key given on stdin), from tenure's user CA
    Cert {
        name: Option<String>,
        /// Validity, e.g. 8h, 30m, 2d (never past the end of the account's last day)
        #[arg(long)]
        valid: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// API tokens for the HTTP front door (REST and SCIM)
    #[command(subcommand)]
    Token(tokens::TokenCommand),
    /// Create accounts from CSV on stdin (the header names the columns, as `export` writes them)
    Import {
        /// Check every row, write nothing
        #[arg(long = "dry-run")]
        dry_run: bool,
        /// Skip rows whose username already exists (a re-run finishes an import)
        #[arg(long = "skip-existing")]
        skip_existing: bool,
    },
    /// Every account as CSV or JSON on stdout
    Export {
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
    },
    /// A consistent snapshot of the whole database on stdout (restore it with `tenure restore`)
    Backup,
    /// Verify records, indexes and the audit chain (exit 1 if anything is wrong)
    Check {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
}

/// The fields an account can be given (create, clone, update).
#[derive(Debug, Args, Default, Clone)]
pub struct AccountArgs {
    #[arg(long)]
    pub email: Option<String>,
    #[arg(long = "display-name")]
    pub display_name: Option<String>,
    #[arg(long)]
    pub kind: Option<Kind>,
    #[arg(long)]
    pub company: Option<String>,
    #[arg(long)]
    pub sponsor: Option<String>,
    #[arg(long)]
    pub project: Option<String>,
    /// Start date: YYYY-MM-DD, today, or +N(d|w|m|y)
    #[arg(long)]
    pub start: Option<String>,
    /// End date: YYYY-MM-DD or +N(d|w|m|y)
    #[arg(long)]
    pub end: Option<String>,
    /// A group (repeat for several); on update the list replaces the groups
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// A role: admin, operator, sponsor, user (repeat); on update replaces the roles
    #[arg(long = "role")]
    pub roles: Vec<Role>,
    /// A custom field, KEY=VALUE (repeat); KEY= removes it
    #[arg(long = "field", value_name = "KEY=VALUE")]
    pub fields: Vec<String>,
    /// A template from the config (create only)
    #[arg(long)]
    pub template: Option<String>,
    /// IANA timezone, e.g. Europe/Berlin
    #[arg(long)]
    pub timezone: Option<String>,
    #[arg(long)]
    pub language: Option<String>,
    /// Console theme: default, light or high-contrast ("" clears)
    #[arg(long)]
    pub theme: Option<String>,
    #[arg(long)]
    pub notes: Option<String>,
    /// Exempt from the inactivity rule (true/false)
    #[arg(long = "inactivity-exempt")]
    pub inactivity_exempt: Option<bool>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// List accounts (filters combine)
    List {
        /// staged, active, expired, disabled, deleted
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        kind: Option<Kind>,
        #[arg(long)]
        sponsor: Option<String>,
        #[arg(long)]
        project: Option<String>,
        /// Active accounts whose end date falls within DAYS from today
        #[arg(long = "expiring-within", value_name = "DAYS")]
        expiring_within: Option<u32>,
        /// Paging: accounts whose username sorts after this one (stable order)
        #[arg(long, value_name = "USERNAME")]
        after: Option<String>,
        /// At most this many accounts
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Every field of one account
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Create an account
    Create {
        name: String,
        #[command(flatten)]
        fields: AccountArgs,
        #[arg(long)]
        json: bool,
    },
    /// Create an account like SOURCE (never its identity or credentials)
    Clone {
        source: String,
        name: String,
        #[command(flatten)]
        fields: AccountArgs,
        #[arg(long)]
        json: bool,
    },
    /// Change fields of an account
    Update {
        name: String,
        #[command(flatten)]
        fields: AccountArgs,
        #[arg(long)]
        json: bool,
    },
    /// Disable an account now
    Disable {
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// Enable a disabled account
    Enable { name: String },
    /// Move the end date
    Extend {
        name: String,
        #[arg(long)]
        end: String,
    },
    /// Soft-delete (restorable for the retention period)
    Delete { name: String },
    /// Bring back a soft-deleted account (disabled)
    Restore { name: String },
    /// Remove a deleted account for good
    Purge {
        name: String,
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Add a key: the OpenSSH public key line on stdin
    Add {
        name: String,
        /// Expiry date of this key
        #[arg(long)]
        expires: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The keys of an account
    List {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a key by its SHA256 fingerprint
    Remove { name: String, fingerprint: String },
}

#[derive(Debug, Subcommand)]
pub enum PasswordCommand {
    /// Set a password: the new password on stdin (first line)
    Set {
        name: String,
        /// The holder must choose a new one at the next login
        #[arg(long)]
        temporary: bool,
    },
    /// Mail the holder a one-time enrolment code (15 minutes) to set a password or add a key
    Reset {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PrefsCommand {
    /// Which notices the account gets, and whether as a digest
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Change them (the holder, or an admin)
    Set {
        name: String,
        /// One mail every `[notify] digest_hours` listing the notices, instead of one each
        #[arg(long, value_parser = on_off)]
        digest: Option<bool>,
        /// Events not to be mailed about (created, expiry_warning, …)
        #[arg(long, value_delimiter = ',')]
        mute: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        unmute: Vec<String>,
        /// IANA timezone every time is shown in, e.g. Europe/Berlin ("" for UTC)
        #[arg(long)]
        timezone: Option<String>,
        /// Language of the console and the notices: en or de ("" for English)
        #[arg(long)]
        language: Option<String>,
    },
}

fn on_off(text: &str) -> std::result::Result<bool, String> {
    match text {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!("'{text}': expected on or off")),
    }
}

#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// Ask for a later end date (the account itself, its sponsor, or an admin)
    Extend {
        name: String,
        #[arg(long)]
        end: String,
        #[arg(long)]
        reason: String,
    },
    /// Ask for a new account (checked like `user create`; an admin approves)
    Create {
        name: String,
        #[command(flatten)]
        fields: AccountArgs,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// Ask for the accounts of a CSV on stdin (the `import` columns) as one request
    Import {
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// Every request: extensions and accounts, who asked, when, why
    List {
        #[arg(long)]
        json: bool,
    },
    /// Approve: the end date moves (the kind's maximum is checked again), or
    /// the accounts are created (checked again)
    Approve { id: u64 },
    Deny {
        id: u64,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Notices not yet sent (pending, with their last error) and those given up on
    Queue {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConnectorCommand {
    /// Every connector: type, scope, links in sync / pending / failed, jobs queued, last error
    List {
        #[arg(long)]
        json: bool,
    },
    /// One connector: each linked account and the queued jobs
    Status {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Make the waiting jobs (of one account with --user) due now; with
    /// --adopt, take over a disputed object in the target (admins)
    Retry {
        name: String,
        #[arg(long)]
        user: Option<String>,
        /// Overwrite the object found under the account's name although it
        /// looks like someone else's (needs --user)
        #[arg(long, requires = "user")]
        adopt: bool,
    },
    /// Read the target back: in sync, drifted (fixed), missing (created),
    /// enabled there though disabled here (fixed), unmatched (orphans: reported)
    Reconcile {
        name: String,
        /// Report only; change nothing
        #[arg(long)]
        dry_run: bool,
        /// Also disable the unmatched objects (orphans) in the target
        #[arg(long)]
        disable_unmatched: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Register a host: its public key line on stdin (e.g. /etc/tenure/host_key.pub)
    Add {
        name: String,
        /// Accounts in a group the host has may log in there (repeat)
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Read the key line from FILE instead of stdin (offline only: over
        /// ssh the path would name a file on the tenure server)
        #[arg(long = "key", value_name = "FILE")]
        key: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Every host: groups, key, state
    List {
        #[arg(long)]
        json: bool,
    },
    /// One host and who may log in there now
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a host for good (its key stops working at once)
    Remove { name: String },
    /// The user CA's public key line, for sshd's TrustedUserCAKeys
    Ca,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Active non-employees without an active sponsor, missing end dates,
    /// never-used accounts, unused keys
    Orphans {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum LifecycleCommand {
    /// Every action the policies will take, when and why (default: the next 30 days)
    Preview {
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Run a pass now: apply every action due today or earlier
    Run {
        #[arg(long = "dry-run")]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TotpCommand {
    /// Create a TOTP secret: prints the otpauth URI and a QR code (shown once)
    Enroll { name: String },
    /// Remove the TOTP secret
    Reset { name: String },
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Live sessions (id, account, address, method, started, last input, kind)
    List {
        #[arg(long)]
        json: bool,
    },
    /// Close a session by id, or every session of an account
    #[command(group(clap::ArgGroup::new("which").required(true).args(["id", "user"])))]
    Kill {
        id: Option<u64>,
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Addresses and accounts locked out after failed password or code attempts
    Lockouts {
        #[arg(long)]
        json: bool,
    },
    /// Lift the lockout of an address or an account
    Unlock {
        /// An IP address or a username
        what: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AllowCommand {
    List {
        name: String,
        #[arg(long)]
        json: bool,
    },
    Add {
        name: String,
        cidr: String,
    },
    Remove {
        name: String,
        cidr: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    List {
        #[arg(long)]
        json: bool,
    },
    Create {
        group: String,
    },
    /// Add an account to a group
    Add {
        group: String,
        name: String,
    },
    /// Remove an account from a group
    Remove {
        group: String,
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The newest events
    Tail {
        #[arg(short = 'n', default_value_t = 20)]
        n: usize,
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        target: Option<String>,
        /// Events whose action starts with this (user., key.add…)
        #[arg(long)]
        action: Option<String>,
        /// The first N matching events after event SEQ (oldest first), for paging
        #[arg(long)]
        since: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Recompute the hash chain (exit 1 if broken); an intact chain is recorded as a checkpoint
    Verify {
        /// Only the events after the last checkpoint (the full check stays the default)
        #[arg(long = "since-checkpoint")]
        since_checkpoint: bool,
        #[arg(long)]
        json: bool,
    },
}

fn date(services: &Services, text: &Option<String>) -> Result<Option<chrono::NaiveDate>> {
    text.as_deref()
        .map(|t| parse_date(t, services.today()).map_err(Error::Invalid))
        .transpose()
}

impl Command {
    /// Commands that read their input from stdin (the exec front door waits for EOF).
    pub fn reads_stdin(&self) -> bool {
        matches!(
            self,
            Command::Key(KeyCommand::Add { .. })
                | Command::Password(PasswordCommand::Set { .. })
                | Command::Request(RequestCommand::Import { .. })
                | Command::Import { .. }
                | Command::Host(HostCommand::Add { key: None, .. })
                | Command::Cert { name: Some(_), .. }
        )
    }

    /// What a host may ask (every other command is refused to a host).
    pub fn host_query(&self) -> bool {
        matches!(
            self,
            Command::AuthorizedKeys { .. } | Command::RevokedKeys | Command::Host(HostCommand::Ca)
        )
    }

    /// The most stdin this command accepts over SSH, in bytes.
    pub fn stdin_limit(&self) -> usize {
        match self {
            Command::Import { .. } => IMPORT_LIMIT,
            Command::Request(RequestCommand::Import { .. }) => REQUEST_IMPORT_LIMIT,
            _ => STDIN_LIMIT,
        }
    }
}

impl AccountArgs {
    pub fn to_input(&self, services: &Services) -> Result<AccountInput> {
        let mut fields = BTreeMap::new();
        for pair in &self.fields {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(Error::Invalid(format!(
                    "--field expects KEY=VALUE, got '{pair}'"
                )));
            };
            fields.insert(key.trim().to_string(), value.to_string());
        }
        Ok(AccountInput {
            display_name: self.display_name.clone(),
            email: self.email.clone(),
            kind: self.kind,
            company: self.company.clone(),
            sponsor: self.sponsor.clone(),
            project: self.project.clone(),
            start_date: date(services, &self.start)?,
            end_date: date(services, &self.end)?,
            groups: (!self.groups.is_empty()).then(|| self.groups.clone()),
            roles: (!self.roles.is_empty()).then(|| self.roles.clone()),
            fields,
            template: self.template.clone(),
            timezone: self.timezone.clone(),
            language: self.language.clone(),
            theme: self.theme.clone(),
            notes: self.notes.clone(),
            inactivity_exempt: self.inactivity_exempt,
            allowlist: None,
            source: None,
        })
    }
}

/// Columns `export` writes that an import ignores (they describe state, not input).
const EXPORT_ONLY: [&str; 5] = [
    "status",
    "disable_reason",
    "keys",
    "created_at",
    "last_login",
];

/// The CSV header, checked: it needs `username` and names only known columns.
fn import_headers<R: Read>(reader: &mut csv::Reader<R>) -> Result<Vec<String>> {
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| Error::Invalid(format!("cannot read the CSV header: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    if !headers.iter().any(|h| h == "username") {
        return Err(Error::Invalid(
            "the CSV header needs a 'username' column".into(),
        ));
    }
    for h in &headers {
        if !IMPORT_COLUMNS.contains(&h.as_str())
            && !EXPORT_ONLY.contains(&h.as_str())
            && !h.starts_with("field:")
        {
            return Err(Error::Invalid(format!(
                "unknown column '{h}' (known: {}, field:NAME)",
                IMPORT_COLUMNS.join(", ")
            )));
        }
    }
    Ok(headers)
}

const IMPORT_COLUMNS: [&str; 18] = [
    "username",
    "email",
    "display_name",
    "kind",
    "company",
    "sponsor",
    "project",
    "start_date",
    "end_date",
    "groups",
    "roles",
    "timezone",
    "language",
    "theme",
    "notes",
    "template",
    "inactivity_exempt",
    "allowlist",
];

/// CSV on `input` → rows, read as a stream (a million rows are never all in
/// memory). The header is read and checked here; each row when it is
/// reached. Errors name the line and the column.
fn import_rows<'r>(today: chrono::NaiveDate, input: &'r mut dyn Read) -> Result<ImportRows<'r>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = import_headers(&mut reader)?;
    Ok(Box::new(reader.into_records().enumerate().map(
        move |(i, record)| {
            let fallback = i as u64 + 2;
            let record = record.map_err(|e| Error::Invalid(format!("line {fallback}: {e}")))?;
            let line = record.position().map_or(fallback, csv::Position::line);
            import_row(&headers, &record, line, today)
        },
    )))
}

/// One CSV record → a row to import.
fn import_row(
    headers: &[String],
    record: &csv::StringRecord,
    line: u64,
    today: chrono::NaiveDate,
) -> Result<ImportRow> {
    {
        let get = |col: &str| -> Option<String> {
            headers
                .iter()
                .position(|h| h == col)
                .and_then(|p| record.get(p))
                // export guards cells against spreadsheet formulas; undo it.
                .map(|v| unformula(v).to_string())
                .filter(|v| !v.is_empty())
        };
        let bad = |col: &str, e: String| Error::Invalid(format!("line {line}, column {col}: {e}"));
        let list = |col: &str| {
            get(col).map(|v| {
                v.split(';')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect::<Vec<_>>()
            })
        };
        let date = |col: &str| {
            get(col)
                .map(|v| parse_date(&v, today).map_err(|e| bad(col, e)))
                .transpose()
        };
        let username = get("username")
            .ok_or_else(|| Error::Invalid(format!("line {line}: username is empty")))?;
        let kind = get("kind")
            .map(|v| v.parse::<Kind>().map_err(|e| bad("kind", e)))
            .transpose()?;
        let roles = list("roles")
            .map(|v| {
                v.iter()
                    .map(|r| r.parse::<Role>().map_err(|e| bad("roles", e)))
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        let allowlist = list("allowlist")
            .map(|v| {
                v.iter()
                    .map(|n| {
                        crate::service::credentials::parse_cidr(n)
                            .map_err(|e| bad("allowlist", e.to_string()))
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        let inactivity_exempt = get("inactivity_exempt")
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Ok(true),
                "false" | "no" | "0" => Ok(false),
                other => Err(bad(
                    "inactivity_exempt",
                    format!("'{other}' is not true or false"),
                )),
            })
            .transpose()?;
        let mut fields = BTreeMap::new();
        for (pos, h) in headers.iter().enumerate() {
            if let (Some(name), Some(value)) = (h.strip_prefix("field:"), record.get(pos)) {
                let value = unformula(value);
                if !value.is_empty() {
                    fields.insert(name.to_string(), value.to_string());
                }
            }
        }
        Ok(ImportRow {
            line,
            username,
            input: AccountInput {
                display_name: get("display_name"),
                email: get("email"),
                kind,
                company: get("company"),
                sponsor: get("sponsor"),
                project: get("project"),
                start_date: date("start_date")?,
                end_date: date("end_date")?,
                groups: list("groups"),
                roles,
                fields,
                template: get("template"),
                timezone: get("timezone"),
                language: get("language"),
                theme: get("theme"),
                notes: get("notes"),
                inactivity_exempt,
                allowlist,
                source: None,
            },
        })
    }
}

/// Options whose value is free text (a reason, a name, a note).
const FREE_TEXT: [&str; 5] = [
    "--reason",
    "--display-name",
    "--company",
    "--project",
    "--notes",
];

/// `ssh host user disable bob --reason contract ended` arrives as one string
/// that the server splits into words again, so the quotes the person typed
/// are gone. A free-text option therefore takes every word that follows it,
/// up to the next option (a word starting with `-`), joined with single
/// spaces. Quoted values stay one word and are unchanged. For command lines
/// that come as one string (SSH exec, the console's `:` line), not for the
/// offline CLI, whose shell keeps the quotes.
pub fn join_free_text(words: Vec<String>) -> Vec<String> {
    let is_option = |w: &str| w.len() > 1 && w.starts_with('-');
    let takes_text = |w: &str| {
        FREE_TEXT
            .iter()
            .any(|o| w == *o || w.strip_prefix(o).is_some_and(|rest| rest.starts_with('=')))
    };
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    let mut words = words.into_iter().peekable();
    while let Some(word) = words.next() {
        let bare = FREE_TEXT.contains(&word.as_str());
        let joins = takes_text(&word);
        out.push(word);
        if !joins {
            continue;
        }
        // `--reason contract ended`: the value is the next word and the rest;
        // `--reason=contract ended`: the rest joins the word itself.
        let mut value: Option<String> = None;
        if bare {
            match words.peek() {
                Some(next) if !is_option(next) => value = words.next(),
                _ => continue,
            }
        }
        while let Some(next) = words.next_if(|w| !is_option(w)) {
            match value.as_mut() {
                Some(v) => {
                    v.push(' ');
                    v.push_str(&next);
                }
                None => {
                    if let Some(last) = out.last_mut() {
                        last.push(' ');
                        last.push_str(&next);
                    }
                }
            }
        }
        out.extend(value);
    }
    out
}

/// A clap error as one line, for the `error: …` contract: clap's first line
/// without its own prefix, and where to get help.
pub fn usage_line(e: &clap::Error, hint: &str) -> String {
    let text = e.to_string();
    let first = text
        .lines()
        .next()
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ");
    // clap quotes the offending argument as the client sent it.
    crate::text::escape_text(&format!("{first} (try {hint})")).into_owned()
}

/// Stdin of a key line or a password: at most `STDIN_LIMIT` bytes, or an
/// error (never a silently cut value).
fn read_stdin(input: &mut dyn Read) -> Result<String> {
    let mut text = String::new();
    input
        .take(STDIN_LIMIT as u64 + 1)
        .read_to_string(&mut text)
        .map_err(|e| Error::Invalid(format!("cannot read stdin: {e}")))?;
    if text.len() > STDIN_LIMIT {
        return Err(Error::Invalid(format!(
            "input too large: this command reads at most {} KiB of stdin",
            STDIN_LIMIT / 1024
        )));
    }
    Ok(text)
}

fn io(e: std::io::Error) -> Error {
    Error::Failed(format!("cannot write output: {e}"))
}

/// Global flags that change how output is shown, not what a command does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Display {
    /// `--utc`: instants in UTC whatever the viewer's timezone (for scripts).
    pub utc: bool,
}

/// The zone instants are shown in: the viewer's own (`prefs set NAME
/// --timezone`), UTC for `--utc`, for the offline operator (no account) and
/// for an account that chose none. JSON is always UTC RFC 3339.
pub fn viewer_zone(services: &Services, actor: &Actor, display: Display) -> Zone {
    if display.utc || !actor.is_account {
        return Zone::UTC;
    }
    services
        .load(&actor.name)
        .map(|a| Zone::named(a.timezone.as_deref()))
        .unwrap_or_default()
}

/// Runs one command. Output goes to `out`; errors come back for the front
/// door to render (one line, an exit code).
pub fn run(
    services: &Services,
    actor: &Actor,
    command: Command,
    input: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<()> {
    run_with(services, actor, command, Display::default(), input, out)
}

/// `run` with the global display flags.
pub fn run_with(
    services: &Services,
    actor: &Actor,
    command: Command,
    display: Display,
    input: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<()> {
    use output::*;
    let today = services.today();
    let zone = viewer_zone(services, actor, display);
    services.command_gate(actor, command.host_query())?;
    match command {
        Command::Whoami { json } => {
            let account = if actor.is_account {
                Some(services.load(&actor.name)?)
            } else {
                None
            };
            print_whoami(out, actor, account.as_ref(), today, json)
        }
        Command::User(cmd) => match cmd {
            UserCommand::List {
                status,
                kind,
                sponsor,
                project,
                expiring_within,
                after,
                limit,
                json,
            } => {
                let filter = ListFilter {
                    status,
                    kind,
                    sponsor,
                    project,
                    expiring_within,
                    after,
                    limit,
                };
                let mut rows = AccountRows::new(out, today, zone, json)?;
                services.list_each(actor, &filter, &mut |a| rows.row(&a))?;
                rows.finish()
            }
            UserCommand::Show { name, json } => {
                let account = services.show(actor, &name)?;
                let links = services.account_links(&account.username)?;
                let hosts = services.login_hosts(&account)?;
                print_account_with_links(
                    out,
                    &account,
                    &links,
                    &hosts,
                    today,
                    zone,
                    json,
                    (&services.config().passwords, services.now()),
                )
            }
            UserCommand::Create { name, fields, json } => {
                let account = services.create(actor, &name, fields.to_input(services)?)?;
                print_changed(out, "created", &account, today, json)
            }
            UserCommand::Clone {
                source,
                name,
                fields,
                json,
            } => {
                let account =
                    services.clone_account(actor, &source, &name, fields.to_input(services)?)?;
                print_changed(
                    out,
                    &format!("cloned from {source}:"),
                    &account,
                    today,
                    json,
                )
            }
            UserCommand::Update { name, fields, json } => {
                let account = services.update(actor, &name, fields.to_input(services)?)?;
                print_changed(out, "updated", &account, today, json)
            }
            UserCommand::Disable { name, reason } => {
                services.disable(actor, &name, DisableReason::Manual, Some(reason))?;
                say(out, &format!("disabled {name}"))
            }
            UserCommand::Enable { name } => {
                let a = services.enable(actor, &name)?;
                say(out, &format!("enabled {name} ({})", a.status))
            }
            UserCommand::Extend { name, end } => {
                let end = parse_date(&end, today).map_err(Error::Invalid)?;
                let a = services.extend(actor, &name, end)?;
                say(out, &format!("extended {name} to {end} ({})", a.status))
            }
            UserCommand::Delete { name } => {
                services.delete(actor, &name)?;
                say(
                    out,
                    &format!("deleted {name} (restorable with: user restore {name})"),
                )
            }
            UserCommand::Restore { name } => {
                services.restore(actor, &name)?;
                say(
                    out,
                    &format!("restored {name} (disabled; enable with: user enable {name})"),
                )
            }
            UserCommand::Purge { name, yes } => {
                if !yes {
                    return Err(Error::Invalid(format!(
                        "purge removes {name} for good: add --yes to confirm"
                    )));
                }
                services.purge(actor, &name)?;
                say(out, &format!("purged {name}"))
            }
        },
        Command::Key(cmd) => match cmd {
            KeyCommand::Add {
                name,
                expires,
                json,
            } => {
                let expires = date(services, &expires)?;
                let line = read_stdin(input)?;
                let key = services.key_add(actor, &name, &line, expires)?;
                if json {
                    print_json(out, &key_view(&key))
                } else {
                    say(
                        out,
                        &format!("added {} {} to {name}", key.algorithm, key.fingerprint),
                    )
                }
            }
            KeyCommand::List { name, json } => {
                let keys = services.key_list(actor, &name)?;
                print_keys(out, &keys, zone, json)
            }
            KeyCommand::Remove { name, fingerprint } => {
                let key = services.key_remove(actor, &name, &fingerprint)?;
                say(out, &format!("removed {} from {name}", key.fingerprint))
            }
        },
        Command::Password(PasswordCommand::Set { name, temporary }) => {
            let text = read_stdin(input)?;
            let password = text.lines().next().unwrap_or_default();
            services.password_set(actor, &name, password, temporary)?;
            if temporary {
                say(
                    out,
                    &format!("temporary password set for {name}: to be changed at the next login"),
                )
            } else {
                say(out, &format!("password set for {name}"))
            }
        }
        Command::Prefs(cmd) => {
            let (name, prefs, json) = match cmd {
                PrefsCommand::Show { name, json } => {
                    let p = services.prefs_show(actor, &name)?;
                    (name, p, json)
                }
                PrefsCommand::Set {
                    name,
                    digest,
                    mute,
                    unmute,
                    timezone,
                    language,
                } => {
                    let change = crate::service::digest::PrefsChange {
                        digest,
                        mute,
                        unmute,
                        timezone,
                        language,
                    };
                    let p = services.prefs_set(actor, &name, &change)?;
                    (name, p, false)
                }
            };
            if json {
                print_json(out, &prefs)
            } else {
                say(
                    out,
                    &format!(
                        "{name}: timezone {}, language {}, digest {}, muted: {}",
                        prefs.timezone.as_deref().unwrap_or("UTC"),
                        prefs.language.as_deref().unwrap_or("en"),
                        if prefs.digest { "on" } else { "off" },
                        if prefs.mute.is_empty() {
                            "none".to_string()
                        } else {
                            prefs.mute.join(", ")
                        }
                    ),
                )
            }
        }
        Command::Password(PasswordCommand::Reset { name, json }) => {
            let issued = services.password_reset(actor, &name)?;
            if json {
                print_json(out, &issued)
            } else {
                say(
                    out,
                    &format!(
                        "one-time code for {name} mailed to {} (valid until {})",
                        crate::text::escape_text(&issued.email),
                        zone.minute(issued.valid_until)
                    ),
                )
            }
        }
        Command::Allow(cmd) => match cmd {
            AllowCommand::List { name, json } => {
                let nets = services.allow_list(actor, &name)?;
                if json {
                    print_json(out, &nets)
                } else if nets.is_empty() {
                    say(
                        out,
                        &format!(
                            "{name} has no allowlist: any address the global allowlist admits"
                        ),
                    )
                } else {
                    nets.iter()
                        .try_for_each(|n| writeln!(out, "{n}"))
                        .map_err(io)
                }
            }
            AllowCommand::Add { name, cidr } => {
                let net = services.allow_add(actor, &name, &cidr)?;
                say(out, &format!("allowed {net} for {name}"))
            }
            AllowCommand::Remove { name, cidr } => {
                let net = services.allow_remove(actor, &name, &cidr)?;
                say(out, &format!("removed {net} from {name}'s allowlist"))
            }
        },
        Command::Group(cmd) => match cmd {
            GroupCommand::List { json } => print_groups(out, &services.group_list(actor)?, json),
            GroupCommand::Create { group } => {
                services.group_create(actor, &group)?;
                say(out, &format!("created group {group}"))
            }
            GroupCommand::Add { group, name } => {
                services.group_add(actor, &group, &name)?;
                say(out, &format!("added {name} to {group}"))
            }
            GroupCommand::Remove { group, name } => {
                services.group_remove(actor, &group, &name)?;
                say(out, &format!("removed {name} from {group}"))
            }
        },
        Command::Audit(cmd) => match cmd {
            AuditCommand::Tail {
                n,
                actor: by,
                target,
                action,
                since,
                json,
            } => {
                let filter = AuditFilter {
                    limit: n,
                    since,
                    actor: by,
                    target,
                    action,
                };
                let mut rows = EventRows::new(out, zone, json)?;
                services.audit_tail_each(actor, &filter, &mut |e| rows.row(&e))?;
                rows.finish()
            }
            AuditCommand::Verify {
                since_checkpoint,
                json,
            } => {
                let report = services.audit_verify(actor, since_checkpoint)?;
                if json {
                    print_json(out, &report)?;
                } else if report.broken.is_none() {
                    let since = match report.since {
                        Some(seq) => format!(" after the checkpoint at #{seq}"),
                        None => String::new(),
                    };
                    say(
                        out,
                        &format!(
                            "audit chain intact: {} events{since}, head {}",
                            report.events,
                            report.head.as_deref().unwrap_or("-")
                        ),
                    )?;
                }
                match report.broken {
                    Some(b) => Err(Error::Failed(format!(
                        "audit chain broken after {} good events: {b}",
                        report.events
                    ))),
                    None => Ok(()),
                }
            }
        },
        Command::Totp(TotpCommand::Enroll { name }) => {
            let enrolment = services.totp_enroll(actor, &name)?;
            let qr = crate::auth::totp::qr_text(&enrolment.uri).map_err(Error::Failed)?;
            writeln!(out, "{}", qr.trim_end()).map_err(io)?;
            say(out, &enrolment.uri)?;
            say(out, &format!("secret: {} (scan the code or type the secret into an authenticator app; it is not shown again)", enrolment.secret))
        }
        Command::Totp(TotpCommand::Reset { name }) => {
            services.totp_reset(actor, &name)?;
            say(out, &format!("TOTP removed for {name}"))
        }
        Command::Session(SessionCommand::List { json }) => {
            let sessions = services.session_list(actor)?;
            print_sessions(out, &sessions, zone, json)
        }
        Command::Session(SessionCommand::Kill { id, user }) => match (id, user) {
            (Some(id), _) => {
                let info = services.session_kill(actor, id)?;
                say(
                    out,
                    &format!(
                        "killed session {id} of {} from {}",
                        info.account, info.address
                    ),
                )
            }
            (None, Some(user)) => {
                let n = services.session_kill_user(actor, &user)?;
                say(out, &format!("killed {n} session(s) of {user}"))
            }
            (None, None) => Err(Error::Invalid("give a session ID or --user NAME".into())),
        },
        Command::Auth(AuthCommand::Lockouts { json }) => {
            let list = services.auth_lockouts(actor)?;
            if json {
                return print_json(out, &list);
            }
            if list.is_empty() {
                return say(out, "no lockouts");
            }
            for l in &list {
                // `who` is what a client offered as a username.
                say(
                    out,
                    &format!(
                        "{:<8} {:<40} until {}  ({})",
                        l.kind,
                        l.who,
                        zone.second(l.until),
                        l.why
                    ),
                )?;
            }
            Ok(())
        }
        Command::Auth(AuthCommand::Unlock { what }) => {
            if services.auth_unlock(actor, &what)? {
                say(out, &format!("unlocked {what}"))
            } else {
                say(out, &format!("{what} was not locked out"))
            }
        }
        Command::Lifecycle(LifecycleCommand::Preview { until, json }) => {
            let until = match until {
                Some(text) => parse_date(&text, today).map_err(Error::Invalid)?,
                None => today + chrono::Duration::days(30),
            };
            let empty = format!("nothing planned until {until}");
            let mut rows = PlanRows::new(out, json);
            services.lifecycle_preview_each(actor, until, &mut |item| rows.row(&item))?;
            rows.finish(&empty)
        }
        Command::Lifecycle(LifecycleCommand::Run { dry_run, json }) => {
            let items = services.lifecycle_run(actor, dry_run)?;
            let empty = if dry_run {
                "nothing is due"
            } else {
                "nothing was due"
            };
            print_plan(out, &items, json, empty)
        }
        Command::Request(cmd) => match cmd {
            RequestCommand::Extend { name, end, reason } => {
                let end = parse_date(&end, today).map_err(Error::Invalid)?;
                let r = services.request_extend(actor, &name, end, &reason)?;
                say(
                    out,
                    &format!(
                        "request #{} to extend {name} to {end} is pending an admin's decision",
                        r.id
                    ),
                )
            }
            RequestCommand::List { json } => {
                print_requests(out, &services.request_list(actor)?, zone, json)
            }
            RequestCommand::Create {
                name,
                fields,
                reason,
                json,
            } => {
                let r =
                    services.request_create(actor, &name, fields.to_input(services)?, &reason)?;
                if json {
                    print_json(out, &r)
                } else {
                    say(
                        out,
                        &format!(
                            "request #{} for the account {name} is pending an admin's decision",
                            r.id
                        ),
                    )
                }
            }
            RequestCommand::Import { reason, json } => {
                let r = services.request_import(actor, import_rows(today, input)?, &reason)?;
                if json {
                    print_json(out, &r)
                } else {
                    say(
                        out,
                        &format!(
                            "request #{} for {} account(s) is pending an admin's decision",
                            r.id,
                            r.accounts.len()
                        ),
                    )
                }
            }
            RequestCommand::Approve { id } => {
                let r = services.request_decide(actor, id, true, None)?;
                match (r.kind.as_str(), r.end_date) {
                    ("extend", Some(end)) => say(
                        out,
                        &format!("approved #{id}: {} now ends {end}", r.account),
                    ),
                    _ => say(
                        out,
                        &format!(
                            "approved #{id}: created {}",
                            r.accounts
                                .iter()
                                .map(|a| a.username.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                }
            }
            RequestCommand::Deny { id, reason } => {
                let r = services.request_decide(actor, id, false, Some(reason))?;
                say(out, &format!("denied #{id} ({})", r.account))
            }
        },
        Command::Report(ReportCommand::Orphans { json }) => {
            let mut rows = OrphanRows::new(out, json)?;
            services.report_orphans_each(actor, &mut |o| rows.row(&o))?;
            rows.finish()
        }
        Command::Connector(cmd) => match cmd {
            ConnectorCommand::List { json } => {
                print_connectors(out, &services.connector_list(actor)?, json)
            }
            ConnectorCommand::Status { name, json } => {
                print_connector_status(out, &services.connector_status(actor, &name)?, zone, json)
            }
            ConnectorCommand::Retry { name, user, adopt } => {
                let n = services.connector_retry_adopting(actor, &name, user.as_deref(), adopt)?;
                if adopt {
                    say(
                        out,
                        &format!("{name}: {n} jobs due now; they take over what the target holds"),
                    )
                } else {
                    say(out, &format!("{name}: {n} jobs due now"))
                }
            }
            ConnectorCommand::Reconcile {
                name,
                dry_run,
                disable_unmatched,
                json,
            } => {
                let options = crate::service::connect::ReconcileOptions {
                    dry_run,
                    disable_unmatched,
                };
                let applier = services.applier()?;
                let report =
                    services.connector_reconcile(actor, &name, options, applier.as_ref())?;
                print_reconcile(out, &report, json)
            }
        },
        Command::Host(cmd) => run_host(services, actor, cmd, zone, input, out),
        Command::AuthorizedKeys { user } => {
            for line in services.authorized_keys(actor, &user)? {
                writeln!(out, "{line}").map_err(io)?;
            }
            Ok(())
        }
        Command::RevokedKeys => {
            let krl = services.revoked_keys(actor)?;
            out.write_all(&krl).map_err(io)
        }
        Command::Cert { name, valid, json } => {
            let valid = valid
                .as_deref()
                .map(crate::domain::host::parse_duration)
                .transpose()
                .map_err(Error::Invalid)?;
            let key_line = if name.is_some() {
                Some(read_stdin(input)?)
            } else {
                None
            };
            let issued = services.cert_issue(actor, name.as_deref(), key_line.as_deref(), valid)?;
            if json {
                return print_json(out, &issued);
            }
            writeln!(out, "{}", issued.certificate.trim()).map_err(io)
        }
        Command::Token(cmd) => tokens::run(services, actor, cmd, out),
        Command::Source(cmd) => sources::run(services, actor, cmd, out),
        Command::Notify(NotifyCommand::Queue { json }) => {
            let entries = services.notify_queue(actor)?;
            print_outbox(out, &entries, zone, json)
        }
        Command::Import {
            dry_run,
            skip_existing,
        } => {
            let options = ImportOptions {
                dry_run,
                skip_existing,
            };
            // The service checks the actor's right before the input is opened.
            let report = services.import(actor, options, || import_rows(today, input))?;
            let skipped = if report.skipped > 0 {
                format!(", {} existing skipped", report.skipped)
            } else {
                String::new()
            };
            if dry_run {
                writeln!(
                    out,
                    "{} row(s) valid{skipped}; nothing written (drop --dry-run to import)",
                    report.imported
                )
                .map_err(io)
            } else {
                writeln!(out, "imported {} account(s){skipped}", report.imported).map_err(io)
            }
        }
        Command::Backup => {
            let summary = services.backup(actor, out)?;
            // stdout carries the backup; the summary goes with the audit event.
            let _ = summary;
            Ok(())
        }
        Command::Export { format } => match format {
            ExportFormat::Json => {
                let mut rows = JsonRows::new(out)?;
                services.export_each(actor, &mut |a| rows.account(&AccountView::new(&a, today)))?;
                rows.finish()
            }
            ExportFormat::Csv => {
                let mut rows = CsvRows::new(out, &services.config().custom_fields)?;
                services.export_each(actor, &mut |a| rows.row(&a))?;
                rows.finish()
            }
        },
        Command::Check { json } => {
            let report = services.check(actor)?;
            if json {
                print_json(out, &report)?;
            } else {
                for p in &report.problems {
                    say(out, &format!("problem: {p}"))?;
                }
                if report.problems.is_empty() {
                    say(out, &format!("ok: {} accounts, {} groups, {} audit events; indexes consistent, audit chain intact", report.accounts, report.groups, report.audit_events))?;
                }
            }
            if report.problems.is_empty() {
                Ok(())
            } else {
                Err(Error::Failed(format!(
                    "check found {} problem(s)",
                    report.problems.len()
                )))
            }
        }
    }
}

fn run_host(
    services: &Services,
    actor: &Actor,
    command: HostCommand,
    zone: Zone,
    input: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<()> {
    use host_output::*;
    use output::*;
    match command {
        HostCommand::Add {
            name,
            groups,
            key,
            json,
        } => {
            let line = match key {
                None => read_stdin(input)?,
                Some(path) if matches!(actor.source, crate::service::Source::Cli) => {
                    let file = std::fs::File::open(&path).map_err(|e| {
                        Error::Invalid(format!("cannot read {}: {e}", path.display()))
                    })?;
                    read_stdin(&mut std::io::BufReader::new(file))?
                }
                Some(_) => {
                    return Err(Error::Invalid(
                        "--key FILE names a file on the machine running tenure: over ssh, \
                         send the key line on stdin (host add NAME < host_key.pub)"
                            .into(),
                    ))
                }
            };
            let host = services.host_add(actor, &name, &line, &groups)?;
            let fp = host
                .credentials
                .keys
                .first()
                .map(|k| k.fingerprint.clone())
                .unwrap_or_default();
            if json {
                return print_json(
                    out,
                    &serde_json::json!({"name": name, "groups": groups, "fingerprint": fp}),
                );
            }
            let via = if groups.is_empty() {
                "no group yet: nobody may log in there (host groups come with --group)".to_string()
            } else {
                format!("accounts in {} may log in there", groups.join(", "))
            };
            say(out, &format!("added host {name} ({fp}); {via}"))
        }
        HostCommand::List { json } => print_hosts(out, &services.host_list(actor)?, json),
        HostCommand::Show { name, json } => {
            print_host(out, &services.host_show(actor, &name)?, zone, json)
        }
        HostCommand::Remove { name } => {
            services.host_remove(actor, &name)?;
            say(out, &format!("removed host {name}"))
        }
        HostCommand::Ca => {
            let line = services.host_ca(actor)?;
            writeln!(out, "{}", line.trim()).map_err(io)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::join_free_text;

    fn joined(line: &str) -> Vec<String> {
        join_free_text(shell_words::split(line).unwrap())
    }

    #[test]
    fn a_free_text_option_takes_the_words_up_to_the_next_option() {
        assert_eq!(
            joined("user disable bob --reason contract ended"),
            ["user", "disable", "bob", "--reason", "contract ended"]
        );
        assert_eq!(
            joined("user create x --display-name Ann Lee --kind intern --company Big Co -n 3"),
            [
                "user",
                "create",
                "x",
                "--display-name",
                "Ann Lee",
                "--kind",
                "intern",
                "--company",
                "Big Co",
                "-n",
                "3"
            ]
        );
    }

    #[test]
    fn quoted_and_equals_forms_and_other_options_are_left_alone() {
        assert_eq!(
            joined("user disable bob --reason 'contract ended'"),
            ["user", "disable", "bob", "--reason", "contract ended"]
        );
        assert_eq!(
            joined("request deny 3 --reason=not this year"),
            ["request", "deny", "3", "--reason=not this year"]
        );
        // A missing value stays missing (clap says so), and non-text options
        // keep their single word.
        assert_eq!(
            joined("user disable bob --reason --json"),
            ["user", "disable", "bob", "--reason", "--json"]
        );
        assert_eq!(
            joined("user list --sponsor alice --kind contractor"),
            ["user", "list", "--sponsor", "alice", "--kind", "contractor"]
        );
        assert_eq!(
            joined("user update bob --project-code x y"),
            ["user", "update", "bob", "--project-code", "x", "y"]
        );
    }
}

/// The exec grammar: the same `Command`, no binary name in front.
#[derive(Debug, clap::Parser)]
#[command(name = "tenure", no_binary_name = true, disable_version_flag = true)]
struct ExecWords {
    #[command(flatten)]
    display: DisplayArgs,
    #[command(subcommand)]
    command: Command,
}

/// The global display flags, as every front door's grammar takes them.
#[derive(Clone, Copy, Debug, Default, Args)]
pub struct DisplayArgs {
    /// Show times in UTC, not in your timezone (for scripts; --json is always UTC)
    #[arg(long, global = true)]
    pub utc: bool,
}

impl From<DisplayArgs> for Display {
    fn from(args: DisplayArgs) -> Display {
        Display { utc: args.utc }
    }
}

/// Parses the words of an exec line (after `shell_words::split`) as the SSH
/// exec front door does. Public so the fuzz targets reach the real grammar.
pub fn parse_exec_words(words: &[String]) -> std::result::Result<Command, clap::Error> {
    parse_exec_line(words).map(|(command, _)| command)
}

/// `parse_exec_words` with the global display flags (`--utc`).
pub fn parse_exec_line(words: &[String]) -> std::result::Result<(Command, Display), clap::Error> {
    use clap::Parser;
    ExecWords::try_parse_from(words).map(|parsed| (parsed.command, parsed.display.into()))
}

#[cfg(test)]
mod exec_words_tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        shell_words::split(line).expect("shell words")
    }

    #[test]
    fn exec_words_parse_with_the_shared_grammar() {
        assert!(matches!(
            parse_exec_words(&words("user list --json")),
            Ok(Command::User(UserCommand::List { json: true, .. }))
        ));
        assert!(matches!(
            parse_exec_words(&words("import --dry-run")),
            Ok(Command::Import { dry_run: true, .. })
        ));
        let e = parse_exec_words(&words("user frobnicate")).expect_err("unknown");
        assert!(!usage_line(&e, "help").contains('\n'));
    }
}
