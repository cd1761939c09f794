//! Observability with real parts: the audit trail never holds what it protects, and the
//! dashboards' expressions return data from a real Prometheus scraping the gateway.

use std::time::Duration;

use crate::harness::*;

const TWEET: &str = "https://x.com/i/api/graphql/AbC123/CreateTweet";
const SECRET: &str = "AKIAIOSFODNN7EXAMPLE";
const CARD: &str = "4111 1111 1111 1111";

fn tweet(text: &str) -> String {
    serde_json::json!({"variables": {"tweet_text": text}, "queryId": "AbC123"}).to_string()
}

/// Views, redacted posts, blocked posts, monitored matches, unclassified requests.
async fn generate_traffic(client: &reqwest::Client, rounds: usize) {
    for i in 0..rounds {
        let _ = client.get(format!("https://x.com/home/{i}")).send().await;
        for text in [
            format!("card {CARD} thanks"),
            format!("key {SECRET}"),
            "hello world https://blog.example.com/post".to_string(),
        ] {
            let _ = client
                .post(TWEET)
                .header("content-type", "application/json")
                .header("accept", "application/json")
                .header("cookie", "session=very-private-cookie")
                .header("authorization", "Bearer very-private-token")
                .body(tweet(&text))
                .send()
                .await;
        }
        let _ = client
            .post("https://x.com/i/api/graphql/Zz/SomethingNew")
            .body("{}")
            .send()
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_trail_records_decisions_but_never_the_content() {
    let ca = TestCa::new("upstream test CA");
    let x = Upstream::start(Some(ca.server_config(&["x.com"]))).await;
    let audit = tempfile::NamedTempFile::new().unwrap();
    let mut b = GatewayBuilder::new()
        .resolve("x.com:443", x.addr)
        .upstream_ca(&ca.pem);
    b.config.audit.output = audit.path().display().to_string();
    b.config
        .clients
        .groups
        .insert("engineering".into(), vec!["127.0.0.0/8".parse().unwrap()]);
    let gw = b.start().await;
    generate_traffic(&gw.intercepting_client(), 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let log = std::fs::read_to_string(audit.path()).unwrap();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let blocked = events
        .iter()
        .find(|e| e["action"] == "block")
        .expect("a block event");
    assert_eq!(blocked["site"], "x");
    assert_eq!(blocked["activity"], "post");
    assert_eq!(blocked["rule"], "block-secrets");
    assert_eq!(blocked["group"], "engineering");
    assert_eq!(blocked["categories"]["secret.aws_access_key"], 1);
    assert_eq!(blocked["client"], "127.0.0.1");
    let live: serde_json::Value = gw.readyz().await;
    assert_eq!(
        blocked["rules_version"], live["rules"]["version"],
        "the deciding rule set is named"
    );
    let hash = blocked["value_hashes"][0]["hash"].as_str().unwrap();
    assert!(hash.len() >= 16);
    // The same secret posted twice correlates through its keyed hash.
    let same: Vec<_> = events
        .iter()
        .filter(|e| {
            e["value_hashes"]
                .as_array()
                .is_some_and(|a| a.iter().any(|h| h["hash"] == hash))
        })
        .collect();
    assert_eq!(same.len(), 2);
    let redacted = events
        .iter()
        .find(|e| e["action"] == "redact")
        .expect("a redact event");
    assert!(redacted["matched_rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == "monitor-cards-block" && m["mode"] == "monitor"));
    // Never the post, a matched value, cookies or authorisation.
    for needle in [
        SECRET,
        CARD,
        "1111 1111",
        "thanks",
        "hello world",
        "very-private-cookie",
        "very-private-token",
        "tweet_text",
    ] {
        assert!(!log.contains(needle), "the audit log contains {needle:?}");
    }
}

/// Runs `dashboards/check.sh live` (a real Prometheus scraping this gateway) when
/// `PERMEABLE_LIVE_PROMETHEUS` is set, as `.ci/run` does; it needs Prometheus installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_dashboards_against_prometheus() {
    if std::env::var_os("PERMEABLE_LIVE_PROMETHEUS").is_none() {
        eprintln!(
            "set PERMEABLE_LIVE_PROMETHEUS=1 to run the dashboards against a real Prometheus"
        );
        return;
    }
    let ca = TestCa::new("upstream test CA");
    let x = Upstream::start(Some(ca.server_config(&["x.com"]))).await;
    let mut b = GatewayBuilder::new()
        .resolve("x.com:443", x.addr)
        .upstream_ca(&ca.pem);
    b.config
        .clients
        .groups
        .insert("engineering".into(), vec!["127.0.0.0/8".parse().unwrap()]);
    b.config.analytics.min_group_clients = 1;
    let gw = b.start().await;
    let client = gw.intercepting_client();
    generate_traffic(&client, 5).await;
    reqwest::Client::new()
        .post(format!("http://{}/-/reload", gw.admin))
        .send()
        .await
        .unwrap();

    // Keep traffic flowing while Prometheus scrapes.
    let background = tokio::spawn(async move {
        loop {
            generate_traffic(&client, 1).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let repo = env!("CARGO_MANIFEST_DIR");
    let admin = gw.admin.to_string();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg(format!("{repo}/dashboards/check.sh"))
            .args(["live", &admin])
            .current_dir(repo)
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    background.abort();
    assert!(
        status.success(),
        "dashboards/check.sh live failed: see its output above"
    );
}
