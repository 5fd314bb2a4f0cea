//! API tokens: the HTTP front door's credential. A token belongs to an
//! account and acts as it, its rights narrowed by the token's scope. Only a
//! SHA-256 of the secret is stored (the secret is 256 random bits, so a
//! plain hash is enough); the secret is shown once, at creation.

use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::authz::Permission;
use super::login::Refused;
use super::{Actor, Error, Result, Services, Source};
use crate::domain::lifecycle::login_allowed;
use crate::domain::Account;
use crate::store::Collection;

/// What a token may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    /// SCIM provisioning: accounts and groups, no credentials, no audit.
    Scim,
    /// Reading only, through the REST API.
    Read,
    /// Everything the owner's role allows, through the REST API.
    Write,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Scim => "scim",
            TokenScope::Read => "read",
            TokenScope::Write => "write",
        }
    }

    /// Whether a token of this scope may exercise `permission` at all (the
    /// owner's role decides the rest). No token manages tokens.
    pub fn permits(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            TokenScope::Read => matches!(
                permission,
                ReadAccount
                    | ListAccounts
                    | ReadKeys
                    | ReadAllowlist
                    | ReadGroups
                    | ReadAudit
                    | Export
                    | PreviewLifecycle
                    | ReadLockouts
                    | ReadConnectors
                    | ReadSources
            ),
            TokenScope::Scim => matches!(
                permission,
                ReadAccount
                    | ListAccounts
                    | CreateAccount
                    | UpdateAccount
                    | DisableAccount
                    | EnableAccount
                    | ExtendAccount
                    | DeleteAccount
                    | RestoreAccount
                    | ReadGroups
                    | ChangeGroups
            ),
            TokenScope::Write => permission != ManageTokens,
        }
    }
}

impl std::str::FromStr for TokenScope {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scim" => Ok(TokenScope::Scim),
            "read" => Ok(TokenScope::Read),
            "write" => Ok(TokenScope::Write),
            other => Err(format!(
                "unknown scope '{other}' (expected one of: scim, read, write)"
            )),
        }
    }
}

impl std::fmt::Display for TokenScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored token. `hash` is hex SHA-256 of the secret; never shown.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApiToken {
    pub name: String,
    pub owner: String,
    pub scope: TokenScope,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    hash: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    #[serde(default)]
    pub expires_on: Option<NaiveDate>,
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub revoked_by: Option<String>,
    /// When a request last authenticated with it (recorded in batches, not
    /// a write per request; see `flush_token_use`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<DateTime<Utc>>,
}

impl ApiToken {
    /// `active`, `expired` or `revoked` on `today`.
    pub fn state(&self, today: NaiveDate) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_on.is_some_and(|d| d < today) {
            "expired"
        } else {
            "active"
        }
    }

    /// When it was last used, to the minute (UTC), or `never`.
    pub fn last_used_text(&self) -> String {
        self.last_used.map_or_else(
            || "never".to_string(),
            |t| t.format("%Y-%m-%d %H:%M").to_string(),
        )
    }

    /// The token without its hash (what lists and JSON show).
    pub fn public(&self) -> ApiToken {
        ApiToken {
            hash: String::new(),
            ..self.clone()
        }
    }
}

/// A token just made: the record and the secret, shown this once.
pub struct CreatedToken {
    pub token: ApiToken,
    pub secret: String,
}

const SECRET_PREFIX: &str = "tnr_";

fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Token names: a lowercase letter, then up to 63 of a-z, 0-9 and '-'
/// (no '_': the secret is `tnr_NAME_RANDOM`).
pub fn validate_token_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.len() <= 64;
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid token name '{name}': a lowercase letter, then up to 63 of a-z, 0-9 and '-'"
        )))
    }
}

/// The token name a presented secret claims, if it has the shape of one.
fn claimed_name(secret: &str) -> Option<&str> {
    let rest = secret.strip_prefix(SECRET_PREFIX)?;
    let (name, random) = rest.rsplit_once('_')?;
    (random.len() == 64 && random.bytes().all(|b| b.is_ascii_hexdigit()) && !name.is_empty())
        .then_some(name)
}

