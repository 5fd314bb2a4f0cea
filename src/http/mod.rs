//! The HTTP front door (off unless `[http] listen` is set): the REST API
//! under `/api/v1` and a SCIM 2.0 server under `/scim/v2`. Like the SSH
//! doors it only calls the service layer, as the account an API token
//! belongs to (narrowed by the token's scope); every change is the audit
//! event the console or an exec command would write, its source
//! `http:ADDR token:NAME`.
//!
//! Per connection: the global allowlist at accept, a cap on open
//! connections, TLS (rustls) when configured, a header read timeout. Per
//! request: a cap on requests in flight, a timeout, a body size limit, one
//! access log line (method, path, status, time, token name — never the
//! Authorization header or a secret).

pub mod config;
pub mod rest;
pub mod scim;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::service::{Actor, Error, Services};
use config::HttpConfig;

/// The client's address, put on every request of its connection.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// Where the handler notes the token name for the access log line.
#[derive(Clone, Default)]
pub(crate) struct TokenNote(Arc<Mutex<Option<String>>>);

#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    slots: Arc<Semaphore>,
    timeout: Duration,
    pub(crate) tls: bool,
    pub(crate) max_body: usize,
}

/// A refusal or failure, rendered by each API in its own error format.
#[derive(Debug)]
pub struct Failure {
    pub status: StatusCode,
    pub message: String,
    /// The exec exit-code class (1 failure, 2 usage, 3 not found, 4 denied, 5 conflict).
    pub code: i32,
    /// SCIM's `scimType` (RFC 7644 §3.12), where one applies.
    pub scim_type: Option<&'static str>,
}

impl Failure {
    pub fn new(status: StatusCode, code: i32, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
            code,
            scim_type: None,
        }
    }

    pub fn bad(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::BAD_REQUEST, 2, message)
    }

    pub fn scim(mut self, scim_type: &'static str) -> Failure {
        self.scim_type = Some(scim_type);
        self
    }

    pub fn unauthorized(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::UNAUTHORIZED, 4, message)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let status = match &e {
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Denied(_) => StatusCode::FORBIDDEN,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Store(_) | Error::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let scim_type = match &e {
            Error::Invalid(_) => Some("invalidValue"),
            Error::Conflict(m) if m.contains("already") => Some("uniqueness"),
            _ => None,
        };
        Failure {
            status,
            code: e.exit_code(),
            message: e.to_string(),
            scim_type,
        }
    }
}

/// Runs a service call on the blocking pool (the store does disk I/O).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            1,
            format!("internal error: {e}"),
        ))
    })
}

/// The actor of a request, from the peer address and the bearer token its
/// parts carry (what both the REST and the SCIM extractors start with).
pub(crate) async fn request_actor(
    parts: &axum::http::request::Parts,
    state: &AppState,
) -> Result<Actor, Failure> {
    let peer = parts
        .extensions
        .get::<Peer>()
        .copied()
        .ok_or_else(|| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, 1, "no peer"))?;
    let note = parts.extensions.get::<TokenNote>().cloned();
    authenticate(state, peer, &parts.headers, note.as_ref()).await
}

/// The actor behind `Authorization: Bearer SECRET`, or 401. A presented
/// token that fails is throttled and audited (the service does both).
pub(crate) async fn authenticate(
    state: &AppState,
    peer: Peer,
    headers: &HeaderMap,
    note: Option<&TokenNote>,
) -> Result<Actor, Failure> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(Failure::unauthorized(
            "authentication required: Authorization: Bearer TOKEN",
        ));
    };
    let secret = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim().to_string())
        })
        .ok_or_else(|| Failure::unauthorized("expected Authorization: Bearer TOKEN"))?;
    let services = state.services.clone();
    let ip = peer.0.ip();
    // A good token is a few reads and a hash: answered here. Anything else
    // goes to the blocking pool, where the refusal is recorded.
    let outcome = match services.token_authenticate_quick(&secret, ip) {
        Some(ok) => Ok(ok),
        None => tokio::task::spawn_blocking(move || services.token_authenticate(&secret, ip))
            .await
            .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, 1, e.to_string()))?,
    };
    match outcome {
        Ok((actor, token)) => {
            if let Some(note) = note {
                if let Ok(mut slot) = note.0.lock() {
                    *slot = Some(token.name);
                }
            }
            Ok(actor)
        }
        // The reason stays in the audit trail; the client learns only "no".
        Err(_) => Err(Failure::unauthorized("invalid, expired or revoked token")),
    }
}

