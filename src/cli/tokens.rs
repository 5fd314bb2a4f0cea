//! `token create|list|revoke`: the API tokens of the HTTP front door.

use std::io::Write;

use clap::Subcommand;
use serde_json::json;

use super::output::{add_row, print_json, say, table};
use crate::service::tokens::{ApiToken, TokenScope};
use crate::service::{Actor, Error, Result, Services};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token (the secret is printed once): it acts as ACCOUNT (default: you) narrowed to its scope
    Create {
        name: String,
        /// scim (provisioning), read or write (the REST API)
        #[arg(long)]
        scope: TokenScope,
        /// Last day the token works: YYYY-MM-DD or +N(d|w|m|y)
        #[arg(long)]
        expires: Option<String>,
        /// The account the token acts as (admins: any account)
        #[arg(long = "for")]
        owner: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Tokens: every one for an admin, your own otherwise (never the secrets)
    List {
        #[arg(long)]
        json: bool,
    },
    /// Refuse a token from now on
    Revoke { name: String },
}

fn io(e: std::io::Error) -> Error {
    Error::Failed(format!("cannot write output: {e}"))
}

pub fn run(
    services: &Services,
    actor: &Actor,
    command: TokenCommand,
    out: &mut dyn Write,
) -> Result<()> {
    let today = services.today();
    match command {
        TokenCommand::Create {
            name,
            scope,
            expires,
            owner,
            json,
        } => {
            let expires = expires
                .as_deref()
                .map(|t| crate::domain::dates::parse_date(t, today).map_err(Error::Invalid))
                .transpose()?;
            let made = services.token_create(actor, &name, scope, expires, owner.as_deref())?;
            if json {
                let mut view = view(&made.token, today);
                view["token"] = json!(made.secret);
                return print_json(out, &view);
            }
            writeln!(
                out,
                "token {} for {} (scope {}{}) — shown once, keep it now:\n{}",
                made.token.name,
                made.token.owner,
                made.token.scope,
                made.token
                    .expires_on
                    .map(|d| format!(", expires {d}"))
                    .unwrap_or_default(),
                made.secret
            )
            .map_err(io)
        }
        TokenCommand::List { json } => {
            let tokens = services.token_list(actor)?;
            print_tokens(out, &tokens, today, json)
        }
        TokenCommand::Revoke { name } => {
            let token = services.token_revoke(actor, &name)?;
            say(
                out,
                &format!("token {} of {} revoked", token.name, token.owner),
            )
        }
    }
}

pub fn view(t: &ApiToken, today: chrono::NaiveDate) -> serde_json::Value {
    json!({
        "name": t.name,
        "owner": t.owner,
        "scope": t.scope,
        "state": t.state(today),
        "created_at": t.created_at,
        "created_by": t.created_by,
        "expires_on": t.expires_on,
        "revoked_at": t.revoked_at,
        "revoked_by": t.revoked_by,
        "last_used": t.last_used,
    })
}

pub fn print_tokens(
    out: &mut dyn Write,
    tokens: &[ApiToken],
    today: chrono::NaiveDate,
    json: bool,
) -> Result<()> {
    if json {
        return print_json(
            out,
            &tokens.iter().map(|t| view(t, today)).collect::<Vec<_>>(),
        );
    }
    if tokens.is_empty() {
        return say(out, "no API tokens");
    }
    let mut t = table(&[
        "NAME",
        "OWNER",
        "SCOPE",
        "STATE",
        "EXPIRES",
        "LAST USED",
        "CREATED BY",
    ]);
    for token in tokens {
        add_row(
            &mut t,
            vec![
                token.name.clone(),
                token.owner.clone(),
                token.scope.to_string(),
                token.state(today).to_string(),
                token
                    .expires_on
                    .map_or_else(|| "never".to_string(), |d| d.to_string()),
                token.last_used_text(),
                token.created_by.clone(),
            ],
        );
    }
    writeln!(out, "{t}").map_err(io)
}
