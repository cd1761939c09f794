//! Decision and redaction on the engine fixture rules: any post body, no panic; a
//! redacted body decodes again and holds nothing the redacting rules act on.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use permeable::engine::decode::decode_body;
use permeable::engine::policy::{Action, EngineOptions, Policy, RequestHead};

static POLICY: LazyLock<Policy> = LazyLock::new(|| {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/engine-rules");
    Policy::load(&dir, &EngineOptions::default()).expect("engine fixture rules compile")
});

const TYPES: &[&str] = &[
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=B",
    "text/plain",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let ct = TYPES[usize::from(selector) % TYPES.len()];
    let head = RequestHead::from_url(
        "POST",
        "https://x.com/i/api/graphql/AbC123/CreateTweet",
        vec![("content-type".into(), ct.into())],
        None,
    )
    .unwrap();
    let class = POLICY.classify(&head);
    let decision = POLICY.decide(&head, &class, Some(body));
    if let Some(new) = decision.body.as_ref() {
        assert_eq!(decision.action, Action::Redact);
        if ct == "application/json" {
            // Read as the engine reads it: UTF-16 or UTF-32 transcoded, a byte-order mark skipped.
            let d = decode_body(Some(ct), None, new, usize::MAX / 2).expect("redacted JSON decodes");
            let text = std::str::from_utf8(&d.raw).expect("redacted JSON is text");
            serde_json::from_str::<serde_json::Value>(text.trim_start_matches('\u{feff}'))
                .expect("redacted JSON parses");
        }
        let again = POLICY.decide(&head, &class, Some(new));
        assert!(again.uninspectable.is_none(), "a redacted body stays inspectable");
    }
});
