//! Rule reloads: SIGHUP, a change under the rules directory, or `POST /-/reload`.
//!
//! A reload compiles the new rule set off the request path and swaps it atomically; a
//! request keeps the policy it started with. A rule set that fails to compile is rejected
//! with its located errors and the running one stays; the failure shows in `/readyz`, the
//! log and `permeable_rules_reloads_total{result="failure"}`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::engine::policy::{EngineOptions, Policy, RuleErrors};
use crate::metrics;

/// Where the rules come from.
#[derive(Debug, Clone)]
pub enum RulesSource {
    Dir(PathBuf),
    /// The copy built into the binary.
    Builtin,
}

impl RulesSource {
    pub fn describe(&self) -> String {
        match self {
            RulesSource::Dir(d) => d.display().to_string(),
            RulesSource::Builtin => "built-in rules".into(),
        }
    }

    pub fn load(&self, opts: &EngineOptions) -> Result<Policy, RuleErrors> {
        match self {
            RulesSource::Dir(dir) => Policy::load(dir, opts),
            RulesSource::Builtin => Policy::from_files(&builtin_rule_files(), opts),
        }
    }
}

include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));

/// The rule files built into the binary, relative to the rules directory.
pub fn builtin_rule_files() -> Vec<(PathBuf, String)> {
    BUILTIN_RULES
        .iter()
        .map(|(p, t)| (PathBuf::from(p), (*t).to_string()))
        .collect()
}

/// Why a reload did not happen: the rules do not compile, or compiling them failed.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Rules(RuleErrors),
    #[error("reload task failed: {0}")]
    Task(String),
}

/// Compiles and swaps rule sets; remembers the last failure for `/readyz`.
pub struct Reloader {
    /// The live rule set, shared with the proxy.
    pub policy: Arc<ArcSwap<Policy>>,
    pub source: RulesSource,
    pub opts: EngineOptions,
    pub last_error: Mutex<Option<String>>,
    lock: tokio::sync::Mutex<()>,
}

impl Reloader {
    pub fn new(policy: Arc<ArcSwap<Policy>>, source: RulesSource, opts: EngineOptions) -> Reloader {
        Reloader {
            policy,
            source,
            opts,
            last_error: Mutex::new(None),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Compile the rules again and swap them in. Returns the new version, or the errors.
    pub async fn reload(&self, why: &str) -> Result<String, ReloadError> {
        let _one_at_a_time = self.lock.lock().await;
        let source = self.source.clone();
        let opts = self.opts.clone();
        let compiled = tokio::task::spawn_blocking(move || source.load(&opts))
            .await
            .map_err(|e| ReloadError::Task(e.to_string()))?;
        match compiled {
            Ok(policy) => {
                let version = policy.version().to_string();
                let previous = self.policy.load().version().to_string();
                self.policy.store(Arc::new(policy));
                metrics::record_reload_success(&version);
                *self.last_error.lock() = None;
                tracing::info!(trigger = why, from = %previous, to = %version, "rules reloaded");
                Ok(version)
            }
            Err(errors) => {
                metrics::record_reload_failure();
                let text = errors.to_string();
                tracing::error!(trigger = why, errors = %text, "rules rejected; the running rules stay");
                *self.last_error.lock() = Some(text);
                Err(ReloadError::Rules(errors))
            }
        }
    }

    /// Reload on SIGHUP.
    pub fn spawn_signal_handler(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                tracing::warn!("cannot listen for SIGHUP");
                return;
            };
            while hup.recv().await.is_some() {
                let _ = me.reload("SIGHUP").await;
            }
        });
    }

    /// Reload when files under the rules directory change (debounced).
    pub fn spawn_watcher(self: &Arc<Self>) {
        let RulesSource::Dir(dir) = &self.source else {
            return;
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let watcher = watch_dir(dir, tx);
        let dir = dir.clone();
        let me = self.clone();
        tokio::spawn(async move {
            let _keep = watcher;
            while rx.recv().await.is_some() {
                // Editors and `cp` write in several steps: wait until the files have stopped
                // changing, so that a half-written file is never compiled (a truncated rule
                // set can be valid YAML and silently drop rules).
                let mut seen = None;
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    while rx.try_recv().is_ok() {}
                    let now = fingerprint(&dir);
                    if seen.as_ref() == Some(&now) {
                        break;
                    }
                    seen = Some(now);
                }
                let _ = me.reload("rules changed").await;
            }
        });
    }
}

/// Names, sizes and modification times of every file under `dir`: equal fingerprints a
/// few hundred milliseconds apart mean nobody is writing.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(path),
                Ok(m) => out.push((path, m.len(), m.modified().ok())),
                Err(_) => {}
            }
        }
    }
    out.sort();
    out
}

fn watch_dir(
    dir: &Path,
    tx: tokio::sync::mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(e) = event {
            if !e.kind.is_access() {
                let _ = tx.send(());
            }
        }
    })
    .map_err(|e| tracing::warn!(error = %e, "cannot watch the rules directory"))
    .ok()?;
    watcher
        .watch(dir, RecursiveMode::Recursive)
        .map_err(|e| tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the rules directory"))
        .ok()?;
    Some(watcher)
}
