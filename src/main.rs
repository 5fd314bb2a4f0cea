//! The tenure binary: `init`, `serve` (see the SSH issue) and every exec
//! command offline against the local database.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

// mimalloc: the write path allocates and frees many small records; glibc's
// malloc spent a quarter of bulk-import time in its free lists.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The on-host commands (`authorized-keys`, which sshd runs for every
/// login; `revoked-keys`; `host init`) set mimalloc's options for a short
/// run before anything allocates: glibc calls `.init_array` entries with
/// (argc, argv, envp) before `main`, and priority 99 puts this one ahead of
/// mimalloc's own constructor (101 with clang, the default with gcc), which
/// reads the options. See src/hostagent/start.rs; the server keeps mimalloc's
/// defaults. Reads argv without allocating.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod on_host_start {
    use std::ffi::{c_char, c_int, CStr};

    extern "C" fn on_host_start(
        argc: c_int,
        argv: *const *const c_char,
        _envp: *const *const c_char,
    ) {
        if argv.is_null() {
            return;
        }
        // SAFETY: glibc passes the process's argv: `argc` pointers to
        // NUL-terminated strings.
        let word = |i: c_int| -> Option<&'static [u8]> {
            (i < argc).then(|| unsafe { CStr::from_ptr(*argv.add(i as usize)).to_bytes() })
        };
        if tenure::hostagent::is_host_words(word(1), word(2)) {
            tenure::hostagent::start::tune_allocator();
        }
    }

    #[used]
    #[link_section = ".init_array.00099"]
    static ON_HOST_START: extern "C" fn(c_int, *const *const c_char, *const *const c_char) =
        on_host_start;
}

use tenure::cli::{self, Command};
use tenure::config::Config;
use tenure::hostkey;
use tenure::service::accounts::AccountInput;
use tenure::service::{Actor, Error, Services, SystemClock};
use tenure::store::SledStore;

#[derive(Debug, Parser)]
#[command(
    name = "tenure",
    version,
    about = "Accounts for contractors, interns, vendors and partners, managed over SSH"
)]
struct Cli {
    /// The config file (default: the embedded example, paths relative to the current directory)
    #[arg(long, global = true, env = "TENURE_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    display: cli::DisplayArgs,
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Create the database, the host key and the first admin
    Init {
        #[arg(long)]
        admin: String,
        /// A public key file for the admin (e.g. ~/.ssh/id_ed25519.pub)
        #[arg(long)]
        key: Option<PathBuf>,
        /// Read the admin's password from stdin (first line)
        #[arg(long)]
        password: bool,
        #[arg(long)]
        email: Option<String>,
        #[arg(long = "display-name")]
        display_name: Option<String>,
    },
    /// Run the SSH server (initialises an empty database on first run)
    Serve {
        /// Listen here instead of the config's addresses (ADDR:PORT)
        #[arg(long)]
        listen: Option<String>,
    },
    /// Rebuild the database from a backup on stdin (offline; the server stopped)
    Restore {
        /// Replace a data directory that is not empty (the old one is kept beside it)
        #[arg(long)]
        force: bool,
    },
    #[command(flatten)]
    Run(Command),
}

