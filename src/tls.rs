//! TLS interception: the organisation's CA, leaf certificates minted per SNI, and the
//! rustls server configuration that presents them.
//!
//! Leaves are ECDSA P-256, valid for a few days, with the host as their only SAN and
//! never the CA flag. They are minted inline in the rustls certificate resolver (which is
//! synchronous; minting costs well under a millisecond) and kept in a bounded LRU cache.
//! The CA key is read once at start-up and never leaves the process.

use std::fmt;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use time::{Duration, OffsetDateTime};

use crate::metrics;

/// Failure to load or create the CA.
#[derive(Debug)]
pub struct CaError(pub String);

impl fmt::Display for CaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CaError {}

/// The interception CA: its certificate and the key that signs leaves.
pub struct CertificateAuthority {
    issuer: rcgen::Certificate,
    key: KeyPair,
    cert_der: CertificateDer<'static>,
    pub cert_pem: String,
}

impl CertificateAuthority {
    /// Generate a new CA (ECDSA P-256, ten years).
    pub fn generate(common_name: &str) -> Result<CertificateAuthority, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| CaError(format!("cannot generate the CA key: {e}")))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        dn.push(DnType::OrganizationName, "permeable");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(3650);
        let cert = params
            .self_signed(&key)
            .map_err(|e| CaError(format!("cannot sign the CA certificate: {e}")))?;
        let cert_pem = cert.pem();
        Ok(CertificateAuthority {
            cert_der: cert.der().clone(),
            issuer: cert,
            key,
            cert_pem,
        })
    }

    /// Load a CA from PEM files. The key must not be readable by group or others.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<CertificateAuthority, CaError> {
        let meta = fs::metadata(key_path).map_err(|e| {
            CaError(format!(
                "{}: cannot read the CA key: {e}",
                key_path.display()
            ))
        })?;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(CaError(format!(
                "{}: the CA key is readable by others (mode {:o}); run `chmod 600 {}`",
                key_path.display(),
                mode & 0o777,
                key_path.display()
            )));
        }
        let cert_pem = fs::read_to_string(cert_path).map_err(|e| {
            CaError(format!(
                "{}: cannot read the CA certificate: {e}",
                cert_path.display()
            ))
        })?;
        let key_pem = fs::read_to_string(key_path).map_err(|e| {
            CaError(format!(
                "{}: cannot read the CA key: {e}",
                key_path.display()
            ))
        })?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| {
            CaError(format!(
                "{}: not a usable private key: {e}",
                key_path.display()
            ))
        })?;
        let params = CertificateParams::from_ca_cert_pem(&cert_pem).map_err(|e| {
            CaError(format!(
                "{}: not a CA certificate: {e}",
                cert_path.display()
            ))
        })?;
        let cert_der = first_certificate(&cert_pem).ok_or_else(|| {
            CaError(format!(
                "{}: no certificate in the file",
                cert_path.display()
            ))
        })?;
        // rcgen signs with an issuer certificate built from the same name and key; the
        // chain we present carries the original CA certificate.
        let issuer = params
            .self_signed(&key)
            .map_err(|e| CaError(format!("{}: key does not fit: {e}", key_path.display())))?;
        Ok(CertificateAuthority {
            issuer,
            key,
            cert_der,
            cert_pem,
        })
    }

    /// Write `ca.crt` and `ca.key` (mode 0600) into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf), CaError> {
        fs::create_dir_all(dir)
            .map_err(|e| CaError(format!("{}: cannot create: {e}", dir.display())))?;
        let cert_path = dir.join("ca.crt");
        let key_path = dir.join("ca.key");
        fs::write(&cert_path, &self.cert_pem)
            .map_err(|e| CaError(format!("{}: cannot write: {e}", cert_path.display())))?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key_path)
            .map_err(|e| CaError(format!("{}: cannot write: {e}", key_path.display())))?;
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .and_then(|_| f.write_all(self.key.serialize_pem().as_bytes()))
            .map_err(|e| CaError(format!("{}: cannot write: {e}", key_path.display())))?;
        Ok((cert_path, key_path))
    }

    /// Mint a leaf certificate for `host` (a DNS name or an IP address).
    pub fn mint_leaf_certificate(
        &self,
        host: &str,
        validity_hours: u32,
    ) -> Result<CertifiedKey, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| CaError(format!("cannot generate a leaf key: {e}")))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host);
        params.distinguished_name = dn;
        params.subject_alt_names = vec![match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                host.to_string()
                    .try_into()
                    .map_err(|e| CaError(format!("{host:?} is not a DNS name: {e}")))?,
            ),
        }];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::hours(i64::from(validity_hours.max(1)));
        let mut serial = [0u8; 16];
        rand::Rng::fill(&mut rand::thread_rng(), &mut serial[..]);
        serial[0] &= 0x7f;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        let cert = params
            .signed_by(&key, &self.issuer, &self.key)
            .map_err(|e| CaError(format!("cannot sign a leaf for {host}: {e}")))?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing_key = rustls::crypto::ring::sign::any_supported_type(&key_der)
            .map_err(|e| CaError(format!("unusable leaf key: {e}")))?;
        metrics::CERTIFICATES_MINTED_TOTAL.inc();
        Ok(CertifiedKey::new(
            vec![cert.der().clone(), self.cert_der.clone()],
            signing_key,
        ))
    }

    pub fn certificate_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }
}

