//! `[http]`: the HTTP front door (REST and SCIM). Absent, or without
//! `listen`, there is no listener.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::domain::Kind;

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// PEM certificate chain and private key: HTTPS. Without them, plain
    /// HTTP, accepted only on a loopback address (behind a reverse proxy).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// A request taking longer is answered 503 (and headers must arrive within it).
    pub request_timeout_seconds: u64,
    /// Requests served at once; more wait (up to the timeout) for a slot.
    pub max_concurrent_requests: usize,
    /// Open connections at once; more are closed at accept.
    pub max_connections: usize,
    /// The template SCIM-created accounts get (kind, groups, duration → end date).
    pub scim_template: Option<String>,
    /// The kind SCIM-created accounts get (default: the template's).
    pub scim_kind: Option<Kind>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttp {
    #[serde(default)]
    listen: Option<String>,
    #[serde(default)]
    tls_cert: Option<String>,
    #[serde(default)]
    tls_key: Option<String>,
    #[serde(default)]
    max_body_bytes: Option<usize>,
    #[serde(default)]
    request_timeout_seconds: Option<u64>,
    #[serde(default)]
    max_concurrent_requests: Option<usize>,
    #[serde(default)]
    max_connections: Option<usize>,
    #[serde(default)]
    scim_template: Option<String>,
    #[serde(default)]
    scim_kind: Option<String>,
}

impl RawHttp {
    /// The checked config, `None` when no listener is configured.
    pub(crate) fn resolve(
        self,
        resolve_path: &dyn Fn(&str) -> PathBuf,
        templates: &std::collections::BTreeMap<String, crate::domain::Template>,
    ) -> Result<Option<HttpConfig>, String> {
        let Some(listen) = self.listen.filter(|l| !l.trim().is_empty()) else {
            return Ok(None);
        };
        let listen: SocketAddr = listen.trim().parse().map_err(|_| {
            format!("http.listen: '{listen}' is not an ADDR:PORT (e.g. 127.0.0.1:8080)")
        })?;
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(c), Some(k)) => Some((resolve_path(&c), resolve_path(&k))),
            (None, None) => None,
            _ => return Err("http: give both tls_cert and tls_key, or neither".into()),
        };
        if tls.is_none() && !listen.ip().is_loopback() {
            return Err(format!(
                "http.listen: {listen} is not a loopback address: plain HTTP is only served on loopback (behind a TLS proxy); set tls_cert and tls_key to serve HTTPS there"
            ));
        }
        let scim_template = match self.scim_template {
            Some(t) if t.is_empty() => None,
            Some(t) => {
                if !templates.contains_key(&t) {
                    return Err(format!("http.scim_template: no template named '{t}'"));
                }
                Some(t)
            }
            None => templates
                .contains_key("contractor")
                .then(|| "contractor".to_string()),
        };
        let scim_kind = self
            .scim_kind
            .map(|k| {
                k.parse::<Kind>()
                    .map_err(|e| format!("http.scim_kind: {e}"))
            })
            .transpose()?;
        if scim_template.is_none() && scim_kind.is_none() {
            return Err("http: set scim_template (or scim_kind): SCIM clients send no kind".into());
        }
        Ok(Some(HttpConfig {
            listen,
            tls,
            max_body_bytes: self.max_body_bytes.unwrap_or(1 << 20).max(1024),
            request_timeout_seconds: self.request_timeout_seconds.unwrap_or(30).max(1),
            max_concurrent_requests: self.max_concurrent_requests.unwrap_or(64).max(1),
            max_connections: self.max_connections.unwrap_or(512).max(1),
            scim_template,
            scim_kind,
        }))
    }
}
