//! A local HTTPS server that answers as a social site and echoes back what it received,
//! for trying permeable without touching a real site: the gateway reaches it through
//! `upstream.resolve` (see examples/demo.yaml), so you see exactly what would have left.
//!
//! ```sh
//! cargo run --example echo_site -- 127.0.0.1:8443 /tmp/permeable-demo
//! ```
//! It writes the CA that issued its certificate to `<dir>/echo-ca.crt`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

const NAMES: &[&str] = &[
    "x.com",
    "www.linkedin.com",
    "mastodon.social",
    "bsky.social",
    "www.reddit.com",
    "www.facebook.com",
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8443".into());
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "/tmp/permeable-demo".into()));
    std::fs::create_dir_all(&dir)?;

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "permeable demo site CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key)?;
    std::fs::write(dir.join("echo-ca.crt"), ca.pem())?;
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(NAMES.iter().map(|s| s.to_string()).collect::<Vec<_>>())?
        .signed_by(&key, &ca, &ca_key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!(
        "echo site on https://{addr} for {}; its CA is {}",
        NAMES.join(", "),
        dir.join("echo-ca.crt").display()
    );
    loop {
        let (tcp, _) = listener.accept().await?;
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(echo);
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

/// Answers with the request line and the body exactly as received.
async fn echo(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let line = format!("{} {}\n", req.method(), req.uri());
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut out = format!("the site received: {line}").into_bytes();
    out.extend_from_slice(&body);
    out.push(b'\n');
    Ok(Response::new(Full::new(Bytes::from(out))))
}
