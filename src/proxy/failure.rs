//! Why the gateway answered a request itself instead of relaying the site's answer: the
//! client's doing (a request it refuses) or the site's (a connection or answer that
//! failed), with the status the client gets and the reason its page states.

use pingora::{Error, ErrorSource, ErrorType};

use crate::upstream::ResolveError;

/// What went wrong, as counted in `permeable_upstream_errors_total{kind}` and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The request itself is unacceptable (ambiguous framing, a Host that disagrees with
    /// the tunnel, a body longer than announced).
    BadRequest,
    /// The destination is one the gateway does not reach (a non-global address).
    Refused,
    /// Proxy authentication: a challenge, or the directory could not be asked.
    Auth,
    Dns,
    Timeout,
    Connect,
    Tls,
    Protocol,
    Reset,
    Other,
}

impl FailureKind {
    /// The label value (`bad_request`, `dns`, `tls`…).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::BadRequest => "bad_request",
            FailureKind::Refused => "refused",
            FailureKind::Auth => "auth",
            FailureKind::Dns => "dns",
            FailureKind::Timeout => "timeout",
            FailureKind::Connect => "connect",
            FailureKind::Tls => "tls",
            FailureKind::Protocol => "protocol",
            FailureKind::Reset => "reset",
            FailureKind::Other => "other",
        }
    }

    /// Whether the client caused it (a refusal), rather than the site or the way to it.
    pub fn is_clients(self) -> bool {
        matches!(self, FailureKind::BadRequest | FailureKind::Refused)
    }
}

/// A request the gateway answered itself: the status (0 when the client is gone and
/// nothing can be answered), what kind of failure, and the reason its page states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: u16,
    pub kind: FailureKind,
    pub reason: String,
}

impl Failure {
    pub fn new(status: u16, kind: FailureKind, reason: impl Into<String>) -> Failure {
        Failure {
            status,
            kind,
            reason: reason.into(),
        }
    }

    /// A request refused as malformed or self-contradictory: 400.
    pub fn bad_request(reason: impl Into<String>) -> Failure {
        Failure::new(400, FailureKind::BadRequest, reason)
    }
}

impl From<&ResolveError> for Failure {
    fn from(e: &ResolveError) -> Failure {
        let (status, kind) = match e {
            ResolveError::Private(_) => (403, FailureKind::Refused),
            ResolveError::Timeout => (504, FailureKind::Dns),
            ResolveError::NotFound(_) => (502, FailureKind::Dns),
        };
        Failure::new(status, kind, e.to_string())
    }
}

impl From<&Error> for Failure {
    /// What a Pingora error means for the client: the site's failures as 502/504 with a
    /// plain reason, the client's own as 400 (or 0 when its connection is gone).
    fn from(e: &Error) -> Failure {
        use ErrorType::*;
        match e.etype() {
            HTTPStatus(code) => Failure::new(*code, FailureKind::Other, e.to_string()),
            ConnectTimedout | ReadTimedout | WriteTimedout => {
                Failure::new(504, FailureKind::Timeout, "the site did not answer in time")
            }
            ConnectRefused => {
                Failure::new(502, FailureKind::Connect, "the site refused the connection")
            }
            ConnectNoRoute | ConnectError | BindError | SocketError => {
                Failure::new(502, FailureKind::Connect, "cannot connect to the site")
            }
            TLSHandshakeFailure | TLSHandshakeTimedout | InvalidCert | HandshakeError
            | TLSWantX509Lookup => Failure::new(
                502,
                FailureKind::Tls,
                "the site's certificate could not be verified",
            ),
            H2Error | InvalidH2 | H2Downgrade | InvalidHTTPHeader => Failure::new(
                502,
                FailureKind::Protocol,
                "the site sent an invalid response",
            ),
            ConnectionClosed | ReadError | WriteError => {
                if e.esource() == &ErrorSource::Downstream {
                    Failure::new(0, FailureKind::BadRequest, e.to_string())
                } else {
                    Failure::new(502, FailureKind::Reset, "the site closed the connection")
                }
            }
            _ => match e.esource() {
                ErrorSource::Downstream => Failure::bad_request("malformed request"),
                ErrorSource::Upstream => Failure::new(
                    502,
                    FailureKind::Other,
                    "the site's answer could not be relayed",
                ),
                _ => Failure::new(500, FailureKind::Other, "internal error"),
            },
        }
    }
}
