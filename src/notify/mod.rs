//! Delivery of queued notices: email over SMTP (lettre; STARTTLS, or plain
//! for a relay on this host) and webhooks (JSON POST signed with
//! HMAC-SHA256 in `X-Tenure-Signature: sha256=HEX`). The service decides what
//! to send and when; this only talks to the outside.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hmac::{Hmac, Mac};
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Message, SmtpTransport, Transport};
use sha2::Sha256;

use crate::config::{Config, SmtpConfig};
use crate::service::notify::{Deliverer, Delivery};

pub const SIGNATURE_HEADER: &str = "X-Tenure-Signature";

pub struct Sender {
    smtp: Option<SmtpConfig>,
    base_dir: PathBuf,
    /// Built once: its pool keeps SMTP connections open between messages.
    transport: std::sync::OnceLock<Result<SmtpTransport, String>>,
}

impl Sender {
    pub fn new(config: &Config) -> Sender {
        Sender {
            smtp: config.notify.smtp.clone(),
            base_dir: config.base_dir.clone(),
            transport: std::sync::OnceLock::new(),
        }
    }

    fn read_secret(&self, file: &str) -> Result<String, String> {
        let path = resolve(&self.base_dir, file);
        std::fs::read_to_string(&path)
            .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
    }

    fn email(&self, to: &[String], subject: &str, body: &str) -> Result<(), String> {
        let smtp = self
            .smtp
            .as_ref()
            .ok_or("email is not configured ([notify.smtp])")?;
        let from: Mailbox = smtp
            .from
            .parse()
            .map_err(|e| format!("notify.smtp.from: {e}"))?;
        let mut builder = Message::builder()
            .from(from)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        for rcpt in to {
            builder = builder.to(rcpt.parse().map_err(|e| format!("recipient {rcpt}: {e}"))?);
        }
        let message = builder
            .body(body.to_string())
            .map_err(|e| format!("cannot build the message: {e}"))?;
        let transport = self
            .transport
            .get_or_init(|| self.build_transport(smtp))
            .as_ref()
            .map_err(Clone::clone)?;
        transport
            .send(&message)
            .map(|_| ())
            .map_err(|e| format!("smtp {}:{}: {e}", smtp.host, smtp.port))
    }

    fn build_transport(&self, smtp: &SmtpConfig) -> Result<SmtpTransport, String> {
        let mut builder = match smtp.security.as_str() {
            "plain" => SmtpTransport::builder_dangerous(&smtp.host),
            _ => SmtpTransport::starttls_relay(&smtp.host)
                .map_err(|e| format!("smtp {}: {e}", smtp.host))?,
        }
        .port(smtp.port)
        .timeout(Some(Duration::from_secs(20)));
        if let Some(user) = &smtp.username {
            let password = match &smtp.password_file {
                Some(f) => self.read_secret(f)?,
                None => String::new(),
            };
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(builder.build())
    }

    fn webhook(
        &self,
        url: &str,
        secret_file: &str,
        payload: &serde_json::Value,
    ) -> Result<(), String> {
        let body = serde_json::to_vec(payload).map_err(|e| e.to_string())?;
        let secret = self.read_secret(secret_file)?;
        let signature = sign(secret.as_bytes(), &body);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(20)))
            .http_status_as_error(true)
            .build()
            .into();
        agent
            .post(url)
            .header("Content-Type", "application/json")
            .header(SIGNATURE_HEADER, &format!("sha256={signature}"))
            .send(&body[..])
            .map(|_| ())
            .map_err(|e| format!("webhook {url}: {e}"))
    }
}

/// Hex HMAC-SHA256 of the body: how a receiver checks the notice is ours.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn resolve(base: &Path, file: &str) -> PathBuf {
    let p = PathBuf::from(file);
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

impl Deliverer for Sender {
    fn deliver(&self, delivery: &Delivery) -> Result<(), String> {
        match delivery {
            Delivery::Email {
                to, subject, body, ..
            } => self.email(to, subject, body),
            Delivery::Webhook {
                url,
                secret_file,
                payload,
            } => self.webhook(url, secret_file, payload),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
