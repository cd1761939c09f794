//! Criterion benchmarks of the policy engine: the decision for a 2 KiB JSON CreateTweet post
//! with the shipped rules, and detector throughput on 1 MiB of ASCII prose with and without
//! findings and on 1 MiB of mixed-Unicode prose (accented Latin, Cyrillic, Greek, CJK,
//! emoji with joiners, no-break and zero-width spaces: the matching view's slow path).
//! Run with `cargo bench --bench engine`.

use std::path::Path;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use permeable::engine::policy::{EngineOptions, Policy, RequestHead};

fn load_policy() -> Policy {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let opts = EngineOptions::default();
    match Policy::load(&root.join("rules"), &opts) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("shipped rules do not load ({e}); using the engine fixture rules");
            match Policy::load(&root.join("tests/fixtures/engine-rules"), &opts) {
                Ok(p) => p,
                Err(e) => panic!("no rule set to benchmark: {e}"),
            }
        }
    }
}

const WORDS: &[&str] = &[
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
    "who",
    "helped",
    "with",
    "launch",
    "customers",
    "love",
    "new",
    "dashboard",
    "reporting",
    "features",
    "more",
    "coming",
    "soon",
    "stay",
    "tuned",
    "for",
    "details",
];

/// Deterministic English-like prose of `len` bytes.
fn prose(len: usize) -> String {
    let mut s = String::with_capacity(len + 16);
    let mut x: u32 = 0x9e37_79b9;
    let mut sentence = 0;
    while s.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let w = WORDS[(x as usize) % WORDS.len()];
        if sentence == 0 {
            let mut c = w.chars();
            if let Some(f) = c.next() {
                s.extend(f.to_uppercase());
                s.push_str(c.as_str());
            }
        } else {
            s.push_str(w);
        }
        sentence += 1;
        if sentence > 12 && x.is_multiple_of(5) {
            s.push_str(". ");
            sentence = 0;
        } else if x.is_multiple_of(11) {
            s.push_str(", ");
        } else {
            s.push(' ');
        }
    }
    s.truncate(len);
    s
}

const MIXED_WORDS: &[&str] = &[
    "équipe",
    "données",
    "Straße",
    "größer",
    "команда",
    "отчёт",
    "выпуск",
    "ομάδα",
    "αναφορά",
    "チーム",
    "報告書",
    "团队",
    "数据",
    "发布",
    "🎉",
    "👩\u{200D}💻",
    "❤\u{FE0F}",
    "naïve",
    "café",
    "año",
    "über",
    "日本語",
    "the",
    "team",
    "update",
    "launch",
    "팀",
    "보고서",
    "ñandú",
    "Ærø",
];

/// Deterministic mixed-script prose of about `len` bytes, with a no-break space every 13
/// words and a zero-width space inside a word every 17.
fn mixed_prose(len: usize) -> String {
    let mut s = String::with_capacity(len + 64);
    let mut x: u32 = 0x2545_f491;
    let mut n = 0u32;
    while s.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let w = MIXED_WORDS[(x as usize) % MIXED_WORDS.len()];
        n += 1;
        if n.is_multiple_of(17) {
            let mut cs = w.chars();
            if let Some(c) = cs.next() {
                s.push(c);
                s.push('\u{200B}');
                s.push_str(cs.as_str());
            }
        } else {
            s.push_str(w);
        }
        s.push(if n.is_multiple_of(13) {
            '\u{00A0}'
        } else {
            ' '
        });
    }
    s
}

/// Prose with a finding (card, e-mail, internal URL, SSN) about every 8 KiB.
fn prose_with_findings(len: usize) -> String {
    let samples = [
        " card 4111 1111 1111 1111 ",
        " mail jane.doe@example.com ",
        " see https://wiki.corp.example/page ",
        " ssn 123-45-6780 ",
    ];
    let base = prose(len);
    let mut out = String::with_capacity(len + 4096);
    for (i, chunk) in base.as_bytes().chunks(8192).enumerate() {
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        out.push_str(samples[i % samples.len()]);
    }
    out
}

fn create_tweet_body(len: usize) -> Vec<u8> {
    let text = prose(280);
    let mut body = format!(
        r#"{{"variables":{{"tweet_text":"{text}","dark_request":false,"media":{{"media_entities":[],"possibly_sensitive":false}},"semantic_annotation_ids":[]}},"features":{{"#
    );
    let mut i = 0;
    while body.len() < len - 40 {
        body.push_str(&format!(r#""feature_flag_number_{i}_enabled":true,"#));
        i += 1;
    }
    body.push_str(r#""last":false},"queryId":"abc123"}"#);
    body.into_bytes()
}

fn bench_decision(c: &mut Criterion) {
    let policy = load_policy();
    let body = create_tweet_body(2048);
    let head = RequestHead {
        method: "POST".into(),
        scheme: "https".into(),
        host: "x.com".into(),
        path: "/i/api/graphql/abc123/CreateTweet".into(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("content-length".into(), body.len().to_string()),
        ],
        group: Some("engineering".into()),
        client: None,
    };
    let class = policy.classify(&head);
    assert!(class.needs_body, "CreateTweet must be inspected: {class:?}");
    let mut g = c.benchmark_group("decision");
    g.throughput(Throughput::Elements(1));
    g.bench_function("create_tweet_2KiB", |b| {
        b.iter(|| {
            let class = policy.classify(black_box(&head));
            black_box(policy.decide(&head, &class, Some(black_box(&body))))
        })
    });
    // What the proxy runs: the same decision without the human-readable trace.
    g.bench_function("create_tweet_2KiB_untraced", |b| {
        b.iter(|| {
            let class = policy.classify(black_box(&head));
            black_box(policy.decide_untraced(&head, &class, Some(black_box(&body))))
        })
    });
    g.finish();
}

fn bench_scan(c: &mut Criterion) {
    let policy = load_policy();
    let clean = prose(1 << 20);
    let dirty = prose_with_findings(1 << 20);
    assert!(
        policy.scan_text(&clean).is_empty(),
        "the clean prose must have no findings"
    );
    assert!(
        !policy.scan_text(&dirty).is_empty(),
        "the dirty prose must have findings"
    );
    let mixed = mixed_prose(1 << 20);
    assert!(
        policy.scan_text(&mixed).is_empty(),
        "the mixed-Unicode prose must have no findings"
    );
    let mut g = c.benchmark_group("scan");
    g.throughput(Throughput::Bytes(clean.len() as u64));
    g.bench_function("prose_1MiB_no_findings", |b| {
        b.iter(|| black_box(policy.scan_text(black_box(&clean))))
    });
    g.throughput(Throughput::Bytes(dirty.len() as u64));
    g.bench_function("prose_1MiB_with_findings", |b| {
        b.iter(|| black_box(policy.scan_text(black_box(&dirty))))
    });
    g.throughput(Throughput::Bytes(mixed.len() as u64));
    g.bench_function("mixed_unicode_prose_1MiB_no_findings", |b| {
        b.iter(|| black_box(policy.scan_text(black_box(&mixed))))
    });
    g.finish();
}

criterion_group! {
    name = engine;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = bench_decision, bench_scan
}
criterion_main!(engine);