/// Limits, timeout and the access log around every request.
async fn front(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let peer = req.extensions().get::<Peer>().copied();
    let note = TokenNote::default();
    req.extensions_mut().insert(note.clone());
    let response =
        match tokio::time::timeout(state.timeout, state.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => match tokio::time::timeout(state.timeout, next.run(req)).await {
                Ok(response) => {
                    drop(permit);
                    response
                }
                Err(_) => busy("the request took too long"),
            },
            _ => busy("too many requests in flight: try again shortly"),
        };
    let mut response = response;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    let token = note.0.lock().ok().and_then(|t| t.clone());
    tracing::info!(
        target: "tenure::http::access",
        "{} {} {} {} {}ms token={}",
        peer.map_or_else(|| "-".to_string(), |p| p.0.ip().to_string()),
        method,
        crate::text::escape_text(crate::bounded::cut(&path, 512).as_ref()),
        response.status().as_u16(),
        started.elapsed().as_millis(),
        token.as_deref().unwrap_or("-"),
    );
    response
}

fn busy(message: &str) -> Response {
    let mut r = (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({"error": message, "code": 1}).to_string(),
    )
        .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

async fn not_found() -> Response {
    rest::failure(Failure::new(StatusCode::NOT_FOUND, 3, "no such route"))
}

/// The whole application: REST, SCIM and the limits around them.
pub fn router(state: AppState, max_body: usize) -> Router {
    Router::new()
        .nest("/api/v1", rest::routes())
        .nest("/scim/v2", scim::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), front))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// A running HTTP listener.
pub struct HttpServer {
    pub addr: SocketAddr,
    pub tls: bool,
    task: tokio::task::JoinHandle<()>,
    flusher: tokio::task::JoinHandle<()>,
    services: Services,
}

/// How often the tokens' last-use times are written (one transaction).
const TOKEN_USE_FLUSH: Duration = Duration::from_secs(5);

impl HttpServer {
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.addr
        )
    }

    /// Stops accepting and writes the last token uses noted.
    pub fn stop(&self) {
        self.task.abort();
        self.flusher.abort();
        if let Err(e) = self.services.flush_token_use() {
            crate::log_limited!(warn, "http-token-use", "cannot record token use: {e}");
        }
    }
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use tokio_rustls::rustls;
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate chain: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", cert.display()));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| format!("{}: not a PEM private key: {e}", key.display()))?
        .ok_or_else(|| format!("{}: no private key in it", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Binds and starts serving; errors are one line for the operator.
pub async fn start(
    services: Services,
    config: &HttpConfig,
    listen: Option<SocketAddr>,
) -> Result<HttpServer, String> {
    let acceptor = match &config.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    let addr = listen.unwrap_or(config.listen);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} (http): {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let timeout = Duration::from_secs(config.request_timeout_seconds);
    let state = AppState {
        services: services.clone(),
        slots: Arc::new(Semaphore::new(config.max_concurrent_requests)),
        timeout,
        tls: acceptor.is_some(),
        max_body: config.max_body_bytes,
    };
    let app = router(state, config.max_body_bytes);
    let connections = Arc::new(Semaphore::new(config.max_connections));
    let tls = acceptor.is_some();
    let flushing = services.clone();
    let flusher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(TOKEN_USE_FLUSH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let s = flushing.clone();
            let done = tokio::task::spawn_blocking(move || s.flush_token_use()).await;
            if let Ok(Err(e)) = done {
                crate::log_limited!(warn, "http-token-use", "cannot record token use: {e}");
            }
        }
    });
    let kept = services.clone();
    let task = tokio::spawn(async move {
        loop {
            let (socket, peer) = match listener.accept().await {
                Ok(pair) => pair,
                Err(e) => {
                    crate::log_limited!(warn, "http-accept", "http accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if !admitted(&services, peer.ip()) {
                drop(socket);
                let s = services.clone();
                tokio::task::spawn_blocking(move || s.connection_refused(peer.ip()));
                continue;
            }
            let Ok(permit) = connections.clone().try_acquire_owned() else {
                crate::log_limited!(
                    warn,
                    "http-full",
                    "http: too many connections, closing one from {}",
                    peer.ip()
                );
                drop(socket);
                continue;
            };
            let _ = socket.set_nodelay(true);
            let app = app.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match acceptor {
                    Some(acceptor) => {
                        match tokio::time::timeout(timeout, acceptor.accept(socket)).await {
                            Ok(Ok(stream)) => serve_connection(stream, peer, app, timeout).await,
                            _ => {}
                        }
                    }
                    None => serve_connection(socket, peer, app, timeout).await,
                }
            });
        }
    });
    Ok(HttpServer {
        addr,
        tls,
        task,
        flusher,
        services: kept,
    })
}

fn admitted(services: &Services, ip: IpAddr) -> bool {
    let allow = &services.config().server.allowlist;
    allow.is_empty() || allow.iter().any(|n| n.contains(&ip))
}

async fn serve_connection<S>(stream: S, peer: SocketAddr, app: Router, timeout: Duration)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;
    let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(Peer(peer));
        let app = app.clone();
        async move { app.oneshot(req.map(Body::new)).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .max_buf_size(64 * 1024);
    let _ = builder
        .serve_connection(TokioIo::new(stream), service)
        .await;
}