fn fail(message: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

fn open(config: &Config, must_exist: bool) -> Result<Services, ExitCode> {
    let dir = &config.server.data_dir;
    if must_exist && !dir.exists() {
        return Err(fail(
            format!(
                "no database at {} (config: {}): run `tenure init --admin NAME` first",
                dir.display(),
                config.source
            ),
            1,
        ));
    }
    let store = SledStore::open(dir).map_err(|e| fail(e, 1))?;
    let services = Services::new(
        Arc::new(config.clone()),
        Arc::new(store),
        Arc::new(SystemClock),
    )
    .map_err(|e| fail(e, 1))?;
    services.set_applier(Arc::new(tenure::connect::Runner::default()));
    services.set_source_reader(Arc::new(tenure::sources::LdapReader));
    Ok(services)
}

/// `tenure restore`: the backup goes into a directory beside the data
/// directory and only replaces it once every record is in and the checksum
/// matched; a bad backup leaves everything as it was.
fn restore(config: &Config, force: bool) -> Result<(), ExitCode> {
    let dir = &config.server.data_dir;
    let occupied = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
    if occupied {
        if !force {
            return Err(fail(
                format!(
                    "{} is not empty: restore into an empty data directory, or add --force to replace it (the old one is kept beside it)",
                    dir.display()
                ),
                5,
            ));
        }
        // A running server holds the lock: never pull the floor from under it.
        drop(SledStore::open(dir).map_err(|e| fail(e, 1))?);
    }
    let staging = dir.with_extension("restore-tmp");
    let _ = std::fs::remove_dir_all(&staging);
    let stdin = std::io::stdin();
    let mut reader = tenure::store::backup::Reader::new(std::io::BufReader::with_capacity(
        1 << 20,
        stdin.lock(),
    ))
    .map_err(|e| fail(format!("cannot restore: {e}"), 2))?;
    let header = reader.header.clone();
    let records = SledStore::restore(&staging, &mut reader)
        .map_err(|e| fail(format!("cannot restore: {e}; nothing was changed"), 2))?;
    let mut kept = None;
    if dir.exists() {
        let aside = dir.with_extension(format!(
            "replaced-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S")
        ));
        std::fs::rename(dir, &aside)
            .map_err(|e| fail(format!("cannot move {} aside: {e}", dir.display()), 1))?;
        kept = Some(aside);
    }
    std::fs::rename(&staging, dir).map_err(|e| {
        fail(
            format!(
                "cannot move the restored database into {}: {e}",
                dir.display()
            ),
            1,
        )
    })?;
    println!(
        "restored {records} records ({} accounts, audit #{} taken {}) into {}",
        header.accounts,
        header.audit_seq,
        header.created,
        dir.display()
    );
    if let Some(aside) = kept {
        println!("the previous database is kept at {}", aside.display());
    }
    println!("next: tenure check && tenure audit verify");
    Ok(())
}

fn init(
    config: &Config,
    admin: &str,
    key: Option<&Path>,
    password: bool,
    email: Option<String>,
    display_name: Option<String>,
) -> Result<(), ExitCode> {
    let key_line = match key {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| fail(format!("cannot read {}: {e}", path.display()), 2))?,
        ),
        None => None,
    };
    let secret = if password {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| fail(format!("cannot read password from stdin: {e}"), 2))?;
        Some(line.trim_end_matches(['\r', '\n']).to_string())
    } else {
        None
    };
    // Check the admin's name and credentials before anything is written.
    tenure::domain::validate::validate_username(admin).map_err(|e| fail(e, 2))?;
    if let Some(line) = &key_line {
        tenure::domain::key::parse_public_key(line).map_err(|e| {
            fail(
                format!(
                    "{}: {e}",
                    key.map(|p| p.display().to_string()).unwrap_or_default()
                ),
                2,
            )
        })?;
    }
    let services = open(config, false)?;
    let actor = Actor::local_operator();
    let input = AccountInput {
        email,
        display_name,
        ..AccountInput::default()
    };
    let code = |e: Error| fail(&e, e.exit_code() as u8);
    if let Some(p) = &secret {
        services.password_acceptable(admin, p).map_err(code)?;
    }
    if services.is_initialized().map_err(code)? {
        return Err(fail(
            format!(
                "the database in {} is already initialised",
                config.server.data_dir.display()
            ),
            5,
        ));
    }
    let (host_key, _) =
        hostkey::ensure_host_key(&config.server.keys_dir).map_err(|e| fail(e, 1))?;
    services.initialize(&actor, admin, input).map_err(code)?;
    if let Some(line) = &key_line {
        services.key_add(&actor, admin, line, None).map_err(code)?;
    }
    if let Some(p) = &secret {
        services
            .password_set(&actor, admin, p, false)
            .map_err(code)?;
    }
    println!(
        "initialised {} with admin {admin}",
        config.server.data_dir.display()
    );
    println!(
        "host key {} ({})",
        config
            .server
            .keys_dir
            .join(hostkey::HOST_KEY_FILE)
            .display(),
        hostkey::fingerprint(&host_key)
    );
    if key_line.is_none() && secret.is_none() {
        println!("note: {admin} has no key or password yet: `tenure key add {admin} < ~/.ssh/id_ed25519.pub`");
    }
    Ok(())
}

