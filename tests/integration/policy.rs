//! The engine wired into the proxy: classification, redaction, blocking and coaching end
//! to end, with what the upstream received checked (rules: tests/fixtures/gateway-rules).

use std::time::Duration;

use crate::harness::*;

const TWEET: &str = "https://x.com/i/api/graphql/AbC123/CreateTweet";

async fn setup() -> (TestCa, Upstream, Gateway) {
    let ca = TestCa::new("upstream test CA");
    let x = Upstream::start(Some(ca.server_config(&["x.com", "www.linkedin.com"]))).await;
    let gw = GatewayBuilder::new()
        .resolve("x.com:443", x.addr)
        .resolve("www.linkedin.com:443", x.addr)
        .upstream_ca(&ca.pem)
        .start()
        .await;
    (ca, x, gw)
}

fn tweet(text: &str) -> String {
    serde_json::json!({"variables": {"tweet_text": text, "dark_request": false, "media": {"media_entities": []}}, "queryId": "AbC123"})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn harmless_post_arrives_byte_for_byte() {
    let (_ca, x, gw) = setup().await;
    // Unusual but valid JSON spacing and escapes must survive untouched.
    let body = "{ \"variables\" : {\"tweet_text\":\"Hello \\u00e9t\\u00e9 \\ud83d\\ude00 from the team\"},\"queryId\":\"AbC123\" }";
    let resp = gw
        .intercepting_client()
        .post(TWEET)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-permeable-action").is_none());
    let got = x.last().unwrap();
    assert_eq!(
        got.body,
        body.as_bytes(),
        "an allowed request arrives byte for byte"
    );
    assert_eq!(
        got.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert!(
        gw.metric("permeable_requests_total{site=\"x\",activity=\"post\",action=\"allow\"")
            .await
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn card_number_is_masked_in_transit() {
    let (_ca, x, gw) = setup().await;
    let body = tweet("refund to 4111 1111 1111 1111 please");
    let resp = gw
        .intercepting_client()
        .post(TWEET)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "a redacted post goes through");
    assert_eq!(resp.headers().get("x-permeable-action").unwrap(), "redact");
    assert!(resp
        .headers()
        .get("x-permeable-redacted")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("pii.credit_card=1"));
    let got = x.last().unwrap();
    let text = String::from_utf8(got.body.clone()).unwrap();
    assert!(!text.contains("4111 1111 1111 1111"), "{text}");
    assert!(
        text.contains("1111 please"),
        "the last four digits stay: {text}"
    );
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["queryId"], "AbC123");
    assert_eq!(
        got.header("content-length"),
        Some(got.body.len().to_string().as_str())
    );
    assert!(
        gw.metric("permeable_findings_total{category=\"pii.credit_card\",action=\"redact\"}")
            .await
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secret_is_blocked_and_nothing_reaches_the_site() {
    let (_ca, x, gw) = setup().await;
    let resp = gw
        .intercepting_client()
        .post(TWEET)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(tweet("deploy key AKIAIOSFODNN7EXAMPLE oops"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.headers().get("x-permeable-action").unwrap(), "block");
    assert_eq!(
        resp.headers().get("x-permeable-rule").unwrap(),
        "block-secrets"
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["categories"][0], "secret.aws_access_key");
    assert!(body["message"].as_str().unwrap().contains("rotate"));
    assert!(
        !body.to_string().contains("AKIAIOSFODNN7EXAMPLE"),
        "never the value"
    );
    assert_eq!(x.count(), 0, "a blocked request delivers nothing upstream");
    assert!(gw.metric("permeable_rule_matches_total{rule=\"block-secrets\",action=\"block\",mode=\"enforce\"}").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn navigation_gets_a_block_page() {
    let (_ca, x, gw) = setup().await;
    let resp = gw
        .intercepting_client()
        .post(TWEET)
        .header("content-type", "application/json")
        .header("accept", "text/html,application/xhtml+xml")
        .body(tweet("AKIAIOSFODNN7EXAMPLE"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("This post was blocked") && page.contains("an AWS access key"),
        "{page}"
    );
    assert!(!page.contains("AKIAIOSFODNN7EXAMPLE"));
    assert_eq!(x.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coach_then_continue_then_pass() {
    let (_ca, x, gw) = setup().await;
    let client = gw.intercepting_client();
    let post = || {
        client
            .post(TWEET)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(tweet("status of BLUEHERON?"))
    };
    let resp = post().send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.headers().get("x-permeable-action").unwrap(), "coach");
    let json: serde_json::Value = resp.json().await.unwrap();
    let continue_url = json["continue_url"].as_str().unwrap().to_string();
    assert!(continue_url.starts_with("https://x.com/.permeable/coach?rule=coach-codenames"));
    assert_eq!(x.count(), 0);
    // The interstitial, and its Continue button.
    let page = client
        .get(&continue_url)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Continue") && page.contains("/.permeable/continue"),
        "{page}"
    );
    let ack = client
        .post("https://x.com/.permeable/continue?rule=coach-codenames&return=%2Fhome")
        .send()
        .await
        .unwrap();
    assert_eq!(ack.status(), 303);
    assert_eq!(ack.headers().get("location").unwrap(), "/home");
    let set_cookie = ack
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set_cookie.contains("Secure") && set_cookie.contains("HttpOnly"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    assert!(cookie.starts_with("permeable_ack="), "{cookie}");
    assert_eq!(x.count(), 0, "the gateway answers its own endpoints");
    let resp = post().header("cookie", cookie).send().await.unwrap();
    assert_eq!(
        resp.status(),
        200,
        "acknowledged coaching lets the post pass"
    );
    assert!(String::from_utf8_lossy(&x.last().unwrap().body).contains("BLUEHERON"));
}

/// The coach link an API call gets explains the rule on any replica sharing the coach key
/// (the message travels in the link, signed), and a link whose message was changed shows
/// only the generic text.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coach_link_explains_the_rule_on_another_replica_and_cannot_be_forged() {
    let ca = TestCa::new("upstream test CA");
    let x = Upstream::start(Some(ca.server_config(&["x.com"]))).await;
    let key = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key.path(), b"a coach key shared by the fleet's replicas").unwrap();
    let replica = || {
        let mut b = GatewayBuilder::new()
            .resolve("x.com:443", x.addr)
            .upstream_ca(&ca.pem);
        b.config.pages.coach_key_file = Some(key.path().to_path_buf());
        b.start()
    };
    let (one, two) = (replica().await, replica().await);
    let resp = one
        .intercepting_client()
        .post(TWEET)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(tweet("status of BLUEHERON?"))
        .send()
        .await
        .unwrap();
    let json: serde_json::Value = resp.json().await.unwrap();
    let link = json["continue_url"].as_str().unwrap().to_string();
    let page = |url: String| {
        let client = two.intercepting_client();
        async move {
            client
                .get(url)
                .header("accept", "text/html")
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let shown = page(link.clone()).await;
    assert!(
        shown.contains("This mentions a confidential project."),
        "the other replica explains the rule: {shown}"
    );
    let forged = link.replace("confidential", "harmless");
    assert_ne!(forged, link);
    let shown = page(forged).await;
    assert!(!shown.contains("harmless project"), "{shown}");
    assert!(
        shown.contains("Please take a moment before you continue."),
        "{shown}"
    );
}

/// A deterministic chunked body larger than the pre-read limit.
fn big_chunked_tweet(secret: &str) -> (reqwest::Body, usize) {
    let filler = "lorem ipsum dolor sit amet ".repeat(4000); // ~108 KiB
    let body = tweet(&format!("{filler} {secret} end"));
    let len = body.len();
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = body
        .into_bytes()
        .chunks(8192)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    (
        reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)),
        len,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_streamed_post_with_a_secret_delivers_no_body() {
    let (_ca, x, gw) = setup().await;
    let (body, _) = big_chunked_tweet("AKIAIOSFODNN7EXAMPLE");
    let resp = gw
        .intercepting_client()
        .post(TWEET)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.headers().get("x-permeable-rule").unwrap(),
        "block-secrets"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    for r in x.received.lock().iter() {
        assert_eq!(
            r.body_len, 0,
            "no byte of a blocked body may reach the site"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_streamed_post_is_redacted() {
    let (_ca, x, gw) = setup().await;
    let (body, _) = big_chunked_tweet("card 5555 5555 5555 4444");
    let resp = gw
        .intercepting_client()
        .post(TWEET)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = x.last().unwrap();
    let text = String::from_utf8(got.body.clone()).unwrap();
    assert!(!text.contains("5555 5555 5555 4444"));
    assert!(text.contains("4444 end"));
    assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn body_over_the_inspection_limit_is_blocked_as_uninspectable() {
    let ca = TestCa::new("upstream test CA");
    let x = Upstream::start(Some(ca.server_config(&["x.com"]))).await;
    let mut b = GatewayBuilder::new()
        .resolve("x.com:443", x.addr)
        .upstream_ca(&ca.pem);
    b.config.inspection.max_body = 1000;
    let gw = b.start().await;
    let resp = gw
        .intercepting_client()
        .post(TWEET)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(tweet(&"a".repeat(2000)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let json: serde_json::Value = resp.json().await.unwrap();
    assert!(
        json["reason"].as_str().unwrap_or("").contains("max_body")
            || json["reason"].as_str().unwrap_or("").contains("larger"),
        "{json}"
    );
    assert_eq!(x.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_swaps_rules_and_rejects_broken_ones_under_traffic() {
    let ca = TestCa::new("upstream test CA");
    let x = Upstream::start(Some(ca.server_config(&["x.com"]))).await;
    let rules = fixture_rules_copy();
    let mut b = GatewayBuilder::new()
        .resolve("x.com:443", x.addr)
        .upstream_ca(&ca.pem);
    b.config.rules = Some(rules.path().to_path_buf());
    let gw = b.start().await;
    let client = gw.intercepting_client();
    let admin = reqwest::Client::new();
    let reload = format!("http://{}/-/reload", gw.admin);

    // Traffic during every reload below: none of it may fail.
    let traffic = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut failures = 0;
            for i in 0..150 {
                let r = client.get(format!("https://x.com/feed/{i}")).send().await;
                if !matches!(r, Ok(ref r) if r.status() == 200) {
                    failures += 1;
                }
            }
            failures
        })
    };
    for _ in 0..10 {
        let r = admin.post(&reload).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    // Codenames become a block.
    let policy = rules.path().join("policy.yaml");
    let text = std::fs::read_to_string(&policy)
        .unwrap()
        .replace("    action: coach\n", "    action: block\n");
    std::fs::write(&policy, text).unwrap();
    let r = admin.post(&reload).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let resp = client
        .post(TWEET)
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .body(tweet("BLUEHERON"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers().get("x-permeable-action").unwrap(), "block");

    // A broken rule set is rejected with located errors; the running one stays.
    std::fs::write(
        rules.path().join("detectors/broken.yaml"),
        "detectors:\n  - id: bad\n    category: pii.nope\n    regex: '('\n",
    )
    .unwrap();
    let r = admin.post(&reload).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let errors = r.text().await.unwrap();
    assert!(errors.contains("broken.yaml:"), "{errors}");
    let ready = gw.readyz().await;
    assert!(ready["rules"]["last_reload_error"]
        .as_str()
        .unwrap()
        .contains("broken.yaml"));
    let resp = client
        .post(TWEET)
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .body(tweet("BLUEHERON"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers().get("x-permeable-action").unwrap(),
        "block",
        "previous rules still live"
    );
    assert!(
        gw.metric("permeable_rules_reloads_total{result=\"failure\"}")
            .await
            >= 1.0
    );
    assert_eq!(
        traffic.await.unwrap(),
        0,
        "no request failed during reloads"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_streamed_post_under_coaching_passes_once_acknowledged() {
    let (_ca, x, gw) = setup().await;
    let client = gw.intercepting_client();
    let (body, _) = big_chunked_tweet("BLUEHERON");
    let resp = client
        .post(TWEET)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.headers().get("x-permeable-action").unwrap(), "coach");
    let ack = client
        .post("https://x.com/.permeable/continue?rule=coach-codenames&return=%2F")
        .send()
        .await
        .unwrap();
    let cookie = ack
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (body, len) = big_chunked_tweet("BLUEHERON");
    let resp = client
        .post(TWEET)
        .header("content-type", "application/json")
        .header("cookie", cookie)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = x.last().unwrap();
    assert_eq!(got.body.len(), len);
    assert!(String::from_utf8_lossy(&got.body).contains("BLUEHERON end"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn editing_the_rules_directory_reloads_by_itself() {
    let ca = TestCa::new("upstream test CA");
    let x = Upstream::start(Some(ca.server_config(&["x.com"]))).await;
    let rules = fixture_rules_copy();
    let mut b = GatewayBuilder::new()
        .resolve("x.com:443", x.addr)
        .upstream_ca(&ca.pem);
    b.config.rules = Some(rules.path().to_path_buf());
    let gw = b.start().await;
    let before: serde_json::Value = gw.readyz().await;
    // Written slowly, in two steps, as an editor or a copy might: the first step alone is
    // valid YAML that lacks a rule, and must never go live.
    let policy = rules.path().join("policy.yaml");
    let text = std::fs::read_to_string(&policy)
        .unwrap()
        .replace("    action: coach\n", "    action: block\n");
    let cut = text.find("  - id: coach-codenames").unwrap();
    let (head, tail) = text.split_at(cut);
    let post = || async {
        let resp = gw
            .intercepting_client()
            .post(TWEET)
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .body(tweet("BLUEHERON"))
            .send()
            .await
            .unwrap();
        resp.headers()
            .get("x-permeable-action")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    std::fs::write(&policy, head).unwrap();
    let writer = {
        let (policy, full) = (policy.clone(), format!("{head}{tail}"));
        tokio::spawn(async move {
            // Well inside the watcher's stillness window (two equal looks 500 ms apart), so
            // that a busy machine delaying this task still finishes the write in time.
            tokio::time::sleep(Duration::from_millis(100)).await;
            std::fs::write(&policy, full).unwrap();
        })
    };
    while !writer.is_finished() {
        assert_eq!(post().await, "coach", "a half-written rule set went live");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let mut action = String::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        action = post().await;
        if action == "block" {
            break;
        }
        assert_eq!(
            action, "coach",
            "never anything but the old or the new rules"
        );
    }
    assert_eq!(
        action, "block",
        "the edited rules went live without a signal or an API call"
    );
    let after: serde_json::Value = gw.readyz().await;
    assert_ne!(before["rules"]["version"], after["rules"]["version"]);
    assert!(after["rules"]["last_reload_error"].is_null(), "{after}");
}
