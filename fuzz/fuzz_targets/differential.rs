//! Differential: the engine's reading of a write request against independent readings of
//! what it lets through. The input is `METHOD TARGET\nCONTENT-TYPE\nBODY`; the rules block
//! an AWS key or a codename anywhere in a write (the safety net) and name a few content
//! fields. Whatever the gateway forwards, no reading a site could make of it (the raw
//! bytes, the percent-decoded form or query, the strings of the JSON) holds either: a
//! crash here is a parser differential that lets a secret out.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use permeable::engine::policy::{Action, EngineOptions, Policy, RequestHead};

const SITE: &str = r#"
site: x
name: X (fuzz)
domains: [x.com]
method_aliases: { PATCH: [PUT] }
activities:
  - activity: message
    method: POST
    path: '^/post$'
    json: { /visibility: '^direct$' }
    content: [ { json: /text }, { form: text }, { multipart: text } ]
  - activity: post
    method: [POST, PUT]
    path: '^/post(?:/\d+)?$'
    content: [ { json: /text }, { json: /poll/options/* }, { form: text } ]
  - activity: react
    method: POST
    path: '^/like$'
  - activity: view
    method: [GET, HEAD]
"#;

const POLICY_YAML: &str = r#"
rules:
  - id: block-aws
    when: { categories: [secret.aws_access_key], anywhere: true }
    action: block
  - id: block-codename
    when: { categories: [corp.codename], anywhere: true }
    action: block
  - id: redact-cards
    when: { categories: [pii.credit_card] }
    action: redact
"#;

static POLICY: LazyLock<Policy> = LazyLock::new(|| {
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/detectors");
    let read = |f: &str| std::fs::read_to_string(rules.join(f)).expect("shipped detectors");
    let files = vec![
        (PathBuf::from("sites/x.yaml"), SITE.to_string()),
        (PathBuf::from("detectors/secrets.yaml"), read("secrets.yaml")),
        (PathBuf::from("detectors/corporate.yaml"), read("corporate.yaml")),
        (PathBuf::from("detectors/pii.yaml"), read("pii.yaml")),
        (PathBuf::from("policy.yaml"), POLICY_YAML.to_string()),
    ];
    Policy::from_files(&files, &EngineOptions::default()).expect("fuzz rules compile")
});

/// Printable text of bytes, line breaks kept, anything else a space (as a site displaying
/// them might).
fn printable(b: &[u8]) -> String {
    b.iter()
        .map(|&c| if (0x20..0x7f).contains(&c) || c == b'\n' { c as char } else { ' ' })
        .collect()
}

fn percent_decoded(b: &[u8]) -> String {
    let plus: Vec<u8> = b.iter().map(|&c| if c == b'+' { b' ' } else { c }).collect();
    percent_encoding::percent_decode(&plus).decode_utf8_lossy().into_owned()
}

fn json_strings(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| json_strings(x, out)),
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                out.push_str(k);
                out.push('\n');
                json_strings(x, out);
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let mut lines = data.splitn(3, |&b| b == b'\n');
    let (Some(line), Some(ct), body) = (lines.next(), lines.next(), lines.next().unwrap_or(b"")) else {
        return;
    };
    let (Ok(line), Ok(ct)) = (std::str::from_utf8(line), std::str::from_utf8(ct)) else {
        return;
    };
    let Some((method, target)) = line.split_once(' ') else {
        return;
    };
    if !["POST", "PUT", "PATCH", "DELETE"].contains(&method) || !target.starts_with('/') {
        return;
    }
    let mut headers = Vec::new();
    if !ct.is_empty() {
        headers.push(("content-type".to_string(), ct.to_string()));
    }
    let Ok(head) = RequestHead::from_url(method, &format!("https://x.com{target}"), headers, None) else {
        return;
    };
    // Pictures, sound and video are not read as text by the safety net, by design.
    let lower = String::from_utf8_lossy(body).to_ascii_lowercase() + &ct.to_ascii_lowercase();
    if ["image/", "video/", "audio/", "font/"].iter().any(|m| lower.contains(m)) {
        return;
    }
    let class = POLICY.classify(&head);
    let d = POLICY.decide(&head, &class, Some(body));
    if matches!(d.action, Action::Block | Action::Coach) {
        return;
    }
    let forwarded = d.body.clone().unwrap_or_else(|| body.to_vec());
    let target = d.target.clone().unwrap_or(head.path.clone());
    let essence = ct.split([';', ',']).next().unwrap_or("").trim().to_ascii_lowercase();
    let mut readings = vec![printable(target.as_bytes()), percent_decoded(target.as_bytes()), printable(&forwarded)];
    if essence.is_empty() || essence == "application/x-www-form-urlencoded" || essence.starts_with("text/") {
        readings.push(percent_decoded(&forwarded));
    }
    if !essence.starts_with("multipart/") {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&forwarded) {
            let mut s = String::new();
            json_strings(&v, &mut s);
            readings.push(s);
        }
    }
    for r in readings {
        for f in POLICY.scan_text(&r) {
            assert!(
                !matches!(f.category.as_str(), "secret.aws_access_key" | "corp.codename"),
                "{} reached the site through a reading the engine missed: {r:?} (decision {}: {:?})",
                f.category,
                d.action,
                d.trace
            );
        }
    }
});
