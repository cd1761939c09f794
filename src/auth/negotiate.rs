//! Kerberos through SPNEGO (`Proxy-Authorization: Negotiate <token>`), accepted by the
//! system's GSSAPI (MIT krb5) with the service key from a keytab.
//!
//! Accepting a ticket needs the keytab and nothing else: the KDC is never asked, so a KDC
//! that is down only stops clients from getting new tickets (they then send no
//! credentials and are challenged again). Kerberos through SPNEGO completes in one token;
//! a mechanism that needs more rounds (NTLM wrapped in SPNEGO) is refused.
//!
//! GSSAPI calls block (keytab and replay-cache files): callers run [`Acceptor::accept`] on
//! a blocking thread.

use std::ffi::CString;
use std::path::Path;

use libgssapi::context::{SecurityContext, ServerCtx};
use libgssapi::credential::Cred;

/// Why a service credential could not be had, or a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum NegotiateError {
    #[error("{path}: the keytab path is not usable: it holds a NUL byte")]
    KeytabPath { path: String },
    #[error("cannot use the service key (keytab {keytab}): {error}")]
    Credential { keytab: String, error: String },
    #[error("the ticket was not accepted: {0}")]
    Rejected(String),
    #[error("the Negotiate exchange needs more than one round (not Kerberos)")]
    Incomplete,
    #[error("the ticket is for {got}, not for this gateway's {expected}")]
    WrongService { got: String, expected: String },
}

/// The gateway's side of Kerberos: its service credential.
pub struct Acceptor {
    cred: Cred,
    /// `service/host` or `service/host@REALM` the tickets must be for, when configured.
    principal: Option<String>,
}

/// A client the ticket proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `user@REALM`.
    pub name: String,
    /// The service's realm (the realm of the ticket's target).
    pub service_realm: Option<String>,
}

impl Principal {
    /// The user part; the realm too when it is not the service's own (a user of a trusted
    /// realm is named in full, so that two realms' `alice` stay apart).
    pub fn short_name(&self) -> &str {
        match (self.name.rsplit_once('@'), &self.service_realm) {
            (Some((user, realm)), Some(own)) if realm == own => user,
            _ => &self.name,
        }
    }
}

impl Acceptor {
    /// The acceptor credential from `keytab` (the system default when `None`), checked now
    /// so that a missing or unreadable keytab stops start-up.
    pub fn new(keytab: Option<&Path>, principal: Option<&str>) -> Result<Acceptor, NegotiateError> {
        let cred = acquire(keytab)?;
        Ok(Acceptor {
            cred,
            principal: principal.map(str::to_string),
        })
    }

    /// Accept one SPNEGO token: the client's principal, or why not.
    pub fn accept(&self, token: &[u8]) -> Result<Principal, NegotiateError> {
        let mut ctx = ServerCtx::new(Some(self.cred.clone()));
        ctx.step(token, None)
            .map_err(|e| NegotiateError::Rejected(e.to_string()))?;
        if !ctx.is_complete() {
            return Err(NegotiateError::Incomplete);
        }
        let info = ctx
            .info()
            .map_err(|e| NegotiateError::Rejected(e.to_string()))?;
        let target = info.target_name.to_string();
        if let Some(expected) = &self.principal {
            let matches = if expected.contains('@') {
                target == *expected
            } else {
                target.split('@').next() == Some(expected.as_str())
            };
            if !matches {
                return Err(NegotiateError::WrongService {
                    got: target,
                    expected: expected.clone(),
                });
            }
        }
        Ok(Principal {
            name: info.source_name.to_string(),
            service_realm: target.rsplit_once('@').map(|(_, r)| r.to_string()),
        })
    }
}

/// `gss_acquire_cred_from` with the keytab in the credential store, so that each gateway
/// names its own keytab without the process-wide `KRB5_KTNAME`.
fn acquire(keytab: Option<&Path>) -> Result<Cred, NegotiateError> {
    use libgssapi_sys as sys;
    let shown = keytab.map_or_else(
        || "the system default".to_string(),
        |p| p.display().to_string(),
    );
    let path = match keytab {
        Some(p) => Some(CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| {
            NegotiateError::KeytabPath {
                path: p.display().to_string(),
            }
        })?),
        None => None,
    };
    let key = c"keytab";
    let mut element = sys::gss_key_value_element_desc {
        key: key.as_ptr(),
        value: path.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
    };
    let store = sys::gss_key_value_set_desc {
        count: u32::from(path.is_some()),
        elements: &mut element,
    };
    let mut minor: sys::OM_uint32 = 0;
    let mut cred: sys::gss_cred_id_t = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: `store` and `element` live on this
    // stack frame, `path` outlives the call, a null name and mechanism set ask for the
    // defaults, and the output handle is owned by the returned `Cred`, which releases it.
    let major = unsafe {
        sys::gss_acquire_cred_from(
            &mut minor,
            std::ptr::null_mut(),
            sys::_GSS_C_INDEFINITE,
            std::ptr::null_mut(),
            sys::GSS_C_ACCEPT as sys::gss_cred_usage_t,
            &store,
            &mut cred,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if major != sys::GSS_S_COMPLETE || cred.is_null() {
        let error = libgssapi::error::Error {
            major: libgssapi::error::MajorFlags::from_bits_retain(major),
            minor,
        };
        return Err(NegotiateError::Credential {
            keytab: shown,
            error: error.to_string(),
        });
    }
    // SAFETY: a credential handle just returned by GSSAPI, owned from here on.
    Ok(unsafe { Cred::from_c(cred) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_of_the_service_realm_are_named_without_it() {
        let p = |name: &str| Principal {
            name: name.into(),
            service_realm: Some("EXAMPLE.COM".into()),
        };
        assert_eq!(p("alice@EXAMPLE.COM").short_name(), "alice");
        assert_eq!(
            p("alice@PARTNER.EXAMPLE").short_name(),
            "alice@PARTNER.EXAMPLE"
        );
    }

    #[test]
    fn a_missing_keytab_stops_start_up_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.keytab");
        match Acceptor::new(Some(&path), None) {
            Err(e @ NegotiateError::Credential { .. }) => {
                assert!(e.to_string().contains("absent.keytab"), "{e}")
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a credential from a keytab that does not exist"),
        }
    }
}
