//! The directory (LDAP: OpenLDAP, Active Directory): checks a password by binding as the
//! user, and reads a user's name and groups.
//!
//! Every connection is TLS (`ldaps://`, or `ldap://` with StartTLS: the configuration
//! refuses anything else), verified against the system roots plus `auth.ldap.ca_file`. A
//! question opens its own connection and closes it: the cache in front of the directory
//! keeps questions rare, and nothing is left half-bound between two users.
//!
//! - Password (Basic): the user's DN from the template, or found by a search under the
//!   service account (`bind_dn`, anonymous without one); then a bind as that DN with the
//!   password; then the user's own entry read under that bind (name and groups).
//! - Groups of a Kerberos user (Negotiate): the same DN, read under the service account.
//!
//! An empty password is refused before the directory is asked: many servers take a
//! bind with an empty password as an anonymous bind, which "succeeds".

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};

use crate::config::LdapConfig;

/// Why the directory was not usable at start-up.
#[derive(Debug, thiserror::Error)]
pub enum DirectorySetupError {
    #[error("{path}: cannot read auth.ldap.{key}: {error}")]
    Read {
        path: String,
        key: &'static str,
        error: std::io::Error,
    },
    #[error("{path}: auth.ldap.ca_file holds no usable PEM certificate")]
    CaFile { path: String },
    #[error("auth.ldap: cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// What a question to the directory came to.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DirectoryError {
    /// The password is wrong (or empty, or the account is locked: the directory says so
    /// as invalid credentials).
    #[error("the directory rejected the credentials")]
    Rejected,
    #[error("the directory knows no such user")]
    NoSuchUser,
    #[error("the user name matches several directory entries")]
    Ambiguous,
    /// No answer, or an answer that is not about the user (TLS, timeouts, the server
    /// busy or refusing the service account).
    #[error("the directory is unavailable: {0}")]
    Unavailable(String),
}

/// A user as the directory describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    /// The user's name as the directory spells it (`name_attribute`).
    pub name: String,
    pub dn: String,
    /// DNs of the user's groups.
    pub groups: Vec<String>,
}

enum UserLocator {
    Template(String),
    Search { base: String, filter: String },
}

pub struct Directory {
    url: String,
    starttls: bool,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
    service: Option<(String, String)>,
    user: UserLocator,
    name_attribute: String,
    group_attribute: String,
    group_search: Option<(String, String)>,
}

/// Characters a user name may not hold: they have no place in a login and would only
/// serve to confuse filters, DNs or logs (escaping covers the rest).
fn plausible_login(login: &str) -> bool {
    !login.is_empty() && login.len() <= 256 && !login.chars().any(char::is_control)
}

impl Directory {
    pub fn new(config: &LdapConfig) -> Result<Directory, DirectorySetupError> {
        let service = match (&config.bind_dn, &config.bind_password_file) {
            (Some(dn), Some(file)) => {
                let password = read(file, "bind_password_file")?;
                Some((
                    dn.clone(),
                    password.trim_end_matches(['\r', '\n']).to_string(),
                ))
            }
            _ => None,
        };
        let user = match (&config.user_dn, &config.user_base, &config.user_filter) {
            (Some(template), _, _) => UserLocator::Template(template.clone()),
            (None, Some(base), Some(filter)) => UserLocator::Search {
                base: base.clone(),
                filter: filter.clone(),
            },
            // The configuration's validation requires one of the two.
            _ => UserLocator::Search {
                base: String::new(),
                filter: "(uid={user})".into(),
            },
        };
        Ok(Directory {
            url: config.url.clone(),
            starttls: config.starttls,
            tls: tls_config(config.ca_file.as_deref())?,
            timeout: Duration::from_millis(config.timeout_ms.max(1)),
            service,
            user,
            name_attribute: config.name_attribute.clone(),
            group_attribute: config.group_attribute.clone(),
            group_search: config.group_base.clone().zip(config.group_filter.clone()),
        })
    }

    /// Check `password` by binding as `login`; the user's name and groups when it holds.
    pub async fn verify_password(
        &self,
        login: &str,
        password: &str,
    ) -> Result<DirectoryUser, DirectoryError> {
        if password.is_empty() || !plausible_login(login) {
            return Err(DirectoryError::Rejected);
        }
        self.bounded(async {
            let mut ldap = self.connect().await?;
            let dn = match &self.user {
                UserLocator::Template(t) => t.replace("{user}", &ldap3::dn_escape(login)),
                UserLocator::Search { .. } => {
                    self.bind_service(&mut ldap).await?;
                    self.find_user(&mut ldap, login, login).await?
                }
            };
            let bound = ldap
                .with_timeout(self.timeout)
                .simple_bind(&dn, password)
                .await
                .map_err(unavailable)?;
            match bound.rc {
                0 => {}
                // invalidCredentials: a wrong password, or no such DN (a template names
                // DNs that may not exist, and servers answer alike so as not to tell).
                49 => return Err(DirectoryError::Rejected),
                rc => return Err(result_unavailable("bind", rc, &bound.text)),
            }
            let user = self.read_user(&mut ldap, &dn, login).await;
            let _ = ldap.unbind().await;
            user
        })
        .await
    }