impl Services {
    fn token_record(&self, name: &str) -> Result<Option<ApiToken>> {
        match self.store().record(Collection::Tokens, name)? {
            Some(bytes) => Ok(Some(crate::store::decode(name, &bytes)?)),
            None => Ok(None),
        }
    }

    /// `token create NAME --scope S [--expires DATE] [--for ACCOUNT]`: for
    /// oneself, or (admin) for any account. The secret comes back once.
    pub fn token_create(
        &self,
        actor: &Actor,
        name: &str,
        scope: TokenScope,
        expires_on: Option<NaiveDate>,
        owner: Option<&str>,
    ) -> Result<CreatedToken> {
        let owner = match owner {
            Some(o) => o.to_string(),
            None if actor.is_account => actor.name.clone(),
            None => {
                return Err(Error::Invalid(
                    "--for ACCOUNT is required (the local operator has no account)".into(),
                ))
            }
        };
        self.target(actor, Permission::ManageTokens, &owner)?;
        validate_token_name(name)?;
        if let Some(day) = expires_on {
            if day < self.today() {
                return Err(Error::Invalid(format!("expiry date {day} is in the past")));
            }
        }
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(|e| Error::Failed(format!("no randomness: {e}")))?;
        let secret = format!("{SECRET_PREFIX}{name}_{}", hex::encode(random));
        let token = self.write(actor, |tx| {
            if tx
                .services_store()
                .record(Collection::Tokens, name)?
                .is_some()
            {
                return Err(Error::Conflict(format!(
                    "a token named '{name}' already exists (names are never reused)"
                )));
            }
            let account = tx.load(&owner)?;
            if account.status == crate::domain::Status::Deleted {
                return Err(Error::Conflict(format!("{owner} is deleted")));
            }
            let token = ApiToken {
                name: name.to_string(),
                owner: owner.clone(),
                scope,
                hash: hash_secret(&secret),
                created_at: tx.now,
                created_by: tx.actor.name.clone(),
                expires_on,
                revoked_at: None,
                revoked_by: None,
                last_used: None,
            };
            tx.put_record(Collection::Tokens, name, Some(&token))?;
            let until =
                expires_on.map_or_else(|| "no expiry".to_string(), |d| format!("expires {d}"));
            tx.event(
                "token.create",
                Some(&owner),
                vec![],
                Some(format!("token {name} scope {scope}, {until}")),
            );
            Ok(token)
        })?;
        Ok(CreatedToken {
            token: token.public(),
            secret,
        })
    }

    /// Tokens the actor may see: an admin every token, anyone else their
    /// own. A token itself may not list tokens.
    pub fn token_list(&self, actor: &Actor) -> Result<Vec<ApiToken>> {
        let all = allowed_all(actor);
        let own = actor.is_account && !matches!(actor.source, Source::Http { .. });
        if !all && !own {
            return Err(self.deny(actor, Permission::ManageTokens, None));
        }
        let mut out = Vec::new();
        for (key, bytes) in self.store().records(Collection::Tokens)? {
            let token: ApiToken = crate::store::decode(&key, &bytes)?;
            if all || token.owner == actor.name {
                out.push(self.with_pending_use(token.public()));
            }
        }
        Ok(out)
    }

    /// The tokens of one account (the console's account detail).
    pub fn tokens_of(&self, actor: &Actor, owner: &str) -> Result<Vec<ApiToken>> {
        self.target(actor, Permission::ManageTokens, owner)?;
        let mut out = Vec::new();
        for (key, bytes) in self.store().records(Collection::Tokens)? {
            let token: ApiToken = crate::store::decode(&key, &bytes)?;
            if token.owner == owner {
                out.push(self.with_pending_use(token.public()));
            }
        }
        Ok(out)
    }