/// First run: make the invoking OS user an admin with the public keys in
/// ~/.ssh, or give them a one-time enrolment code when they have none.
fn first_run(services: &Services, port: u16) -> Result<(), ExitCode> {
    let code = |e: Error| fail(&e, e.exit_code() as u8);
    if services.is_initialized().map_err(code)? {
        return Ok(());
    }
    let os_user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default()
        .to_lowercase();
    let admin = if tenure::domain::validate::validate_username(&os_user).is_ok() {
        os_user
    } else {
        "admin".to_string()
    };
    let actor = Actor::local_operator();
    services
        .initialize(&actor, &admin, AccountInput::default())
        .map_err(code)?;
    let mut added = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        let dir = PathBuf::from(home).join(".ssh");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "pub"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        for file in files {
            let Ok(line) = std::fs::read_to_string(&file) else {
                continue;
            };
            match services.key_add(&actor, &admin, &line, None) {
                Ok(key) => added.push(format!("{} ({})", key.fingerprint, file.display())),
                Err(e) => eprintln!("note: skipped {}: {e}", file.display()),
            }
        }
    }
    println!("first run: initialised the database with admin '{admin}'");
    if added.is_empty() {
        let enrol = services
            .enrolment_create(&actor, &admin, 15)
            .map_err(code)?;
        println!(
            "no public key found in ~/.ssh; one-time enrolment code (valid 15 minutes): {enrol}"
        );
        println!("add your key with it (you will be asked for the code):");
        println!("    ssh -p {port} -o PreferredAuthentications=keyboard-interactive {admin}@localhost key add {admin} < ~/.ssh/id_ed25519.pub");
    } else {
        for key in &added {
            println!("admin key: {key}");
        }
        println!("log in with:");
        println!("    ssh -p {port} {admin}@localhost");
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Has mimalloc give freed memory back to the system at once instead of
/// after 10 ms: a console's frame buffers and a login's transient
/// allocations then leave no resident pages behind on the worker threads
/// (per idle console: 0.82 MB of PSS before, 0.47 MB after). An explicit
/// MIMALLOC_PURGE_DELAY in the environment still wins.
fn purge_freed_memory_at_once() {
    /// `mi_option_purge_delay` in mimalloc.h's `mi_option_e`.
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option; mimalloc reads it on each purge.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
}

fn serve(config: &Config, listen: Option<String>) -> Result<(), ExitCode> {
    let addrs = match listen {
        Some(text) => vec![text
            .parse::<std::net::SocketAddr>()
            .map_err(|_| fail(format!("--listen: '{text}' is not an ADDR:PORT"), 2))?],
        None => config.server.listen.clone(),
    };
    purge_freed_memory_at_once();
    let services = open(config, false)?;
    let (host_key, _) =
        hostkey::ensure_host_key(&config.server.keys_dir).map_err(|e| fail(e, 1))?;
    let fingerprint = hostkey::fingerprint(&host_key);
    // Commands and console updates run on the blocking pool: at most 64
    // threads (not tokio's 512, each with its stack and allocator heap
    // under a flood), given back after 2 s idle.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(64)
        .thread_keep_alive(std::time::Duration::from_secs(2))
        .build()
        .map_err(|e| fail(format!("cannot start the runtime: {e}"), 1))?;
    runtime.block_on(async {
        let server = tenure::ssh::Server::start(services.clone(), host_key, &addrs)
            .await
            .map_err(|e| fail(format!("cannot listen on {addrs:?}: {e}"), 1))?;
        let port = server.addrs.first().map_or(2222, |a| a.port());
        let init = services.clone();
        tokio::task::spawn_blocking(move || first_run(&init, port))
            .await
            .map_err(|e| fail(e, 1))??;
        // Logins, exec commands and changes work from the indexes kept on
        // disk at once; the in-memory ones (search, dates, lists) are built
        // meanwhile, and whatever needs them first waits for that build.
        let warm = services.clone();
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            match warm.warm_up() {
                Ok(count) => println!(
                    "indexed {count} accounts in {:.1} s",
                    started.elapsed().as_secs_f64()
                ),
                Err(e) => tracing::error!(error = %e, "building the indexes failed"),
            }
        });
        // The scheduler: a lifecycle pass at start, then every interval.
        let sweeper = services.clone();
        let interval = std::time::Duration::from_secs(config.scheduler.interval_seconds.max(1));
        let scheduler = tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                let s = sweeper.clone();
                let result = tokio::task::spawn_blocking(move || {
                    s.lifecycle_run(&Actor::system("lifecycle"), false)
                })
                .await;
                match result {
                    Ok(Ok(done)) if !done.is_empty() => {
                        tracing::info!(actions = done.len(), "lifecycle pass")
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "lifecycle pass failed"),
                    _ => {}
                }
            }
        });
        // The notification worker: sends the digests due and delivers the
        // outbox, retrying with backoff.
        let courier = services.clone();
        let sender = std::sync::Arc::new(tenure::notify::Sender::new(config));
        let delivery = tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
            loop {
                tick.tick().await;
                let (s, d) = (courier.clone(), sender.clone());
                // Digests on their own schedule (`[notify] digest_hours`), then delivery.
                let round = move || {
                    if let Err(e) = s.digests_round() {
                        tracing::warn!(error = %e, "digest round failed");
                    }
                    s.outbox_deliver(d.as_ref())
                };
                match tokio::task::spawn_blocking(round).await {
                    Ok(Ok((sent, failed))) if sent + failed > 0 => {
                        tracing::info!(sent, failed, "notifications")
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "notification round failed"),
                    _ => {}
                }
            }
        });
        // The connector worker: applies provisioning jobs every second, or
        // as soon as a write queued some.
        let provisioner = services.clone();
        let connectors = tokio::spawn(async move {
            if provisioner.config().connectors.is_empty() {
                return;
            }
            let wake = provisioner.connector_waker();
            let Ok(runner) = provisioner.applier() else {
                return;
            };
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            // The first check comes a minute after the start.
            let mut last_reconcile_check = std::time::Instant::now();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = wake.notified() => {}
                }
                let (s, r) = (provisioner.clone(), runner.clone());
                match tokio::task::spawn_blocking(move || s.connector_round(r.as_ref())).await {
                    Ok(Ok((applied, failed))) if applied + failed > 0 => {
                        tracing::info!(applied, failed, "connector jobs")
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "connector round failed"),
                    _ => {}
                }
                // Scheduled reconciles (`reconcile_hours`), checked once a minute.
                if last_reconcile_check.elapsed() >= std::time::Duration::from_secs(60) {
                    last_reconcile_check = std::time::Instant::now();
                    let (s, r) = (provisioner.clone(), runner.clone());
                    if let Ok(lines) =
                        tokio::task::spawn_blocking(move || s.reconcile_due(r.as_ref())).await
                    {
                        for line in lines {
                            tracing::info!("reconcile {}", tenure::text::escape_text(&line));
                        }
                    }
                }
            }
        });
        // Directory sync: each source at its interval (checked every 30 s;
        // the first run at start). Runs go through the service like a
        // `source sync` by hand, as `system:source:NAME`.
        let syncer = services.clone();
        let sources = tokio::spawn(async move {
            if syncer.config().sources.is_empty() {
                return;
            }
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
            loop {
                tick.tick().await;
                for name in syncer.sources_due() {
                    let s = syncer.clone();
                    let n = name.clone();
                    let result = tokio::task::spawn_blocking(move || {
                        s.source_sync(
                            &Actor::system(&format!("source:{n}")),
                            &n,
                            tenure::service::sources::SyncOptions::default(),
                        )
                    })
                    .await;
                    match result {
                        Ok(Ok(run)) => tracing::info!(
                            source = %name,
                            "directory sync: {}",
                            tenure::text::escape_text(&run.summary())
                        ),
                        Ok(Err(e)) => tracing::warn!(source = %name, error = %e, "directory sync"),
                        Err(_) => {}
                    }
                }
            }
        });
        // The HTTP front door (REST and SCIM), when `[http] listen` is set.
        let http = match &config.http {
            Some(http_config) => Some(
                tenure::http::start(services.clone(), http_config, None)
                    .await
                    .map_err(|e| fail(e, 1))?,
            ),
            None => None,
        };
        for addr in &server.addrs {
            println!("tenure listening on {addr} (host key {fingerprint})");
        }
        if let Some(http) = &http {
            println!(
                "tenure http on {} (REST /api/v1, SCIM /scim/v2)",
                http.url()
            );
        }
        shutdown_signal().await;
        println!("shutting down: closing sessions");
        scheduler.abort();
        delivery.abort();
        connectors.abort();
        sources.abort();
        if let Some(http) = &http {
            http.stop();
        }
        server.shutdown("server shutting down").await;
        Ok::<(), ExitCode>(())
    })?;
    drop(services);
    println!("stopped");
    Ok(())
}

