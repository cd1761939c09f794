//! The floor under the intercepted path: a Pingora proxy with no logic of its own, built
//! from the same Pingora 0.9.1 and rustls as permeable. TLS is terminated with a given
//! certificate (HTTP/2 or HTTP/1.1 by ALPN, on Pingora's own TLS listener), and every
//! request goes to one upstream over TLS verified against a CA file, on kept-alive
//! connections, as nginx's `proxy_pass https://` does in scenario 8; one worker thread and
//! the allocator permeable uses (mimalloc). What it costs per
//! request is what any proxy built on Pingora pays before it classifies, inspects or counts
//! anything (`bash benches/suite/instructions.sh https-floor`, `h2-floor`).
//!
//! ```sh
//! cargo run --release --example pingora_floor -- \
//!     LISTEN CERT.pem KEY.pem UPSTREAM_ADDR UPSTREAM_NAME CA.pem
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Floor {
    upstream: SocketAddr,
    name: String,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream, true, self.name.clone());
        peer.options.set_http_version(1, 1);
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        Ok(Box::new(peer))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, cert, key, upstream, name, ca] = args.as_slice() else {
        eprintln!("usage: pingora_floor LISTEN CERT KEY UPSTREAM_ADDR UPSTREAM_NAME CA_FILE");
        std::process::exit(2);
    };
    let upstream: SocketAddr = upstream.parse().unwrap_or_else(|e| {
        eprintln!("UPSTREAM_ADDR {upstream:?}: {e}");
        std::process::exit(2);
    });
    let conf = ServerConf {
        threads: 1,
        ca_file: Some(ca.clone()),
        upstream_keepalive_pool_size: 256,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = http_proxy_service(
        &server.configuration,
        Floor {
            upstream,
            name: name.clone(),
        },
    );
    let mut tls = TlsSettings::intermediate(cert, key).unwrap_or_else(|e| {
        eprintln!("{cert}, {key}: {e}");
        std::process::exit(2);
    });
    tls.enable_h2();
    service.add_tls_with_settings(listen, None, tls);
    server.add_service(service);
    server.run_forever();
}
