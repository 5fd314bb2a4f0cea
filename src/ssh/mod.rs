//! The SSH front door: a russh server that owns the database. Exec commands
//! run the shared grammar (`cli`); a shell opens the console.
//!
//! Per connection: the global allowlist is checked at accept (closed before
//! the banner), unauthenticated connections are capped and given a grace
//! time, then the session is registered, watched for kills, idleness and
//! its maximum length.

mod handler;

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use russh::keys::{Algorithm, HashAlg, PrivateKey};
use russh::{cipher, kex, mac, MethodKind, MethodSet, Preferred};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, Semaphore};

use crate::service::sessions::Closing;
use crate::service::Services;

pub use handler::Connection;

/// The algorithms we offer: post-quantum hybrid first, curve25519 only as the
/// fallback OpenSSH 9.2 needs (dropped when `hardened`), AEAD ciphers,
/// encrypt-then-MAC only, ed25519 host key.
pub fn preferred(hardened: bool) -> Preferred {
    let mut kex_list = vec![kex::MLKEM768X25519_SHA256];
    if !hardened {
        kex_list.push(kex::CURVE25519);
        kex_list.push(kex::CURVE25519_PRE_RFC_8731);
    }
    kex_list.extend([
        kex::EXTENSION_SUPPORT_AS_SERVER,
        kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
    ]);
    Preferred {
        kex: Cow::Owned(kex_list),
        key: Cow::Owned(vec![
            Algorithm::Ed25519,
            Algorithm::Ecdsa {
                curve: russh::keys::EcdsaCurve::NistP256,
            },
            Algorithm::Ecdsa {
                curve: russh::keys::EcdsaCurve::NistP384,
            },
            Algorithm::Ecdsa {
                curve: russh::keys::EcdsaCurve::NistP521,
            },
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            },
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha256),
            },
        ]),
        host_key_certificates: Cow::Borrowed(&[]),
        cipher: Cow::Owned(vec![
            cipher::CHACHA20_POLY1305,
            cipher::AES_256_GCM,
            cipher::AES_128_GCM,
        ]),
        mac: Cow::Owned(vec![mac::HMAC_SHA512_ETM, mac::HMAC_SHA256_ETM]),
        compression: Cow::Owned(vec![russh::compression::NONE]),
    }
}

pub fn russh_config(
    host_key: PrivateKey,
    hardened: bool,
    grace: Duration,
    max_auth_tries: u32,
) -> russh::server::Config {
    russh::server::Config {
        server_id: russh::SshId::Standard(Cow::Borrowed("SSH-2.0-tenure")),
        methods: MethodSet::from(&[MethodKind::PublicKey, MethodKind::KeyboardInteractive][..]),
        // Failure slowdown is our throttle's job; no artificial delay on the
        // way to a successful multi-factor login.
        auth_rejection_time: Duration::ZERO,
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        preferred: preferred(hardened),
        // Our handler closes the connection after `max_auth_tries` password
        // or code attempts; russh's own count (every refusal, key probes
        // and `none` included) is the backstop against a key spray.
        max_auth_attempts: (max_auth_tries as usize).max(1) * 2 + 2,
        inactivity_timeout: Some(grace.max(Duration::from_secs(3600))),
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        nodelay: true,
        ..Default::default()
    }
}

/// A running server: its bound addresses and a way to stop it.
pub struct Server {
    pub addrs: Vec<SocketAddr>,
    shutdown: broadcast::Sender<()>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    services: Services,
}