fn first_certificate(pem: &str) -> Option<CertificateDer<'static>> {
    let mut reader = std::io::BufReader::new(pem.as_bytes());
    let first = rustls_pemfile::certs(&mut reader).next()?.ok();
    first
}

/// Load the configured CA, or create one in the state directory on first run.
/// Returns the CA and, when it was just created, where it was written.
pub fn load_or_create_ca(
    cert: Option<&Path>,
    key: Option<&Path>,
    state_dir: &Path,
) -> Result<(CertificateAuthority, Option<PathBuf>), CaError> {
    if let (Some(cert), Some(key)) = (cert, key) {
        return Ok((CertificateAuthority::load(cert, key)?, None));
    }
    let dir = state_dir.join("ca");
    let (cert_path, key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
    if cert_path.exists() || key_path.exists() {
        return Ok((CertificateAuthority::load(&cert_path, &key_path)?, None));
    }
    let ca = CertificateAuthority::generate("permeable interception CA")?;
    let (cert_path, _) = ca.write(&dir)?;
    Ok((ca, Some(cert_path)))
}

/// Mints and caches leaf certificates by SNI.
pub struct LeafResolver {
    ca: CertificateAuthority,
    cache: Mutex<lru::LruCache<String, Arc<CertifiedKey>>>,
    validity_hours: u32,
}

impl fmt::Debug for LeafResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeafResolver").finish_non_exhaustive()
    }
}

impl LeafResolver {
    pub fn new(ca: CertificateAuthority, cache_size: usize, validity_hours: u32) -> LeafResolver {
        let cap = NonZeroUsize::new(cache_size.max(1)).unwrap_or(NonZeroUsize::MIN);
        LeafResolver {
            ca,
            cache: Mutex::new(lru::LruCache::new(cap)),
            validity_hours,
        }
    }

    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }

    /// The certificate for `host`, from the cache or freshly minted.
    pub fn certificate_for(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        let host = host.to_ascii_lowercase();
        if let Some(found) = self.cache.lock().get(&host) {
            metrics::CERTIFICATE_CACHE_HITS_TOTAL.inc();
            return Some(found.clone());
        }
        metrics::CERTIFICATE_CACHE_MISSES_TOTAL.inc();
        match self.ca.mint_leaf_certificate(&host, self.validity_hours) {
            Ok(leaf) => {
                let leaf = Arc::new(leaf);
                self.cache.lock().put(host, leaf.clone());
                Some(leaf)
            }
            Err(e) => {
                tracing::warn!(host = %host, error = %e, "cannot mint a certificate");
                None
            }
        }
    }
}

