//! One russh `Handler` per connection: authentication, then channels (exec
//! runs a command of the shared grammar; shell opens the console).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use russh::keys::HashAlg;
use russh::server::{
    Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Response, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use tokio::sync::{oneshot, Semaphore};

use crate::cli::{self, Command};
use crate::service::login::{KeyOutcome, Prompts, Refused};
use crate::service::sessions::{SessionInfo, SessionKind, SessionTicket};
use crate::service::{Actor, Error, Services, Source};

/// Longest exec command line. Far above any real command; a longer one is
/// refused with a message. (Lines over ~256 KiB never reach the handler:
/// russh refuses SSH packets that large and drops the connection.)
const EXEC_LINE_LIMIT: usize = 64 * 1024;

struct Authed {
    account: String,
    session_id: u64,
}

#[derive(Default)]
struct ChannelState {
    pty: bool,
    /// The client's terminal size (columns, rows) from its pty request.
    size: (u16, u16),
    stdin: Vec<u8>,
    /// An exec command waiting for EOF on stdin.
    pending: Option<(Command, String, cli::Display)>,
    /// The console running on this channel.
    console: Option<crate::tui::session::ConsoleLink>,
    /// The channel's sending side: it waits for the client's window, so a
    /// client that does not read slows the sender instead of growing a buffer.
    writer: Option<russh::ChannelWriteHalf<Msg>>,
    /// What the client sent with `env` requests (NO_COLOR, TENURE_THEME).
    console_options: crate::tui::session::ConsoleOptions,
}

pub struct Connection {
    services: Services,
    peer: SocketAddr,
    argon2: Arc<Semaphore>,
    authed_tx: Option<oneshot::Sender<Authenticated>>,
    authed: Option<Authed>,
    /// A verified key waiting for its TOTP code: (user, fingerprint).
    key_factor: Option<(String, String)>,
    /// What the last keyboard-interactive round asked.
    asked: Option<Prompts>,
    /// A password login held until its expired or temporary password is
    /// changed: (user, method, TOTP step).
    change_due: Option<(String, crate::config::LoginMethod, Option<u64>)>,
    attempted_user: Option<String>,
    failures: Vec<String>,
    /// Password and code attempts on this connection (`[auth] max_auth_tries`).
    tries: u32,
    channels: HashMap<ChannelId, ChannelState>,
    /// Limits already audited on this connection (one event per kind).
    limits_recorded: std::collections::BTreeSet<&'static str>,
    /// Authenticated, but over a session limit: every channel is refused with this.
    no_room: Option<String>,
    /// The user whose probed key is a registered host key: its signed
    /// login is answered on this task (`host_key_login`).
    probed_host: Option<String>,
}

/// Failures described in a connection's `auth.fail` event.
const FAILURES_KEPT: usize = 12;
/// The largest console a client may ask for: nothing needs more, and a frame
/// costs memory by the cell.
pub const MAX_COLS: u16 = 500;
pub const MAX_ROWS: u16 = 200;

/// What the connection task learns when authentication ends: a live
/// session, or why one could not be opened (a limit), told to the client.
pub type Authenticated = Result<SessionTicket, String>;

impl Connection {
    pub fn new(
        services: Services,
        peer: SocketAddr,
        argon2: Arc<Semaphore>,
        authed_tx: oneshot::Sender<Authenticated>,
    ) -> Self {
        Connection {
            services,
            peer,
            argon2,
            authed_tx: Some(authed_tx),
            authed: None,
            key_factor: None,
            asked: None,
            change_due: None,
            attempted_user: None,
            failures: Vec::new(),
            tries: 0,
            channels: HashMap::new(),
            limits_recorded: Default::default(),
            no_room: None,
            probed_host: None,
        }
    }

    /// Remembers who was tried (cut: a client may send a huge name).
    fn note_user(&mut self, user: &str) {
        self.attempted_user = Some(crate::bounded::cut(user, 64).into_owned());
    }

    fn note_failure(&mut self, text: String) {
        if self.failures.len() < FAILURES_KEPT {
            self.failures
                .push(crate::bounded::cut(&text, 160).into_owned());
        } else if self.failures.len() == FAILURES_KEPT {
            self.failures.push("…".into());
        }
    }

    /// A name that cannot be an account is refused before any lookup.
    fn plausible(&mut self, user: &str) -> bool {
        self.note_user(user);
        if crate::domain::validate::validate_username(user).is_ok() {
            return true;
        }
        self.note_failure("invalid username".into());
        false
    }

    /// Records a limit a client ran into: one audit event per kind and connection.
    fn limit_reached(&mut self, kind: &'static str, detail: String) {
        crate::log_limited!(
            info,
            "limit",
            "{}: {}",
            self.peer,
            crate::text::Escaped(&detail)
        );
        if !self.limits_recorded.insert(kind) {
            return;
        }
        let services = self.services.clone();
        let actor = self.actor().ok();
        let peer = self.peer.ip();
        tokio::task::spawn_blocking(move || {
            services.limit_refused(actor.as_ref(), peer, kind, &detail)
        });
    }

    fn reject(&mut self, user: &str, method: &str, refusal: Refused, counts: bool) -> Auth {
        self.note_user(user);
        self.note_failure(format!("{method}: {}", refusal.reason));
        if counts {
            let services = self.services.clone();
            let (user, ip) = (user.to_string(), self.peer.ip());
            services.login_failed_attempt(&user, ip);
        }
        try_again()
    }

    /// Counts a password or code attempt; past `max_auth_tries` the
    /// connection is closed (the client must reconnect, and pay the handshake).
    fn tried(&mut self) -> Result<(), russh::Error> {
        self.tries += 1;
        if self.tries >= self.services.config().auth.max_auth_tries.max(1) {
            self.note_failure(format!(
                "disconnected after {} password or code attempts",
                self.tries
            ));
            return Err(russh::Error::Disconnect);
        }
        Ok(())
    }

    /// Records the login, registers the live session and tells the connection task.
    async fn accept(
        &mut self,
        user: &str,
        method: &str,
        fingerprint: Option<String>,
        totp_step: Option<u64>,
    ) -> Auth {
        if let Some(auth) = self.no_room_for(user) {
            return auth;
        }
        let services = self.services.clone();
        let ip = self.peer.ip();
        let (u, m, fp) = (user.to_string(), method.to_string(), fingerprint.clone());
        let recorded = tokio::task::spawn_blocking(move || {
            services.login_succeeded(&u, ip, &m, fp.as_deref(), totp_step)
        })
        .await;
        match recorded {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return self.reject(
                    user,
                    method,
                    Refused {
                        reason: e.to_string(),
                    },
                    true,
                )
            }
            Err(e) => {
                return self.reject(
                    user,
                    method,
                    Refused {
                        reason: e.to_string(),
                    },
                    false,
                )
            }
        }
        self.open_session(user, method, fingerprint)
    }

    /// Authenticated, but no room: the client is told why in the
    /// disconnect message (a plain refusal would read "Permission denied").
    fn no_room_for(&mut self, user: &str) -> Option<Auth> {
        let why = self.services.session_room(user).err()?;
        self.limit_reached("sessions", format!("{user}: {why}"));
        self.authed = None;
        self.no_room = Some(why.clone());
        if let Some(tx) = self.authed_tx.take() {
            let _ = tx.send(Err(why));
        }
        Some(Auth::Accept)
    }

    /// A login already recorded (a host's, which writes nothing): the live
    /// session, told to the connection task.
    fn accept_recorded(&mut self, user: &str, method: &str, fingerprint: Option<String>) -> Auth {
        if let Some(auth) = self.no_room_for(user) {
            return auth;
        }
        self.open_session(user, method, fingerprint)
    }

    /// Registers the live session and tells the connection task.
    fn open_session(&mut self, user: &str, method: &str, fingerprint: Option<String>) -> Auth {
        let ip = self.peer.ip();
        let now = self.services.now();
        let ticket = self.services.session_open(SessionInfo {
            id: 0,
            account: user.to_string(),
            address: ip.to_string(),
            method: method.to_string(),
            fingerprint,
            started: now,
            last_input: now,
            kind: SessionKind::Exec,
            command: None,
        });
        self.authed = Some(Authed {
            account: user.to_string(),
            session_id: ticket.id,
        });
        self.failures.clear();
        if let Some(tx) = self.authed_tx.take() {
            let _ = tx.send(Ok(ticket));
        }
        Auth::Accept
    }

    fn actor(&self) -> Result<Actor, Error> {
        let authed = self
            .authed
            .as_ref()
            .ok_or_else(|| Error::Denied("not authenticated".into()))?;
        // Roles are read now, so a change applies to the next command.
        let account = self.services.load(&authed.account)?;
        Ok(Actor::account(
            &account,
            Source::Ssh(self.peer.ip().to_string()),
            Some(authed.session_id.to_string()),
        ))
    }

    fn touch(&self) {
        if let Some(a) = &self.authed {
            self.services.session_touch(a.session_id);
        }
    }

    /// Refuses an exec request before any command runs: one error line, exit
    /// 2, close; the refusal is a `limit.KIND` audit event (`what`, short;
    /// once per kind and connection, so a flood cannot fill the trail).
    fn refuse(
        &mut self,
        channel: ChannelId,
        kind: &'static str,
        what: String,
        message: String,
        pty: bool,
        handle: &russh::server::Handle,
    ) {
        self.limit_reached(kind, what);
        let handle = handle.clone();
        tokio::spawn(async move {
            send_output(&handle, channel, vec![], Some(message), 2, pty).await;
        });
    }

    /// Runs a command off the async threads, streaming its output to the
    /// client as it is written, then sends the error line, exit status and close.
    fn run_exec(
        &mut self,
        channel: ChannelId,
        command: Command,
        display: cli::Display,
        stdin: Vec<u8>,
        pty: bool,
        session: &mut Session,
    ) {
        let services = self.services.clone();
        let actor = self.actor();
        let handle = session.handle();
        let writer = self
            .channels
            .get_mut(&channel)
            .and_then(|state| state.writer.take());
        tokio::spawn(async move {
            // The command writes into a queue of a few chunks; this task
            // sends them through the channel's window. A client that reads
            // slowly slows the command; one that goes stops it.
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(OUTPUT_CHUNKS);
            let out_handle = handle.clone();
            let sender = tokio::spawn(async move {
                while let Some(chunk) = rx.recv().await {
                    let sent = match &writer {
                        Some(w) => w.data_bytes(chunk).await.is_ok(),
                        None => out_handle.data(channel, chunk).await.is_ok(),
                    };
                    if !sent {
                        break;
                    }
                }
            });
            let result = tokio::task::spawn_blocking(move || {
                let mut out = ChannelOut::new(tx, pty);
                let outcome = actor.and_then(|actor| {
                    cli::run_with(
                        &services,
                        &actor,
                        command,
                        display,
                        &mut stdin.as_slice(),
                        &mut out,
                    )
                });
                let flushed = std::io::Write::flush(&mut out);
                drop(out);
                outcome.and_then(|()| {
                    flushed.map_err(|e| Error::Failed(format!("cannot write output: {e}")))
                })
            })
            .await;
            let _ = sender.await;
            let outcome =
                result.unwrap_or_else(|e| Err(Error::Failed(format!("command failed: {e}"))));
            let (code, err) = match outcome {
                Ok(()) => (0, None),
                Err(e) => (e.exit_code(), Some(format!("error: {e}\n"))),
            };
            send_output(&handle, channel, vec![], err, code as u32, pty).await;
        });
    }
}

