//! SSH keys, passwords and per-account IP allowlists.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, PasswordHash, Version};
use chrono::NaiveDate;
use ipnet::IpNet;
use serde_json::json;

use super::admins::keep_an_admin;
use super::authz::Permission;
use super::{Actor, Error, Result, Services};
use crate::domain::key::parse_public_key;
use crate::domain::{Change, SshKey, Status};

pub const MAX_KEYS_PER_ACCOUNT: usize = 32;
pub const MAX_ALLOWLIST_ENTRIES: usize = 64;

/// argon2id with the OWASP parameters: m = 19 MiB, t = 2, p = 1.
fn argon2() -> Result<Argon2<'static>> {
    let params = Params::new(19 * 1024, 2, 1, None)
        .map_err(|e| Error::Failed(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

pub fn hash_password(password: &str) -> Result<String> {
    let hash = argon2()?
        .hash_password(password.as_bytes())
        .map_err(|e| Error::Failed(format!("cannot hash password: {e}")))?;
    Ok(hash.to_string())
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    argon2().is_ok_and(|a| a.verify_password(password.as_bytes(), &parsed).is_ok())
}

/// Accepts `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a single host).
pub fn parse_cidr(text: &str) -> Result<IpNet> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| {
            Error::Invalid(format!(
                "invalid CIDR '{text}': expected e.g. 10.0.0.0/8 or 2001:db8::/32"
            ))
        })
}

fn not_deleted(account: &crate::domain::Account) -> Result<()> {
    if account.status == Status::Deleted {
        return Err(Error::Conflict(format!(
            "{} is deleted: restore it first",
            account.username
        )));
    }
    Ok(())
}

impl Services {
    /// The password rules (`[passwords]`), checked before anything is
    /// written: one line naming the rule broken, exit 2.
    pub fn password_acceptable(&self, name: &str, password: &str) -> Result<()> {
        let config = self.config();
        match config
            .passwords
            .broken_rule(config.policy.password_min_length, name, password)
        {
            Some(rule) => Err(Error::Invalid(rule)),
            None => Ok(()),
        }
    }

    /// Registers an OpenSSH public key line. A key may belong to one account only.
    pub fn key_add(
        &self,
        actor: &Actor,
        name: &str,
        line: &str,
        expires_on: Option<NaiveDate>,
    ) -> Result<SshKey> {
        self.target(actor, Permission::AddKey, name)?;
        let parsed = parse_public_key(line).map_err(Error::Invalid)?;
        if let Some(exp) = expires_on {
            if exp < self.today() {
                return Err(Error::Invalid(format!("expiry {exp} is in the past")));
            }
        }
        self.write(actor, |tx| {
            let old = tx.load(name)?;
            not_deleted(&old)?;
            if let Some(owner) = tx.fingerprint_owner(&parsed.fingerprint)? {
                return Err(Error::Conflict(if owner == name {
                    format!("key {} is already registered to {name}", parsed.fingerprint)
                } else {
                    format!("key {} is already registered to another account ({owner})", parsed.fingerprint)
                }));
            }
            if old.credentials.keys.len() >= MAX_KEYS_PER_ACCOUNT {
                return Err(Error::Conflict(format!("{name} already has {MAX_KEYS_PER_ACCOUNT} keys: remove one first")));
            }
            let key = SshKey {
                fingerprint: parsed.fingerprint.clone(),
                algorithm: parsed.algorithm.clone(),
                public_key: parsed.public_key.clone(),
                comment: parsed.comment.clone(),
                added_at: tx.now,
                added_by: tx.actor.name.clone(),
                last_used: None,
                expires_on,
            };
            let mut new = old.clone();
            new.credentials.keys.push(key.clone());
            new.updated_at = tx.now;
            new.updated_by = tx.actor.name.clone();
            tx.stage(Some(&old), Some(new));
            let change = Change {
                field: "keys".into(),
                old: serde_json::Value::Null,
                new: json!({"fingerprint": key.fingerprint, "algorithm": key.algorithm, "comment": key.comment, "expires_on": key.expires_on}),
            };
            tx.event("key.add", Some(name), vec![change], None);
            Ok(key)
        })
    }

    pub fn key_list(&self, actor: &Actor, name: &str) -> Result<Vec<SshKey>> {
        Ok(self
            .target(actor, Permission::ReadKeys, name)?
            .credentials
            .keys)
    }

    /// Removes a key by fingerprint (with or without the `SHA256:` prefix).
    pub fn key_remove(&self, actor: &Actor, name: &str, fingerprint: &str) -> Result<SshKey> {
        self.target(actor, Permission::RemoveKey, name)?;
        let wanted = fingerprint.trim();
        let wanted = if wanted.starts_with("SHA256:") {
            wanted.to_string()
        } else {
            format!("SHA256:{wanted}")
        };
        self.write(actor, |tx| {
            let old = tx.load(name)?;
            let Some(pos) = old
                .credentials
                .keys
                .iter()
                .position(|k| k.fingerprint == wanted)
            else {
                return Err(Error::NotFound(format!("{name} has no key {wanted}")));
            };
            let mut new = old.clone();
            let removed = new.credentials.keys.remove(pos);
            keep_an_admin(tx, &old, Some(&new), "removing this key")?;
            new.updated_at = tx.now;
            new.updated_by = tx.actor.name.clone();
            tx.stage(Some(&old), Some(new));
            let change = Change {
                field: "keys".into(),
                old: json!({"fingerprint": removed.fingerprint, "comment": removed.comment}),
                new: serde_json::Value::Null,
            };
            tx.event("key.remove", Some(name), vec![change], None);
            Ok(removed)
        })
    }

