//! Store and service-layer figures for the foundation issue.
//!
//!     cargo bench --bench store                  # 100,000 accounts
//!     BENCH_ACCOUNTS=1000000 cargo bench --bench store
//!
//!     BENCH_ONLY=import|batch cargo bench --bench store   # one bulk figure, then stop
//!     MIMALLOC_PURGE_DELAY=0 cargo bench --bench store    # the allocator as `serve` sets it
//!
//! Prints: bulk creation as an admin runs it (`import` of a CSV through
//! `cli::run`: rows parsed, checked and staged 1,000 at a time, committed,
//! then applied one transaction and one flush per 1,000 rows, each account
//! with its audit event, indexes and outbox entries); the same accounts
//! through `Services::create_batch` (batches of 1,000) into a second, fresh
//! database; single interactive changes, each flushed; lookups by username,
//! email and key fingerprint; start-up (index rebuild) time; size on disk.

use std::sync::Arc;

// mimalloc: the write path allocates and frees many small records; glibc's
// malloc spent a quarter of bulk-import time in its free lists.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::time::{Duration, Instant};

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::PrivateKey;
use tenure::config::{Config, EXAMPLE};
use tenure::domain::{DisableReason, Kind};
use tenure::service::accounts::AccountInput;
use tenure::service::{Actor, Services, SystemClock};
use tenure::store::{SledStore, Store};

const BATCH: usize = 1_000;

fn open(dir: &std::path::Path) -> Services {
    let config = Config::parse(EXAMPLE, "bench", dir).expect("config");
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.join("data")).expect("open"));
    Services::new(Arc::new(config), store, Arc::new(SystemClock)).expect("services")
}

fn row(i: usize, today: chrono::NaiveDate) -> (String, AccountInput) {
    (
        format!("u{i:07}"),
        AccountInput {
            email: Some(format!("person.{i}@contractor-{}.example.com", i % 97)),
            display_name: Some(format!("Person Number {i}")),
            kind: Some(Kind::Contractor),
            company: Some(format!("Company {}", i % 500)),
            project: Some(format!("project-{}", i % 50)),
            end_date: Some(today + chrono::Duration::days(30 + (i % 300) as i64)),
            ..Default::default()
        },
    )
}

/// The rows of `row` as the CSV an admin would pipe into `import`.
fn csv(total: usize, today: chrono::NaiveDate) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::with_capacity(total * 150);
    writeln!(
        out,
        "username,email,display_name,kind,company,project,end_date"
    )
    .unwrap();
    for i in 0..total {
        let (name, input) = row(i, today);
        writeln!(
            out,
            "{name},{},{},contractor,{},{},{}",
            input.email.unwrap_or_default(),
            input.display_name.unwrap_or_default(),
            input.company.unwrap_or_default(),
            input.project.unwrap_or_default(),
            input.end_date.map(|d| d.to_string()).unwrap_or_default()
        )
        .unwrap();
    }
    out
}