impl Server {
    /// Binds every listen address and starts accepting.
    pub async fn start(
        services: Services,
        host_key: PrivateKey,
        listen: &[SocketAddr],
    ) -> std::io::Result<Server> {
        let config = services.config().clone();
        let grace = Duration::from_secs(config.server.login_grace_seconds);
        let russh_config = Arc::new(russh_config(
            host_key,
            config.server.hardened,
            grace,
            config.auth.max_auth_tries,
        ));
        let unauthenticated = Arc::new(Semaphore::new(config.server.max_unauthenticated));
        let argon2 = Arc::new(Semaphore::new(config.auth.argon2_concurrency));
        let per_address = Arc::new(PerAddress::default());
        let (shutdown, _) = broadcast::channel(1);
        let mut addrs = Vec::new();
        let mut tasks = Vec::new();
        for addr in listen {
            let listener = TcpListener::bind(addr).await?;
            addrs.push(listener.local_addr()?);
            let ctx = AcceptContext {
                services: services.clone(),
                config: russh_config.clone(),
                unauthenticated: unauthenticated.clone(),
                argon2: argon2.clone(),
                grace,
                shutdown: shutdown.clone(),
                per_address: per_address.clone(),
            };
            tasks.push(tokio::spawn(accept_loop(listener, ctx)));
        }
        // Failed logins are gathered per address; their summaries are written
        // when each window ends, even if no further failure comes.
        let flusher = services.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                let s = flusher.clone();
                let _ = tokio::task::spawn_blocking(move || s.flush_login_failures()).await;
            }
        }));
        Ok(Server {
            addrs,
            shutdown,
            tasks,
            services,
        })
    }

    /// Stops accepting, tells every session, and flushes the database.
    pub async fn shutdown(self, reason: &str) {
        let _ = self.shutdown.send(());
        for task in &self.tasks {
            task.abort();
        }
        self.services.flush_login_failures();
        let closed = self.services.close_all_sessions(reason);
        // Give the session tasks a moment to send their disconnect messages.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while tokio::time::Instant::now() < deadline
            && !self
                .services
                .session_list(&crate::service::Actor::system("shutdown"))
                .map(|s| s.is_empty())
                .unwrap_or(true)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::info!(closed, "sessions closed");
    }
}

#[derive(Clone)]
struct AcceptContext {
    services: Services,
    config: Arc<russh::server::Config>,
    unauthenticated: Arc<Semaphore>,
    argon2: Arc<Semaphore>,
    grace: Duration,
    shutdown: broadcast::Sender<()>,
    per_address: Arc<PerAddress>,
}

/// Unauthenticated connections per address (sshd's PerSourceMaxStartups).
#[derive(Default)]
struct PerAddress(std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>);