    /// A Kerberos user's directory entry: `user` is the principal's user part, `principal`
    /// the whole of it.
    pub async fn lookup(
        &self,
        user: &str,
        principal: &str,
    ) -> Result<DirectoryUser, DirectoryError> {
        if !plausible_login(user) {
            return Err(DirectoryError::NoSuchUser);
        }
        self.bounded(async {
            let mut ldap = self.connect().await?;
            self.bind_service(&mut ldap).await?;
            let dn = match &self.user {
                UserLocator::Template(t) => t.replace("{user}", &ldap3::dn_escape(user)),
                UserLocator::Search { .. } => self.find_user(&mut ldap, user, principal).await?,
            };
            let found = self.read_user(&mut ldap, &dn, user).await;
            let _ = ldap.unbind().await;
            found
        })
        .await
    }

    /// Each question as a whole gets a few operation timeouts, whatever happens inside.
    async fn bounded<T>(
        &self,
        question: impl std::future::Future<Output = Result<T, DirectoryError>>,
    ) -> Result<T, DirectoryError> {
        tokio::time::timeout(self.timeout * 4, question)
            .await
            .unwrap_or_else(|_| Err(DirectoryError::Unavailable("no answer in time".into())))
    }

    async fn connect(&self) -> Result<ldap3::Ldap, DirectoryError> {
        // The socket is opened here so that it can have TCP_NODELAY: LDAP's small
        // request-answer turns (StartTLS, the handshake, bind, search) otherwise wait on
        // Nagle's algorithm and delayed ACKs, about 40 ms per question.
        let (host, port) = host_port(&self.url).ok_or_else(|| {
            DirectoryError::Unavailable(format!("no host in the directory URL {}", self.url))
        })?;
        let tcp = tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect((host, port)))
            .await
            .map_err(|_| DirectoryError::Unavailable("connecting timed out".into()))?
            .map_err(|e| DirectoryError::Unavailable(format!("cannot connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let tcp = tcp
            .into_std()
            .map_err(|e| DirectoryError::Unavailable(e.to_string()))?;
        let settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout)
            .set_config(self.tls.clone())
            .set_starttls(self.starttls)
            .set_std_stream(ldap3::StdStream::Tcp(tcp));
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &self.url)
            .await
            .map_err(unavailable)?;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "directory connection ended");
            }
        });
        Ok(ldap)
    }

    async fn bind_service(&self, ldap: &mut ldap3::Ldap) -> Result<(), DirectoryError> {
        let Some((dn, password)) = &self.service else {
            return Ok(()); // anonymous
        };
        let bound = ldap
            .with_timeout(self.timeout)
            .simple_bind(dn, password)
            .await
            .map_err(unavailable)?;
        match bound.rc {
            0 => Ok(()),
            // The service account itself is refused: nobody can be checked until that is
            // fixed, which is an outage, not a user's wrong password.
            rc => Err(result_unavailable("service account bind", rc, &bound.text)),
        }
    }

    async fn find_user(
        &self,
        ldap: &mut ldap3::Ldap,
        user: &str,
        principal: &str,
    ) -> Result<String, DirectoryError> {
        let UserLocator::Search { base, filter } = &self.user else {
            return Err(DirectoryError::NoSuchUser);
        };
        let filter = filter
            .replace("{user}", &ldap3::ldap_escape(user))
            .replace("{principal}", &ldap3::ldap_escape(principal));
        let entries = self
            .search(
                ldap,
                base,
                Scope::Subtree,
                &filter,
                vec!["1.1"],
                "user search",
            )
            .await?;
        let mut dns = entries.into_iter().map(|e| SearchEntry::construct(e).dn);
        match (dns.next(), dns.next()) {
            (Some(dn), None) => Ok(dn),
            (None, _) => Err(DirectoryError::NoSuchUser),
            (Some(_), Some(_)) => Err(DirectoryError::Ambiguous),
        }
    }

    /// The entries of a search under the connection's current bind; `noSuchObject` (32)
    /// means the user is not there, any other failure that the directory is unavailable
    /// (`what` names the step in the log).
    async fn search(
        &self,
        ldap: &mut ldap3::Ldap,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: Vec<&str>,
        what: &str,
    ) -> Result<Vec<ldap3::ResultEntry>, DirectoryError> {
        let found = ldap
            .with_timeout(self.timeout)
            .search(base, scope, filter, attrs)
            .await
            .map_err(unavailable)?;
        let (entries, result) = (found.0, found.1);
        match result.rc {
            0 => Ok(entries),
            32 => Err(DirectoryError::NoSuchUser),
            rc => Err(result_unavailable(what, rc, &result.text)),
        }
    }

    /// The user's name and groups, read under the connection's current bind.
    async fn read_user(
        &self,
        ldap: &mut ldap3::Ldap,
        dn: &str,
        login: &str,
    ) -> Result<DirectoryUser, DirectoryError> {
        let attrs = vec![self.name_attribute.as_str(), self.group_attribute.as_str()];
        let entries = self
            .search(ldap, dn, Scope::Base, "(objectClass=*)", attrs, "user read")
            .await?;
        let Some(entry) = entries.into_iter().next().map(SearchEntry::construct) else {
            return Err(DirectoryError::NoSuchUser);
        };
        let values = |name: &str| {
            entry
                .attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let name = values(&self.name_attribute)
            .into_iter()
            .next()
            .unwrap_or_else(|| login.to_string());
        let groups = match &self.group_search {
            None => values(&self.group_attribute),
            Some((base, filter)) => {
                let filter = filter
                    .replace("{dn}", &ldap3::ldap_escape(&entry.dn))
                    .replace("{user}", &ldap3::ldap_escape(&name));
                let found = ldap
                    .with_timeout(self.timeout)
                    .search(base, Scope::Subtree, &filter, vec!["1.1"])
                    .await
                    .map_err(unavailable)?;
                if found.1.rc != 0 && found.1.rc != 32 {
                    return Err(result_unavailable(
                        "group search",
                        found.1.rc,
                        &found.1.text,
                    ));
                }
                found
                    .0
                    .into_iter()
                    .map(|e| SearchEntry::construct(e).dn)
                    .collect()
            }
        };
        Ok(DirectoryUser {
            name,
            dn: entry.dn,
            groups,
        })
    }
}