impl Connection {
    /// A host's `authorized-keys` (sshd waits on it for every login): a few
    /// store reads, so it runs on this task and its answer goes out in the
    /// same write as the exec reply — no blocking-pool hop, no extra task.
    /// Authorisation is the service's, as for every command.
    fn answer_host_query(
        &mut self,
        channel: ChannelId,
        actor: &Actor,
        command: Command,
        display: cli::Display,
        pty: bool,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let mut out = Vec::new();
        let outcome = cli::run_with(
            &self.services,
            actor,
            command,
            display,
            &mut std::io::empty(),
            &mut out,
        );
        let (code, err) = match outcome {
            Ok(()) => (0, None),
            Err(e) => (e.exit_code() as u32, Some(format!("error: {e}\n"))),
        };
        if out.len() > HOST_ANSWER_INLINE {
            // More than an answer's few lines: sent by a task that waits
            // for the client's window.
            let handle = session.handle();
            tokio::spawn(async move { send_output(&handle, channel, out, err, code, pty).await });
            return Ok(());
        }
        if !out.is_empty() {
            session.data(channel, crlf(out, pty))?;
        }
        if let Some(err) = err {
            session.extended_data(channel, 1, crlf(err.into_bytes(), pty))?;
        }
        session.exit_status_request(channel, code)?;
        session.eof(channel)?;
        session.close(channel)
    }
}

