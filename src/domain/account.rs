//! The account record and its vocabulary (kinds, roles, statuses).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $word)] $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($word => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} '{}' (expected one of: {})",
                        stringify!($name).to_ascii_lowercase(),
                        other,
                        [$($word),+].join(", ")
                    )),
                }
            }
        }
    };
}

word_enum!(
    /// What kind of relationship the person has with the organisation.
    Kind {
        Employee => "employee",
        Contractor => "contractor",
        Intern => "intern",
        Vendor => "vendor",
        Volunteer => "volunteer",
        Partner => "partner",
    }
);

word_enum!(
    /// What an account may do in tenure itself (checked in the service layer).
    /// `host` is a target server (`host add`): it may only ask for the keys
    /// and the revocation list of accounts allowed on it, nothing else.
    Role {
        Admin => "admin",
        Operator => "operator",
        Sponsor => "sponsor",
        User => "user",
        Host => "host",
    }
);

word_enum!(
    /// The stored lifecycle state. See `lifecycle` for the rules between them.
    Status {
        Staged => "staged",
        Active => "active",
        Disabled => "disabled",
        Deleted => "deleted",
    }
);

word_enum!(
    /// Why an account is disabled.
    DisableReason {
        Manual => "manual",
        Expired => "expired",
        Inactive => "inactive",
        NeverLoggedIn => "never_logged_in",
        SourceRemoved => "source_removed",
    }
);

/// A registered SSH public key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshKey {
    /// `SHA256:…` exactly as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
    pub algorithm: String,
    /// The OpenSSH public key line without its comment.
    pub public_key: String,
    #[serde(default)]
    pub comment: String,
    pub added_at: DateTime<Utc>,
    pub added_by: String,
    #[serde(default)]
    pub last_used: Option<DateTime<Utc>>,
    #[serde(default)]
    pub expires_on: Option<NaiveDate>,
}

/// Everything secret or credential-like. Never shown, never audited by value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    #[serde(default)]
    pub keys: Vec<SshKey>,
    /// argon2id PHC string.
    #[serde(default)]
    pub password_hash: Option<String>,
    #[serde(default)]
    pub password_set_at: Option<DateTime<Utc>>,
    /// Set by someone else to be changed at the next login (`password set --temporary`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub password_temporary: bool,
    /// The `password_set_at` whose expiry warning went out (once per password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_warned: Option<DateTime<Utc>>,
    /// Base32 TOTP secret (RFC 6238).
    #[serde(default)]
    pub totp_secret: Option<String>,
    #[serde(default)]
    pub totp_enrolled_at: Option<DateTime<Utc>>,
    /// The last accepted TOTP step: a code is good once.
    #[serde(default)]
    pub totp_last_step: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub username: String,
    pub display_name: String,
    pub email: String,
    pub kind: Kind,
    #[serde(default)]
    pub company: Option<String>,
    #[serde(default)]
    pub sponsor: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    pub start_date: NaiveDate,
    #[serde(default)]
    pub end_date: Option<NaiveDate>,
    #[serde(default)]
    pub groups: BTreeSet<String>,
    #[serde(default)]
    pub roles: BTreeSet<Role>,
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
    /// The console theme this account chose (a name from `themes/`).
    #[serde(default)]
    pub theme: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub allowlist: Vec<IpNet>,
    #[serde(default)]
    pub inactivity_exempt: bool,
    #[serde(default)]
    pub credentials: Credentials,
    pub status: Status,
    #[serde(default)]
    pub disable_reason: Option<DisableReason>,
    /// The free text given with a manual disable ("contract ended").
    #[serde(default)]
    pub disable_note: Option<String>,
    #[serde(default)]
    pub disabled_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
    #[serde(default)]
    pub last_login: Option<DateTime<Utc>>,
    /// Expiry warnings already sent: (end date warned about, days before).
    #[serde(default)]
    pub warnings_sent: BTreeSet<(NaiveDate, u32)>,
    /// The POSIX uidNumber tenure gave this account for directories (LDAP
    /// connectors); handed out once and kept for the account's life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid_number: Option<u32>,
    /// The directory this account is synced from (`[[sources]]`), if any:
    /// its fields named in `owned` are read-only in tenure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<super::source::SourceLink>,
}

impl Account {
    pub fn email_key(&self) -> String {
        self.email.to_lowercase()
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn key(&self, fingerprint: &str) -> Option<&SshKey> {
        self.credentials
            .keys
            .iter()
            .find(|k| k.fingerprint == fingerprint)
    }
}

/// A named group. Membership lives on the account (`Account::groups`);
/// the member lists are derived in memory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// A contractor named bob created 2026-01-01, for tests.
#[cfg(test)]
pub(crate) fn sample(status: Status, start: &str, end: Option<&str>) -> Account {
    let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("a date");
    let created = day("2026-01-01")
        .and_hms_opt(9, 0, 0)
        .expect("a time")
        .and_utc();
    Account {
        username: "bob".into(),
        display_name: "Bob".into(),
        email: "bob@example.com".into(),
        kind: Kind::Contractor,
        company: None,
        sponsor: None,
        project: None,
        start_date: day(start),
        end_date: end.map(day),
        groups: Default::default(),
        roles: Default::default(),
        fields: Default::default(),
        timezone: None,
        language: None,
        theme: None,
        notes: None,
        allowlist: vec![],
        inactivity_exempt: false,
        credentials: Credentials::default(),
        status,
        disable_reason: (status == Status::Disabled).then_some(DisableReason::Manual),
        disable_note: None,
        disabled_at: None,
        deleted_at: None,
        created_at: created,
        created_by: "admin".into(),
        updated_at: created,
        updated_by: "admin".into(),
        last_login: None,
        warnings_sent: Default::default(),
        uid_number: None,
        source: None,
    }
}
