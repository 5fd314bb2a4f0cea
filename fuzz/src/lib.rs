//! Shared scaffolding of the fuzz targets: a service over an in-memory store
//! with a clock that stands still, initialised with the admin `root` — the
//! same shape as `service::testkit`, built from public constructors only.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use chrono::{TimeZone, Utc};
use tenure::config::{Config, EXAMPLE};
use tenure::service::accounts::AccountInput;
use tenure::service::clock::FixedClock;
use tenure::service::{Actor, Services};
use tenure::store::MemoryStore;

/// A directory of this process's own for keys/ (the at-rest key); the
/// example config's relative paths resolve against it.
pub fn scratch_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tenure-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    })
}

fn example_config() -> Arc<Config> {
    static CONFIG: OnceLock<Arc<Config>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            Arc::new(Config::parse(EXAMPLE, "example", scratch_dir()).expect("example config"))
        })
        .clone()
}

/// A fresh service on the example config with `root` (admin) and `bob`
/// (a contractor sponsored by root), and the actor that runs commands.
pub fn fresh_services() -> (Services, Actor) {
    let clock = Arc::new(FixedClock::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0)
            .single()
            .expect("time"),
    ));
    let services =
        Services::new(example_config(), Arc::new(MemoryStore::new()), clock).expect("services");
    let admin = Actor::local_operator();
    services
        .initialize(&admin, "root", AccountInput::default())
        .expect("initialise");
    (services, admin)
}
