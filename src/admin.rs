//! The admin port: `/healthz`, `/readyz`, `/metrics` and `POST /-/reload`.
//!
//! It binds loopback by default. When it binds anything else, state-changing endpoints
//! require `Authorization: Bearer <token>` with the token read from `admin.token_file`;
//! `/metrics` and the health endpoints stay open for probes and scrapers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::metrics;
use crate::reload::Reloader;

/// Whether the gateway takes traffic: not until its proxy listeners accept connections,
/// and never again once it is stopping (load balancers and Kubernetes then send new
/// connections elsewhere while it finishes what is in flight).
#[derive(Default)]
pub struct Readiness(AtomicU8);

const STARTING: u8 = 0;
const READY: u8 = 1;
const STOPPING: u8 = 2;

impl Readiness {
    /// The proxy listeners accept connections (ignored once stopping).
    pub fn listening(&self) {
        let _ = self
            .0
            .compare_exchange(STARTING, READY, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The gateway has stopped accepting and is finishing what is in flight.
    pub fn stopping(&self) {
        self.0.store(STOPPING, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire) == READY
    }

    pub fn is_stopping(&self) -> bool {
        self.0.load(Ordering::Acquire) == STOPPING
    }
}

pub struct Admin {
    pub reloader: Arc<Reloader>,
    /// Whether the gateway takes traffic.
    pub ready: Arc<Readiness>,
    /// Required for state-changing endpoints, when set.
    pub token: Option<String>,
}

impl Admin {
    /// Serve until the process ends.
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let me = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let me = me.clone();
                    async move { Ok::<_, Infallible>(me.handle(req, peer).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    async fn handle(&self, req: Request<Incoming>, _peer: SocketAddr) -> Response<Full<Bytes>> {
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
            (&Method::GET, "/readyz") => self.readyz(),
            (&Method::GET, "/metrics") => {
                let mut resp = text(StatusCode::OK, &metrics::gather_text());
                if let Ok(v) = metrics::TEXT_CONTENT_TYPE.parse() {
                    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
                }
                resp
            }
            (&Method::POST, "/-/reload") => {
                if !self.authorised(&req) {
                    return text(StatusCode::UNAUTHORIZED, "a bearer token is required\n");
                }
                // Drain the (ignored) body so the connection stays usable.
                let _ = req.into_body().collect().await;
                match self.reloader.reload("admin API").await {
                    Ok(version) => json(
                        StatusCode::OK,
                        serde_json::json!({"status": "reloaded", "version": version}),
                    ),
                    Err(crate::reload::ReloadError::Rules(errors)) => json(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        serde_json::json!({"status": "rejected",
                            "errors": errors.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
                            "running_version": self.reloader.policy.load().version()}),
                    ),
                    Err(e) => json(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        serde_json::json!({"status": "failed", "errors": [e.to_string()],
                            "running_version": self.reloader.policy.load().version()}),
                    ),
                }
            }
            (_, "/healthz" | "/readyz" | "/metrics" | "/-/reload") => {
                text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    fn readyz(&self) -> Response<Full<Bytes>> {
        let ready = self.ready.is_ready();
        let last_error = self.reloader.last_error.lock().clone();
        let body = serde_json::json!({
            "ready": ready,
            "stopping": self.ready.is_stopping(),
            "rules": {
                "source": self.reloader.source.describe(),
                "version": self.reloader.policy.load().version(),
                "last_reload_error": last_error,
            }
        });
        // A rejected reload leaves the gateway serving the previous rules: still ready.
        json(
            if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            },
            body,
        )
    }

    fn authorised(&self, req: &Request<Incoming>) -> bool {
        let Some(token) = self.token.as_deref() else {
            return true;
        };
        req.headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| constant_time_eq(given.trim().as_bytes(), token.as_bytes()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}