fn main() -> ExitCode {
    // On a target host (sshd's AuthorizedKeysCommand, a cron job, set-up):
    // its own small grammar, no database, no server config.
    // (Lossy: a name that is not UTF-8 must not panic; it fails the username rule.)
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if tenure::hostagent::is_host_command(&args) {
        return tenure::hostagent::main(args);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            return fail(cli::usage_line(&e, "--help"), 2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            // russh warns once per odd request a client sends, with its raw
            // name: only its errors reach the log unless TENURE_LOG says so.
            tracing_subscriber::EnvFilter::try_from_env("TENURE_LOG")
                .unwrap_or_else(|_| "warn,russh=error,tenure::http::access=info".into()),
        )
        .with_ansi(false)
        .with_writer(tenure::bounded::LogWriter)
        .init();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(e, 1),
    };
    match cli.command {
        Top::Init {
            admin,
            key,
            password,
            email,
            display_name,
        } => match init(
            &config,
            &admin,
            key.as_deref(),
            password,
            email,
            display_name,
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(code) => code,
        },
        Top::Restore { force } => match restore(&config, force) {
            Ok(()) => ExitCode::SUCCESS,
            Err(code) => code,
        },
        Top::Serve { listen } => match serve(&config, listen) {
            Ok(()) => ExitCode::SUCCESS,
            Err(code) => code,
        },
        Top::Run(command) => {
            let services = match open(&config, true) {
                Ok(s) => s,
                Err(code) => return code,
            };
            match services.is_initialized() {
                Ok(true) => {}
                Ok(false) => return fail(format!("the database in {} is not initialised: run `tenure init --admin NAME` first", config.server.data_dir.display()), 1),
                Err(e) => return fail(e, 1),
            }
            let actor = Actor::local_operator();
            let stdout = std::io::stdout();
            // Into a pipe or file, output goes out in blocks (a million rows
            // are not a million writes); a terminal sees each line as it comes.
            let mut out: Box<dyn std::io::Write> = if std::io::IsTerminal::is_terminal(&stdout) {
                Box::new(stdout.lock())
            } else {
                Box::new(std::io::BufWriter::with_capacity(64 * 1024, stdout.lock()))
            };
            let display = cli.display.into();
            let outcome = cli::run_with(
                &services,
                &actor,
                command,
                display,
                &mut std::io::stdin(),
                &mut out,
            );
            // What was written goes out before any error line.
            let flushed = std::io::Write::flush(&mut out);
            drop(out);
            match (outcome, flushed) {
                (Ok(()), Ok(())) => ExitCode::SUCCESS,
                (Err(e), _) => fail(&e, e.exit_code() as u8),
                (Ok(()), Err(e)) => fail(format!("cannot write output: {e}"), 1),
            }
        }
    }
}