fn micros(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let idx = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples.get(idx).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

fn main() {
    let total: usize = std::env::var("BENCH_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("tempdir");
    // BENCH_KEEP=DIR: build the database there and keep it (for memory and console measurements).
    let keep = std::env::var_os("BENCH_KEEP").map(std::path::PathBuf::from);
    let base = keep.clone().unwrap_or_else(|| dir.path().to_path_buf());
    let actor = Actor::local_operator();
    let services = open(&base);
    services
        .initialize(&actor, "root", AccountInput::default())
        .expect("init");
    let today = services.today();

    let only = std::env::var("BENCH_ONLY").unwrap_or_default();

    // 1. Bulk creation as an admin runs it: `import` of a CSV.
    if only != "batch" {
        let input = csv(total, today);
        let command = tenure::cli::parse_exec_words(&["import".to_string()]).expect("grammar");
        let mut out = Vec::new();
        let started = Instant::now();
        tenure::cli::run(&services, &actor, command, &mut input.as_slice(), &mut out)
            .expect("import");
        let elapsed = started.elapsed();
        println!(
            "import (CSV, the admin's path): {total} accounts in {:.2} s = {:.0} accounts/s ({})",
            elapsed.as_secs_f64(),
            total as f64 / elapsed.as_secs_f64(),
            String::from_utf8_lossy(&out).trim()
        );
    }
    if only == "import" {
        return;
    }

    // 1b. The same accounts through `create_batch`, into a fresh database.
    let batch_dir = tempfile::tempdir().expect("tempdir");
    let batch_services = open(batch_dir.path());
    batch_services
        .initialize(&actor, "root", AccountInput::default())
        .expect("init");
    let started = Instant::now();
    let mut batch_times = Vec::new();
    for start in (0..total).step_by(BATCH) {
        let rows: Vec<_> = (start..(start + BATCH).min(total))
            .map(|i| row(i, today))
            .collect();
        let t = Instant::now();
        batch_services.create_batch(&actor, &rows).expect("batch");
        batch_times.push(t.elapsed());
    }
    let elapsed = started.elapsed();
    println!(
        "bulk create (Services::create_batch, fresh database): {total} accounts in {:.2} s = {:.0} accounts/s (batch of {BATCH}: p50 {:.1} ms, p99 {:.1} ms)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        percentile(&mut batch_times.clone(), 0.5) / 1000.0,
        percentile(&mut batch_times, 0.99) / 1000.0
    );
    drop(batch_services);
    drop(batch_dir);
    if only == "batch" {
        return;
    }
    // The rest measures the database the import filled.

    // 2. Keys on a few accounts (each its own flushed change), for fingerprint lookups.
    let key_count = 200.min(total);
    let mut fingerprints = Vec::new();
    let mut singles = Vec::new();
    for i in 0..key_count {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let line = PrivateKey::from(Ed25519Keypair::from_seed(&seed))
            .public_key()
            .to_openssh()
            .expect("encode");
        let t = Instant::now();
        let key = services
            .key_add(
                &actor,
                &format!("u{:07}", i * (total / key_count)),
                &line,
                None,
            )
            .expect("key");
        singles.push(t.elapsed());
        fingerprints.push(key.fingerprint);
    }
    // 3. Single interactive changes, each its own transaction + flush.
    for i in 0..300.min(total) {
        let name = format!("u{:07}", (i * 7919) % total);
        let t = Instant::now();
        services
            .disable(&actor, &name, DisableReason::Manual, Some("bench".into()))
            .expect("disable");
        singles.push(t.elapsed());
    }
    let n = singles.len();
    let sum: Duration = singles.iter().sum();
    println!(
        "single changes (each flushed): {n} in {:.2} s = {:.0} changes/s (p50 {:.2} ms, p99 {:.2} ms)",
        sum.as_secs_f64(),
        n as f64 / sum.as_secs_f64(),
        percentile(&mut singles.clone(), 0.5) / 1000.0,
        percentile(&mut singles, 0.99) / 1000.0
    );
    drop(services);

    // 4. Start-up: open the database and rebuild the indexes from the records.
    let t = Instant::now();
    let services = open(&base);
    let loaded = services.warm_up().expect("warm up");
    println!(
        "start-up (open + index rebuild): {loaded} accounts in {:.2} s",
        t.elapsed().as_secs_f64()
    );

    // 5. Lookups.
    let probes = 20_000.min(total);
    let t = Instant::now();
    for i in 0..probes {
        let name = format!("u{:07}", (i * 104_729) % total);
        std::hint::black_box(services.show(&actor, &name).expect("show"));
    }
    println!(
        "lookup by username (record decoded): {:.1} µs",
        micros(t.elapsed(), probes)
    );
    let t = Instant::now();
    for i in 0..probes {
        let j = (i * 104_729) % total;
        let email = format!("Person.{j}@Contractor-{}.example.com", j % 97);
        std::hint::black_box(
            services
                .find_by_email(&email)
                .expect("email")
                .expect("found"),
        );
    }
    println!(
        "lookup by email (index + record): {:.1} µs",
        micros(t.elapsed(), probes)
    );
    let t = Instant::now();
    for i in 0..probes {
        let fp = &fingerprints[i % fingerprints.len()];
        std::hint::black_box(
            services
                .find_by_fingerprint(fp)
                .expect("fp")
                .expect("found"),
        );
    }
    println!(
        "lookup by key fingerprint (index + record): {:.1} µs",
        micros(t.elapsed(), probes)
    );

    let size = services.store().size_on_disk();
    println!(
        "size on disk: {:.1} MB = {:.0} bytes/account (sled, including audit trail)",
        size as f64 / 1e6,
        size as f64 / total as f64
    );
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(rss) = status.lines().find(|l| l.starts_with("VmHWM")) {
            println!("peak RSS: {}", rss.trim_start_matches("VmHWM:").trim());
        }
    }
}