    /// `token revoke NAME`: refused from then on; the record stays (listed
    /// as revoked, its name not reused).
    pub fn token_revoke(&self, actor: &Actor, name: &str) -> Result<ApiToken> {
        let Some(token) = self.token_record(name)? else {
            if allowed_all(actor) {
                return Err(Error::NotFound(format!("no token named '{name}'")));
            }
            return Err(self.deny(actor, Permission::ManageTokens, Some(name)));
        };
        self.target(actor, Permission::ManageTokens, &token.owner)?;
        if token.revoked_at.is_some() {
            return Err(Error::Conflict(format!(
                "token '{name}' is already revoked"
            )));
        }
        self.write(actor, |tx| {
            // Read again inside the write: a flush of last-used times may
            // have come between.
            let mut revoked: ApiToken =
                match tx.services_store().record(Collection::Tokens, name)? {
                    Some(bytes) => crate::store::decode(name, &bytes)?,
                    None => token.clone(),
                };
            revoked.revoked_at = Some(tx.now);
            revoked.revoked_by = Some(tx.actor.name.clone());
            tx.put_record(Collection::Tokens, name, Some(&revoked))?;
            tx.event(
                "token.revoke",
                Some(&token.owner),
                vec![],
                Some(format!("token {name}")),
            );
            Ok(revoked.public())
        })
    }

    /// Checks a presented secret from `ip`: the token exists, the hash
    /// matches (constant time), it is neither revoked nor expired, and its
    /// owner may log in now from there. Failures are throttled per address
    /// and recorded like failed SSH logins; the reason is for the trail only.
    pub fn token_authenticate(
        &self,
        secret: &str,
        ip: IpAddr,
    ) -> std::result::Result<(Actor, ApiToken), Refused> {
        let claimed = claimed_name(secret).unwrap_or("");
        let throttle_name = format!("token:{claimed}");
        if let Some(until) = self.login_locked(&throttle_name, ip) {
            // Refused without counting: a locked-out address only waits.
            return Err(Refused {
                reason: format!("locked out until {}", until.format("%H:%M:%S UTC")),
            });
        }
        match self.token_check(secret, claimed, ip) {
            Ok((account, token)) => Ok(self.token_actor(&account, token, ip)),
            Err(reason) => {
                self.login_failed_attempt(&throttle_name, ip);
                let shown = if claimed.is_empty() {
                    "(malformed)"
                } else {
                    claimed
                };
                self.http_login_failed(
                    shown,
                    ip,
                    &format!("api token {}: {reason}", crate::bounded::cut(shown, 64)),
                );
                Err(Refused { reason })
            }
        }
    }

    /// The success path of `token_authenticate` alone: reads and memory
    /// only (no write, so the HTTP front door runs it without a hop to the
    /// blocking pool). `None` for anything else — then `token_authenticate`
    /// decides, and records a refusal.
    pub fn token_authenticate_quick(&self, secret: &str, ip: IpAddr) -> Option<(Actor, ApiToken)> {
        let claimed = claimed_name(secret)?;
        if self.login_locked(&format!("token:{claimed}"), ip).is_some() {
            return None;
        }
        let (account, token) = self.token_check(secret, claimed, ip).ok()?;
        Some(self.token_actor(&account, token, ip))
    }

    fn token_actor(&self, account: &Account, token: ApiToken, ip: IpAddr) -> (Actor, ApiToken) {
        self.note_token_use(&token.name);
        let actor = Actor::account(
            account,
            Source::Http {
                addr: ip.to_string(),
                token: Some(token.name.clone()),
                scope: Some(token.scope),
            },
            None,
        );
        (actor, token)
    }

    /// Notes a request made with token `name` (memory only: the request
    /// never waits for a write).
    fn note_token_use(&self, name: &str) {
        let now = self.now();
        let mut used = match self.inner.token_used.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let entry = used.entry(name.to_string()).or_insert((now, 0));
        entry.0 = entry.0.max(now);
        entry.1 += 1;
    }

