//! The on-host side of tenure, run on a target server by the same binary:
//!
//! - `tenure authorized-keys --config /etc/tenure/host.toml USER`: sshd's
//!   AuthorizedKeysCommand. Asks the tenure server over SSH (the host's own
//!   key; the server's host key pinned in host.toml) and prints what it
//!   answers; anything else prints nothing and exits 0, so sshd refuses.
//! - `tenure revoked-keys --config F --out FILE`: fetches the KRL for
//!   sshd's `RevokedKeys`.
//! - `tenure host init --server ADDR:PORT --name NAME --out DIR`: writes
//!   host.toml and the host's key pair, pins the server's host key.
//!
//! No database is opened here: one SSH handshake and one exec.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use russh::{client, ChannelMsg, Disconnect};
use serde::{Deserialize, Serialize};

use crate::domain::validate::validate_username;

pub mod start;

pub const DEFAULT_CONFIG: &str = "/etc/tenure/host.toml";

#[derive(Debug, Parser)]
#[command(name = "tenure", disable_version_flag = true)]
struct HostCli {
    #[command(subcommand)]
    command: HostTop,
}

#[derive(Debug, Subcommand)]
enum HostTop {
    /// (On a target host, run by sshd) print USER's authorized_keys lines
    #[command(name = "authorized-keys")]
    AuthorizedKeys {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Never answer from the local cache (tenure unreachable: nothing)
        #[arg(long = "fail-closed")]
        fail_closed: bool,
        user: String,
    },
    /// (On a target host) fetch the revocation list for sshd's RevokedKeys
    #[command(name = "revoked-keys")]
    RevokedKeys {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Where sshd's RevokedKeys points (replaced atomically)
        #[arg(long)]
        out: PathBuf,
    },
    #[command(subcommand)]
    Host(HostInit),
}

#[derive(Debug, Subcommand)]
enum HostInit {
    /// (On a target host) write DIR/host.toml and the host key, pin the server's key
    Init {
        /// The tenure server, ADDR:PORT
        #[arg(long)]
        server: String,
        /// This host's name in tenure
        #[arg(long)]
        name: String,
        /// Where to write host.toml and host_key (e.g. /etc/tenure)
        #[arg(long)]
        out: PathBuf,
    },
}

/// Is this command line one for the on-host side (before the server's grammar)?
pub fn is_host_command(args: &[String]) -> bool {
    is_host_words(
        args.get(1).map(String::as_bytes),
        args.get(2).map(String::as_bytes),
    )
}

/// The same question on the first two words alone, as bytes: main.rs asks
/// it before the Rust runtime starts (see `on_host_start` there).
pub fn is_host_words(first: Option<&[u8]>, second: Option<&[u8]>) -> bool {
    match first {
        Some(b"authorized-keys" | b"revoked-keys") => true,
        Some(b"host") => second == Some(b"init"),
        _ => false,
    }
}

/// Runs an on-host command line (`is_host_command` said yes).
pub fn main(args: Vec<String>) -> ExitCode {
    let for_sshd = args.get(1).map(String::as_str) == Some("authorized-keys");
    let cli = match HostCli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // sshd gets nothing and exit 0 whatever it passed (a name like
            // `-x` reads as an option): no way in "by default".
            if for_sshd {
                return ExitCode::SUCCESS;
            }
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match cli.command {
        HostTop::AuthorizedKeys {
            config,
            fail_closed,
            user,
        } => {
            // sshd reads stdout: whatever happens, only vetted lines reach it.
            let lines = authorized_keys(&config, &user, fail_closed);
            let mut out = std::io::stdout().lock();
            for line in lines {
                let _ = writeln!(out, "{line}");
            }
            let _ = out.flush();
            ExitCode::SUCCESS
        }
        HostTop::RevokedKeys { config, out } => match revoked_keys(&config, &out) {
            Ok(n) => {
                println!("wrote {} ({n} bytes)", out.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {}", crate::text::escape_text(&e));
                ExitCode::from(1)
            }
        },
        HostTop::Host(HostInit::Init { server, name, out }) => match init(&server, &name, &out) {
            Ok(()) => ExitCode::SUCCESS,
            Err((code, e)) => {
                eprintln!("error: {}", crate::text::escape_text(&e));
                ExitCode::from(code)
            }
        },
    }
}

/// host.toml: where the tenure server is and how to trust it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// The tenure server, ADDR:PORT.
    pub server: String,
    /// This host's account name in tenure.
    pub name: String,
    /// The host's private key (relative paths: against host.toml's directory).
    #[serde(default = "default_host_key")]
    pub host_key: PathBuf,
    /// The tenure server's host key (public key line), pinned.
    pub server_key: String,
    /// One file per account with the last answer (mode 0600).
    #[serde(default = "default_cache_dir")]
    pub cache_dir: PathBuf,
    /// How old a cached answer may be and still be used while the server
    /// is unreachable (0: never use the cache).
    #[serde(default = "default_staleness")]
    pub max_staleness_seconds: u64,
    /// How long to wait for the server before falling back to the cache.
    #[serde(default = "default_timeout")]
    pub connect_timeout_ms: u64,
}

