//! The shipped rule pack (`rules/`) through the proxy: each major site's post shape gets
//! the right site, activity and decision end to end, and the upstream receives exactly
//! what the decision says.

use crate::harness::*;

const HOSTS: &[&str] = &[
    "x.com",
    "mastodon.social",
    "morel.us-east.host.bsky.network",
    "oauth.reddit.com",
    "www.linkedin.com",
    "www.facebook.com",
];

struct Case {
    site: &'static str,
    activity: &'static str,
    url: &'static str,
    content_type: &'static str,
    /// The body with `{}` where the user's words go (already encoded for the format).
    template: &'static str,
    /// How a space is written in this body.
    form: bool,
    /// The status of a refusal, and where in its JSON the site's clients read the message
    /// (the site file's `refusal:` shape; the gateway's own JSON for sites without one).
    refusal: (u16, &'static str),
}

const CASES: &[Case] = &[
    Case {
        site: "x",
        activity: "post",
        url: "https://x.com/i/api/graphql/bDE2rBtZb3uyrczSZ_pI9g/CreateTweet",
        content_type: "application/json",
        template: r#"{"variables": {"tweet_text": "{}", "dark_request": false, "media": {"media_entities": [], "possibly_sensitive": false}}, "features": {"tweetypie_unmention_optimization_enabled": true}, "queryId": "bDE2rBtZb3uyrczSZ_pI9g"}"#,
        form: false,
        refusal: (403, "/errors/0/message"),
    },
    Case {
        site: "mastodon",
        activity: "post",
        url: "https://mastodon.social/api/v1/statuses",
        content_type: "application/x-www-form-urlencoded",
        template: "status={}&visibility=public&language=en",
        form: true,
        refusal: (403, "/error"),
    },
    Case {
        site: "bluesky",
        activity: "post",
        url: "https://morel.us-east.host.bsky.network/xrpc/com.atproto.repo.createRecord",
        content_type: "application/json",
        template: r#"{"repo": "did:plc:ewvi7nxzyoun6zhxrhs64oiz", "collection": "app.bsky.feed.post", "record": {"$type": "app.bsky.feed.post", "text": "{}", "langs": ["en"], "createdAt": "2024-06-01T10:00:00.000Z"}}"#,
        form: false,
        refusal: (400, "/message"),
    },
    Case {
        site: "reddit",
        activity: "comment",
        url: "https://oauth.reddit.com/api/comment",
        content_type: "application/x-www-form-urlencoded",
        template: "thing_id=t3_1d5xk2q&text={}&api_type=json&return_rtjson=true",
        form: true,
        refusal: (400, "/explanation"),
    },
    Case {
        site: "linkedin",
        activity: "post",
        url: "https://www.linkedin.com/voyager/api/contentcreation/normShares",
        content_type: "application/json",
        template: r#"{"visibleToConnectionsOnly": false, "externalAudienceProviders": [], "commentaryV2": {"text": "{}", "attributes": []}, "origin": "FEED", "allowedCommentersScope": "ALL", "postState": "PUBLISHED", "media": []}"#,
        form: false,
        refusal: (403, "/message"),
    },
    Case {
        site: "facebook",
        activity: "post",
        url: "https://www.facebook.com/api/graphql/",
        content_type: "application/x-www-form-urlencoded",
        template: "av=100000000000001&__user=100000000000001&fb_dtsg=NAcN-fake-dtsg%3A17%3A1700000000&fb_api_caller_class=RelayModern&fb_api_req_friendly_name=ComposerStoryCreateMutation&variables=%7B%22input%22%3A+%7B%22composer_entry_point%22%3A+%22inline_composer%22%2C+%22source%22%3A+%22WWW%22%2C+%22message%22%3A+%7B%22ranges%22%3A+%5B%5D%2C+%22text%22%3A+%22{}%22%7D%2C+%22actor_id%22%3A+%22100000000000001%22%7D%7D&server_timestamps=true&doc_id=7711610262190099",
        form: true,
        refusal: (403, "/message"),
    },
];

fn body(case: &Case, words: &str) -> String {
    let words = if case.form {
        words.replace(' ', "+")
    } else {
        words.to_string()
    };
    case.template.replace("{}", &words)
}

async fn setup() -> (Upstream, Gateway) {
    let ca = TestCa::new("upstream test CA");
    let site = Upstream::start(Some(ca.server_config(HOSTS))).await;
    let mut b = GatewayBuilder::new().upstream_ca(&ca.pem);
    b.config.rules = Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"));
    for host in HOSTS {
        b = b.resolve(&format!("{host}:443"), site.addr);
    }
    (site, b.start().await)
}

async fn send(gw: &Gateway, case: &Case, words: &str) -> reqwest::Response {
    gw.intercepting_client()
        .post(case.url)
        .header("content-type", case.content_type)
        .header("accept", "application/json")
        .body(body(case, words))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_site_post_is_classified_and_decided_end_to_end() {
    let (site, gw) = setup().await;
    for case in CASES {
        let label = format!("{{site=\"{}\",activity=\"{}\"", case.site, case.activity);

        // Harmless: allowed, byte for byte.
        let before = site.count();
        let harmless = body(case, "Looking forward to the conference next week");
        let resp = send(&gw, case, "Looking forward to the conference next week").await;
        assert_eq!(resp.status(), 200, "{}: harmless post", case.site);
        assert_eq!(site.count(), before + 1);
        assert_eq!(
            site.last().unwrap().body,
            harmless.as_bytes(),
            "{}: unchanged",
            case.site
        );
        let allowed = format!("permeable_requests_total{label},action=\"allow\"");
        assert!(
            gw.metric(&allowed).await >= 1.0,
            "{}: counted as {allowed}",
            case.site
        );

        // A card number: redacted in transit, last four kept.
        let resp = send(&gw, case, "refund card 4111 1111 1111 1111 today").await;
        assert_eq!(
            resp.status(),
            200,
            "{}: redacted post goes through",
            case.site
        );
        assert_eq!(
            resp.headers()
                .get("x-permeable-action")
                .map(|v| v.to_str().unwrap()),
            Some("redact"),
            "{}",
            case.site
        );
        let got = String::from_utf8_lossy(&site.last().unwrap().body).into_owned();
        let plain = percent_encoding::percent_decode_str(&got.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned();
        assert!(
            !plain.contains("4111 1111 1111 1111"),
            "{}: {got}",
            case.site
        );
        assert!(
            plain.contains("1111 today"),
            "{}: last four kept: {got}",
            case.site
        );

        // An AWS key: blocked, nothing delivered.
        let before = site.count();
        let resp = send(&gw, case, "new key AKIAZ7QW4TRX6NBLM3PK").await;
        assert_eq!(
            resp.status(),
            case.refusal.0,
            "{}: secret blocked",
            case.site
        );
        assert_eq!(
            resp.headers().get("x-permeable-rule").unwrap(),
            "block-aws-access-key"
        );
        assert!(resp.headers().contains_key("x-permeable-request-id"));
        let answer: serde_json::Value = resp.json().await.unwrap();
        let message = answer.pointer(case.refusal.1).and_then(|m| m.as_str());
        assert!(
            message.is_some_and(|m| m.starts_with("Your message contains an AWS access key")),
            "{}: the rule's message at {}: {answer}",
            case.site,
            case.refusal.1
        );
        assert_eq!(
            site.count(),
            before,
            "{}: nothing reached the site",
            case.site
        );
        let blocked = format!("permeable_requests_total{label},action=\"block\"");
        assert!(
            gw.metric(&blocked).await >= 1.0,
            "{}: counted as {blocked}",
            case.site
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn views_pass_and_unknown_api_calls_are_counted_as_unclassified() {
    let (site, gw) = setup().await;
    let resp = gw
        .intercepting_client()
        .get("https://x.com/home")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        gw.metric("permeable_requests_total{site=\"x\",activity=\"view\",action=\"allow\"")
            .await
            >= 1.0
    );
    let resp = gw
        .intercepting_client()
        .post("https://x.com/i/api/graphql/Zz9/SomethingBrandNew")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        site.last().unwrap().path,
        "/i/api/graphql/Zz9/SomethingBrandNew"
    );
    assert!(
        gw.metric("permeable_unclassified_requests_total{site=\"x\"}")
            .await
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn intercept_all_classifies_unlisted_instances_by_api_shape_and_honours_bypass() {
    let ca = TestCa::new("upstream test CA");
    let site = Upstream::start(Some(
        ca.server_config(&["social.example.net", "bank.example"]),
    ))
    .await;
    let mut b = GatewayBuilder::new()
        .upstream_ca(&ca.pem)
        .resolve("social.example.net:443", site.addr)
        .resolve("bank.example:443", site.addr);
    b.config.rules = Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"));
    b.config.proxy.intercept = permeable::config::InterceptMode::All;
    b.config.proxy.bypass = vec!["bank.example".into()];
    let gw = b.start().await;

    // A Mastodon instance the catalogue does not list: recognised by its API.
    let resp = gw
        .intercepting_client()
        .post("https://social.example.net/api/v1/statuses")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("status=card+4111+1111+1111+1111+ok&visibility=public")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("x-permeable-action").unwrap(), "redact");
    let got = String::from_utf8_lossy(&site.last().unwrap().body).into_owned();
    assert!(!got.contains("4111+1111+1111+1111"), "{got}");
    assert!(
        gw.metric("permeable_requests_total{site=\"mastodon\",activity=\"post\",action=\"redact\"")
            .await
            >= 1.0
    );

    // A bypassed domain is tunnelled blind: the client sees the site's own certificate.
    assert!(gw
        .intercepting_client()
        .get("https://bank.example/")
        .send()
        .await
        .is_err());
    let resp = gw
        .client(&[&ca.pem])
        .get("https://bank.example/account")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(site.last().unwrap().path, "/account");
}
