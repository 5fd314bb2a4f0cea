//! The lifecycle pass at scale (issue: lifecycle automation).
//!
//!     cargo bench --bench lifecycle                       # 100,000 accounts
//!     BENCH_ACCOUNTS=1000000 cargo bench --bench lifecycle
//!
//! N accounts, 1% of them ending the day before "pass day" (so they fall due),
//! the rest ending months later. Prints the time of the pass that disables the
//! 1% (one transaction and flush per 500 accounts, each with its audit event
//! and notice), of a pass with 0.1% due, and of a pass with nothing due: the
//! cost follows the due accounts, not all accounts.

use std::sync::Arc;

// mimalloc: the write path allocates and frees many small records; glibc's
// malloc spent a quarter of bulk-import time in its free lists.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use tenure::config::{Config, EXAMPLE};
use tenure::domain::Kind;
use tenure::service::accounts::AccountInput;
use tenure::service::{Actor, FixedClock, Services};
use tenure::store::{SledStore, Store};

fn main() {
    let total: usize = std::env::var("BENCH_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("tempdir");
    // Only end dates drive this pass: no inactivity rules.
    let text = EXAMPLE
        .replace("inactivity_days = 90", "inactivity_days = 0")
        .replace("never_logged_in_days = 30", "never_logged_in_days = 0")
        // Email on, so each disable also queues its notice (in the same transaction).
        + "\n[notify.smtp]\nhost = \"127.0.0.1\"\nport = 2525\nfrom = \"tenure <t@example.com>\"\nsecurity = \"plain\"\n";
    let config = Config::parse(&text, "bench", dir.path()).expect("config");
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("data")).expect("open"));
    let clock = Arc::new(FixedClock::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0)
            .single()
            .expect("time"),
    ));
    let services = Services::new(Arc::new(config), store, clock.clone()).expect("services");
    let admin = Actor::local_operator();
    services
        .initialize(&admin, "root", AccountInput::default())
        .expect("init");
    let today = services.today();
    let pass_day = 40i64;
    let t = Instant::now();
    for start in (0..total).step_by(1000) {
        let rows: Vec<(String, AccountInput)> = (start..(start + 1000).min(total))
            .map(|i| {
                // 1% end on pass day - 1; 0.1% on pass day; the rest months later.
                let end = if i % 100 == 0 {
                    pass_day - 1
                } else if i % 1000 == 1 {
                    pass_day
                } else {
                    pass_day + 30 + (i % 270) as i64
                };
                (
                    format!("u{i:07}"),
                    AccountInput {
                        email: Some(format!("u{i}@example.com")),
                        display_name: Some(format!("User {i}")),
                        kind: Some(Kind::Contractor),
                        end_date: Some(today + Duration::days(end)),
                        ..Default::default()
                    },
                )
            })
            .collect();
        services.create_batch(&admin, &rows).expect("batch");
    }
    println!(
        "set-up: {total} accounts in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let system = Actor::system("lifecycle");
    clock.advance(Duration::days(pass_day));
    let t = Instant::now();
    let done = services.lifecycle_run(&system, false).expect("pass");
    println!(
        "pass with 1% due: {} actions in {:.3} s",
        done.len(),
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let done = services.lifecycle_run(&system, false).expect("pass");
    println!(
        "pass with nothing due: {} actions in {:.6} s",
        done.len(),
        t.elapsed().as_secs_f64()
    );
    clock.advance(Duration::days(1));
    let t = Instant::now();
    let done = services.lifecycle_run(&system, false).expect("pass");
    println!(
        "pass with 0.1% due: {} actions in {:.3} s",
        done.len(),
        t.elapsed().as_secs_f64()
    );
    let queued = services.notify_queue(&admin).expect("queue").len();
    println!("notices queued by these passes (and the creations): {queued}");
}