    /// Sets a password (argon2id). The hash is computed before taking the
    /// writer lock. A `temporary` one must be changed at the next login.
    pub fn password_set(
        &self,
        actor: &Actor,
        name: &str,
        password: &str,
        temporary: bool,
    ) -> Result<()> {
        self.target(actor, Permission::SetPassword, name)?;
        self.password_acceptable(name, password)?;
        let hash = hash_password(password)?;
        self.write(actor, |tx| {
            let old = tx.load(name)?;
            not_deleted(&old)?;
            let had = old.credentials.password_hash.is_some();
            let mut new = old.clone();
            new.credentials.password_hash = Some(hash.clone());
            new.credentials.password_set_at = Some(tx.now);
            new.credentials.password_temporary = temporary;
            new.credentials.password_warned = None;
            new.updated_at = tx.now;
            tx.hand_password(name, password);
            new.updated_by = tx.actor.name.clone();
            tx.stage(Some(&old), Some(new));
            let change = Change {
                field: "password".into(),
                old: json!(if had { "set" } else { "none" }),
                new: json!(if temporary { "temporary" } else { "changed" }),
            };
            tx.event("password.set", Some(name), vec![change], None);
            Ok(())
        })
    }

    pub fn allow_list(&self, actor: &Actor, name: &str) -> Result<Vec<IpNet>> {
        Ok(self
            .target(actor, Permission::ReadAllowlist, name)?
            .allowlist)
    }

    pub fn allow_add(&self, actor: &Actor, name: &str, cidr: &str) -> Result<IpNet> {
        self.target(actor, Permission::ChangeAllowlist, name)?;
        let net = parse_cidr(cidr)?;
        self.write(actor, |tx| {
            let old = tx.load(name)?;
            not_deleted(&old)?;
            if old.allowlist.contains(&net) {
                return Err(Error::Conflict(format!(
                    "{net} is already in {name}'s allowlist"
                )));
            }
            if old.allowlist.len() >= MAX_ALLOWLIST_ENTRIES {
                return Err(Error::Conflict(format!(
                    "{name}'s allowlist is full ({MAX_ALLOWLIST_ENTRIES} entries)"
                )));
            }
            let mut new = old.clone();
            new.allowlist.push(net);
            new.updated_at = tx.now;
            new.updated_by = tx.actor.name.clone();
            tx.put("allow.add", Some(&old), Some(new), None);
            Ok(net)
        })
    }

    pub fn allow_remove(&self, actor: &Actor, name: &str, cidr: &str) -> Result<IpNet> {
        self.target(actor, Permission::ChangeAllowlist, name)?;
        let net = parse_cidr(cidr)?;
        self.write(actor, |tx| {
            let old = tx.load(name)?;
            if !old.allowlist.contains(&net) {
                return Err(Error::NotFound(format!(
                    "{net} is not in {name}'s allowlist"
                )));
            }
            let mut new = old.clone();
            new.allowlist.retain(|n| *n != net);
            new.updated_at = tx.now;
            new.updated_by = tx.actor.name.clone();
            tx.put("allow.remove", Some(&old), Some(new), None);
            Ok(net)
        })
    }
}

/// What `totp enroll` hands back, once: the secret is not shown again.
pub struct TotpEnrolment {
    pub secret: String,
    pub uri: String,
}

impl Services {
    /// Creates (or replaces) an account's TOTP secret.
    pub fn totp_enroll(&self, actor: &Actor, name: &str) -> Result<TotpEnrolment> {
        self.target(actor, Permission::ManageTotp, name)?;
        let secret = crate::auth::totp::new_secret();
        let uri = crate::auth::totp::uri(&secret, name).map_err(Error::Failed)?;
        let sealed = self.sealer()?.seal(&secret).map_err(Error::Failed)?;
        self.write(actor, |tx| {
            let old = tx.load(name)?;
            not_deleted(&old)?;
            let mut new = old.clone();
            new.credentials.totp_secret = Some(sealed.clone());
            new.credentials.totp_enrolled_at = Some(tx.now);
            new.credentials.totp_last_step = None;
            new.updated_at = tx.now;
            new.updated_by = tx.actor.name.clone();
            tx.put("totp.enroll", Some(&old), Some(new), None);
            Ok(())
        })?;
        Ok(TotpEnrolment { secret, uri })
    }

    pub fn totp_reset(&self, actor: &Actor, name: &str) -> Result<()> {
        self.target(actor, Permission::ManageTotp, name)?;
        self.write(actor, |tx| {
            let old = tx.load(name)?;
            if old.credentials.totp_secret.is_none() {
                return Err(Error::NotFound(format!("{name} has no TOTP enrolled")));
            }
            let mut new = old.clone();
            new.credentials.totp_secret = None;
            new.credentials.totp_enrolled_at = None;
            new.credentials.totp_last_step = None;
            keep_an_admin(tx, &old, Some(&new), "removing its TOTP")?;
            new.updated_at = tx.now;
            new.updated_by = tx.actor.name.clone();
            tx.put("totp.reset", Some(&old), Some(new), None);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_round_trips_and_uses_owasp_argon2id() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("wrong horse battery", &hash));
    }

    #[test]
    fn cidrs_and_bare_addresses_parse() {
        assert_eq!(parse_cidr("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("192.0.2.7").unwrap().to_string(), "192.0.2.7/32");
        assert_eq!(parse_cidr("::1").unwrap().to_string(), "::1/128");
        assert_eq!(parse_cidr("nope").unwrap_err().exit_code(), 2);
    }
}
