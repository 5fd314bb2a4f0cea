//! tenure: accounts for the people outside HR-driven provisioning, managed
//! over SSH. Layers, one way: front doors (cli, ssh, tui, scheduler, http) →
//! service → domain and store.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod auth;
pub mod bounded;
pub mod cli;
pub mod config;
pub mod connect;
pub mod domain;
pub mod hostagent;
pub mod hostkey;
pub mod http;
pub mod locale;
pub mod notify;
pub mod service;
pub mod sources;
pub mod ssh;
pub mod store;
pub mod term;
pub mod text;
pub mod tui;
