//! Who is behind a request on the explicit proxy: proxy authentication, built once from
//! `auth:` and used by both places that read a request head there — the front door for
//! `CONNECT` (`proxy::front`) and the pipeline for absolute-form requests
//! (`proxy::Gateway::request_filter`).
//!
//! # Per connection
//! A connection that authenticates on its `CONNECT` or its first request stays
//! authenticated for its life: the identity is kept in the connection's
//! [`crate::proxy::front::ConnInfo`], later requests on it need no header, and the
//! requests inside an intercepted tunnel are the tunnel's user's. Negotiate is
//! connection-oriented in just this way.
//!
//! # Methods
//! - `Negotiate` ([`negotiate`]): Kerberos through SPNEGO, the single sign-on of
//!   domain-joined machines, accepted with the service keytab alone.
//! - `Basic`: a user name and password, checked by binding to the directory as the user
//!   ([`directory`]), over LDAPS or StartTLS.
//!
//! # Groups
//! The user's directory groups (`memberOf`, or a group search) are mapped to policy groups
//! by `auth.groups`, the first listed mapping that matches winning. Answers are cached
//! ([`cache`]): a verified password (keyed by the user and a keyed hash of the password,
//! never the password) or a Kerberos user's groups for `auth.cache_ttl_seconds`, a wrong
//! password for `auth.negative_ttl_seconds`, at most `auth.cache_size` of each, with one
//! directory question per key at a time.
//!
//! # When the directory cannot answer
//! `auth.on_unavailable: refuse` answers 503 with a page saying so; `address` lets the
//! connection through with the group of its address (a Kerberos user stays named, since
//! the ticket proved who they are; a Basic user does not, since the password could not be
//! checked). Either way it is counted as `permeable_auth_total{result="unavailable"}`.
//!
//! Nothing here logs or keeps a credential: passwords and tokens live only as long as
//! the check, and errors name the method and the reason.

pub mod cache;
pub mod directory;
pub mod negotiate;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::{AuthConfig, AuthMethod, OnUnavailable};
use crate::metrics;
use directory::{Directory, DirectoryError, DirectorySetupError, DirectoryUser};
use negotiate::{Acceptor, NegotiateError, Principal};

/// Why authentication could not be set up; start-up stops with it.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("auth.negotiate: {0}")]
    Negotiate(#[from] NegotiateError),
    #[error(transparent)]
    Directory(#[from] DirectorySetupError),
}

/// Who a connection belongs to, once it has authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user's name as the directory spells it (a Kerberos user without a directory
    /// entry: the principal, realm removed when it is the gateway's). `None` when the
    /// directory was unavailable and a Basic user could not be checked.
    pub user: Option<String>,
    /// The policy group from the user's directory groups, when one is mapped.
    pub group: Option<String>,
    pub method: AuthMethod,
    /// The directory could not be asked and `on_unavailable: address` let it through.
    pub degraded: bool,
}

impl Identity {
    /// How the identity was established, as the audit trail says it.
    pub fn method_name(&self) -> &'static str {
        match self.method {
            AuthMethod::Negotiate => "negotiate",
            AuthMethod::Basic => "basic",
        }
    }
}

/// What a request's credentials came to.
#[derive(Debug)]
pub enum Verdict {
    Identified(Arc<Identity>),
    /// Ask again: 407 with the challenges. The reason is for the page and the log.
    Challenge(&'static str),
    /// The directory cannot answer and `on_unavailable: refuse`: 503.
    Unavailable,
}

/// The key of a checked password: the user name as sent and a keyed hash of the password
/// (the key is the process's own, so the cache holds nothing a password can be read from).
type PasswordKey = (String, [u8; 32]);
type Looked = Result<Arc<DirectoryUser>, DirectoryError>;

pub struct Authenticator {
    methods: Vec<AuthMethod>,
    challenges: Vec<String>,
    on_unavailable: OnUnavailable,
    ttl: Duration,
    negative_ttl: Duration,
    acceptor: Option<Arc<Acceptor>>,
    directory: Option<Directory>,
    /// (normalised directory DN, policy group), in the configuration's order.
    mapping: Vec<(String, String)>,
    passwords: cache::Cache<PasswordKey, Looked>,
    principals: cache::Cache<String, Looked>,
    password_key: [u8; 32],
}

impl Authenticator {
    /// `None` when `auth.methods` is empty: the gateway asks nobody to authenticate.
    pub fn from_config(config: &AuthConfig) -> Result<Option<Authenticator>, AuthSetupError> {
        if config.methods.is_empty() {
            return Ok(None);
        }
        let acceptor = if config.methods.contains(&AuthMethod::Negotiate) {
            Some(Arc::new(Acceptor::new(
                config.negotiate.keytab.as_deref(),
                config.negotiate.principal.as_deref(),
            )?))
        } else {
            None
        };
        let directory = config.ldap.as_ref().map(Directory::new).transpose()?;
        let realm = config.basic_realm.replace(['"', '\\'], "");
        let challenges = config
            .methods
            .iter()
            .map(|m| match m {
                AuthMethod::Negotiate => "Negotiate".to_string(),
                AuthMethod::Basic => format!("Basic realm=\"{realm}\", charset=\"UTF-8\""),
            })
            .collect();
        let mut password_key = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut password_key[..]);
        Ok(Some(Authenticator {
            methods: config.methods.clone(),
            challenges,
            on_unavailable: config.on_unavailable,
            ttl: Duration::from_secs(config.cache_ttl_seconds),
            negative_ttl: Duration::from_secs(config.negative_ttl_seconds),
            acceptor,
            directory,
            mapping: config
                .groups
                .iter()
                .map(|m| (directory::normalise_dn(&m.directory), m.group.clone()))
                .collect(),
            passwords: cache::Cache::new(config.cache_size),
            principals: cache::Cache::new(config.cache_size),
            password_key,
        }))
    }

