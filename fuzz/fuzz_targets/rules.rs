//! The rule loader: arbitrary YAML for a site, a detector file and the policy; no panic,
//! and every rejection is located (FILE:LINE:COL).
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use permeable::engine::policy::{EngineOptions, Policy};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Three files separated by a form feed; missing ones are empty.
    let mut parts = text.splitn(3, '\u{c}');
    let site = parts.next().unwrap_or("");
    let detectors = parts.next().unwrap_or("");
    let policy = parts.next().unwrap_or("");
    let files = vec![
        (PathBuf::from("sites/x.yaml"), site.to_string()),
        (PathBuf::from("detectors/d.yaml"), detectors.to_string()),
        (PathBuf::from("policy.yaml"), policy.to_string()),
    ];
    if let Err(errors) = Policy::from_files(&files, &EngineOptions::default()) {
        let shown = errors.to_string();
        assert!(!shown.is_empty());
    }
});
