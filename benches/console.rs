//! Console figures for the console issue: server time from a keystroke's
//! bytes to the bytes of the frame showing its complete result.
//!
//!     cargo bench --bench console                    # 100,000 accounts
//!     BENCH_ACCOUNTS=1000000 cargo bench --bench console
//!     BENCH_KEEP=/tmp/console1m BENCH_ACCOUNTS=1000000 cargo bench --bench console
//!         (builds the database once in that directory and reuses it)
//!     BENCH_LANG=de cargo bench --bench console
//!         (the console of an account that chose German and Europe/Berlin:
//!         the catalogue's lookups and the zone's conversions on every frame)
//!
//! Each keystroke goes the way it goes in `serve`: bytes → the input decoder
//! → `App::handle` (the search and the page of accounts, through the service
//! layer and sled) → ratatui draws the 120x40 frame into a buffer → the bytes
//! a client would be sent. Only encryption and the socket are left out.
//! Accounts have realistic names (first, last, company, project, email);
//! prints p50/p99/max per scenario, bytes per keystroke, and the process's
//! RSS with every account loaded.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};
use tenure::config::{Config, EXAMPLE};
use tenure::domain::Kind;
use tenure::service::accounts::AccountInput;
use tenure::service::{Actor, Services, SystemClock};
use tenure::store::{SledStore, Store};
use tenure::term::input::Decoder;
use tenure::tui::App;

const FIRST: [&str; 48] = [
    "Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jamal", "Kira",
    "Liam", "Maria", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera",
    "Wei", "Ximena", "Yusuf", "Zoe", "Aiko", "Bruno", "Chloe", "Dmitri", "Emma", "Felix", "Giulia",
    "Hassan", "Ivy", "Jonas", "Kwame", "Lena", "Mateo", "Nadia", "Oscar", "Priya", "Rafael",
    "Sofia", "Tomas", "Ursula", "Viktor", "Yara",
];
const LAST: [&str; 48] = [
    "Smith",
    "Okafor",
    "Nguyen",
    "Garcia",
    "Müller",
    "Rossi",
    "Kowalski",
    "Tanaka",
    "Haddad",
    "Johansson",
    "Silva",
    "Petrov",
    "Kim",
    "Dubois",
    "Novak",
    "Fischer",
    "Costa",
    "Ali",
    "Chen",
    "Larsen",
    "Moreau",
    "Ivanova",
    "Schmidt",
    "Lopez",
    "Brown",
    "Wilson",
    "Singh",
    "Cohen",
    "Yilmaz",
    "Andersen",
    "Bianchi",
    "Horvath",
    "Mendes",
    "Nakamura",
    "Osei",
    "Popescu",
    "Quispe",
    "Rahman",
    "Sato",
    "Torres",
    "Ueda",
    "Varga",
    "Weber",
    "Xu",
    "Young",
    "Zhang",
    "Baker",
    "Clarke",
];
const COMPANY: [&str; 24] = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark Industries",
    "Wayne Enterprises",
    "Wonka",
    "Soylent",
    "Cyberdyne",
    "Tyrell",
    "Massive Dynamic",
    "Aperture",
    "Black Mesa",
    "Oscorp",
    "Vandelay",
    "Pied Piper",
    "Dunder Mifflin",
    "Gringotts",
    "Monarch",
    "Nakatomi",
    "Prestige Worldwide",
    "Sirius Cybernetics",
    "Zorg",
];
const PROJECT: [&str; 12] = [
    "apollo", "gemini", "mercury", "artemis", "voyager", "pioneer", "horizon", "juno", "cassini",
    "kepler", "hubble", "rosetta",
];

