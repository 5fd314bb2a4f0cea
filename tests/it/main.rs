//! End-to-end tests of the real `tenure` binary against a temp directory.
//! One integration-test binary: add modules here, not files in tests/.

mod audit;
mod cli;
mod common;
mod console;
mod exec;
mod import;
mod lifecycle;
mod notify;
mod security;
mod ssh;
