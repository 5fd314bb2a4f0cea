//! tenure as an OpenSSH user CA: `cert` issues a certificate for an
//! account's key, valid for `[hosts] cert_validity` (8 h) and never past the
//! end of the account's last day; `host ca` prints the CA key for sshd's
//! `TrustedUserCAKeys`; `revoked-keys` (hosts) is the KRL for `RevokedKeys`.
//! Disabling, deleting or purging an account revokes its certificates in
//! the same transaction (`Tx::revoke_certs`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::{HashAlg, PrivateKey, PublicKey};
use serde::{Deserialize, Serialize};

use super::authz::Permission;
use super::{Actor, Error, Result, Services, Tx};
use crate::domain::host::{cert_window, is_host};
use crate::domain::key::parse_public_key;
use crate::domain::krl::Krl;
use crate::domain::lifecycle::login_allowed;
use crate::domain::{Role, Status};
use crate::store::Collection;

pub const CA_FILE: &str = "user_ca";

/// What tenure remembers of a certificate it issued (until it expires).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CertRecord {
    pub serial: u64,
    pub account: String,
    pub fingerprint: String,
    pub key_id: String,
    pub valid_after: DateTime<Utc>,
    pub valid_before: DateTime<Utc>,
    pub issued_at: DateTime<Utc>,
    pub issued_by: String,
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A certificate just issued: the record and the OpenSSH line.
#[derive(Clone, Debug, Serialize)]
pub struct Issued {
    #[serde(flatten)]
    pub record: CertRecord,
    pub principals: Vec<String>,
    pub certificate: String,
}

fn record_key(serial: u64) -> String {
    format!("{serial:020}")
}

/// Loads `dir/user_ca`, creating it (ed25519, 0600) on first use.
pub fn load_or_create_ca(dir: &Path) -> std::result::Result<PrivateKey, String> {
    let path = dir.join(CA_FILE);
    if path.exists() {
        return crate::hostkey::load_host_key(&path);
    }
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    let key = crate::hostkey::create_ed25519(&path, "tenure user CA")?;
    Ok(key)
}

impl Services {
    fn user_ca(&self) -> Result<&PrivateKey> {
        self.inner
            .user_ca
            .get_or_init(|| load_or_create_ca(&self.config().server.keys_dir))
            .as_ref()
            .map_err(|e| Error::Failed(e.clone()))
    }

    /// `host ca`: the CA's public key line (for `TrustedUserCAKeys`).
    pub fn host_ca(&self, actor: &Actor) -> Result<String> {
        if !actor.has(Role::Host) {
            self.authorize(actor, Permission::Commands, None)?;
        }
        self.user_ca()?
            .public_key()
            .to_openssh()
            .map_err(|e| Error::Failed(format!("cannot encode the CA key: {e}")))
    }

