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

/// A directory that outlives the test that asked for it (the services it
/// configures hold paths into it). They all live under one directory per
/// test process, `$TMPDIR/tenure-unit-tests/PID`; each process first removes
/// the directories of processes that have ended, so runs do not pile up
/// directories (each with an at-rest key) in the temp folder.
pub(crate) fn test_dir() -> std::path::PathBuf {
    static BASE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let base = BASE.get_or_init(|| {
        let root = std::env::temp_dir().join("tenure-unit-tests");
        if let Ok(entries) = std::fs::read_dir(&root) {
            for entry in entries.flatten() {
                let ended = entry
                    .file_name()
                    .to_str()
                    .and_then(|name| name.parse::<u32>().ok())
                    .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
                if ended {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let mine = root.join(std::process::id().to_string());
        std::fs::create_dir_all(&mine).expect("test directory");
        mine
    });
    tempfile::tempdir_in(base).expect("tempdir").keep()
}

/// Services on `config_text`, initialised with admin `root` (email `root_email`).
pub(crate) fn services_with(
    config_text: &str,
    root_email: Option<&str>,
) -> (Services, Arc<FixedClock>, Actor) {
    services_in(config_text, root_email, |_| Arc::new(MemoryStore::new()))
}

/// Services on the example config over a sled database in the test's
/// directory (for what the memory store will not hold, e.g. a record
/// that does not decode).
pub(crate) fn services_on_sled() -> (Services, Arc<FixedClock>, Actor) {
    services_in(EXAMPLE, None, |dir| {
        Arc::new(crate::store::SledStore::open(&dir.join("data")).expect("sled store"))
    })
}

fn services_in(
    config_text: &str,
    root_email: Option<&str>,
    store: impl FnOnce(&std::path::Path) -> Arc<dyn crate::store::Store>,
) -> (Services, Arc<FixedClock>, Actor) {
    // A directory of its own, kept for the test's life: keys/ (the at-rest key) lives there.
    let dir = test_dir();
    let config = Config::parse(config_text, "test", &dir).expect("config");
    let clock = Arc::new(FixedClock::new(t0()));
    let services = Services::new(Arc::new(config), store(&dir), clock.clone()).expect("services");
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