    /// `Proxy-Authenticate` values, one per method, in the configured order.
    pub fn challenges(&self) -> &[String] {
        &self.challenges
    }

    /// Check a request's `Proxy-Authorization` value (`None`: it sent none).
    pub async fn authenticate(&self, header: Option<&[u8]>) -> Verdict {
        let Some(value) = header.and_then(|h| std::str::from_utf8(h).ok()) else {
            count("none", "challenged");
            return Verdict::Challenge(if header.is_some() {
                "the credentials could not be read"
            } else {
                "sign-in required"
            });
        };
        let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        let credentials = credentials.trim();
        if scheme.eq_ignore_ascii_case("negotiate") && self.methods.contains(&AuthMethod::Negotiate)
        {
            self.negotiate(credentials).await
        } else if scheme.eq_ignore_ascii_case("basic") && self.methods.contains(&AuthMethod::Basic)
        {
            self.basic(credentials).await
        } else {
            count("none", "challenged");
            Verdict::Challenge("this sign-in method is not offered here")
        }
    }

    async fn negotiate(&self, token: &str) -> Verdict {
        let Some(acceptor) = self.acceptor.clone() else {
            return Verdict::Challenge("this sign-in method is not offered here");
        };
        let Ok(token) = base64::engine::general_purpose::STANDARD.decode(token) else {
            return self.failed("negotiate", "the Negotiate token is not base64");
        };
        let accepted = tokio::task::spawn_blocking(move || acceptor.accept(&token)).await;
        let principal = match accepted {
            Ok(Ok(principal)) => principal,
            Ok(Err(e)) => {
                tracing::info!(method = "negotiate", error = %e, "proxy authentication failed");
                return self.failed("negotiate", "the Kerberos ticket was not accepted");
            }
            Err(e) => {
                tracing::error!(method = "negotiate", error = %e, "ticket check did not complete");
                return self.failed("negotiate", "the Kerberos ticket could not be checked");
            }
        };
        let Some(directory) = &self.directory else {
            count("negotiate", "success");
            return self.identified(
                principal.short_name().to_string(),
                &[],
                AuthMethod::Negotiate,
            );
        };
        let looked = self
            .principals
            .get_or_fetch(principal.name.clone(), || {
                self.ask_for_groups(directory, &principal)
            })
            .await;
        match looked {
            Ok(user) => {
                count("negotiate", "success");
                self.identified(user.name.clone(), &user.groups, AuthMethod::Negotiate)
            }
            // A valid ticket for a user the directory does not list: named, no groups.
            Err(
                DirectoryError::NoSuchUser | DirectoryError::Ambiguous | DirectoryError::Rejected,
            ) => {
                count("negotiate", "success");
                self.identified(
                    principal.short_name().to_string(),
                    &[],
                    AuthMethod::Negotiate,
                )
            }
            Err(DirectoryError::Unavailable(_)) => {
                // The ticket proved who this is; only the groups are missing.
                self.unavailable("negotiate", Some(principal.short_name().to_string()))
            }
        }
    }

    async fn ask_for_groups(
        &self,
        directory: &Directory,
        principal: &Principal,
    ) -> (Looked, Option<Duration>) {
        let looked = directory
            .lookup(principal.short_name(), &principal.name)
            .await
            .map(Arc::new);
        self.keep(looked)
    }

    async fn basic(&self, credentials: &str) -> Verdict {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials)
            .ok()
            .and_then(|d| String::from_utf8(d).ok());
        let Some((login, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
            return self.failed("basic", "the Basic credentials are malformed");
        };
        let Some(directory) = &self.directory else {
            return self.failed("basic", "this sign-in method is not offered here");
        };
        if login.is_empty() || password.is_empty() {
            return self.failed("basic", "a user name and a password are both required");
        }
        let key = (login.to_string(), self.password_hash(password));
        let looked = self
            .passwords
            .get_or_fetch(key, || async {
                let looked = directory
                    .verify_password(login, password)
                    .await
                    .map(Arc::new);
                self.keep(looked)
            })
            .await;
        match looked {
            Ok(user) => {
                count("basic", "success");
                self.identified(user.name.clone(), &user.groups, AuthMethod::Basic)
            }
            Err(DirectoryError::Unavailable(_)) => self.unavailable("basic", None),
            Err(_) => self.failed("basic", "the user name or password is not right"),
        }
    }

