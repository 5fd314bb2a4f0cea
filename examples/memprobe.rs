#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::sync::Arc;
use tenure::config::{Config, EXAMPLE};
use tenure::service::{Services, SystemClock};
use tenure::store::{SledStore, Store};
fn rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("VmRSS"))
        .collect()
}
fn main() {
    let db = std::env::var("DB").unwrap();
    let dir = std::path::Path::new(&db);
    let config = Config::parse(EXAMPLE, "x", dir).unwrap();
    println!("start {}", rss());
    let store = SledStore::open(&dir.join("data")).unwrap();
    println!("open {}", rss());
    let mut n = 0;
    store.scan_accounts(&mut |_, _| n += 1).unwrap();
    println!("scan {} {}", n, rss());
    let store: Arc<dyn Store> = Arc::new(store);
    let s = Services::new(Arc::new(config), store, Arc::new(SystemClock)).unwrap();
    let t = std::time::Instant::now();
    let ix = s.rebuild_indexes().unwrap();
    println!("indexes {:?} {} {}", t.elapsed(), rss(), ix.search.stats());
}
