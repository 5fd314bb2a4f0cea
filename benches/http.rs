//! Figures for the HTTP front door (issue 13), against the release binary:
//!
//!     cargo bench --bench http                                  # builds 10,000 accounts
//!     BENCH_ACCOUNTS=100000 cargo bench --bench http
//!     BENCH_DB=/tmp/copy-of-bench1m cargo bench --bench http    # a store-bench database (config.toml + data/)
//!
//! BENCH_DB is written to (tokens, SCIM-created users): give it a copy.
//!
//! Measured (release, 2 cores shared with other builds, load average ~9;
//! a copy of the store bench's 1,000,000-account database):
//!   SCIM create: 422 users/s (1 client), 973 users/s (8 clients)
//!   GET /Users?filter=userName eq "x": p50 0.43 ms, p99 10.2 ms
//!   GET /Users page of 100: p50 88 ms, p99 376 ms (the total is counted over the index)
//!   GET /api/v1/accounts?kind=contractor&project=P&limit=100: p50 40 ms, p99 112 ms
//!   100 concurrent clients: 1,173 requests/s, RSS +18 MB (486 → 504 MB)
//! Prints: SCIM create users/s (one client, and 8 at once); `GET
//! /Users?filter=userName eq "x"` p50/p99; a page of 100 users p99; a REST
//! list with a filter p99; RSS added by 100 concurrent clients.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use tenure::config::{Config, EXAMPLE};
use tenure::domain::Kind;
use tenure::service::accounts::AccountInput;
use tenure::service::{Actor, Services, SystemClock};
use tenure::store::{SledStore, Store};

const BIN: &str = env!("CARGO_BIN_EXE_tenure");

fn build(dir: &Path, n: usize) {
    std::fs::write(dir.join("config.toml"), EXAMPLE).unwrap();
    let config = Config::parse(EXAMPLE, "bench", dir).unwrap();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.join("data")).unwrap());
    let s = Services::new(Arc::new(config), store, Arc::new(SystemClock)).unwrap();
    let actor = Actor::local_operator();
    s.initialize(&actor, "root", AccountInput::default())
        .unwrap();
    let today = s.today();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let rows: Vec<(String, AccountInput)> = chunk
            .iter()
            .map(|&i| {
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
            })
            .collect();
        s.create_batch(&actor, &rows).unwrap();
    }
}