fn row(i: usize, today: chrono::NaiveDate) -> (String, AccountInput) {
    // Spread the combinations so neighbours differ.
    let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20;
    let first = FIRST[(h % 48) as usize];
    let last = LAST[((h / 48) % 48) as usize];
    let company = COMPANY[((h / 2304) % 24) as usize];
    let domain: String = company
        .to_lowercase()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let ascii_last: String = last
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii() { c } else { 'u' })
        .collect();
    let username = format!(
        "{}{}{}",
        first.to_lowercase().chars().next().unwrap_or('x'),
        ascii_last,
        i
    );
    (
        username,
        AccountInput {
            email: Some(format!(
                "{}.{}{}@{domain}.example.com",
                first.to_lowercase(),
                ascii_last,
                i
            )),
            display_name: Some(format!("{first} {last}")),
            kind: Some([Kind::Contractor, Kind::Vendor, Kind::Intern][i % 3]),
            company: Some(company.to_string()),
            project: Some(PROJECT[((h / 55296) % 12) as usize].to_string()),
            end_date: Some(today + chrono::Duration::days(30 + (i % 150) as i64)),
            ..Default::default()
        },
    )
}

fn open(dir: &std::path::Path) -> Services {
    let config = Config::parse(EXAMPLE, "bench", dir).expect("config");
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.join("data")).expect("open"));
    Services::new(Arc::new(config), store, Arc::new(SystemClock)).expect("services")
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A writer the terminal draws into; the bench takes the bytes out.
#[derive(Clone, Default)]
struct Sink(Rc<RefCell<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Console {
    app: App,
    terminal: Terminal<CrosstermBackend<Sink>>,
    sink: Sink,
    decoder: Decoder,
}

impl Console {
    fn new(services: Services, actor: Actor) -> Console {
        let sink = Sink::default();
        let options = TerminalOptions {
            viewport: Viewport::Fixed(Rect::new(0, 0, 120, 40)),
        };
        let terminal =
            Terminal::with_options(CrosstermBackend::new(sink.clone()), options).expect("terminal");
        let mut app = App::new(services, actor);
        app.resize(40);
        let mut console = Console {
            app,
            terminal,
            sink,
            decoder: Decoder::new(),
        };
        console.draw();
        console.sink.0.borrow_mut().clear();
        console
    }

    fn draw(&mut self) {
        let app = &self.app;
        self.terminal
            .draw(|f| tenure::tui::view::draw(app, f))
            .expect("draw");
    }

    /// One keystroke: time from its bytes to the frame's bytes, and their size.
    fn key(&mut self, bytes: &[u8]) -> (Duration, usize) {
        let t = Instant::now();
        let keys = self.decoder.feed(bytes);
        let mut changed = false;
        for key in keys {
            changed |= self.app.handle(key);
        }
        if changed {
            self.draw();
        }
        let sent = std::mem::take(&mut *self.sink.0.borrow_mut()).len();
        let took = t.elapsed();
        if std::env::var_os("BENCH_SLOW").is_some() && took > Duration::from_millis(5) {
            eprintln!(
                "slow: {:.1} ms after {:?} (query {:?}, {} of {} matches)",
                took.as_secs_f64() * 1e3,
                String::from_utf8_lossy(bytes),
                self.app.query,
                self.app.hits.names.len(),
                self.app.hits.total
            );
        }
        (took, sent)
    }
}

struct Samples {
    name: String,
    times: Vec<Duration>,
    bytes: Vec<usize>,
}

impl Samples {
    fn new(name: &str) -> Samples {
        Samples {
            name: name.to_string(),
            times: Vec::new(),
            bytes: Vec::new(),
        }
    }

    fn push(&mut self, (t, b): (Duration, usize)) {
        self.times.push(t);
        self.bytes.push(b);
    }

    fn report(&self) {
        let mut t = self.times.clone();
        t.sort();
        let at = |p: f64| {
            t.get(((t.len() as f64 - 1.0) * p).round() as usize)
                .map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        let bytes: usize = self.bytes.iter().sum();
        println!(
            "  {:<34} {:>4} keys  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms  {:>5.0} bytes/key",
            self.name,
            t.len(),
            at(0.5),
            at(0.99),
            at(1.0),
            bytes as f64 / self.bytes.len().max(1) as f64
        );
    }
}

fn main() {
    let total: usize = std::env::var("BENCH_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let temp = tempfile::tempdir().expect("tempdir");
    let keep = std::env::var_os("BENCH_KEEP").map(std::path::PathBuf::from);
    let base = keep.unwrap_or_else(|| temp.path().to_path_buf());
    let fresh = !base.join("data").exists();
    let actor = Actor::local_operator();
    if fresh {
        let services = open(&base);
        services
            .initialize(&actor, "root", AccountInput::default())
            .expect("init");
        let today = services.today();
        let t = Instant::now();
        for start in (0..total).step_by(1_000) {
            let rows: Vec<_> = (start..(start + 1_000).min(total))
                .map(|i| row(i, today))
                .collect();
            services.create_batch(&actor, &rows).expect("batch");
        }
        println!(
            "created {total} accounts in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }

    // As `serve` does: open, build the indexes before the first client.
    let t = Instant::now();
    let services = open(&base);
    services.warm_up().expect("indexes");
    let count = services
        .search(&actor, &Default::default(), 0)
        .expect("count")
        .total;
    println!(
        "{count} accounts: indexes and search index built in {:.1} s; process RSS {:.0} MB",
        t.elapsed().as_secs_f64(),
        rss_mb()
    );

    // The local operator (English, UTC), or root with a language and zone.
    let viewer = match std::env::var("BENCH_LANG") {
        Ok(code) => {
            let change = tenure::service::digest::PrefsChange {
                language: Some(code.clone()),
                timezone: Some("Europe/Berlin".into()),
                ..Default::default()
            };
            services.prefs_set(&actor, "root", &change).expect("prefs");
            let root = services.load("root").expect("root");
            println!("viewer: root, language {code}, Europe/Berlin");
            Actor::account(
                &root,
                tenure::service::Source::Ssh("127.0.0.1".into()),
                None,
            )
        }
        Err(_) => actor.clone(),
    };
    let mut console = Console::new(services.clone(), viewer);
    let queries = [
        "okafor",
        "anna smi",
        "@globex",
        "wonka.example",
        "priya rahman",
        "stark",
        "kepler",
        "tzhang4242",
        "zzq",
        // Matches bunched at the end of username order (y…, z…).
        "yusuf",
        "zoe zorg",
    ];
    let mut typing = Samples::new("typing a search (each key)");
    let mut erasing = Samples::new("erasing it (Backspace)");
    let mut all = Samples::new("all keystrokes");
    for q in queries {
        all.push(console.key(b"/"));
        let mut per_query = Samples::new(&format!("  \"{q}\""));
        for c in q.bytes() {
            let s = console.key(&[c]);
            typing.push(s);
            per_query.push(s);
            all.push(s);
        }
        per_query.report();
        for _ in q.bytes() {
            let s = console.key(b"\x7f");
            erasing.push(s);
            all.push(s);
        }
        all.push(console.key(b"\x1b"));
        // The lone Esc is told from a sequence by a pause; the server flushes it.
        if let Some(k) = console.decoder.flush() {
            console.app.handle(k);
            console.draw();
            console.sink.0.borrow_mut().clear();
        }
    }
    let mut scrolling = Samples::new("scrolling (j ×300, PgDn ×40, k ×100)");
    for (bytes, times) in [(&b"j"[..], 300), (b"\x1b[6~", 40), (b"k", 100)] {
        for _ in 0..times {
            let s = console.key(bytes);
            scrolling.push(s);
            all.push(s);
        }
    }
    let mut sorting = Samples::new("changing the order (s, s, i, i)");
    for bytes in [b"s", b"s", b"i", b"i"] {
        let s = console.key(bytes);
        sorting.push(s);
        all.push(s);
    }
    println!("keystroke → frame at {count} accounts (120x40):");
    typing.report();
    erasing.report();
    scrolling.report();
    sorting.report();
    all.report();
    println!("process RSS after the run {:.0} MB", rss_mb());
}