/// One address's place among the unauthenticated connections, given back on drop.
struct AddressSlot {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    fn take(table: &Arc<PerAddress>, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut map = match table.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: table.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut map = match self.table.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(n) = map.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Random early drop (sshd's MaxStartups start:rate:full): with `open`
/// unauthenticated connections, should a new one be dropped?
fn early_drop(open: usize, start: usize, rate: u32, full: usize, roll: u32) -> bool {
    if open < start {
        return false;
    }
    if open >= full {
        return true;
    }
    let span = (full - start).max(1) as u64;
    let p = u64::from(rate) + (100 - u64::from(rate.min(100))) * (open - start) as u64 / span;
    u64::from(roll % 100) < p
}

async fn accept_loop(listener: TcpListener, ctx: AcceptContext) {
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                crate::log_limited!(warn, "accept-failed", "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let allow = &ctx.services.config().server.allowlist;
        if !allow.is_empty() && !allow.iter().any(|n| n.contains(&peer.ip())) {
            drop(socket);
            let services = ctx.services.clone();
            tokio::task::spawn_blocking(move || services.connection_refused(peer.ip()));
            continue;
        }
        let server = &ctx.services.config().server;
        let full = server.max_unauthenticated;
        let open = full.saturating_sub(ctx.unauthenticated.available_permits());
        if early_drop(
            open,
            server.early_drop_start,
            server.early_drop_rate,
            full,
            getrandom::u32().unwrap_or(0),
        ) {
            crate::log_limited!(
                warn,
                "early-drop",
                "{open} unauthenticated connections (max_unauthenticated = {full}): dropping new ones at random"
            );
            drop(socket);
            continue;
        }
        let Some(slot) = PerAddress::take(
            &ctx.per_address,
            peer.ip(),
            server.max_unauthenticated_per_address,
        ) else {
            crate::log_limited!(
                warn,
                "per-address",
                "{} holds its maximum of unauthenticated connections; closing new ones",
                peer.ip()
            );
            drop(socket);
            continue;
        };
        let Ok(permit) = ctx.unauthenticated.clone().try_acquire_owned() else {
            crate::log_limited!(
                warn,
                "unauthenticated",
                "too many unauthenticated connections; closing new ones"
            );
            drop(socket);
            continue;
        };
        // A second handle on the socket, so the grace time can close it
        // whatever state the SSH session is in (a stalled key exchange too).
        let (socket, killer) = match socket
            .into_std()
            .and_then(|std| std.try_clone().map(|k| (std, k)))
            .and_then(|(std, k)| TcpStream::from_std(std).map(|s| (s, k)))
        {
            Ok(pair) => pair,
            Err(e) => {
                crate::log_limited!(warn, "accept", "cannot set up a connection: {e}");
                continue;
            }
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _ = socket.set_nodelay(true);
            let (authed_tx, authed_rx) = tokio::sync::oneshot::channel();
            let handler =
                Connection::new(ctx.services.clone(), peer, ctx.argon2.clone(), authed_tx);
            // The grace time runs from accept: a client that never even sends
            // its version line must not hold a place for ever.
            let deadline = tokio::time::Instant::now() + ctx.grace;
            let setup = russh::server::run_stream(ctx.config.clone(), socket, handler);
            let session = match tokio::time::timeout_at(deadline, setup).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = ?e, "connection setup failed");
                    let _ = killer.shutdown(std::net::Shutdown::Both);
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "no SSH version line within the grace time");
                    let _ = killer.shutdown(std::net::Shutdown::Both);
                    return;
                }
            };
            let handle = session.handle();
            let mut session = Box::pin(session);
            let mut shutdown = ctx.shutdown.subscribe();
            // Phase 1: authenticate within the grace time.
            let ticket = tokio::select! {
                ticket = authed_rx => ticket.ok(),
                _ = tokio::time::sleep_until(deadline) => {
                    // Say why if the client still listens, but close either way.
                    let _ = tokio::time::timeout(
                        Duration::from_millis(200),
                        handle.disconnect(russh::Disconnect::ByApplication, "login grace time exceeded".into(), "".into()),
                    ).await;
                    None
                }
                _ = &mut session => None,
                _ = shutdown.recv() => None,
            };
            drop(permit);
            drop(slot);
            let mut ticket = match ticket {
                Some(Ok(ticket)) => ticket,
                Some(Err(why)) => {
                    // Authenticated but over a session limit: the handler
                    // refuses the client's channel saying why; then we go.
                    let _ = tokio::time::timeout(Duration::from_secs(1), &mut session).await;
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        handle.disconnect(russh::Disconnect::TooManyConnections, why, "".into()),
                    )
                    .await;
                    let _ = tokio::time::timeout(Duration::from_secs(2), &mut session).await;
                    let _ = killer.shutdown(std::net::Shutdown::Both);
                    return;
                }
                None => {
                    let _ = killer.shutdown(std::net::Shutdown::Both);
                    return;
                }
            };
            // Phase 2: an authenticated session, until it ends or is closed.
            let cfg = ctx.services.config().sessions.clone();
            // Fractions are allowed (0.5 = 30 s); 0 turns the limit off.
            let idle = (cfg.idle_timeout_minutes > 0.0).then(|| {
                chrono::Duration::milliseconds((cfg.idle_timeout_minutes * 60_000.0) as i64)
            });
            let max_len = (cfg.max_session_hours > 0.0)
                .then(|| Duration::from_secs_f64(cfg.max_session_hours * 3600.0));
            let started = tokio::time::Instant::now();
            // The first check a second in, not at once: the login has just
            // checked the same, and a host's query (sshd's, every login) is
            // usually over by then — no blocking-pool hop for it.
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + Duration::from_secs(1),
                Duration::from_secs(1),
            );
            let reason: Option<String> = loop {
                tokio::select! {
                    _ = &mut session => break None,
                    changed = ticket.closing.changed() => {
                        if changed.is_err() { break None; }
                        if let Closing::Close(why) = ticket.closing.borrow().clone() { break Some(why); }
                    }
                    _ = tick.tick() => {
                        if max_len.is_some_and(|m| started.elapsed() >= m) {
                            break Some("maximum session length reached".into());
                        }
                        let Some(info) = ctx.services.session_info(ticket.id) else { break None };
                        if idle.is_some_and(|idle| ctx.services.now() - info.last_input >= idle) {
                            break Some("idle timeout".into());
                        }
                        // Dates pass while a session is open: an end date
                        // reached closes it even before the scheduler runs.
                        let services = ctx.services.clone();
                        let name = info.account.clone();
                        let still = tokio::task::spawn_blocking(move || services.login_still_allowed(&name)).await;
                        if let Ok(Err(why)) = still {
                            break Some(format!("access ended: {why}"));
                        }
                    }
                    _ = shutdown.recv() => break Some("server shutting down".into()),
                }
            };
            if let Some(why) = reason {
                let _ = handle
                    .disconnect(russh::Disconnect::ByApplication, why, "".into())
                    .await;
                let _ = tokio::time::timeout(Duration::from_secs(2), &mut session).await;
            }
            ctx.services.session_closed(ticket.id);
        });
    }
}
