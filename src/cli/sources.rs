//! `source list|sync|status`: directory sources (`[[sources]]`).

use std::io::Write;

use clap::Subcommand;

use super::output::{add_row, print_json, say, table};
use crate::service::sources::{SourceRun, SyncOptions};
use crate::service::{Actor, Error, Result, Services};

#[derive(Debug, Subcommand)]
pub enum SourceCommand {
    /// Every directory source: URL, base, interval, the last run's counts
    List {
        #[arg(long)]
        json: bool,
    },
    /// Read the directory now and apply it: create, update, disable (source_removed), enable
    Sync {
        name: String,
        /// Read and print every create/update/disable it would make; change nothing
        #[arg(long = "dry-run")]
        dry_run: bool,
        /// Apply even when more than max_deprovision_percent would be disabled
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// One source: its settings and the last run (time, counts, errors)
    Status {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

fn io(e: std::io::Error) -> Error {
    Error::Failed(format!("cannot write output: {e}"))
}

pub fn run(
    services: &Services,
    actor: &Actor,
    command: SourceCommand,
    out: &mut dyn Write,
) -> Result<()> {
    match command {
        SourceCommand::List { json } => {
            let list = services.source_list(actor)?;
            if json {
                return print_json(out, &list);
            }
            if list.is_empty() {
                return say(out, "no sources configured (see [[sources]] in the config)");
            }
            let mut t = table(&[
                "NAME", "URL", "BASE", "EVERY", "LAST RUN", "OUTCOME", "COUNTS",
            ]);
            for s in &list {
                let (at, outcome, counts) = match &s.last_run {
                    Some(r) => (
                        r.at.format("%Y-%m-%d %H:%M").to_string(),
                        r.outcome.as_str().to_string(),
                        r.summary(),
                    ),
                    None => ("never".into(), "-".into(), "-".into()),
                };
                add_row(
                    &mut t,
                    vec![
                        s.name.clone(),
                        s.url.clone(),
                        s.base_dn.clone(),
                        s.interval_minutes
                            .map_or_else(|| "by hand".into(), |m| format!("{m} min")),
                        at,
                        outcome,
                        counts,
                    ],
                );
            }
            writeln!(out, "{t}").map_err(io)
        }
        SourceCommand::Sync {
            name,
            dry_run,
            force,
            json,
        } => {
            let run = services.source_sync(actor, &name, SyncOptions { dry_run, force })?;
            if json {
                return print_json(out, &run);
            }
            print_run(out, &run, true)
        }
        SourceCommand::Status { name, json } => {
            let status = services.source_status(actor, &name)?;
            if json {
                return print_json(out, &status);
            }
            let s = &status.summary;
            say(out, &format!("{:<13} {}", "source", s.name))?;
            say(out, &format!("{:<13} {}", "url", s.url))?;
            say(
                out,
                &format!(
                    "{:<13} {} (scope {}, filter {}, pages of {})",
                    "base", s.base_dn, status.scope, status.filter, status.page_size
                ),
            )?;
            say(
                out,
                &format!(
                    "{:<13} {}; accounts of kind {}; at most {}% disabled per run",
                    "schedule",
                    s.interval_minutes
                        .map_or_else(|| "by hand".into(), |m| format!("every {m} min")),
                    s.kind,
                    s.max_deprovision_percent
                ),
            )?;
            match &s.last_run {
                None => say(out, &format!("{:<13} never", "last run")),
                Some(r) => {
                    print_run(out, r, false)?;
                    if let Some(c) = &status.last_change {
                        if c != r {
                            say(
                                out,
                                &format!(
                                    "{:<13} {} {}: {}",
                                    "last change",
                                    c.at.format("%Y-%m-%d %H:%M:%S UTC"),
                                    c.outcome.as_str(),
                                    c.error.clone().unwrap_or_else(|| c.summary())
                                ),
                            )?;
                        }
                    }
                    Ok(())
                }
            }
        }
    }
}

/// A run: what it did (every action when `all`), its counts and problems.
fn print_run(out: &mut dyn Write, r: &SourceRun, all: bool) -> Result<()> {
    if all {
        for a in &r.actions {
            say(
                out,
                &format!(
                    "{}{a}",
                    if r.outcome.as_str() == "dry_run" {
                        "would "
                    } else {
                        ""
                    }
                ),
            )?;
        }
    }
    say(
        out,
        &format!(
            "{:<13} {} by {} ({:.1} s): {}{}",
            "last run",
            r.at.format("%Y-%m-%d %H:%M:%S UTC"),
            r.by,
            r.seconds,
            r.outcome.as_str(),
            if r.forced { ", forced" } else { "" }
        ),
    )?;
    say(out, &format!("{:<13} {}", "counts", r.summary()))?;
    if let Some(e) = &r.error {
        say(out, &format!("{:<13} {e}", "error"))?;
    }
    for p in &r.problems {
        say(out, &format!("{:<13} {p}", "problem"))?;
    }
    Ok(())
}