fn default_host_key() -> PathBuf {
    "host_key".into()
}
fn default_cache_dir() -> PathBuf {
    "cache".into()
}
fn default_staleness() -> u64 {
    3600
}
fn default_timeout() -> u64 {
    3000
}

impl HostConfig {
    pub fn load(path: &Path) -> Result<HostConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut c: HostConfig =
            toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        if c.host_key.is_relative() {
            c.host_key = base.join(&c.host_key);
        }
        if c.cache_dir.is_relative() {
            c.cache_dir = base.join(&c.cache_dir);
        }
        Ok(c)
    }
}

/// A failure talking to the server: unreachable (the cache may answer) or
/// a refusal (it may not: a wrong server key, the host not accepted).
#[derive(Debug)]
enum Failure {
    Unreachable(String),
    Refused(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unreachable(e) => write!(f, "tenure server unreachable: {e}"),
            Failure::Refused(e) => write!(f, "refused: {e}"),
        }
    }
}

struct Pinned {
    expected: Option<PublicKey>,
    seen: Arc<Mutex<Option<PublicKey>>>,
}

impl client::Handler for Pinned {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Ok(false);
        };
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(key.clone());
        }
        Ok(match &self.expected {
            Some(expected) => expected.key_data() == key.key_data(),
            // `host init`: record the key, go no further.
            None => false,
        })
    }
}

fn client_config(timeout: Duration) -> Arc<client::Config> {
    Arc::new(client::Config {
        inactivity_timeout: Some(timeout.max(Duration::from_secs(5))),
        // Small packets in a row (kex, auth, exec): Nagle would hold them back.
        nodelay: true,
        // curve25519 first: the cheapest safe exchange (the answer is public
        // keys, not secrets); the post-quantum hybrid stays offered for a
        // `hardened` server, which offers nothing else.
        preferred: russh::Preferred {
            kex: std::borrow::Cow::Borrowed(&[
                russh::kex::CURVE25519,
                russh::kex::MLKEM768X25519_SHA256,
                russh::kex::EXTENSION_SUPPORT_AS_CLIENT,
                russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
            ]),
            ..russh::Preferred::DEFAULT
        },
        ..Default::default()
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))
}

