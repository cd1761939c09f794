//! The audit trail: one JSON line per decision other than a plain allow (or every request,
//! when configured), for security staff investigating an incident.
//!
//! An event names who (client address, user — or a keyed hash of the user with
//! `audit.pseudonymise_users` — how they signed in, and group), where (site,
//! activity), what was decided and by which rules, and which categories were found with a
//! keyed hash of each matched value (of its canonical form,
//! [`crate::engine::detect::view::canonical_value`]) — so that repeated leaks of the same
//! secret can be correlated, however it was written — and never the post, a matched value, cookies or authorisation headers.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use parking_lot::Mutex;
use serde::Serialize;

/// Where audit events go.
pub struct Audit {
    sink: Mutex<Option<Box<dyn Write + Send>>>,
    pub all: bool,
}

#[derive(Serialize, Debug)]
pub struct AuditEvent<'a> {
    pub time: String,
    pub request_id: &'a str,
    /// The rule set that decided this request (a reload never changes it mid-request).
    pub rules_version: &'a str,
    pub client: Option<String>,
    /// The user's name; `None` when unknown or pseudonymised.
    pub user: Option<&'a str>,
    /// With `audit.pseudonymise_users`: a keyed hash of the user's name instead (the same
    /// user always gets the same hash, so events can still be correlated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_hash: Option<String>,
    /// How the user was established: `negotiate`, `basic` (proxy authentication) or
    /// `header` (a trusted hop's identity header); `None` when nobody signed in.
    pub auth: Option<&'a str>,
    /// The directory could not be asked, and `auth.on_unavailable: address` let the
    /// request through with its address's group.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub auth_unavailable: bool,
    pub group: &'a str,
    pub site: &'a str,
    pub host: &'a str,
    pub method: &'a str,
    pub activity: &'a str,
    pub action: &'a str,
    /// The decision was a coach and the employee had acknowledged it.
    pub coached_continue: bool,
    pub rule: Option<&'a str>,
    pub matched_rules: Vec<MatchedRule<'a>>,
    pub categories: std::collections::BTreeMap<&'a str, usize>,
    pub value_hashes: Vec<ValueHash<'a>>,
    pub uninspectable: Option<&'a str>,
    pub status: u16,
}

#[derive(Serialize, Debug)]
pub struct MatchedRule<'a> {
    pub id: &'a str,
    pub action: &'a str,
    pub mode: &'a str,
}

#[derive(Serialize, Debug)]
pub struct ValueHash<'a> {
    pub category: &'a str,
    pub detector: &'a str,
    pub hash: &'a str,
}

impl Audit {
    /// `stdout`, `off`, or a file path (appended to).
    pub fn open(output: &str, all: bool) -> std::io::Result<Audit> {
        let sink: Option<Box<dyn Write + Send>> = match output {
            "off" | "" => None,
            "stdout" | "-" => Some(Box::new(std::io::stdout())),
            path => Some(Box::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(Path::new(path))?,
            )),
        };
        Ok(Audit {
            sink: Mutex::new(sink),
            all,
        })
    }

    /// Write one event. A failing sink (full disk) is logged and counted, never fatal.
    pub fn write(&self, event: &AuditEvent<'_>) {
        let mut line = match serde_json::to_vec(event) {
            Ok(l) => l,
            Err(_) => return,
        };
        line.push(b'\n');
        let mut sink = self.sink.lock();
        if let Some(w) = sink.as_mut() {
            if let Err(e) = w.write_all(&line).and_then(|_| w.flush()) {
                tracing::error!(error = %e, "cannot write the audit event");
                crate::metrics::AUDIT_WRITE_ERRORS_TOTAL.inc();
            }
        }
    }
}
