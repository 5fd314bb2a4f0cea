//! End-to-end tests of the real `tenure` binary against a temp directory.
//! One integration-test binary: add modules here, not files in tests/.

mod account_requests;
mod audit;
mod backup;
mod cli;
mod common;
mod connect;
mod console;
mod crash;
mod digest;
mod exec;
mod hardening;
mod hosts;
mod http;
mod import;
mod ldap;
mod lifecycle;
mod notify;
mod passwords;
mod prefs;
mod scale;
mod scim;
mod security;
mod slapd;
mod sources;
mod ssh;