/// The exec grammar (`cli::parse_exec_line`), with sshd's every-login
/// question `authorized-keys USER` taken as is: the same command the grammar
/// gives, without building the whole grammar for it. Anything else, a USER
/// that looks like an option included, goes through the grammar.
fn parse_words(words: &[String]) -> Result<(Command, cli::Display), clap::Error> {
    match words {
        [verb, user] if verb == "authorized-keys" && !user.starts_with('-') => Ok((
            Command::AuthorizedKeys { user: user.clone() },
            cli::Display::default(),
        )),
        _ => cli::parse_exec_line(words),
    }
}

/// The most output a host query writes straight into the session.
const HOST_ANSWER_INLINE: usize = 32 * 1024;

/// Chunks of output queued between a command and the client.
const OUTPUT_CHUNKS: usize = 8;
const OUTPUT_CHUNK: usize = 64 * 1024;

/// Where an exec command writes: chunks of 64 KiB handed to the sending
/// task (blocking while the queue is full), `\n` made `\r\n` for a pty.
struct ChannelOut {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
    pty: bool,
    prev: u8,
}

impl ChannelOut {
    fn new(tx: tokio::sync::mpsc::Sender<Vec<u8>>, pty: bool) -> ChannelOut {
        ChannelOut {
            tx,
            buf: Vec::with_capacity(OUTPUT_CHUNK + 1024),
            pty,
            prev: 0,
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(OUTPUT_CHUNK + 1024));
        self.tx.blocking_send(chunk).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl std::io::Write for ChannelOut {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.pty {
            for &b in data {
                if b == b'\n' && self.prev != b'\r' {
                    self.buf.push(b'\r');
                }
                self.buf.push(b);
                self.prev = b;
            }
        } else {
            self.buf.extend_from_slice(data);
        }
        if self.buf.len() >= OUTPUT_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

fn crlf(bytes: Vec<u8>, pty: bool) -> Vec<u8> {
    if !pty {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 20);
    let mut prev = 0u8;
    for b in bytes {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

async fn send_output(
    handle: &russh::server::Handle,
    channel: ChannelId,
    out: Vec<u8>,
    err: Option<String>,
    code: u32,
    pty: bool,
) {
    let out = crlf(out, pty);
    for chunk in out.chunks(32 * 1024) {
        if handle.data(channel, chunk.to_vec()).await.is_err() {
            return;
        }
    }
    if let Some(err) = err {
        let bytes = crlf(err.into_bytes(), pty);
        let _ = handle.extended_data(channel, 1, bytes).await;
    }
    let _ = handle.exit_status_request(channel, code).await;
    let _ = handle.eof(channel).await;
    let _ = handle.close(channel).await;
}

/// The subcommand's words (`key add`), for messages about it.
fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Import { .. } => "import",
        Command::Key(_) => "key add",
        Command::Password(_) => "password set",
        Command::Request(_) => "request import",
        _ => "command",
    }
}

fn human_size(bytes: usize) -> String {
    if bytes >= 1024 * 1024 {
        format!("{} MiB", bytes / (1024 * 1024))
    } else {
        format!("{} KiB", bytes / 1024)
    }
}

fn clamp(v: u32, max: u16) -> u16 {
    v.clamp(1, u32::from(max)) as u16
}

/// A refusal that lets the client try another key or the prompts.
fn try_again() -> Auth {
    Auth::Reject {
        proceed_with_methods: Some(MethodSet::from(
            &[MethodKind::PublicKey, MethodKind::KeyboardInteractive][..],
        )),
        partial_success: false,
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.authed.is_none() && !self.failures.is_empty() {
            let services = self.services.clone();
            let user = self.attempted_user.clone().unwrap_or_default();
            let ip = self.peer.ip();
            let detail = format!(
                "{} attempt(s) from {ip}: {}",
                self.failures.len(),
                self.failures.join("; ")
            );
            // Drop may run outside a runtime (tests); record synchronously then.
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn_blocking(move || services.login_failed(&user, ip, &detail));
                }
                Err(_) => services.login_failed(&user, ip, &detail),
            }
        }
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        self.note_user(user);
        Ok(try_again())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        // A probe: answer whether this key could work; count nothing.
        if !self.plausible(user) {
            return Ok(try_again());
        }
        let fp = offer.public_key.fingerprint(HashAlg::Sha256).to_string();
        let known = self.services.key_probe(user, &fp);
        if let Some(host) = known {
            self.probed_host = host.then(|| user.to_string());
            Ok(Auth::Accept)
        } else if self.services.is_host_name(user) {
            // Said plainly in the trail: a host (or someone posing as one)
            // came with a key that is not the registered host key.
            self.note_failure(format!("publickey: unknown host key {fp} for host {user}"));
            Ok(try_again())
        } else {
            self.note_failure(format!("publickey: key {fp} not registered"));
            Ok(try_again())
        }
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        if !self.plausible(user) {
            return Ok(try_again());
        }
        let fp = key.public_key.fingerprint(HashAlg::Sha256).to_string();
        // sshd asks for every login: a host's key login is a few reads and
        // (but once an hour) no write, so it is answered here, not through
        // two hops of the blocking pool.
        if self.probed_host.as_deref() == Some(user) {
            match self.services.host_key_login(user, self.peer.ip(), &fp) {
                Ok(Some(_)) => return Ok(self.accept_recorded(user, "publickey", Some(fp))),
                Ok(None) => {}
                Err(refusal) => return Ok(self.reject(user, "publickey", refusal, true)),
            }
        }
        let services = self.services.clone();
        let (u, ip, f) = (user.to_string(), self.peer.ip(), fp.clone());
        let outcome = tokio::task::spawn_blocking(move || services.login_key(&u, ip, &f))
            .await
            .unwrap_or_else(|e| {
                Err(Refused {
                    reason: e.to_string(),
                })
            });
        match outcome {
            Ok(KeyOutcome::Accept(_)) => Ok(self.accept(user, "publickey", Some(fp), None).await),
            Ok(KeyOutcome::NeedTotp(_)) => {
                self.key_factor = Some((user.to_string(), fp));
                Ok(Auth::Reject {
                    proceed_with_methods: Some(MethodSet::from(
                        &[MethodKind::KeyboardInteractive][..],
                    )),
                    partial_success: true,
                })
            }
            Err(refusal) => Ok(self.reject(user, "publickey", refusal, true)),
        }
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        if !self.plausible(user) {
            // Still answer with prompts, as for an unknown user, then refuse.
            if response.is_some() {
                self.tried()?;
                return Ok(try_again());
            }
        }
        let key_done = self.key_factor.as_ref().is_some_and(|(u, _)| u == user);
        let Some(response) = response else {
            // A new exchange: a change left unanswered starts over with the password.
            self.change_due = None;
            let prompts = if crate::domain::validate::validate_username(user).is_ok() {
                self.services.login_prompts(user, key_done)
            } else {
                Prompts::PasswordAndCode
            };
            self.asked = Some(prompts);
            let list: Vec<(Cow<'static, str>, bool)> = match prompts {
                Prompts::PasswordAndCode => vec![
                    ("Password: ".into(), false),
                    ("Verification code: ".into(), true),
                ],
                Prompts::Password => vec![("Password: ".into(), false)],
                Prompts::CodeOnly => vec![("Verification code: ".into(), true)],
                Prompts::EnrolmentCode => vec![("Enrolment code: ".into(), true)],
                Prompts::NewPassword => vec![],
            };
            return Ok(Auth::Partial {
                name: "tenure".into(),
                instructions: "".into(),
                prompts: list.into(),
            });
        };
        let answers: Vec<String> = response
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect();
        let asked = self.asked.take().unwrap_or(Prompts::PasswordAndCode);
        let services = self.services.clone();
        let ip = self.peer.ip();
        let u = user.to_string();
        let first = answers.first().cloned().unwrap_or_default();
        let second = answers.get(1).cloned();
        match asked {
            Prompts::CodeOnly => {
                let fp = self.key_factor.as_ref().map(|(_, f)| f.clone());
                let outcome =
                    tokio::task::spawn_blocking(move || services.login_code(&u, ip, &first))
                        .await
                        .unwrap_or_else(|e| {
                            Err(Refused {
                                reason: e.to_string(),
                            })
                        });
                match outcome {
                    Ok((_, step)) => Ok(self.accept(user, "publickey+totp", fp, Some(step)).await),
                    Err(r) => {
                        let auth = self.reject(user, "totp", r, true);
                        self.tried()?;
                        Ok(auth)
                    }
                }
            }
            Prompts::NewPassword => {
                let Some((due_user, method, step)) = self.change_due.take() else {
                    self.tried()?;
                    return Ok(try_again());
                };
                if due_user != user {
                    self.note_failure("new password: answered for another user".into());
                    self.tried()?;
                    return Ok(try_again());
                }
                let permit = self.argon2.clone().acquire_owned().await;
                let outcome = tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    services.login_password_change(&u, ip, &first, second.as_deref().unwrap_or(""))
                })
                .await
                .unwrap_or_else(|e| {
                    Err(Refused {
                        reason: e.to_string(),
                    })
                });
                match outcome {
                    Ok(()) => Ok(self.accept(user, method.as_str(), None, step).await),
                    Err(r) => {
                        // The old password was right: not a guess, no lockout count.
                        let auth = self.reject(user, "password change", r, false);
                        self.tried()?;
                        Ok(auth)
                    }
                }
            }
            Prompts::EnrolmentCode => {
                let permit = self.argon2.clone().acquire_owned().await;
                let outcome = tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    services.login_enrolment(&u, ip, &first)
                })
                .await
                .unwrap_or_else(|e| {
                    Err(Refused {
                        reason: e.to_string(),
                    })
                });
                match outcome {
                    Ok(_) => Ok(self.accept(user, "enrolment", None, None).await),
                    Err(r) => {
                        let auth = self.reject(user, "enrolment", r, true);
                        self.tried()?;
                        Ok(auth)
                    }
                }
            }
            Prompts::Password | Prompts::PasswordAndCode => {
                let permit = self.argon2.clone().acquire_owned().await;
                let outcome = tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    services.login_password(&u, ip, &first, second.as_deref())
                })
                .await
                .unwrap_or_else(|e| {
                    Err(Refused {
                        reason: e.to_string(),
                    })
                });
                match outcome {
                    Ok((account, step, method)) => {
                        // An expired or temporary password: a new one first,
                        // in the same exchange (as sshd with PAM).
                        if let Some(why) = self.services.password_change_due(&account) {
                            self.change_due = Some((user.to_string(), method, step));
                            self.asked = Some(Prompts::NewPassword);
                            return Ok(Auth::Partial {
                                name: "tenure".into(),
                                instructions: why.instruction().into(),
                                prompts: vec![
                                    ("New password: ".into(), false),
                                    ("Repeat: ".into(), false),
                                ]
                                .into(),
                            });
                        }
                        Ok(self.accept(user, method.as_str(), None, step).await)
                    }
                    Err(r) => {
                        let auth = self.reject(user, "password", r, true);
                        self.tried()?;
                        Ok(auth)
                    }
                }
            }
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(why) = &self.no_room {
            reply
                .reject(russh::ChannelOpenFailure::Other {
                    code: 4, // SSH_OPEN_RESOURCE_SHORTAGE
                    reason: why.clone(),
                })
                .await;
            return Ok(());
        }
        if self.authed.is_none() {
            return Ok(());
        }
        let max = self.services.config().server.max_channels_per_connection;
        if self.channels.len() >= max {
            let why = format!(
                "too many channels on one connection (max_channels_per_connection = {max})"
            );
            self.limit_reached("channels", why.clone());
            reply
                .reject(russh::ChannelOpenFailure::Other {
                    code: 4, // SSH_OPEN_RESOURCE_SHORTAGE
                    reason: why,
                })
                .await;
            return Ok(());
        }
        let id = channel.id();
        // The reading half is dropped at once: the handler's callbacks get
        // the client's data, and an unread half would stall the session.
        let (_reading, writer) = channel.split();
        self.channels.insert(
            id,
            ChannelState {
                writer: Some(writer),
                ..ChannelState::default()
            },
        );
        reply.accept().await;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        cols: u32,
        rows: u32,
        _pw: u32,
        _ph: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(state) = self.channels.get_mut(&channel) {
            state.pty = true;
            // A client without a real terminal (ssh -tt from a pipe) sends 0x0.
            state.size = (
                if cols == 0 { 80 } else { clamp(cols, MAX_COLS) },
                if rows == 0 { 24 } else { clamp(rows, MAX_ROWS) },
            );
        }
        session.channel_success(channel)?;
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(state) = self.channels.get_mut(&channel) {
            state.console_options.env(name, value);
        }
        session.channel_success(channel)?;
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        cols: u32,
        rows: u32,
        _pw: u32,
        _ph: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.touch();
        if let Some(state) = self.channels.get_mut(&channel) {
            state.size = (clamp(cols, MAX_COLS), clamp(rows, MAX_ROWS));
            if let Some(console) = &state.console {
                console.resize(state.size.0, state.size.1);
            }
        }
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.touch();
        session.channel_success(channel)?;
        let pty = self.channels.get(&channel).is_some_and(|c| c.pty);
        let handle = session.handle();
        if data.len() > EXEC_LINE_LIMIT {
            let what = format!(
                "command line of {} bytes refused (at most {EXEC_LINE_LIMIT}): {}",
                data.len(),
                crate::bounded::cut(&String::from_utf8_lossy(data), crate::bounded::CLIENT_TEXT)
            );
            self.refuse(
                channel,
                "exec_line",
                what,
                format!(
                    "error: the command line is {} bytes; at most {} KiB (send data on stdin)\n",
                    data.len(),
                    EXEC_LINE_LIMIT / 1024
                ),
                pty,
                &handle,
            );
            return Ok(());
        }
        let line = String::from_utf8_lossy(data).into_owned();
        if let Some(a) = &self.authed {
            self.services.session_update(
                a.session_id,
                SessionKind::Exec,
                Some(line.chars().take(200).collect()),
            );
        }
        let words = match shell_words::split(&line) {
            Ok(w) => cli::join_free_text(w),
            Err(e) => {
                tokio::spawn(async move {
                    send_output(
                        &handle,
                        channel,
                        vec![],
                        Some(format!("error: cannot parse the command line: {e}\n")),
                        2,
                        pty,
                    )
                    .await
                });
                return Ok(());
            }
        };
        // The exec grammar: the same `Command` as the offline CLI (and the fuzz target).
        let (command, display) = match parse_words(&words) {
            Ok(p) => p,
            Err(e) => {
                use clap::error::ErrorKind;
                let (out, err, code) = match e.kind() {
                    ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                        (e.to_string().into_bytes(), None, 0)
                    }
                    ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                        (e.to_string().into_bytes(), None, 2)
                    }
                    _ => (
                        vec![],
                        Some(format!("error: {}\n", cli::usage_line(&e, "help"))),
                        2,
                    ),
                };
                tokio::spawn(
                    async move { send_output(&handle, channel, out, err, code, pty).await },
                );
                return Ok(());
            }
        };
        // A refused import is refused (and audited) now, not after an upload.
        let refused_import = matches!(command, Command::Import { .. })
            && self
                .actor()
                .is_ok_and(|actor| !self.services.may_import(&actor));
        if command.reads_stdin() && !refused_import {
            if let Some(state) = self.channels.get_mut(&channel) {
                state.pending = Some((command, line, display));
            }
            return Ok(());
        }
        if matches!(command, Command::AuthorizedKeys { .. }) {
            if let Ok(actor) = self.actor() {
                if actor.has(crate::domain::Role::Host) {
                    return self.answer_host_query(channel, &actor, command, display, pty, session);
                }
            }
        }
        self.run_exec(channel, command, display, Vec::new(), pty, session);
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.touch();
        // Accepted only to be refused in words: a client told "failure" prints
        // a bare "subsystem request failed", and one told nothing hangs.
        session.channel_success(channel)?;
        let pty = self.channels.get(&channel).is_some_and(|c| c.pty);
        let cut: String = name.chars().take(64).collect();
        let shown = crate::text::escape_text(&cut);
        let handle = session.handle();
        self.refuse(
            channel,
            "subsystem",
            format!("subsystem '{shown}' refused"),
            format!(
                "error: tenure offers no subsystems ('{shown}' refused); run a command instead: ssh HOST help\n"
            ),
            pty,
            &handle,
        );
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.touch();
        session.channel_success(channel)?;
        if let Some(a) = &self.authed {
            self.services
                .session_update(a.session_id, SessionKind::Console, None);
        }
        let actor = match self.actor() {
            Ok(actor) => actor,
            Err(e) => {
                session.data(channel, format!("error: {e}\r\n").into_bytes())?;
                session.exit_status_request(channel, 1)?;
                session.close(channel)?;
                return Ok(());
            }
        };
        if let Err(e) = self.services.command_gate(&actor, false) {
            let text = format!("error: {e}\r\n");
            session.extended_data(channel, 1, text.into_bytes())?;
            session.exit_status_request(channel, e.exit_code() as u32)?;
            session.eof(channel)?;
            session.close(channel)?;
            return Ok(());
        }
        let Some(state) = self.channels.get_mut(&channel) else {
            return Ok(());
        };
        if !state.pty {
            let text = "error: the console needs a terminal: use ssh -t, or give a command (ssh HOST help)\n";
            session.extended_data(channel, 1, text.as_bytes().to_vec())?;
            session.exit_status_request(channel, 2)?;
            session.eof(channel)?;
            session.close(channel)?;
            return Ok(());
        }
        let slot = match self.services.console_room(&actor.name) {
            Ok(slot) => slot,
            Err(why) => {
                let text = format!("error: {why}\r\n");
                session.extended_data(channel, 1, text.into_bytes())?;
                session.exit_status_request(channel, 1)?;
                session.eof(channel)?;
                session.close(channel)?;
                self.limit_reached("consoles", why);
                return Ok(());
            }
        };
        let Some(state) = self.channels.get_mut(&channel) else {
            return Ok(());
        };
        let mut options = state.console_options.clone();
        (options.cols, options.rows) = state.size;
        let Some(writer) = state.writer.take() else {
            return Ok(());
        };
        state.console = Some(crate::tui::session::start(
            self.services.clone(),
            actor,
            session.handle(),
            writer,
            options,
            slot,
        ));
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.touch();
        let Some(state) = self.channels.get_mut(&channel) else {
            return Ok(());
        };
        if let Some(console) = &state.console {
            // A console that cannot keep up drops input rather than block
            // the connection or queue without bound.
            if !console.bytes(data) {
                self.limit_reached(
                    "console_input",
                    format!(
                        "console input dropped: more than {} KiB queued",
                        crate::tui::session::MAX_QUEUED_INPUT / 1024
                    ),
                );
            }
            return Ok(());
        }
        // Without a pending command (none asked for stdin, or its input was
        // refused) whatever the client sends is dropped.
        if let Some((command, _, _)) = &state.pending {
            let limit = command.stdin_limit();
            if state.stdin.len() + data.len() > limit {
                let what = format!(
                    "stdin of '{}' over {} refused",
                    command_name(command),
                    human_size(limit)
                );
                // Freed now, not when the channel closes; the rest is dropped.
                state.stdin = Vec::new();
                state.pending = None;
                let pty = state.pty;
                let handle = session.handle();
                self.refuse(
                    channel,
                    "stdin",
                    what,
                    format!(
                        "error: input too large: this command reads at most {} of stdin\n",
                        human_size(limit)
                    ),
                    pty,
                    &handle,
                );
                return Ok(());
            }
            state.stdin.extend_from_slice(data);
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(state) = self.channels.get_mut(&channel) else {
            return Ok(());
        };
        if let Some((command, _line, display)) = state.pending.take() {
            let stdin = std::mem::take(&mut state.stdin);
            let pty = state.pty;
            self.run_exec(channel, command, display, stdin, pty, session);
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }
}

use std::borrow::Cow;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorized_keys_shortcut_gives_what_the_grammar_gives() {
        let words = |line: &str| -> Vec<String> { shell_words::split(line).unwrap() };
        for line in [
            "authorized-keys bob",
            "authorized-keys help",
            "authorized-keys b.o_b-1",
            "authorized-keys 'b%o,b'",
        ] {
            let fast = parse_words(&words(line)).unwrap();
            let grammar = cli::parse_exec_line(&words(line)).unwrap();
            assert_eq!(format!("{fast:?}"), format!("{grammar:?}"), "{line}");
        }
        // Options and other shapes go through the grammar, errors included.
        assert!(parse_words(&words("authorized-keys --utc bob")).is_ok());
        assert!(parse_words(&words("authorized-keys --bogus")).is_err());
        assert!(parse_words(&words("authorized-keys")).is_err());
    }
}
