//! The benchmark suite's load generator (`loadgen run`) and upload sink (`loadgen serve`).
//!
//! Why a load generator of our own: scenarios 2–4 and 6 go through an explicit proxy with
//! `CONNECT` and TLS inside the tunnel. wrk and h2load cannot send `CONNECT`; `hey -x`
//! can but reports no p99.9 and its Go runtime costs more CPU than the client it models;
//! `oha` takes minutes to build. This client is one single-threaded tokio task set on
//! rustls (the same TLS library on every run, so client cost is identical across
//! candidates), and does exactly what the scenarios need: keep-alive HTTP/1.1 over plain
//! TCP, TLS, or TLS inside `CONNECT`; fixed or paced request rates; a deterministic share
//! of alternative bodies (posts needing redaction); streamed uploads of any size generated
//! on the fly; handshake-only loops with a distinct SNI per connection; exact latency
//! percentiles (every sample kept, p50/p99/p99.9). Scenario 1 (plain small GETs) uses wrk.
//!
//! `loadgen serve` is the upstream for the large-upload scenario: an HTTP/1.1 server
//! (plain or TLS) that reads every request body to its end before it answers, so that an
//! upload's time is the time for its last byte to reach the site (nginx answers a
//! `return 200` before it has drained the body).
//!
//! Output: one JSON object per run on stdout.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen run --target IP:PORT [--connect HOST:PORT] [--tls] [--sni NAME|h{{i}}.x.com]\n\
         \x20        [--cacert FILE]... [--host H] [--method M] [--path P] [--body FILE]\n\
         \x20        [--alt-body FILE --alt-every N] [--content-type T] [--upload-mib N]\n\
         \x20        [-c CONNS] [-d SECS] [-n REQUESTS] [--rate REQ_PER_S] [--warmup SECS]\n\
         \x20        [--handshake-only [--no-verify]] [--label L]\n\
         \x20      loadgen serve --listen IP:PORT [--cert FILE --key FILE]"
    );
    std::process::exit(2)
}

#[derive(Clone)]
struct Opts {
    target: SocketAddr,
    connect: Option<String>,
    tls: bool,
    sni: Option<String>,
    cacerts: Vec<PathBuf>,
    host: Option<String>,
    method: String,
    path: String,
    body: Option<Vec<u8>>,
    alt_body: Option<Vec<u8>>,
    alt_every: u64,
    content_type: String,
    upload_bytes: u64,
    conns: usize,
    duration: Duration,
    requests: Option<u64>,
    rate: Option<f64>,
    warmup: Duration,
    handshake_only: bool,
    no_verify: bool,
    /// Keep-alive connections opened (one request each) and left idle during the run.
    idle: usize,
    label: String,
}

fn parse_run(args: &[String]) -> Opts {
    let mut o = Opts {
        target: "127.0.0.1:80".parse().unwrap(),
        connect: None,
        tls: false,
        sni: None,
        cacerts: vec![],
        host: None,
        method: "GET".into(),
        path: "/".into(),
        body: None,
        alt_body: None,
        alt_every: 0,
        content_type: "application/json".into(),
        upload_bytes: 0,
        conns: 16,
        duration: Duration::from_secs(10),
        requests: None,
        rate: None,
        warmup: Duration::from_secs(1),
        handshake_only: false,
        no_verify: false,
        idle: 0,
        label: String::new(),
    };
    let mut it = args.iter();
    let read = |p: &String| std::fs::read(p).unwrap_or_else(|e| panic!("{p}: {e}"));
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_else(|| usage());
        match a.as_str() {
            "--target" => o.target = val().parse().unwrap_or_else(|_| usage()),
            "--connect" => o.connect = Some(val()),
            "--tls" => o.tls = true,
            "--sni" => o.sni = Some(val()),
            "--cacert" => o.cacerts.push(val().into()),
            "--host" => o.host = Some(val()),
            "--method" => o.method = val(),
            "--path" => o.path = val(),
            "--body" => o.body = Some(read(&val())),
            "--alt-body" => o.alt_body = Some(read(&val())),
            "--alt-every" => o.alt_every = val().parse().unwrap_or_else(|_| usage()),
            "--content-type" => o.content_type = val(),
            "--upload-mib" => {
                o.upload_bytes = val().parse::<u64>().unwrap_or_else(|_| usage()) << 20
            }
            "-c" => o.conns = val().parse().unwrap_or_else(|_| usage()),
            "-d" => o.duration = Duration::from_secs_f64(val().parse().unwrap_or_else(|_| usage())),
            "-n" => o.requests = Some(val().parse().unwrap_or_else(|_| usage())),
            "--rate" => o.rate = Some(val().parse().unwrap_or_else(|_| usage())),
            "--warmup" => {
                o.warmup = Duration::from_secs_f64(val().parse().unwrap_or_else(|_| usage()))
            }
            "--handshake-only" => o.handshake_only = true,
            "--no-verify" => o.no_verify = true,
            "--idle" => o.idle = val().parse().unwrap_or_else(|_| usage()),
            "--label" => o.label = val(),
            _ => usage(),
        }
    }
    o
}

