//! Policies, custom field declarations and templates: data from the config,
//! rules applied by `validate` and `lifecycle`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::account::{Kind, Role};

/// Lifecycle and credential policy. Days are calendar days.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Kinds that must have an end date, and the longest span from start to
    /// end for each. A kind missing here needs no end date (employees).
    #[serde(default = "default_max_duration")]
    pub max_duration_days: BTreeMap<Kind, u32>,
    /// Disable after this many days without a login (0 = never).
    #[serde(default = "default_inactivity")]
    pub inactivity_days: u32,
    /// Disable accounts that never logged in this many days after creation (0 = never).
    #[serde(default = "default_never_logged_in")]
    pub never_logged_in_days: u32,
    /// Soft-delete this many days after an account was disabled (0 = never).
    #[serde(default = "default_delete_after_disable")]
    pub delete_after_disable_days: u32,
    /// Purge soft-deleted accounts after this many days (0 = never).
    #[serde(default = "default_retention")]
    pub retention_days: u32,
    /// Warn the sponsor this many days before an end date, once per threshold.
    #[serde(default = "default_warnings")]
    pub expiry_warning_days: Vec<u32>,
    /// Report keys unused for this many days (orphan report).
    #[serde(default = "default_key_unused")]
    pub key_unused_days: u32,
    #[serde(default = "default_password_min_length")]
    pub password_min_length: usize,
}

fn default_max_duration() -> BTreeMap<Kind, u32> {
    BTreeMap::from([
        (Kind::Contractor, 365),
        (Kind::Intern, 180),
        (Kind::Vendor, 365),
        (Kind::Volunteer, 365),
        (Kind::Partner, 730),
    ])
}
fn default_inactivity() -> u32 {
    90
}
fn default_never_logged_in() -> u32 {
    30
}
fn default_delete_after_disable() -> u32 {
    90
}
fn default_retention() -> u32 {
    365
}
fn default_warnings() -> Vec<u32> {
    vec![14, 7, 1]
}
fn default_key_unused() -> u32 {
    180
}
fn default_password_min_length() -> usize {
    12
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_duration_days: default_max_duration(),
            inactivity_days: default_inactivity(),
            never_logged_in_days: default_never_logged_in(),
            delete_after_disable_days: default_delete_after_disable(),
            retention_days: default_retention(),
            expiry_warning_days: default_warnings(),
            key_unused_days: default_key_unused(),
            password_min_length: default_password_min_length(),
        }
    }
}

impl Policy {
    /// `Some(days)` when accounts of this kind need an end date at most `days` after start.
    pub fn max_duration(&self, kind: Kind) -> Option<u32> {
        self.max_duration_days.get(&kind).copied()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Text,
    Email,
    Date,
    Choice,
}

/// A custom field declared in the config.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomField {
    pub name: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(rename = "type", default = "default_field_type")]
    pub field_type: FieldType,
    #[serde(default)]
    pub required: bool,
    /// A regular expression the whole value must match (text fields).
    #[serde(default)]
    pub pattern: Option<String>,
    /// The allowed values (choice fields).
    #[serde(default)]
    pub choices: Vec<String>,
    #[serde(skip)]
    pub compiled: Option<regex::Regex>,
}

fn default_field_type() -> FieldType {
    FieldType::Text
}

impl CustomField {
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.name)
    }
}

/// Defaults for a kind of account. `duration_days` sets the end date from the start date.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    #[serde(default)]
    pub kind: Option<Kind>,
    #[serde(default)]
    pub company: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub groups: BTreeSet<String>,
    #[serde(default)]
    pub roles: BTreeSet<Role>,
    #[serde(default)]
    pub duration_days: Option<u32>,
    /// Custom fields this template makes required on top of the config's own.
    #[serde(default)]
    pub required_fields: Vec<String>,
    /// Values for custom fields.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}