/// Host and port of an `ldap://` or `ldaps://` URL (the configuration allows no other).
fn host_port(url: &str) -> Option<(&str, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let default = if scheme.eq_ignore_ascii_case("ldaps") {
        636
    } else {
        389
    };
    let authority = rest.split(['/', '?']).next()?;
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default,
    };
    (!host.is_empty()).then_some((host, port))
}

fn unavailable(e: ldap3::LdapError) -> DirectoryError {
    DirectoryError::Unavailable(e.to_string())
}

fn result_unavailable(what: &str, rc: u32, text: &str) -> DirectoryError {
    DirectoryError::Unavailable(format!("{what}: LDAP result {rc} {text}"))
}

fn read(path: &Path, key: &'static str) -> Result<String, DirectorySetupError> {
    std::fs::read_to_string(path).map_err(|error| DirectorySetupError::Read {
        path: path.display().to_string(),
        key,
        error,
    })
}

/// TLS to the directory: the system roots and `ca_file`, with ring as everywhere else.
fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, DirectorySetupError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let text = read(path, "ca_file")?;
        let certs: Vec<_> = rustls_pemfile::certs(&mut text.as_bytes()).collect();
        let shown = || DirectorySetupError::CaFile {
            path: path.display().to_string(),
        };
        if certs.is_empty() {
            return Err(shown());
        }
        for cert in certs {
            roots.add(cert.map_err(|_| shown())?).map_err(|_| shown())?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A DN in a form two spellings of the same DN share: lower case, no spaces around the
/// separators (`CN=Eng, OU=Groups` and `cn=eng,ou=groups` are one group).
pub fn normalise_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    for part in dn.split(',') {
        if !out.is_empty() {
            out.push(',');
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push_str(&k.trim().to_lowercase());
        if part.contains('=') {
            out.push('=');
            out.push_str(&v.trim().to_lowercase());
        }
    }
    out
}

/// The distinct normalised DNs of `groups`.
pub fn group_set(groups: &[String]) -> HashSet<String> {
    groups.iter().map(|g| normalise_dn(g)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_urls() {
        assert_eq!(
            host_port("ldaps://dc.example.com"),
            Some(("dc.example.com", 636))
        );
        assert_eq!(host_port("ldap://dc:3890/"), Some(("dc", 3890)));
        assert_eq!(host_port("ldap://[::1]:389"), Some(("::1", 389)));
        assert_eq!(host_port("ldaps://"), None);
    }

    #[test]
    fn dns_compare_in_one_spelling() {
        assert_eq!(
            normalise_dn("CN=Engineering, OU=Groups,DC=Example, DC=com"),
            "cn=engineering,ou=groups,dc=example,dc=com"
        );
    }

    #[tokio::test]
    async fn an_empty_password_is_refused_without_asking_the_directory() {
        // The URL points nowhere: were the directory asked, this would be Unavailable.
        let config = LdapConfig {
            url: "ldaps://127.0.0.1:1".into(),
            user_dn: Some("uid={user},dc=example,dc=com".into()),
            ..LdapConfig::default()
        };
        let directory = Directory::new(&config).unwrap();
        for (user, password) in [("alice", ""), ("", "pw"), ("ali\nce", "pw")] {
            assert!(matches!(
                directory.verify_password(user, password).await,
                Err(DirectoryError::Rejected)
            ));
        }
        assert!(matches!(
            directory.verify_password("alice", "pw").await,
            Err(DirectoryError::Unavailable(_))
        ));
    }
}