    /// A token as listed: its last use noted in memory if not yet written.
    fn with_pending_use(&self, mut token: ApiToken) -> ApiToken {
        let used = match self.inner.token_used.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some((at, _)) = used.get(&token.name) {
            token.last_used = token.last_used.max(Some(*at));
        }
        token
    }

    /// Writes the last-use times noted since the last flush: one
    /// transaction, one `token.used` event with each token's count. Called
    /// by the HTTP front door every few seconds and when it stops.
    pub fn flush_token_use(&self) -> Result<usize> {
        let pending: Vec<(String, (DateTime<Utc>, u64))> = {
            let mut used = match self.inner.token_used.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            used.drain().collect()
        };
        if pending.is_empty() {
            return Ok(0);
        }
        let actor = Actor::system("http");
        let written = self.write(&actor, |tx| {
            let mut lines = Vec::new();
            for (name, (at, count)) in &pending {
                let Some(bytes) = tx.services_store().record(Collection::Tokens, name)? else {
                    continue;
                };
                let mut token: ApiToken = crate::store::decode(name, &bytes)?;
                token.last_used = token.last_used.max(Some(*at));
                tx.put_record(Collection::Tokens, name, Some(&token))?;
                lines.push(format!("{name} ({count})"));
            }
            if !lines.is_empty() {
                lines.sort();
                tx.event(
                    "token.used",
                    None,
                    vec![],
                    Some(format!(
                        "API requests since the last flush: {}",
                        lines.join(", ")
                    )),
                );
            }
            Ok(lines.len())
        });
        if written.is_err() {
            // Not lost: noted again, tried at the next flush.
            let mut used = match self.inner.token_used.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            for (name, (at, count)) in pending {
                let entry = used.entry(name).or_insert((at, 0));
                entry.0 = entry.0.max(at);
                entry.1 += count;
            }
        }
        written
    }

    fn token_check(
        &self,
        secret: &str,
        claimed: &str,
        ip: IpAddr,
    ) -> std::result::Result<(Account, ApiToken), String> {
        if claimed.is_empty() {
            return Err("not a tenure token".into());
        }
        let token = match self.token_record(claimed) {
            Ok(Some(t)) => t,
            Ok(None) => return Err("unknown token".into()),
            Err(e) => return Err(format!("store error: {e}")),
        };
        let presented = hash_secret(secret);
        if !bool::from(presented.as_bytes().ct_eq(token.hash.as_bytes())) {
            return Err("wrong secret".into());
        }
        match token.state(self.today()) {
            "active" => {}
            state => return Err(format!("token {state}")),
        }
        let account = match self.store().account(&token.owner) {
            Ok(Some(a)) => a,
            Ok(None) => return Err("owner no longer exists".into()),
            Err(e) => return Err(format!("store error: {e}")),
        };
        login_allowed(&account, self.today()).map_err(|e| format!("owner {}: {e}", token.owner))?;
        if !account.allowlist.is_empty() && !account.allowlist.iter().any(|n| n.contains(&ip)) {
            return Err(format!(
                "address {ip} is not in {}'s allowlist",
                token.owner
            ));
        }
        Ok((account, token))
    }
}

fn allowed_all(actor: &Actor) -> bool {
    actor.has(crate::domain::Role::Admin)
        && super::authz::allowed(actor, Permission::ManageTokens, None)
}