fn load_key(path: &Path) -> Result<PrivateKey, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "host key {} is readable by others: chmod 600 (owned by the AuthorizedKeysCommandUser)",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    PrivateKey::from_openssh(text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Logs in as the host and runs `command`; its stdout, if it exits 0.
fn query(config: &HostConfig, command: &str) -> Result<Vec<u8>, Failure> {
    let key = load_key(&config.host_key).map_err(Failure::Refused)?;
    let expected = PublicKey::from_openssh(config.server_key.trim())
        .map_err(|e| Failure::Refused(format!("server_key in host.toml: {e}")))?;
    let timeout = Duration::from_millis(config.connect_timeout_ms.max(1));
    let rt = runtime().map_err(Failure::Unreachable)?;
    rt.block_on(async {
        let seen = Arc::new(Mutex::new(None));
        let handler = Pinned {
            expected: Some(expected),
            seen: seen.clone(),
        };
        let connecting = client::connect(client_config(timeout), config.server.as_str(), handler);
        let mut session = match tokio::time::timeout(timeout, connecting).await {
            Err(_) => {
                return Err(Failure::Unreachable(format!(
                    "no answer within {timeout:?}"
                )))
            }
            Ok(Err(e)) => {
                let offered = seen.lock().ok().and_then(|s| s.clone());
                return Err(match offered {
                    // The handshake reached the key check and the key did not match.
                    Some(k) => Failure::Refused(format!(
                        "the server at {} offered host key {}, not the one pinned in host.toml",
                        config.server,
                        k.fingerprint(HashAlg::Sha256)
                    )),
                    None => Failure::Unreachable(e.to_string()),
                });
            }
            Ok(Ok(s)) => s,
        };
        let steps = async {
            let auth = session
                .authenticate_publickey(
                    config.name.clone(),
                    PrivateKeyWithHashAlg::new(Arc::new(key), None),
                )
                .await
                .map_err(|e| Failure::Unreachable(e.to_string()))?;
            if !auth.success() {
                return Err(Failure::Refused(format!(
                    "the server did not accept this host's key as host {}",
                    config.name
                )));
            }
            let mut channel = session
                .channel_open_session()
                .await
                .map_err(|e| Failure::Unreachable(e.to_string()))?;
            channel
                .exec(true, command)
                .await
                .map_err(|e| Failure::Unreachable(e.to_string()))?;
            let mut out = Vec::new();
            let mut err = Vec::new();
            let mut status = None;
            while let Some(msg) = channel.wait().await {
                match msg {
                    ChannelMsg::Data { data } => out.extend_from_slice(&data),
                    ChannelMsg::ExtendedData { data, .. } if err.len() < 4096 => {
                        err.extend_from_slice(&data)
                    }
                    ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                    _ => {}
                }
            }
            match status {
                Some(0) => Ok(out),
                Some(code) => Err(Failure::Refused(format!(
                    "the server answered exit {code}: {}",
                    String::from_utf8_lossy(&err).trim()
                ))),
                None => Err(Failure::Unreachable(
                    "the server closed without an answer".into(),
                )),
            }
        };
        let result = tokio::time::timeout(timeout * 2, steps)
            .await
            .unwrap_or_else(|_| Err(Failure::Unreachable("no answer in time".into())));
        let _ = session
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
        result
    })
}

/// One cached answer: when it was fetched and the lines (empty: refused).
#[derive(Debug, Serialize, Deserialize)]
struct CacheEntry {
    fetched: u64,
    lines: Vec<String>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A line fit for sshd: printable ASCII only (no newline can split it).
fn vetted(line: &str) -> bool {
    !line.is_empty() && line.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// Writes `entry` as `dir/user` (0600, atomically). Only a changed answer
/// is forced to disk (fsync): that is what must survive a crash (a refusal
/// replacing keys). An unchanged answer (written here only when the file
/// could not be touched, see `record_answer`) only moves `fetched` forward,
/// and losing that in a crash leaves an older time, which is safe — so
/// sshd's every-login query does not wait for the disk.
fn write_cache(
    dir: &Path,
    user: &str,
    entry: &CacheEntry,
    previous: Option<&CacheEntry>,
) -> Result<(), String> {
    let durable = previous.is_none_or(|p| p.lines != entry.lines);
    if previous.is_none() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    let path = dir.join(user);
    let tmp = dir.join(format!(".{user}.{}", std::process::id()));
    let bytes = serde_json::to_vec(entry).map_err(|e| e.to_string())?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    file.write_all(&bytes)
        .and_then(|()| if durable { file.sync_all() } else { Ok(()) })
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    if durable {
        // The rename itself, so a crash cannot bring the old answer back.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// A cached answer, with the file it came from.
struct Cached {
    entry: CacheEntry,
    file: std::fs::File,
    /// When the answer was last confirmed: the later of `fetched` and the
    /// file's modification time (an unchanged answer only touches the file).
    confirmed: u64,
}

/// The cached answer for `user`: one small read (at most 64 KiB).
fn read_cache(dir: &Path, user: &str) -> Option<Cached> {
    use std::io::Read;
    let mut file = std::fs::File::open(dir.join(user)).ok()?;
    let mut bytes = Vec::with_capacity(4096);
    Read::take(&mut file, 64 * 1024)
        .read_to_end(&mut bytes)
        .ok()?;
    let entry: CacheEntry = serde_json::from_slice(&bytes).ok()?;
    let modified = file
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Some(Cached {
        confirmed: entry.fetched.max(modified),
        entry,
        file,
    })
}

/// Records the server's answer: an unchanged one only sets the cache
/// file's modification time to now (no new file, no rename: the every-login
/// case); a changed one is written anew (`write_cache`, forced to disk).
fn record_answer(dir: &Path, user: &str, entry: &CacheEntry) -> Result<(), String> {
    let previous = read_cache(dir, user);
    if let Some(p) = &previous {
        if p.entry.lines == entry.lines && p.file.set_modified(SystemTime::now()).is_ok() {
            return Ok(());
        }
    }
    write_cache(dir, user, entry, previous.as_ref().map(|p| &p.entry))
}

/// What `authorized-keys USER` prints: the server's answer (cached, the
/// refusals too), or — server unreachable, not `fail_closed` — a cached
/// answer younger than the staleness limit; otherwise nothing.
pub fn authorized_keys(config_path: &Path, user: &str, fail_closed: bool) -> Vec<String> {
    let say = |what: &str| eprintln!("tenure authorized-keys: {}", crate::text::escape_text(what));
    // sshd passes the name the client sent; one that cannot be an account
    // (`%`, `,`, `"`, a newline…) is never sent on, cached or printed.
    if validate_username(user).is_err() {
        say("not a tenure username: nothing printed");
        return vec![];
    }
    let config = match HostConfig::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            say(&e);
            return vec![];
        }
    };
    match query(&config, &format!("authorized-keys {user}")) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<String> = text
                .lines()
                .filter(|l| vetted(l))
                .map(str::to_string)
                .collect();
            // A refusal is cached too: once the host has heard of a disable,
            // the cache never serves the old keys.
            let entry = CacheEntry {
                fetched: now_secs(),
                lines,
            };
            if let Err(e) = record_answer(&config.cache_dir, user, &entry) {
                say(&e);
            }
            entry.lines
        }
        Err(Failure::Refused(e)) => {
            say(&e);
            vec![]
        }
        Err(Failure::Unreachable(e)) => {
            say(&format!("tenure server unreachable: {e}"));
            if fail_closed {
                return vec![];
            }
            match read_cache(&config.cache_dir, user) {
                Some(cached)
                    if now_secs().saturating_sub(cached.confirmed)
                        <= config.max_staleness_seconds
                        && config.max_staleness_seconds > 0 =>
                {
                    cached
                        .entry
                        .lines
                        .into_iter()
                        .filter(|l| vetted(l))
                        .collect()
                }
                Some(_) => {
                    say("cached answer too old (max_staleness_seconds): nothing printed");
                    vec![]
                }
                None => vec![],
            }
        }
    }
}

/// `revoked-keys --out FILE`: the KRL, written atomically.
fn revoked_keys(config_path: &Path, out: &Path) -> Result<usize, String> {
    let config = HostConfig::load(config_path)?;
    let bytes = query(&config, "revoked-keys").map_err(|e| e.to_string())?;
    if !bytes.starts_with(b"SSHKRL\n\0") {
        return Err("the server's answer is not a KRL".into());
    }
    let dir = out.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}",
        out.file_name().and_then(|n| n.to_str()).unwrap_or("krl"),
        std::process::id()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, out).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(bytes.len())
}