fn tenure(config: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("USER", "bench")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn token(config: &Path, name: &str, scope: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&tenure(
        config,
        &[
            "token", "create", name, "--scope", scope, "--for", "root", "--json",
        ],
    ))
    .unwrap();
    v["token"].as_str().unwrap().to_string()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

fn get(agent: &ureq::Agent, url: &str, token: &str) -> (u16, String) {
    let mut r = agent
        .get(url)
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    let status = r.status().as_u16();
    let body = r
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .unwrap();
    (status, body)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn pct(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    ms(samples[i])
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let scratch = tempfile::tempdir().unwrap();
    let dir: PathBuf = match std::env::var_os("BENCH_DB") {
        Some(d) => PathBuf::from(d),
        None => {
            let n: usize = std::env::var("BENCH_ACCOUNTS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(10_000);
            let started = Instant::now();
            build(scratch.path(), n);
            println!(
                "built {n} accounts in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            scratch.path().to_path_buf()
        }
    };
    let config = dir.join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    if !text.contains("\n[http]") {
        text.push_str("\n[http]\nlisten = \"127.0.0.1:0\"\nmax_concurrent_requests = 128\n");
        std::fs::write(&config, text).unwrap();
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let scim_token = token(&config, &format!("bench-scim-{stamp}"), "scim");
    let rest_token = token(&config, &format!("bench-rest-{stamp}"), "read");

    let started = Instant::now();
    let mut server = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("USER", "bench")
        .env("TENURE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(server.stdout.take().unwrap()).lines();
    let mut port = 0u16;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("tenure http on http://127.0.0.1:") {
            port = rest.split_whitespace().next().unwrap().parse().unwrap();
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let pid = server.id();
    // A failed assertion below must not leave the server holding the database.
    struct Stop(u32);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .arg(self.0.to_string())
                .stderr(Stdio::null())
                .status();
        }
    }
    let _stop = Stop(pid);
    let base = format!("http://127.0.0.1:{port}");
    println!("listening after {:.1} s", started.elapsed().as_secs_f64());
    // The first list waits for the in-memory indexes the server builds at start.
    // (A request waits up to the request timeout; ask again until they are.)
    let body = loop {
        let (status, body) = get(
            &agent(),
            &format!("{base}/scim/v2/Users?count=0"),
            &scim_token,
        );
        if status == 200 {
            break body;
        }
        assert_eq!(status, 503, "{body}");
    };
    let total = serde_json::from_str::<serde_json::Value>(&body).unwrap()["totalResults"]
        .as_u64()
        .unwrap() as usize;
    println!(
        "indexes ready after {:.1} s: {total} accounts; RSS {} MB",
        started.elapsed().as_secs_f64(),
        rss_kb(pid) / 1024
    );
    // The numbered accounts (u0000000…): what the lookups and pages ask for
    // (a database reused from an earlier run also holds its SCIM-made users).
    let (_, body) = get(
        &agent(),
        &format!("{base}/scim/v2/Users?filter=userName%20sw%20%22u%22&count=0"),
        &scim_token,
    );
    let numbered = serde_json::from_str::<serde_json::Value>(&body).unwrap()["totalResults"]
        .as_u64()
        .unwrap() as usize;
    let existing = numbered.min(total.saturating_sub(1)).max(1);

    // 1. SCIM create, one client, then 8 at once.
    let a = agent();
    let n = 300;
    let t = Instant::now();
    for i in 0..n {
        let body = serde_json::json!({
            "userName": format!("scim.{stamp}.{i}@example.com"),
            "name": {"givenName": "Bench", "familyName": format!("User {i}")},
            "emails": [{"value": format!("scim.{stamp}.{i}@example.com"), "primary": true}],
            "active": true,
        });
        let r = a
            .post(format!("{base}/scim/v2/Users"))
            .header("Authorization", format!("Bearer {scim_token}"))
            .header("Content-Type", "application/scim+json")
            .send(body.to_string())
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }
    println!(
        "SCIM create, 1 client: {:.0} users/s",
        n as f64 / t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let per = 100;
    std::thread::scope(|s| {
        for c in 0..8 {
            let (base, tok) = (base.clone(), scim_token.clone());
            s.spawn(move || {
                let a = agent();
                for i in 0..per {
                    let body = serde_json::json!({
                        "userName": format!("par.{stamp}.{c}.{i}@example.com"),
                        "emails": [{"value": format!("par.{stamp}.{c}.{i}@example.com")}],
                    });
                    let r = a
                        .post(format!("{base}/scim/v2/Users"))
                        .header("Authorization", format!("Bearer {tok}"))
                        .send(body.to_string())
                        .unwrap();
                    assert_eq!(r.status().as_u16(), 201);
                }
            });
        }
    });
    println!(
        "SCIM create, 8 clients: {:.0} users/s",
        (8 * per) as f64 / t.elapsed().as_secs_f64()
    );

    // 2. userName eq lookups.
    let mut samples = Vec::new();
    for i in 0..2000usize {
        let who = (i * 7919) % existing;
        let url = format!("{base}/scim/v2/Users?filter=userName%20eq%20%22u{who:07}%22");
        let t = Instant::now();
        let (status, body) = get(&a, &url, &scim_token);
        samples.push(t.elapsed());
        assert_eq!(status, 200);
        assert!(body.contains("\"totalResults\":1"), "{body}");
    }
    println!(
        "GET /Users?filter=userName eq: p50 {:.2} ms, p99 {:.2} ms ({} lookups)",
        pct(&mut samples, 0.5),
        pct(&mut samples, 0.99),
        samples.len()
    );

    // 3. A page of 100 users, at pages spread over the whole set.
    let mut samples = Vec::new();
    for i in 0..100usize {
        let start = 1 + (i * 104_729) % existing;
        let url = format!("{base}/scim/v2/Users?startIndex={start}&count=100");
        let t = Instant::now();
        let (status, _) = get(&a, &url, &scim_token);
        samples.push(t.elapsed());
        assert_eq!(status, 200);
    }
    println!(
        "GET /Users page of 100: p50 {:.1} ms, p99 {:.1} ms",
        pct(&mut samples, 0.5),
        pct(&mut samples, 0.99)
    );

    // 3b. The first page and a page deep in the list (startIndex 1 and 90 %
    // of the way: the total is a kept count, the walk to the page reads only
    // the ordered names); `userName sw` and `active eq false` from indexes.
    let deep = (existing * 9 / 10).max(1);
    for (what, url) in [
        (
            "page of 100 at startIndex=1".to_string(),
            format!("{base}/scim/v2/Users?startIndex=1&count=100"),
        ),
        (
            format!("page of 100 at startIndex={deep}"),
            format!("{base}/scim/v2/Users?startIndex={deep}&count=100"),
        ),
        (
            "filter=userName sw \"u00012\" (count=100)".to_string(),
            format!("{base}/scim/v2/Users?filter=userName%20sw%20%22u00012%22&count=100"),
        ),
        (
            "filter=active eq false (count=100)".to_string(),
            format!("{base}/scim/v2/Users?filter=active%20eq%20false&count=100"),
        ),
    ] {
        let mut samples = Vec::new();
        for _ in 0..100 {
            let t = Instant::now();
            let (status, body) = get(&a, &url, &scim_token);
            samples.push(t.elapsed());
            assert_eq!(status, 200, "{body}");
        }
        println!(
            "GET /Users {what}: p50 {:.1} ms, p99 {:.1} ms",
            pct(&mut samples, 0.5),
            pct(&mut samples, 0.99)
        );
    }

    // 4. REST list with a filter.
    let mut samples = Vec::new();
    for i in 0..100usize {
        let url = format!(
            "{base}/api/v1/accounts?kind=contractor&project=project-{}&limit=100",
            i % 50
        );
        let t = Instant::now();
        let (status, body) = get(&a, &url, &rest_token);
        samples.push(t.elapsed());
        assert_eq!(status, 200, "{body}");
    }
    println!(
        "GET /api/v1/accounts?kind=contractor&project=P&limit=100: p50 {:.1} ms, p99 {:.1} ms",
        pct(&mut samples, 0.5),
        pct(&mut samples, 0.99)
    );

    // 5. RSS under 100 concurrent clients (userName lookups, keep-alive).
    let before = rss_kb(pid);
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(before));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(rss_kb(pid), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let t = Instant::now();
    std::thread::scope(|s| {
        for c in 0..100usize {
            let (base, tok) = (base.clone(), scim_token.clone());
            s.spawn(move || {
                let a = agent();
                for i in 0..20usize {
                    let who = (c * 131 + i * 7919) % existing;
                    let url =
                        format!("{base}/scim/v2/Users?filter=userName%20eq%20%22u{who:07}%22");
                    let (status, _) = get(&a, &url, &tok);
                    assert_eq!(status, 200);
                }
            });
        }
    });
    let elapsed = t.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "100 concurrent clients x 20 lookups: {:.0} requests/s; RSS {} MB before, peak {} MB (+{} MB)",
        2000.0 / elapsed.as_secs_f64(),
        before / 1024,
        peak / 1024,
        peak.saturating_sub(before) / 1024
    );
    let _ = server.kill();
    let _ = server.wait();
}
