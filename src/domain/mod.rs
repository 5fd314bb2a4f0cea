//! Pure types and rules: accounts, lifecycle, validation, policy, audit events.
//! Nothing in here does I/O or reads the clock; the caller passes `now`.

pub mod account;
pub mod audit;
pub mod dates;
pub mod host;
pub mod key;
pub mod krl;
pub mod lifecycle;
pub mod notice;
pub mod password_policy;
pub mod plan;
pub mod policy;
pub mod source;
pub mod validate;

pub use account::{Account, DisableReason, Group, Kind, Role, SshKey, Status};
pub use audit::{AuditEvent, Change};
pub use policy::{CustomField, FieldType, Policy, Template};