/// The server's host key, as offered in a handshake that goes no further.
fn fetch_server_key(server: &str) -> Result<PublicKey, String> {
    let rt = runtime()?;
    rt.block_on(async {
        let seen = Arc::new(Mutex::new(None));
        let handler = Pinned {
            expected: None,
            seen: seen.clone(),
        };
        let timeout = Duration::from_secs(10);
        let _ = tokio::time::timeout(
            timeout,
            client::connect(client_config(timeout), server, handler),
        )
        .await;
        let key = seen.lock().ok().and_then(|s| s.clone());
        key.ok_or_else(|| format!("cannot reach a tenure server at {server}"))
    })
}

/// `host init`: host.toml and the host's key pair in `dir`, the server's key pinned.
fn init(server: &str, name: &str, dir: &Path) -> Result<(), (u8, String)> {
    validate_username(name).map_err(|e| (2, e))?;
    let config_path = dir.join("host.toml");
    let key_path = dir.join("host_key");
    for p in [&config_path, &key_path] {
        if p.exists() {
            return Err((
                5,
                format!("{} already exists: not overwritten", p.display()),
            ));
        }
    }
    let server_key = fetch_server_key(server).map_err(|e| (1, e))?;
    std::fs::create_dir_all(dir)
        .map_err(|e| (1, format!("cannot create {}: {e}", dir.display())))?;
    let key = crate::hostkey::create_ed25519(&key_path, &format!("tenure host {name}"))
        .map_err(|e| (1, e))?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| (1, format!("cannot encode the host key: {e}")))?;
    let write = |path: &Path, bytes: &[u8], mode: u32| -> Result<(), (u8, String)> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|e| (1, format!("cannot write {}: {e}", path.display())))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| (1, format!("cannot write {}: {e}", path.display())))
    };
    write(
        &dir.join("host_key.pub"),
        format!("{public}\n").as_bytes(),
        0o644,
    )?;
    let server_line = server_key
        .to_openssh()
        .map_err(|e| (1, format!("cannot encode the server key: {e}")))?;
    let config = format!(
        "# tenure on this host (written by `tenure host init`).\n\
         # sshd_config:\n\
         #   AuthorizedKeysCommand /usr/local/bin/tenure authorized-keys --config {cfg} %u\n\
         #   AuthorizedKeysCommandUser tenure   # a user that owns host_key and cache/\n\
         #   AuthorizedKeysFile none\n\
         server = \"{server}\"\n\
         name = \"{name}\"\n\
         host_key = \"host_key\"\n\
         # The tenure server's host key, pinned: another key is refused.\n\
         server_key = \"{server_line}\"\n\
         # Last answers, for when the server is unreachable; older than this: nothing.\n\
         cache_dir = \"cache\"\n\
         max_staleness_seconds = 3600\n\
         connect_timeout_ms = 3000\n",
        cfg = config_path.display(),
    );
    write(&config_path, config.as_bytes(), 0o644)?;
    println!("wrote {} and {}", config_path.display(), key_path.display());
    println!(
        "pinned the tenure server's host key {} — compare it with the fingerprint `tenure serve` printed",
        server_key.fingerprint(HashAlg::Sha256)
    );
    println!("on the tenure server, register this host (add --group G for who may log in):");
    println!("  echo '{public}' | ssh -p PORT ADMIN@TENURE host add {name} --group GROUP");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_on_host_words_are_taken_from_the_server_grammar() {
        let args = |s: &str| -> Vec<String> { s.split(' ').map(String::from).collect() };
        assert!(is_host_command(&args("tenure authorized-keys bob")));
        assert!(is_host_command(&args("tenure revoked-keys --out x")));
        assert!(is_host_command(&args("tenure host init --name a")));
        assert!(!is_host_command(&args("tenure host list")));
        assert!(!is_host_command(&args(
            "tenure --config f authorized-keys bob"
        )));
    }

    #[test]
    fn only_printable_lines_are_vetted() {
        assert!(vetted("ssh-ed25519 AAAA"));
        assert!(!vetted("a\rb"));
        assert!(!vetted(""));
        assert!(!vetted("é"));
    }

    #[test]
    fn an_unchanged_answer_only_touches_the_cache_file_a_changed_one_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let keys = |fetched| CacheEntry {
            fetched,
            lines: vec!["ssh-ed25519 AAAA".into()],
        };
        record_answer(&cache, "bob", &keys(1)).unwrap();
        let path = cache.join("bob");
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
        let first = inode(&path);
        // Aged: confirmed an hour ago, by its content and its file time.
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::open(&path)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        assert!(now_secs() - read_cache(&cache, "bob").unwrap().confirmed >= 3599);
        // The same answer again: the same file, confirmed now.
        record_answer(&cache, "bob", &keys(now_secs())).unwrap();
        assert_eq!(inode(&path), first);
        let back = read_cache(&cache, "bob").unwrap();
        assert!(now_secs() - back.confirmed <= 1);
        assert_eq!(back.entry.lines, keys(0).lines);
        // A refusal: a new file with the new answer.
        let refused = CacheEntry {
            fetched: now_secs(),
            lines: vec![],
        };
        record_answer(&cache, "bob", &refused).unwrap();
        assert_ne!(inode(&path), first);
        assert!(read_cache(&cache, "bob").unwrap().entry.lines.is_empty());
    }

    #[test]
    fn a_cached_refusal_replaces_the_keys_and_the_file_is_0600() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let keys = CacheEntry {
            fetched: 1,
            lines: vec!["ssh-ed25519 AAAA".into()],
        };
        write_cache(&cache, "bob", &keys, None).unwrap();
        write_cache(
            &cache,
            "bob",
            &CacheEntry {
                fetched: 2,
                lines: vec![],
            },
            Some(&keys),
        )
        .unwrap();
        let back = read_cache(&cache, "bob").unwrap().entry;
        assert_eq!((back.fetched, back.lines.len()), (2, 0));
        let mode = std::fs::metadata(cache.join("bob"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
