//! End-to-end tests of the real `tenure` binary against a temp directory.
//! One integration-test binary: add modules here, not files in tests/.

mod audit;
mod backup;
mod cli;
mod common;
mod connect;
mod console;
mod crash;
mod exec;
mod hardening;
mod hosts;
mod http;
mod import;
mod ldap;
mod lifecycle;
mod notify;
mod scale;
mod scim;
mod security;
mod ssh;
