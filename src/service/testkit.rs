//! Test scaffolding: a service over an in-memory store with a clock that
//! stands still until moved, initialised with the admin `root`.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};

use super::accounts::AccountInput;
use super::{Actor, FixedClock, Services};
use crate::config::{Config, EXAMPLE};
use crate::store::MemoryStore;

pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0)
        .single()
        .expect("a valid time")
}

/// Services on `config_text`, initialised with admin `root` (email `root_email`).
pub(crate) fn services_with(
    config_text: &str,
    root_email: Option<&str>,
) -> (Services, Arc<FixedClock>, Actor) {
    // A directory of its own, kept for the test's life: keys/ (the at-rest key) lives there.
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let config = Config::parse(config_text, "test", &dir).expect("config");
    let clock = Arc::new(FixedClock::new(t0()));
    let services = Services::new(
        Arc::new(config),
        Arc::new(MemoryStore::new()),
        clock.clone(),
    )
    .expect("services");
    let admin = Actor::local_operator();
    let input = AccountInput {
        email: root_email.map(str::to_string),
        ..Default::default()
    };
    services
        .initialize(&admin, "root", input)
        .expect("initialise");
    (services, clock, admin)
}

/// Services on the shipped example config.
pub(crate) fn services() -> (Services, Arc<FixedClock>, Actor) {
    services_with(EXAMPLE, None)
}