impl ResolvesServerCert for LeafResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.certificate_for(hello.server_name()?)
    }
}

/// Leaves for a connection to an address: by the name the ClientHello asks for, or, when
/// it names none (a client connecting to an IP address sends no SNI), for the address.
#[derive(Debug)]
struct Addressed {
    leaves: Arc<LeafResolver>,
    address: String,
}

impl ResolvesServerCert for Addressed {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.leaves
            .certificate_for(hello.server_name().unwrap_or(&self.address))
    }
}

/// The interception configuration for one connection to `address` (an IP address): as
/// [`interception_server_config`], with a leaf for the address when the ClientHello names
/// no server.
pub fn addressed_server_config(leaves: Arc<LeafResolver>, address: &str) -> Arc<ServerConfig> {
    server_config(Arc::new(Addressed {
        leaves,
        address: address.to_string(),
    }))
}

/// The server-side TLS configuration used for every intercepted connection:
/// certificates by SNI, HTTP/2 and HTTP/1.1 by ALPN.
pub fn interception_server_config(resolver: Arc<LeafResolver>) -> Arc<ServerConfig> {
    server_config(resolver)
}

fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .unwrap_or_else(|_| {
            ServerConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
        });
    let mut config = builder.with_no_client_auth().with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Largest ClientHello the gateway reads (as rustls accepts): a larger one is not taken
/// for a handshake it could vouch for.
pub const MAX_CLIENT_HELLO: usize = 0xffff;

/// What the first bytes of a TLS connection say so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HelloRead {
    /// A ClientHello has started and is not complete yet.
    Incomplete,
    /// The bytes are not the start of a TLS handshake.
    NotTls,
    /// A TLS handshake that cannot be read: not a ClientHello, malformed, or too large.
    Unreadable,
    /// A complete ClientHello, and the host name it asks for.
    Hello(Option<String>),
}

/// Reads a ClientHello from the first bytes of a connection, across as many TLS records as
/// it was split into (a client may fragment it so that no single record holds the name).
pub fn read_client_hello_sni(buf: &[u8]) -> HelloRead {
    let mut message: Vec<u8> = Vec::new();
    let mut rest = buf;
    loop {
        if rest.len() < 5 {
            return if buf.first().is_some_and(|&b| b != 22) {
                HelloRead::NotTls
            } else {
                HelloRead::Incomplete
            };
        }
        if rest[0] != 22 {
            return if message.is_empty() {
                HelloRead::NotTls
            } else {
                HelloRead::Unreadable
            };
        }
        let len = u16::from_be_bytes([rest[3], rest[4]]) as usize;
        if rest.len() < 5 + len {
            return HelloRead::Incomplete;
        }
        message.extend_from_slice(&rest[5..5 + len]);
        rest = &rest[5 + len..];
        if message.first().is_some_and(|&t| t != 1) {
            return HelloRead::Unreadable; // a handshake, but not a ClientHello
        }
        if message.len() >= 4 {
            let body_len = u32::from_be_bytes([0, message[1], message[2], message[3]]) as usize;
            if body_len > MAX_CLIENT_HELLO {
                return HelloRead::Unreadable;
            }
            if message.len() >= 4 + body_len {
                return match parse_client_hello(&message[4..4 + body_len]) {
                    Some(sni) => HelloRead::Hello(sni),
                    None => HelloRead::Unreadable,
                };
            }
        }
    }
}

/// The host name (SNI) a single-record ClientHello asks for.
pub fn sni_from_client_hello(record: &[u8]) -> Option<String> {
    match read_client_hello_sni(record) {
        HelloRead::Hello(sni) => sni,
        _ => None,
    }
}