impl super::Tx<'_> {
    pub(crate) fn services_store(&self) -> &dyn crate::store::Store {
        self.services.store()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;
    use crate::service::accounts::AccountInput;
    use crate::service::testkit;

    fn person(s: &Services, local: &Actor, name: &str, role: Role) {
        s.create(
            local,
            name,
            AccountInput {
                email: Some(format!("{name}@x.io")),
                display_name: Some(name.into()),
                kind: Some(crate::domain::Kind::Employee),
                roles: Some(vec![role]),
                ..Default::default()
            },
        )
        .unwrap();
    }

    #[test]
    fn a_token_acts_as_its_owner_narrowed_by_scope_and_stops_when_revoked() {
        let (s, _clock, local) = testkit::services_with(crate::config::EXAMPLE, None);
        person(&s, &local, "ada", Role::Admin);
        let made = s
            .token_create(&local, "ci", TokenScope::Read, None, Some("ada"))
            .unwrap();
        assert!(made.secret.starts_with("tnr_ci_"));
        let stored = s.token_record("ci").unwrap().unwrap();
        assert_ne!(stored.hash, made.secret, "only a hash is stored");
        let ip: IpAddr = "192.0.2.5".parse().unwrap();
        let (actor, _) = s.token_authenticate(&made.secret, ip).unwrap();
        assert_eq!(actor.name, "ada");
        assert!(super::super::authz::allowed(
            &actor,
            Permission::ListAccounts,
            None
        ));
        assert!(!super::super::authz::allowed(
            &actor,
            Permission::CreateAccount,
            None
        ));
        let wrong = format!("{}0", &made.secret[..made.secret.len() - 1]);
        let wrong = if wrong == made.secret {
            made.secret.replace('a', "b")
        } else {
            wrong
        };
        assert!(s.token_authenticate(&wrong, ip).is_err());
        s.token_revoke(&local, "ci").unwrap();
        let refused = s.token_authenticate(&made.secret, ip).unwrap_err();
        assert!(refused.reason.contains("revoked"), "{}", refused.reason);
        assert!(s.token_list(&local).unwrap()[0].hash.is_empty());
    }

    #[test]
    fn a_user_manages_only_their_own_tokens() {
        let (s, _clock, local) = testkit::services_with(crate::config::EXAMPLE, None);
        person(&s, &local, "uma", Role::User);
        person(&s, &local, "ada", Role::Admin);
        let uma = Actor::account(&s.load("uma").unwrap(), Source::Cli, None);
        s.token_create(&uma, "mine", TokenScope::Read, None, None)
            .unwrap();
        assert!(matches!(
            s.token_create(&uma, "theirs", TokenScope::Read, None, Some("ada")),
            Err(Error::Denied(_))
        ));
        s.token_create(&local, "adas", TokenScope::Write, None, Some("ada"))
            .unwrap();
        let mine: Vec<String> = s
            .token_list(&uma)
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(mine, vec!["mine".to_string()]);
        assert!(matches!(
            s.token_revoke(&uma, "adas"),
            Err(Error::Denied(_))
        ));
    }

    #[test]
    fn last_use_is_noted_in_memory_and_written_in_one_batch() {
        let (s, _clock, local) = testkit::services_with(crate::config::EXAMPLE, None);
        person(&s, &local, "ada", Role::Admin);
        let made = s
            .token_create(&local, "ci", TokenScope::Read, None, Some("ada"))
            .unwrap();
        assert_eq!(s.token_list(&local).unwrap()[0].last_used_text(), "never");
        let ip: IpAddr = "192.0.2.5".parse().unwrap();
        let seq = |s: &Services| s.store().audit_last().unwrap().map(|e| e.seq);
        let before = seq(&s);
        for _ in 0..3 {
            s.token_authenticate(&made.secret, ip).unwrap();
        }
        // Nothing written per request, yet the list shows the use.
        assert_eq!(seq(&s), before);
        assert!(s.token_record("ci").unwrap().unwrap().last_used.is_none());
        assert!(s.token_list(&local).unwrap()[0].last_used.is_some());
        // One flush: the record and one event with the count.
        assert_eq!(s.flush_token_use().unwrap(), 1);
        assert!(s.token_record("ci").unwrap().unwrap().last_used.is_some());
        let last = s.store().audit_last().unwrap().unwrap();
        assert_eq!(last.action, "token.used");
        assert!(last.detail.as_deref().unwrap_or("").contains("ci (3)"));
        assert_eq!(
            s.flush_token_use().unwrap(),
            0,
            "nothing new, nothing written"
        );
        assert_eq!(s.store().audit_last().unwrap().unwrap().seq, last.seq);
    }
}
