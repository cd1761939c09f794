//! Rule-set scale (issue 9, scenario 5): the decision time for one 2 KiB JSON CreateTweet
//! post with the shipped rule pack, and with the shipped pack plus 10,000 project codenames
//! (one dictionary) and 200 extra regex detectors. The big pack is generated into a
//! temporary directory (a copy of `rules/` plus `detectors/scale.yaml` and a rule that logs
//! its findings), loaded with `Policy::load` like the gateway does.
//!
//! `cargo bench --bench scale`; `benches/suite/run.sh` reads criterion's estimates from
//! `target/criterion/scale/*/new/estimates.json`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use permeable::engine::policy::{Action, EngineOptions, Policy, RequestHead};

const CODENAMES: usize = 10_000;
const EXTRA_REGEXES: usize = 200;

/// Deterministic made-up codenames: three to four syllables, e.g. `KORAVETH`.
fn codenames(n: usize) -> Vec<String> {
    const SYL: &[&str] = &[
        "ka", "zor", "vel", "mir", "tha", "qui", "dra", "nox", "bel", "sar", "ulm", "pex", "yor",
        "fen", "gri", "hos", "jun", "lek", "wyn", "oth",
    ];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut out = Vec::with_capacity(n);
    let mut seen = std::collections::HashSet::new();
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let parts = 3 + (x % 2) as usize;
        let mut name = String::new();
        for k in 0..parts {
            name.push_str(SYL[((x >> (8 * k + 3)) % SYL.len() as u64) as usize]);
        }
        let name = name.to_ascii_uppercase();
        if seen.insert(name.clone()) {
            // Some organisations write "Project X": a tenth of the names carry the prefix.
            out.push(if out.len() % 10 == 0 {
                format!("Project {name}")
            } else {
                name
            });
        }
    }
    out
}

/// 200 regex detectors of the kinds organisations add: ticket ids, asset tags, service
/// accounts, build numbers, customer ids.
fn extra_detectors(n: usize) -> String {
    let mut y = String::from("detectors:\n");
    for i in 0..n {
        let pattern = match i % 5 {
            0 => format!(r"(?-u:\b)TCK{i}-[0-9]{{4,8}}(?-u:\b)"),
            1 => format!(r"(?-u:\b)ASSET-{i:03}-[A-Z0-9]{{6}}(?-u:\b)"),
            2 => format!(r"(?i)(?-u:\b)svc-team{i}-[a-z0-9]{{6,12}}(?-u:\b)"),
            3 => format!(r"(?-u:\b)build-{i}\.[0-9]+\.[0-9]+(?-u:\b)"),
            _ => format!(r"(?-u:\b)CUST{i}[0-9]{{7}}(?-u:\b)"),
        };
        let _ = writeln!(
            y,
            "  - id: scale_{i}\n    category: custom.scale\n    regex: '{pattern}'\n    redaction: {{ replace: \"[REDACTED:{{category}}]\" }}"
        );
    }
    y
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read rules") {
        let entry = entry.expect("entry");
        let dest = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).expect("copy");
        }
    }
}

/// `rules/` plus the generated detectors, in a temporary directory.
fn big_pack(rules: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_dir(rules, dir.path());
    let det = dir.path().join("detectors");
    std::fs::write(det.join("codenames.txt"), codenames(CODENAMES).join("\n")).expect("write");
    let mut y = extra_detectors(EXTRA_REGEXES);
    y.push_str(
        "  - id: scale_codenames\n    category: corp.codename\n    dictionary_file: codenames.txt\n    redaction: { replace: \"[REDACTED:{category}]\" }\n",
    );
    std::fs::write(det.join("scale.yaml"), y).expect("write");
    let policy = dir.path().join("policy.yaml");
    let mut text = std::fs::read_to_string(&policy).expect("policy.yaml");
    text.push_str(
        "\n  - id: log-scale-identifiers\n    description: Generated identifiers (scale benchmark).\n    when: { categories: [custom.scale] }\n    action: log\n",
    );
    std::fs::write(&policy, text).expect("write");
    // The shipped tests stay valid; the generated pack adds none.
    dir
}

fn post_body(len: usize) -> Vec<u8> {
    let words = [
        "the",
        "quarterly",
        "update",
        "from",
        "our",
        "team",
        "is",
        "out",
        "and",
        "we",
        "are",
        "proud",
        "of",
        "what",
        "shipped",
        "this",
        "year",
        "thanks",
        "to",
        "everyone",
    ];
    let mut text = String::new();
    let mut i = 0usize;
    while text.len() < 270 {
        text.push_str(words[(i * 7 + 3) % words.len()]);
        text.push(' ');
        i += 1;
    }
    let mut body = format!(
        r#"{{"variables":{{"tweet_text":"{}","dark_request":false,"media":{{"media_entities":[],"possibly_sensitive":false}},"semantic_annotation_ids":[]}},"features":{{"#,
        text.trim_end()
    );
    let mut k = 0;
    while body.len() < len - 40 {
        let _ = write!(body, r#""feature_flag_number_{k}_enabled":true,"#);
        k += 1;
    }
    body.push_str(r#""last":false},"queryId":"abc123"}"#);
    body.into_bytes()
}

fn head(len: usize) -> RequestHead {
    RequestHead {
        method: "POST".into(),
        scheme: "https".into(),
        host: "x.com".into(),
        path: "/i/api/graphql/abc123/CreateTweet".into(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("content-length".into(), len.to_string()),
        ],
        group: None,
        client: None,
    }
}

fn bench_scale(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let rules = root.join("rules");
    let opts = EngineOptions::default();
    let big_dir = big_pack(&rules);
    let packs = [
        (
            "default_pack",
            Policy::load(&rules, &opts).expect("shipped rules"),
        ),
        (
            "default_plus_10k_codenames_200_regexes",
            Policy::load(big_dir.path(), &opts).unwrap_or_else(|e| panic!("big pack: {e}")),
        ),
    ];
    let body = post_body(2048);
    let head = head(body.len());
    let mut g = c.benchmark_group("scale");
    g.throughput(Throughput::Elements(1));
    for (name, policy) in &packs {
        let class = policy.classify(&head);
        assert!(class.needs_body, "CreateTweet must be inspected");
        let d = policy.decide(&head, &class, Some(&body));
        assert_eq!(d.action, Action::Allow, "{name}: the clean post is allowed");
        // A post naming a generated codename is blocked by the shipped codename rule.
        if name.starts_with("default_plus") {
            let name = codenames(CODENAMES)[4321].clone();
            let dirty = String::from_utf8(body.clone()).expect("utf-8").replacen(
                "the ",
                &format!("the {name} "),
                1,
            );
            let d = policy.decide(&head, &class, Some(dirty.as_bytes()));
            assert_eq!(d.action, Action::Block, "generated codename {name} found");
        }
        g.bench_function(*name, |b| {
            b.iter(|| {
                let class = policy.classify(black_box(&head));
                black_box(policy.decide(&head, &class, Some(black_box(&body))))
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = scale;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = bench_scale
}
criterion_main!(scale);