/// A ClientHello's body: `Some(name)` or `Some(None)` without SNI; `None` if malformed.
fn parse_client_hello(body: &[u8]) -> Option<Option<String>> {
    let mut p = Parser(body);
    p.skip(2 + 32)?; // client version, random
    let sid = p.u8()? as usize;
    p.skip(sid)?;
    let suites = p.u16()? as usize;
    p.skip(suites)?;
    let comp = p.u8()? as usize;
    p.skip(comp)?;
    if p.0.is_empty() {
        return Some(None);
    }
    let ext_len = p.u16()? as usize;
    let mut exts = Parser(p.take(ext_len)?);
    let mut found = None;
    while let (Some(kind), Some(len)) = (exts.u16(), exts.u16()) {
        let body = exts.take(len as usize)?;
        if kind != 0 {
            continue;
        }
        // A second server_name extension is a handshake no TLS stack accepts.
        if found.is_some() {
            return None;
        }
        let mut names = Parser(body);
        let list_len = names.u16()? as usize;
        let mut list = Parser(names.take(list_len)?);
        let mut name = None;
        while let Some(name_type) = list.u8() {
            let n = list.u16()? as usize;
            let value = list.take(n)?;
            if name_type == 0 && name.is_none() {
                name = Some(std::str::from_utf8(value).ok()?.to_ascii_lowercase());
            }
        }
        found = Some(name);
    }
    Some(found.flatten())
}

struct Parser<'a>(&'a [u8]);

impl<'a> Parser<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_leaf_is_not_a_ca_and_names_the_host() {
        let ca = CertificateAuthority::generate("test").unwrap();
        let leaf = ca.mint_leaf_certificate("x.com", 24).unwrap();
        assert_eq!(leaf.cert.len(), 2);
        let params = CertificateParams::from_ca_cert_der(&leaf.cert[0]).unwrap();
        assert!(matches!(params.is_ca, IsCa::ExplicitNoCa | IsCa::NoCa));
        assert!(params
            .subject_alt_names
            .iter()
            .any(|s| matches!(s, SanType::DnsName(n) if n.as_str() == "x.com")));
    }

    #[test]
    fn written_key_is_private_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::generate("test").unwrap();
        let (cert, key) = ca.write(dir.path()).unwrap();
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = CertificateAuthority::load(&cert, &key).unwrap();
        assert_eq!(again.certificate_der(), ca.certificate_der());
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let err = CertificateAuthority::load(&cert, &key).err().unwrap();
        assert!(err.0.contains("readable by others"), "{err}");
    }

    /// A real ClientHello for `name`, as rustls writes it (one record).
    fn client_hello(name: &str) -> Vec<u8> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let server = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), server).unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        out
    }

    /// The same handshake message split into records of `size` payload bytes.
    fn fragmented(record: &[u8], size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in record[5..].chunks(size) {
            out.extend_from_slice(&[22, record[1], record[2]]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    #[test]
    fn client_hello_names_are_read_across_fragments() {
        let hello = client_hello("x.com");
        assert_eq!(sni_from_client_hello(&hello).as_deref(), Some("x.com"));
        for size in [1, 7, 50, 200] {
            let split = fragmented(&hello, size);
            assert_eq!(
                read_client_hello_sni(&split),
                HelloRead::Hello(Some("x.com".into())),
                "{size}"
            );
            // Every prefix is only a beginning.
            for cut in [1, 5, split.len() / 2, split.len() - 1] {
                assert_eq!(read_client_hello_sni(&split[..cut]), HelloRead::Incomplete);
            }
        }
        assert_eq!(read_client_hello_sni(b"SSH-2.0-x\r\n"), HelloRead::NotTls);
        assert_eq!(
            read_client_hello_sni(b"\x16\x03\x01\x00\x01\x02"),
            HelloRead::Unreadable
        );
    }

    #[test]
    fn resolver_caches() {
        let ca = CertificateAuthority::generate("test").unwrap();
        let r = LeafResolver::new(ca, 2, 24);
        let a = r.certificate_for("x.com").unwrap();
        let b = r.certificate_for("X.com").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}