    /// `cert [NAME] [--valid D]`: a certificate for a key of NAME (default:
    /// the actor). `key_line` names the key (an admin certifying another
    /// account's key gives it); without it, the key the actor's session
    /// logged in with. The key must be registered to the account and not
    /// expired; the account must be able to log in now.
    pub fn cert_issue(
        &self,
        actor: &Actor,
        name: Option<&str>,
        key_line: Option<&str>,
        valid: Option<Duration>,
    ) -> Result<Issued> {
        let name = name.unwrap_or(&actor.name).to_string();
        let account = self.target(actor, Permission::IssueCert, &name)?;
        if is_host(&account) {
            return Err(Error::Invalid(format!(
                "{name} is a host: certificates are for people"
            )));
        }
        login_allowed(&account, self.today())
            .map_err(|e| Error::Conflict(format!("{name} may not log in ({e}): no certificate")))?;
        let fingerprint = match key_line.map(str::trim).filter(|l| !l.is_empty()) {
            Some(line) => parse_public_key(line).map_err(Error::Invalid)?.fingerprint,
            None => {
                let session = actor
                    .session
                    .as_deref()
                    .and_then(|s| s.parse::<u64>().ok())
                    .and_then(|id| self.session_info(id));
                match session.and_then(|s| s.fingerprint).filter(|_| name == actor.name) {
                    Some(fp) => fp,
                    None => {
                        return Err(Error::Invalid(format!(
                            "which key? give {name}'s public key line on stdin (or log in with the key to certify)"
                        )))
                    }
                }
            }
        };
        let key = account.key(&fingerprint).cloned().ok_or_else(|| {
            Error::NotFound(format!("key {fingerprint} is not registered to {name}"))
        })?;
        if key.expires_on.is_some_and(|d| d < self.today()) {
            return Err(Error::Conflict(format!("key {fingerprint} has expired")));
        }
        let hosts = &self.config().hosts;
        let wanted = valid.unwrap_or(hosts.cert_validity);
        if wanted > hosts.cert_max_validity {
            return Err(Error::Invalid(format!(
                "--valid is longer than the {} h allowed (hosts.cert_max_validity)",
                hosts.cert_max_validity.num_hours()
            )));
        }
        let now = self.now();
        let (after, before) = cert_window(&account, &key, now, wanted).map_err(Error::Conflict)?;
        let public = PublicKey::from_openssh(&key.public_key)
            .map_err(|e| Error::Failed(format!("stored key does not parse: {e}")))?;
        let mut principals = vec![name.clone()];
        if hosts.group_principals {
            principals.extend(account.groups.iter().cloned());
        }
        let source = account
            .allowlist
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let ca = self.user_ca()?.clone();
        self.write(actor, |tx| {
            let serial = tx.next_cert_serial()?;
            let key_id = format!("tenure:{name}:{serial}");
            let mut nonce = [0u8; 32];
            getrandom::fill(&mut nonce)
                .map_err(|e| Error::Failed(format!("no randomness: {e}")))?;
            let bad = |e: russh::keys::ssh_key::Error| Error::Failed(format!("certificate: {e}"));
            let mut builder = Builder::new(
                nonce.to_vec(),
                public.key_data().clone(),
                after.timestamp().max(0) as u64,
                before.timestamp().max(0) as u64,
            )
            .map_err(bad)?;
            builder
                .serial(serial)
                .map_err(bad)?
                .cert_type(CertType::User)
                .map_err(bad)?
                .key_id(key_id.clone())
                .map_err(bad)?
                .comment(format!("{name}@tenure"))
                .map_err(bad)?;
            for p in &principals {
                builder.valid_principal(p.clone()).map_err(bad)?;
            }
            if !source.is_empty() {
                builder
                    .critical_option("source-address", source.clone())
                    .map_err(bad)?;
            }
            for ext in [
                "permit-X11-forwarding",
                "permit-agent-forwarding",
                "permit-port-forwarding",
                "permit-pty",
                "permit-user-rc",
            ] {
                builder.extension(ext, "").map_err(bad)?;
            }
            let cert = builder.sign(&ca).map_err(bad)?;
            let line = cert.to_openssh().map_err(bad)?;
            let record = CertRecord {
                serial,
                account: name.clone(),
                fingerprint: fingerprint.clone(),
                key_id,
                valid_after: after,
                valid_before: before,
                issued_at: tx.now,
                issued_by: tx.actor.name.clone(),
                revoked_at: None,
            };
            tx.put_record(Collection::Certs, &record_key(serial), Some(&record))?;
            tx.event(
                "cert.issue",
                Some(&name),
                vec![],
                Some(format!(
                    "serial {serial} key {fingerprint} valid {} to {} principals {}{}",
                    after.format("%Y-%m-%d %H:%M:%S UTC"),
                    before.format("%Y-%m-%d %H:%M:%S UTC"),
                    principals.join(","),
                    if source.is_empty() {
                        String::new()
                    } else {
                        format!(" source-address {source}")
                    }
                )),
            );
            Ok(Issued {
                record,
                principals: principals.clone(),
                certificate: line,
            })
        })
    }