/// Accepts any server certificate without checking it: only for `--handshake-only
/// --no-verify`, where the client must outrun the server on one CPU. Verifying costs the
/// client two ECDSA verifications per handshake, as much as the server's whole share;
/// skipping them leaves the server's work (key exchange, signature, minting) unchanged.
/// The certificates the gateway mints are verified by every other scenario.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config(cacerts: &[PathBuf], no_verify: bool) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for path in cacerts {
        let pem = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for cert in rustls_pemfile::certs(&mut &pem[..]) {
            roots
                .add(cert.expect("PEM certificate"))
                .expect("usable CA");
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if no_verify {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(NoVerify(provider)));
    }
    // Every connection is a full handshake: the handshake scenario measures the server's
    // work, not session resumption.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// A connection with its read buffer.
struct Conn {
    io: Box<dyn Io>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

struct Head {
    status: u16,
    framing: Framing,
    close: bool,
}

impl Conn {
    fn new(io: Box<dyn Io>) -> Conn {
        Conn {
            io,
            buf: vec![0; 64 * 1024],
            start: 0,
            end: 0,
        }
    }

    async fn fill(&mut self) -> io::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        let n = self.io.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.end += n;
        Ok(())
    }

    /// Parse a request (`request == true`) or response head.
    async fn read_head(&mut self, request: bool) -> io::Result<(Head, String)> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 96];
            let data = &self.buf[self.start..self.end];
            let (parsed, status, method, hdrs) = if request {
                let mut req = httparse::Request::new(&mut headers);
                let st = req
                    .parse(data)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                match st {
                    httparse::Status::Complete(n) => (
                        Some(n),
                        0,
                        req.method.unwrap_or("").to_string(),
                        collect(req.headers),
                    ),
                    httparse::Status::Partial => (None, 0, String::new(), vec![]),
                }
            } else {
                let mut resp = httparse::Response::new(&mut headers);
                let st = resp
                    .parse(data)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                match st {
                    httparse::Status::Complete(n) => (
                        Some(n),
                        resp.code.unwrap_or(0),
                        String::new(),
                        collect(resp.headers),
                    ),
                    httparse::Status::Partial => (None, 0, String::new(), vec![]),
                }
            };
            let Some(n) = parsed else {
                self.fill().await?;
                continue;
            };
            self.start += n;
            let mut framing = if request || status == 204 || status == 304 {
                Framing::Length(0)
            } else {
                Framing::UntilClose
            };
            let mut close = false;
            for (k, v) in &hdrs {
                if k.eq_ignore_ascii_case("content-length") {
                    framing = Framing::Length(v.trim().parse().unwrap_or(0));
                } else if k.eq_ignore_ascii_case("transfer-encoding")
                    && v.to_ascii_lowercase().contains("chunked")
                {
                    framing = Framing::Chunked;
                } else if k.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
            if matches!(framing, Framing::UntilClose) {
                close = true;
            }
            return Ok((
                Head {
                    status,
                    framing,
                    close,
                },
                method,
            ));
        }
    }

    async fn skip(&mut self, mut n: u64) -> io::Result<u64> {
        let total = n;
        while n > 0 {
            if self.start == self.end {
                self.fill().await?;
            }
            let take = ((self.end - self.start) as u64).min(n);
            self.start += take as usize;
            n -= take;
        }
        Ok(total)
    }

    async fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(i) = self.buf[self.start..self.end]
                .windows(2)
                .position(|w| w == b"\r\n")
            {
                let s = String::from_utf8_lossy(&self.buf[self.start..self.start + i]).into_owned();
                self.start += i + 2;
                return Ok(s);
            }
            self.fill().await?;
        }
    }

    /// Read and discard a body; returns its length.
    async fn drain(&mut self, framing: &Framing) -> io::Result<u64> {
        match framing {
            Framing::Length(n) => self.skip(*n).await,
            Framing::Chunked => {
                let mut total = 0;
                loop {
                    let line = self.line().await?;
                    let size = u64::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "chunk size"))?;
                    if size == 0 {
                        while !self.line().await?.is_empty() {}
                        return Ok(total);
                    }
                    total += self.skip(size).await?;
                    self.line().await?;
                }
            }
            Framing::UntilClose => {
                let mut total = 0;
                loop {
                    total += (self.end - self.start) as u64;
                    self.start = self.end;
                    match self.fill().await {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(total),
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
}

fn collect(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect()
}

struct Shared {
    opts: Opts,
    tls: Arc<rustls::ClientConfig>,
    started: Instant,
    measure_from: Instant,
    deadline: Instant,
    issued: AtomicU64,
    names: AtomicU64,
}

#[derive(Default)]
struct Tally {
    ok: u64,
    errors: u64,
    non2xx: u64,
    bytes_up: u64,
    lat_us: Vec<u32>,
}

impl Shared {
    fn server_name(&self) -> String {
        let pattern = self.opts.sni.clone().unwrap_or_else(|| {
            self.opts
                .connect
                .as_deref()
                .map(|a| a.rsplit_once(':').map_or(a, |(h, _)| h).to_string())
                .unwrap_or_else(|| "localhost".into())
        });
        if pattern.contains("{i}") {
            let i = self.names.fetch_add(1, Ordering::Relaxed);
            pattern.replace("{i}", &i.to_string())
        } else {
            pattern
        }
    }

    async fn open(&self) -> io::Result<Box<dyn Io>> {
        let tcp = TcpStream::connect(self.opts.target).await?;
        tcp.set_nodelay(true)?;
        // Closing with a reset keeps tens of thousands of short connections from
        // exhausting the loopback port range in TIME_WAIT.
        tcp.set_zero_linger()?;
        let mut tcp = tcp;
        if let Some(authority) = &self.opts.connect {
            let req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
            tcp.write_all(req.as_bytes()).await?;
            let mut head = Vec::with_capacity(256);
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if tcp.read(&mut byte).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                head.push(byte[0]);
                if head.len() > 16 * 1024 {
                    return Err(io::Error::other("CONNECT answer too long"));
                }
            }
            if !(head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200")) {
                return Err(io::Error::other(format!(
                    "CONNECT refused: {}",
                    String::from_utf8_lossy(&head).lines().next().unwrap_or("")
                )));
            }
        }
        if self.opts.tls {
            let name = rustls::pki_types::ServerName::try_from(self.server_name())
                .map_err(|e| io::Error::other(e.to_string()))?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await?;
            Ok(Box::new(tls))
        } else {
            Ok(Box::new(tcp))
        }
    }

    fn take_ticket(&self) -> Option<u64> {
        if Instant::now() >= self.deadline {
            return None;
        }
        let i = self.issued.fetch_add(1, Ordering::Relaxed);
        match self.opts.requests {
            Some(n) if i >= n => None,
            _ => Some(i),
        }
    }

    fn request_head(&self, body_len: Option<u64>) -> Vec<u8> {
        let o = &self.opts;
        let host = o
            .host
            .clone()
            .or_else(|| {
                o.connect
                    .clone()
                    .map(|a| a.trim_end_matches(":443").to_string())
            })
            .unwrap_or_else(|| o.target.to_string());
        let mut h = format!(
            "{} {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: permeable-loadgen\r\nAccept: */*\r\n",
            o.method, o.path
        );
        if let Some(n) = body_len {
            h.push_str(&format!(
                "Content-Type: {}\r\nContent-Length: {n}\r\n",
                o.content_type
            ));
        }
        h.push_str("\r\n");
        h.into_bytes()
    }
}

async fn worker(shared: Arc<Shared>, index: usize) -> Tally {
    let o = &shared.opts;
    let mut t = Tally::default();
    let full = |body: &Option<Vec<u8>>| -> Vec<u8> {
        let mut r = shared.request_head(body.as_ref().map(|b| b.len() as u64));
        if let Some(b) = body {
            r.extend_from_slice(b);
        }
        r
    };
    let normal = full(&o.body);
    let alt = o.alt_body.as_ref().map(|_| full(&o.alt_body));
    let upload_head = (o.upload_bytes > 0).then(|| shared.request_head(Some(o.upload_bytes)));
    let chunk: Vec<u8> = (0..256 * 1024u32).map(|i| (i % 251) as u8).collect();
    // Paced runs: each connection sends at its share of the rate, with a staggered start.
    let interval = o
        .rate
        .map(|r| Duration::from_secs_f64(o.conns as f64 / r.max(0.001)));
    let mut next_at = tokio::time::Instant::now()
        + interval.map_or(Duration::ZERO, |i| i.mul_f64(index as f64 / o.conns as f64));
    let mut conn: Option<Conn> = None;
    while let Some(ticket) = shared.take_ticket() {
        if let Some(i) = interval {
            tokio::time::sleep_until(next_at).await;
            next_at += i;
        }
        let t0 = Instant::now();
        let result: io::Result<bool> = async {
            if o.handshake_only {
                let io = shared.open().await?;
                drop(io);
                return Ok(true);
            }
            if conn.is_none() {
                conn = Some(Conn::new(shared.open().await?));
            }
            let c = conn.as_mut().expect("connection");
            if let Some(head) = &upload_head {
                c.io.write_all(head).await?;
                let mut left = o.upload_bytes;
                while left > 0 {
                    let n = left.min(chunk.len() as u64) as usize;
                    c.io.write_all(&chunk[..n]).await?;
                    left -= n as u64;
                }
            } else {
                let req = match &alt {
                    Some(a) if o.alt_every > 0 && ticket % o.alt_every == o.alt_every - 1 => a,
                    _ => &normal,
                };
                c.io.write_all(req).await?;
            }
            c.io.flush().await?;
            let (head, _) = c.read_head(false).await?;
            c.drain(&head.framing).await?;
            if head.close {
                conn = None;
            }
            Ok((200..300).contains(&head.status))
        }
        .await;
        let lat = t0.elapsed();
        let measured = t0 >= shared.measure_from;
        match result {
            Ok(ok) => {
                if measured {
                    if ok {
                        t.ok += 1;
                    } else {
                        t.non2xx += 1;
                    }
                    t.bytes_up += o.upload_bytes;
                    t.lat_us.push(lat.as_micros().min(u32::MAX as u128) as u32);
                }
            }
            Err(e) => {
                if measured {
                    t.errors += 1;
                }
                if t.errors <= 3 && std::env::var_os("LOADGEN_DEBUG").is_some() {
                    eprintln!("loadgen: {e}");
                }
                conn = None;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    t
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

/// Opens `n` keep-alive connections, 64 at a time, each answered once and then left idle.
/// Returns the open connections (only their streams: no read buffer kept) and the failures.
async fn open_idle(shared: Arc<Shared>, n: usize) -> (Vec<Box<dyn Io>>, usize) {
    let head = Arc::new(shared.request_head(None));
    let mut set = tokio::task::JoinSet::new();
    let (mut open, mut failed) = (Vec::with_capacity(n), 0);
    let mut settle = |r: Result<io::Result<Box<dyn Io>>, tokio::task::JoinError>| match r {
        Ok(Ok(io)) => open.push(io),
        Ok(Err(e)) => {
            failed += 1;
            if failed <= 3 {
                eprintln!("loadgen: idle connection: {e}");
            }
        }
        Err(e) => panic!("idle connection task: {e}"),
    };
    for _ in 0..n {
        while set.len() >= 64 {
            settle(set.join_next().await.expect("a task"));
        }
        let (shared, head) = (shared.clone(), head.clone());
        set.spawn(async move {
            let mut c = Conn::new(shared.open().await?);
            c.io.write_all(&head).await?;
            c.io.flush().await?;
            let (h, _) = c.read_head(false).await?;
            c.drain(&h.framing).await?;
            if h.close || !(200..300).contains(&h.status) {
                return Err(io::Error::other(format!(
                    "answered {}, not kept alive",
                    h.status
                )));
            }
            Ok(c.io)
        });
    }
    while let Some(r) = set.join_next().await {
        settle(r);
    }
    (open, failed)
}

async fn run(opts: Opts) {
    let tls = tls_config(&opts.cacerts, opts.no_verify);
    // Idle connections first, so that the measurement sees them all open.
    let (idle, idle_failed) = if opts.idle > 0 {
        let opener = Arc::new(Shared {
            tls: tls.clone(),
            started: Instant::now(),
            measure_from: Instant::now(),
            deadline: Instant::now(),
            issued: AtomicU64::new(0),
            names: AtomicU64::new(0),
            opts: opts.clone(),
        });
        open_idle(opener, opts.idle).await
    } else {
        (Vec::new(), 0)
    };
    let started = Instant::now();
    let warmup = if opts.requests.is_some() {
        Duration::ZERO
    } else {
        opts.warmup
    };
    let shared = Arc::new(Shared {
        tls,
        started,
        measure_from: started + warmup,
        deadline: started + warmup + opts.duration,
        issued: AtomicU64::new(0),
        names: AtomicU64::new(0),
        opts,
    });
    let mut tasks = Vec::new();
    for i in 0..shared.opts.conns {
        tasks.push(tokio::spawn(worker(shared.clone(), i)));
    }
    let mut all = Tally::default();
    for t in tasks {
        let t = t.await.expect("worker");
        all.ok += t.ok;
        all.errors += t.errors;
        all.non2xx += t.non2xx;
        all.bytes_up += t.bytes_up;
        all.lat_us.extend(t.lat_us);
    }
    let secs = shared
        .started
        .elapsed()
        .saturating_sub(shared.measure_from - shared.started)
        .as_secs_f64()
        .max(1e-9);
    all.lat_us.sort_unstable();
    let done = all.ok + all.non2xx;
    // Still open at the end of the run (the server did not drop them meanwhile)?
    // A connection the server closed reads EOF at once; a live one has nothing to read.
    let mut probes = tokio::task::JoinSet::new();
    for mut io in idle {
        probes.spawn(async move {
            let mut byte = [0u8; 1];
            tokio::time::timeout(Duration::from_millis(200), io.read(&mut byte))
                .await
                .is_err()
        });
    }
    let mut idle_alive = 0;
    while let Some(alive) = probes.join_next().await {
        idle_alive += usize::from(alive.unwrap_or(false));
    }
    println!(
        "{{\"idle\":{},\"idle_failed\":{idle_failed},\"idle_alive\":{idle_alive},\"label\":\"{}\",\"requests\":{},\"ok\":{},\"non2xx\":{},\"errors\":{},\"seconds\":{:.3},\"rps\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"max_ms\":{:.3},\"mib_per_s\":{:.1}}}",
        shared.opts.idle,
        shared.opts.label,
        done,
        all.ok,
        all.non2xx,
        all.errors,
        secs,
        done as f64 / secs,
        percentile(&all.lat_us, 50.0),
        percentile(&all.lat_us, 99.0),
        percentile(&all.lat_us, 99.9),
        all.lat_us.last().copied().unwrap_or(0) as f64 / 1000.0,
        all.bytes_up as f64 / secs / (1 << 20) as f64,
    );
}

async fn serve(args: &[String]) {
    let mut listen: Option<SocketAddr> = None;
    let (mut cert, mut key) = (None::<PathBuf>, None::<PathBuf>);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_else(|| usage());
        match a.as_str() {
            "--listen" => listen = Some(val().parse().unwrap_or_else(|_| usage())),
            "--cert" => cert = Some(val().into()),
            "--key" => key = Some(val().into()),
            _ => usage(),
        }
    }
    let listener = tokio::net::TcpListener::bind(listen.unwrap_or_else(|| usage()))
        .await
        .expect("bind");
    let acceptor = match (cert, key) {
        (Some(cert), Some(key)) => {
            let certs = rustls_pemfile::certs(&mut &std::fs::read(cert).expect("cert")[..])
                .collect::<Result<Vec<_>, _>>()
                .expect("PEM certificates");
            let key = rustls_pemfile::private_key(&mut &std::fs::read(key).expect("key")[..])
                .expect("PEM key")
                .expect("a private key");
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .expect("certificate and key");
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
        }
        _ => None,
    };
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let io: Box<dyn Io> = match acceptor {
                Some(a) => match a.accept(tcp).await {
                    Ok(s) => Box::new(s),
                    Err(_) => return,
                },
                None => Box::new(tcp),
            };
            let mut c = Conn::new(io);
            loop {
                let Ok((head, _method)) = c.read_head(true).await else {
                    return;
                };
                let Ok(len) = c.drain(&head.framing).await else {
                    return;
                };
                let body = format!("{{\"ok\":true,\"len\":{len}}}");
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if c.io.write_all(resp.as_bytes()).await.is_err() || c.io.flush().await.is_err() {
                    return;
                }
            }
        });
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args.first().map(String::as_str) {
        Some("run") => rt.block_on(run(parse_run(&args[1..]))),
        Some("serve") => rt.block_on(serve(&args[1..])),
        _ => usage(),
    }
}