    /// Counts a directory question and says how long its answer holds.
    fn keep(&self, looked: Looked) -> (Looked, Option<Duration>) {
        match &looked {
            Ok(_) => {
                count_lookup("success");
                (looked, Some(self.ttl))
            }
            Err(DirectoryError::Unavailable(reason)) => {
                count_lookup("unavailable");
                tracing::warn!(error = %reason, "the directory did not answer");
                (looked, None)
            }
            Err(_) => {
                count_lookup("failure");
                (looked, Some(self.negative_ttl))
            }
        }
    }

    fn password_hash(&self, password: &str) -> [u8; 32] {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.password_key) else {
            return [0; 32];
        };
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn identified(&self, user: String, groups: &[String], method: AuthMethod) -> Verdict {
        Verdict::Identified(Arc::new(Identity {
            user: Some(user),
            group: self.policy_group(groups),
            method,
            degraded: false,
        }))
    }

    fn failed(&self, method: &'static str, reason: &'static str) -> Verdict {
        count(method, "failure");
        tracing::debug!(method, reason, "proxy authentication refused");
        Verdict::Challenge(reason)
    }

    fn unavailable(&self, method: &'static str, user: Option<String>) -> Verdict {
        count(method, "unavailable");
        match self.on_unavailable {
            OnUnavailable::Refuse => Verdict::Unavailable,
            OnUnavailable::Address => Verdict::Identified(Arc::new(Identity {
                user,
                group: None,
                method: if method == "negotiate" {
                    AuthMethod::Negotiate
                } else {
                    AuthMethod::Basic
                },
                degraded: true,
            })),
        }
    }

    /// The first configured mapping whose directory group the user is in.
    fn policy_group(&self, groups: &[String]) -> Option<String> {
        if self.mapping.is_empty() || groups.is_empty() {
            return None;
        }
        let have = directory::group_set(groups);
        self.mapping
            .iter()
            .find(|(dn, _)| have.contains(dn))
            .map(|(_, group)| group.clone())
    }
}

fn count(method: &str, result: &str) {
    metrics::AUTH_TOTAL
        .with_label_values(&[method, result])
        .inc();
}

fn count_lookup(result: &str) {
    metrics::AUTH_DIRECTORY_LOOKUPS_TOTAL
        .with_label_values(&[result])
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GroupMapping, LdapConfig};

    fn basic_only() -> Authenticator {
        let config = AuthConfig {
            methods: vec![AuthMethod::Basic],
            ldap: Some(LdapConfig {
                url: "ldaps://127.0.0.1:1".into(),
                user_dn: Some("uid={user},dc=example,dc=com".into()),
                timeout_ms: 200,
                ..LdapConfig::default()
            }),
            groups: vec![
                GroupMapping {
                    directory: "cn=communications,ou=groups,dc=example,dc=com".into(),
                    group: "communications".into(),
                },
                GroupMapping {
                    directory: "CN=Engineering, OU=Groups, DC=example, DC=com".into(),
                    group: "engineering".into(),
                },
            ],
            ..AuthConfig::default()
        };
        match Authenticator::from_config(&config) {
            Ok(Some(a)) => a,
            _ => panic!("an authenticator"),
        }
    }

    #[tokio::test]
    async fn requests_without_usable_credentials_are_challenged() {
        let auth = basic_only();
        assert_eq!(
            auth.challenges(),
            ["Basic realm=\"permeable\", charset=\"UTF-8\""]
        );
        for header in [
            None,
            Some(&b"Negotiate YWJj"[..]), // not offered here
            Some(b"Basic !!!"),
            Some(b"Basic YWxpY2U="),     // "alice": no colon
            Some(b"Basic YWxpY2U6"),     // "alice:": no password
            Some(b"Basic OnNlY3JldA=="), // ":secret": no user
        ] {
            assert!(
                matches!(auth.authenticate(header).await, Verdict::Challenge(_)),
                "{header:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_unreachable_directory_refuses_by_default() {
        let auth = basic_only();
        // "alice:pw", and the directory's address has nobody listening.
        let verdict = auth.authenticate(Some(b"Basic YWxpY2U6cHc=")).await;
        assert!(matches!(verdict, Verdict::Unavailable), "{verdict:?}");
    }

    #[test]
    fn the_first_listed_mapping_wins_whatever_the_dn_spelling() {
        let auth = basic_only();
        let groups = |g: &[&str]| g.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            auth.policy_group(&groups(&[
                "cn=engineering,ou=groups,dc=example,dc=com",
                "cn=Communications,ou=Groups,dc=example,dc=com",
            ])),
            Some("communications".into())
        );
        assert_eq!(
            auth.policy_group(&groups(&["cn=engineering,ou=groups,dc=example,dc=com"])),
            Some("engineering".into())
        );
        assert_eq!(
            auth.policy_group(&groups(&["cn=other,dc=example,dc=com"])),
            None
        );
    }
}