    /// The console's certificate: for the key the actor's session logged
    /// in with (their own account), or else the account's only unexpired key.
    pub fn console_cert(&self, actor: &Actor, name: &str) -> Result<Issued> {
        if name == actor.name && actor.session.is_some() {
            if let Ok(issued) = self.cert_issue(actor, Some(name), None, None) {
                return Ok(issued);
            }
        }
        let account = self.target(actor, Permission::IssueCert, name)?;
        let today = self.today();
        let keys: Vec<_> = account
            .credentials
            .keys
            .iter()
            .filter(|k| k.expires_on.is_none_or(|d| d >= today))
            .collect();
        match keys.as_slice() {
            [only] => self.cert_issue(actor, Some(name), Some(&only.public_key), None),
            [] => Err(Error::NotFound(format!("{name} has no usable key"))),
            _ => Err(Error::Invalid(format!(
                "{name} has several keys: use `cert {name} < KEY.pub` to say which"
            ))),
        }
    }

    /// Certificates issued and not yet expired.
    pub fn certs_live(&self) -> Result<Vec<CertRecord>> {
        let now = self.now();
        Ok(self
            .store()
            .records(Collection::Certs)?
            .into_iter()
            .filter_map(|(_, bytes)| serde_json::from_slice::<CertRecord>(&bytes).ok())
            .filter(|c| c.valid_before > now)
            .collect())
    }

    /// `revoked-keys` (hosts only): the KRL of every revoked certificate
    /// that has not expired yet, in OpenSSH's binary format.
    pub fn revoked_keys(&self, actor: &Actor) -> Result<Vec<u8>> {
        self.authorize(actor, Permission::HostQuery, None)?;
        let revoked: Vec<CertRecord> = self
            .certs_live()?
            .into_iter()
            .filter(|c| c.revoked_at.is_some())
            .collect();
        let ca_key = self
            .user_ca()?
            .public_key()
            .to_bytes()
            .map_err(|e| Error::Failed(format!("cannot encode the CA key: {e}")))?;
        let newest = revoked
            .iter()
            .filter_map(|c| c.revoked_at)
            .max()
            .map_or(0, |t| t.timestamp().max(0) as u64);
        Ok(Krl {
            version: newest,
            generated: self.now().timestamp().max(0) as u64,
            comment: "tenure".into(),
            ca_key,
            serials: revoked.iter().map(|c| c.serial).collect(),
            key_ids: revoked.iter().map(|c| c.key_id.clone()).collect(),
        }
        .encode())
    }

    /// The SHA256 fingerprint of the user CA (for messages).
    pub fn user_ca_fingerprint(&self) -> Result<String> {
        Ok(self
            .user_ca()?
            .public_key()
            .fingerprint(HashAlg::Sha256)
            .to_string())
    }
}

