//! The tenure binary: `init`, `serve` (see the SSH issue) and every exec
//! command offline against the local database.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

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
    Ok(services)
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
    let services = open(config, false)?;
    let actor = Actor::local_operator();
    let input = AccountInput {
        email,
        display_name,
        ..AccountInput::default()
    };
    let code = |e: Error| fail(&e, e.exit_code() as u8);
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
    // Check the admin's credentials before anything is written.
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
    if let Some(p) = &secret {
        if p.chars().count() < config.policy.password_min_length {
            return Err(fail(
                format!(
                    "password too short: at least {} characters",
                    config.policy.password_min_length
                ),
                2,
            ));
        }
    }
    services.initialize(&actor, admin, input).map_err(code)?;
    if let Some(line) = &key_line {
        services.key_add(&actor, admin, line, None).map_err(code)?;
    }
    if let Some(p) = &secret {
        services.password_set(&actor, admin, p).map_err(code)?;
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

fn main() -> ExitCode {
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
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            return fail(format!("{first} (try --help)"), 2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TENURE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
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
            let mut out = stdout.lock();
            match cli::run(&services, &actor, command, &mut std::io::stdin(), &mut out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    drop(out);
                    fail(&e, e.exit_code() as u8)
                }
            }
        }
    }
}