impl Tx<'_> {
    /// The next certificate serial (1, 2, …), kept in meta.
    fn next_cert_serial(&mut self) -> Result<u64> {
        let last = self
            .services
            .store()
            .meta("cert_serial")?
            .and_then(|b| String::from_utf8_lossy(&b).parse::<u64>().ok())
            .unwrap_or(0);
        let next = last + 1;
        self.set_meta("cert_serial", &next.to_string());
        // Expired certificates are forgotten now and then (the audit trail keeps them).
        if next % 256 == 0 {
            let now = self.now;
            for (key, bytes) in self.services.store().records(Collection::Certs)? {
                let expired = serde_json::from_slice::<CertRecord>(&bytes)
                    .map(|c| c.valid_before <= now)
                    .unwrap_or(true);
                if expired {
                    self.put_record::<CertRecord>(Collection::Certs, &key, None)?;
                }
            }
        }
        Ok(next)
    }

    /// Revokes the live certificates of every account this transaction
    /// disables, deletes or removes (one `cert.revoke` event per account);
    /// the KRL hosts fetch lists them from then on.
    pub(crate) fn revoke_certs(&mut self) -> Result<usize> {
        let cut: Vec<String> = self
            .accounts
            .iter()
            .filter(|(_, (old, new))| {
                let was_usable = old
                    .as_ref()
                    .is_some_and(|o| matches!(o.status, Status::Active | Status::Staged));
                let usable = new
                    .as_ref()
                    .is_some_and(|n| matches!(n.status, Status::Active | Status::Staged));
                was_usable && !usable
            })
            .map(|(name, _)| name.clone())
            .collect();
        if cut.is_empty() {
            return Ok(0);
        }
        let now = self.now;
        let mut revoked = 0;
        let mut by_account: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
        for (key, bytes) in self.services.store().records(Collection::Certs)? {
            let Ok(mut c) = serde_json::from_slice::<CertRecord>(&bytes) else {
                continue;
            };
            if c.revoked_at.is_none() && c.valid_before > now && cut.contains(&c.account) {
                c.revoked_at = Some(now);
                by_account
                    .entry(c.account.clone())
                    .or_default()
                    .push(c.serial);
                self.put_record(Collection::Certs, &key, Some(&c))?;
                revoked += 1;
            }
        }
        for (account, serials) in by_account {
            let list = serials
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            self.event(
                "cert.revoke",
                Some(&account),
                vec![],
                Some(format!(
                    "revoked certificate serial(s) {list} (in the KRL until they expire)"
                )),
            );
        }
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DisableReason;
    use crate::service::accounts::AccountInput;
    use crate::service::testkit;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bob@laptop";

    #[test]
    fn a_certificate_is_audited_bounded_by_the_end_date_and_revoked_on_disable() {
        let (s, _clock, local) = testkit::services_with(crate::config::EXAMPLE, None);
        let end = s.today();
        s.create(
            &local,
            "bob",
            AccountInput {
                email: Some("bob@x.io".into()),
                display_name: Some("Bob".into()),
                kind: Some(crate::domain::Kind::Contractor),
                end_date: Some(end),
                sponsor: Some("root".into()),
                ..Default::default()
            },
        )
        .unwrap();
        s.allow_add(&local, "bob", "10.1.0.0/16").unwrap();
        s.key_add(&local, "bob", KEY, None).unwrap();
        let issued = s.cert_issue(&local, Some("bob"), Some(KEY), None).unwrap();
        let cert = russh::keys::Certificate::from_openssh(&issued.certificate).unwrap();
        assert_eq!(cert.serial(), 1);
        assert_eq!(cert.valid_principals(), ["bob".to_string()]);
        assert_eq!(
            cert.critical_options()
                .get("source-address")
                .map(String::as_str),
            Some("10.1.0.0/16")
        );
        // Never past the end of the account's last day.
        let midnight = crate::domain::host::end_of_day(end).timestamp() as u64;
        assert!(cert.valid_before() <= midnight);
        let ca = s.host_ca(&local).unwrap();
        let ca = PublicKey::from_openssh(&ca).unwrap();
        assert_eq!(cert.signature_key(), ca.key_data());
        // Asking for more than allowed is refused.
        let week = Some(Duration::days(30));
        assert!(matches!(
            s.cert_issue(&local, Some("bob"), Some(KEY), week),
            Err(Error::Invalid(_))
        ));
        let trail = s
            .audit_tail(&local, &Default::default())
            .unwrap()
            .into_iter()
            .find(|e| e.action == "cert.issue")
            .unwrap();
        let detail = trail.detail.unwrap();
        assert!(
            detail.contains("serial 1") && detail.contains("SHA256:"),
            "{detail}"
        );

        s.disable(&local, "bob", DisableReason::Manual, Some("gone".into()))
            .unwrap();
        let live = s.certs_live().unwrap();
        assert!(live.iter().all(|c| c.revoked_at.is_some()), "{live:?}");
        assert!(s
            .audit_tail(&local, &Default::default())
            .unwrap()
            .iter()
            .any(|e| e.action == "cert.revoke"));
        // A disabled account gets no new certificate.
        assert!(s.cert_issue(&local, Some("bob"), Some(KEY), None).is_err());
    }
}
