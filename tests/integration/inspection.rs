//! Reading a request the way the site will: an adversarial suite against the shipped rule
//! pack. Each case is ordinary HTTP that some real site framework accepts (Rails/Rack,
//! `JSON.parse`, Jackson, Go's `net/http`, PHP) and that carries a card number, a
//! credential or a codename in a place a narrow reading would miss: repeated names, the
//! query string, arrays of writes, a missing or lying Content-Type, paths and methods a
//! router normalises, a CONNECT to an address, fields the catalogue does not name, non-global
//! IPv6 spellings. Each case asserts what the site received: nothing, or the value redacted
//! in every copy any reading could take.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::harness::*;

/// A card number (Luhn-valid, not a documentation example): redacted by the shipped rules.
const CARD: &str = "4539148803436467";
/// The same card as people write it.
const CARD_SPACED: &str = "4539 1488 0343 6467";
/// An AWS access key id (not AWS's documentation example): blocked anywhere.
const AWS: &str = "AKIAZ7QW4TRX6NBLM3PK";
/// A codename of the shipped dictionary: blocked anywhere.
const CODENAME: &str = "BLUEHERON";

const HOSTS: &[&str] = &[
    "x.com",
    "api.x.com",
    "api.twitter.com",
    "mastodon.social",
    "bsky.social",
    "www.facebook.com",
    "oauth.reddit.com",
    "www.linkedin.com",
    "evil.example",
];

/// An address-shaped CONNECT target that `upstream.resolve` points at the local sites.
const SITE_ADDRESS: &str = "104.244.42.1";

struct Site {
    up: Upstream,
    gw: Gateway,
}

async fn setup() -> Site {
    setup_with(&TestCa::new("upstream test CA"), |_| {}).await
}

/// The sites (their certificate also names `SITE_ADDRESS`, as a server reached by address
/// has), and a gateway in front of them as `tweak` configures it.
async fn setup_with(ca: &TestCa, tweak: impl FnOnce(&mut GatewayBuilder)) -> Site {
    let names: Vec<&str> = HOSTS.iter().copied().chain([SITE_ADDRESS]).collect();
    let up = Upstream::start(Some(ca.server_config(&names))).await;
    let mut b = GatewayBuilder::new().upstream_ca(&ca.pem);
    tweak(&mut b);
    b.config.rules = Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"));
    for host in HOSTS {
        b = b.resolve(&format!("{host}:443"), up.addr);
    }
    b = b.resolve(&format!("{SITE_ADDRESS}:443"), up.addr);
    Site {
        gw: b.start().await,
        up,
    }
}

/// What the site must have received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Nothing: the client got a 4xx, the site not one request.
    Blocked,
    /// The request, with the value in none of its readings.
    Redacted,
    /// The request byte for byte (a harmless twin of an adversarial case).
    Delivered,
}

struct Case {
    name: &'static str,
    host: &'static str,
    /// `METHOD target` of the request line.
    line: String,
    /// Header lines, each ending in CRLF (Host, Content-Length and a case id are added).
    headers: String,
    body: Vec<u8>,
    /// The value that must not reach the site in clear.
    secret: &'static str,
    expect: Outcome,
}

fn case(
    name: &'static str,
    host: &'static str,
    line: &str,
    headers: &str,
    body: impl Into<Vec<u8>>,
    secret: &'static str,
    expect: Outcome,
) -> Case {
    Case {
        name,
        host,
        line: line.to_string(),
        headers: headers.to_string(),
        body: body.into(),
        secret,
        expect,
    }
}

const JSON: &str = "Content-Type: application/json\r\n";
const FORM: &str = "Content-Type: application/x-www-form-urlencoded\r\n";
const TWEET: &str = "POST /i/api/graphql/bDE2rBtZb3uyrczSZ_pI9g/CreateTweet";
const STATUSES: &str = "POST /api/v1/statuses";
const CREATE_RECORD: &str = "POST /xrpc/com.atproto.repo.createRecord";
const APPLY_WRITES: &str = "POST /xrpc/com.atproto.repo.applyWrites";
const FB_GRAPHQL: &str = "POST /api/graphql/";

fn multipart(parts: &[(&str, &str)]) -> (String, Vec<u8>) {
    let mut body = String::new();
    for (disposition_and_headers, content) in parts {
        body.push_str(&format!(
            "--XyZ\r\nContent-Disposition: {disposition_and_headers}\r\n\r\n{content}\r\n"
        ));
    }
    body.push_str("--XyZ--\r\n");
    (
        "Content-Type: multipart/form-data; boundary=XyZ\r\n".into(),
        body.into_bytes(),
    )
}

fn fb_form(friendly: &str, text: &str) -> String {
    let variables =
        serde_json::json!({"input": {"message": {"text": text}, "actor_id": "100000000000001"}})
            .to_string();
    format!(
        "av=100000000000001&fb_dtsg=NAcN-fake%3A17%3A1700000000&fb_api_req_friendly_name={friendly}&variables={}&doc_id=7711610262190099",
        percent_encoding::utf8_percent_encode(&variables, percent_encoding::NON_ALPHANUMERIC)
    )
}

fn tweet(text: &str) -> String {
    serde_json::json!({"variables": {"tweet_text": text, "dark_request": false}, "queryId": "bDE2rBtZb3uyrczSZ_pI9g"})
        .to_string()
}

fn bsky_post(text: &str) -> String {
    serde_json::json!({"repo": "did:plc:ewvi7nxzyoun6zhxrhs64oiz", "collection": "app.bsky.feed.post",
        "record": {"$type": "app.bsky.feed.post", "text": text, "createdAt": "2024-06-01T10:00:00.000Z"}})
    .to_string()
}

/// Every case, by class of bypass.
fn cases() -> Vec<Case> {
    use Outcome::*;
    let mut v = Vec::new();

    // 1. Duplicate names: whichever copy a parser keeps, none is delivered in clear.
    v.push(case(
        "json: repeated key, secret second",
        "x.com",
        TWEET,
        JSON,
        format!(r#"{{"variables":{{"tweet_text":"hello","tweet_text":"key {AWS}"}}}}"#),
        AWS,
        Blocked,
    ));
    v.push(case(
        "json: repeated key, secret first",
        "x.com",
        TWEET,
        JSON,
        format!(r#"{{"variables":{{"tweet_text":"key {AWS}","tweet_text":"hello"}}}}"#),
        AWS,
        Blocked,
    ));
    v.push(case(
        "json: repeated key, card in both copies redacted",
        "x.com",
        TWEET,
        JSON,
        format!(
            r#"{{"variables":{{"tweet_text":"pay {CARD}","tweet_text":"again {CARD_SPACED}"}}}}"#
        ),
        CARD,
        Redacted,
    ));
    v.push(case(
        "json: repeated parent object",
        "x.com",
        TWEET,
        JSON,
        format!(
            r#"{{"variables":{{"tweet_text":"hi"}},"variables":{{"tweet_text":"pay {CARD}"}}}}"#
        ),
        CARD,
        Redacted,
    ));
    v.push(case(
        "json: key spelled with an escape",
        "x.com",
        TWEET,
        JSON,
        format!(r#"{{"variables":{{"tweet_text":"hi","tweet_t\u0065xt":"{CODENAME} ships"}}}}"#),
        CODENAME,
        Blocked,
    ));
    v.push(case(
        "json: key in another case (Go's decoder folds case)",
        "api.x.com",
        "POST /2/tweets",
        JSON,
        format!(r#"{{"text":"hi","TEXT":"pay {CARD}"}}"#),
        CARD,
        Redacted,
    ));
    v.push(case(
        "form: repeated field, secret last",
        "mastodon.social",
        STATUSES,
        FORM,
        format!("status=hello&visibility=public&status=key+{AWS}"),
        AWS,
        Blocked,
    ));
    v.push(case(
        "form: repeated field, card in both copies",
        "mastodon.social",
        STATUSES,
        FORM,
        format!("status=pay+{CARD}&status=or+{CARD}"),
        CARD,
        Redacted,
    ));
    v.push(case(
        "form: field named with brackets",
        "mastodon.social",
        STATUSES,
        FORM,
        format!("status%5B%5D=pay+{CARD}"),
        CARD,
        Redacted,
    ));
    v.push(case(
        "form: `;` separates fields for older parsers",
        "mastodon.social",
        STATUSES,
        FORM,
        format!("visibility=public;status={CODENAME}+news"),
        CODENAME,
        Blocked,
    ));
    {
        let (ct, body) = multipart(&[
            ("form-data; name=\"status\"", "hello"),
            ("form-data; name=\"status\"", &format!("pay {CARD}")),
        ]);
        v.push(case(
            "multipart: repeated part",
            "mastodon.social",
            STATUSES,
            &ct,
            body,
            CARD,
            Redacted,
        ));
    }
    v.push(case(
        "classifying field repeated: visibility public then direct",
        "mastodon.social",
        STATUSES,
        FORM,
        format!("status={CODENAME}+plans&visibility=public&visibility=direct"),
        CODENAME,
        Blocked,
    ));
    v.push(case("classifying field repeated: collection like then post", "bsky.social", CREATE_RECORD, JSON,
        format!(r#"{{"repo":"did:plc:abc","collection":"app.bsky.feed.like","collection":"app.bsky.feed.post","record":{{"text":"pay {CARD}","subject":{{"uri":"at://x","cid":"y"}}}}}}"#), CARD, Redacted));
    v.push(case("classifying field repeated: collection post then like", "bsky.social", CREATE_RECORD, JSON,
        format!(r#"{{"repo":"did:plc:abc","collection":"app.bsky.feed.post","collection":"app.bsky.feed.like","record":{{"text":"{CODENAME} soon"}}}}"#), CODENAME, Blocked));
    v.push(case(
        "PHP reads `.` in a name as `_`",
        "www.facebook.com",
        FB_GRAPHQL,
        FORM,
        fb_form("ComposerStoryCreateMutation", &format!("pay {CARD}"))
            .replace("fb_api_req_friendly_name", "fb.api.req.friendly.name"),
        CARD,
        Redacted,
    ));

    // 2. Text in the query string of a write request (tweepy's update_status; Rack merges
    //    query and body parameters).
    v.push(case(
        "v1.1 update_status with the text in the query",
        "api.twitter.com",
        &format!("POST /1.1/statuses/update.json?status=key%20{AWS}"),
        "",
        "",
        AWS,
        Blocked,
    ));
    v.push(case(
        "v1.1 update_status, card in the query redacted",
        "api.twitter.com",
        &format!("POST /1.1/statuses/update.json?status=pay%20{CARD}&trim_user=1"),
        "",
        "",
        CARD,
        Redacted,
    ));
    v.push(case(
        "mastodon: status in the query, form body",
        "mastodon.social",
        &format!("POST /api/v1/statuses?status={CODENAME}%20soon"),
        FORM,
        "visibility=public",
        CODENAME,
        Blocked,
    ));
    v.push(case(
        "mastodon: card in the query beside a harmless body",
        "mastodon.social",
        &format!("POST /api/v1/statuses?status=pay+{CARD}"),
        FORM,
        "status=hello",
        CARD,
        Redacted,
    ));
    v.push(case(
        "query value percent-encoded letter by letter",
        "mastodon.social",
        "POST /api/v1/statuses?status=%41%4B%49%41Z7QW4TRX6NBLM3PK",
        "",
        "",
        AWS,
        Blocked,
    ));
    v.push(case(
        "graphql variables in the query",
        "www.facebook.com",
        &format!(
            "POST /api/graphql/?{}",
            fb_form("ComposerStoryCreateMutation", &format!("pay {CARD}"))
        ),
        "",
        "",
        CARD,
        Redacted,
    ));

    // 3. Arrays of writes.
    v.push(case("applyWrites: a like, then a post", "bsky.social", APPLY_WRITES, JSON,
        format!(r#"{{"repo":"did:plc:abc","writes":[{{"$type":"com.atproto.repo.applyWrites#create","collection":"app.bsky.feed.like","value":{{"subject":{{"uri":"at://a","cid":"b"}}}}}},{{"$type":"com.atproto.repo.applyWrites#create","collection":"app.bsky.feed.post","value":{{"text":"{CODENAME} launch"}}}}]}}"#), CODENAME, Blocked));
    v.push(case("applyWrites: card in the third write", "bsky.social", APPLY_WRITES, JSON,
        format!(r#"{{"repo":"did:plc:abc","writes":[{{"collection":"app.bsky.feed.like","value":{{}}}},{{"collection":"app.bsky.graph.follow","value":{{}}}},{{"collection":"app.bsky.feed.post","value":{{"text":"pay {CARD}"}}}}]}}"#), CARD, Redacted));
    v.push(case("sendMessageBatch: every item", "bsky.social", "POST /xrpc/chat.bsky.convo.sendMessageBatch", JSON,
        format!(r#"{{"items":[{{"convoId":"a","message":{{"text":"hi"}}}},{{"convoId":"b","message":{{"text":"pay {CARD}"}}}}]}}"#), CARD, Redacted));
    v.push(case(
        "GraphQL variables sent as a JSON string",
        "x.com",
        TWEET,
        JSON,
        serde_json::json!({"variables": serde_json::json!({"tweet_text": format!("pay {CARD}")}).to_string(), "queryId": "q"}).to_string(),
        CARD,
        Redacted,
    ));
    v.push(case(
        "a card as a JSON number (Rails casts it into the text)",
        "mastodon.social",
        STATUSES,
        JSON,
        format!(r#"{{"status":{CARD},"visibility":"public"}}"#),
        CARD,
        Redacted,
    ));
    v.push(case(
        "v2 poll options",
        "api.x.com",
        "POST /2/tweets",
        JSON,
        format!(r#"{{"text":"vote","poll":{{"options":["a","{CARD}"],"duration_minutes":60}}}}"#),
        CARD,
        Redacted,
    ));

    // 4. Content-Type not what the site entry expects.
    v.push(case(
        "no Content-Type, JSON body",
        "x.com",
        TWEET,
        "",
        tweet(&format!("key {AWS}")),
        AWS,
        Blocked,
    ));
    v.push(case(
        "no Content-Type, form body (Rack reads it as a form)",
        "mastodon.social",
        STATUSES,
        "",
        format!("status=pay+{CARD}"),
        CARD,
        Redacted,
    ));
    v.push(case(
        "text/x-json",
        "x.com",
        TWEET,
        "Content-Type: text/x-json\r\n",
        tweet(&format!("pay {CARD}")),
        CARD,
        Redacted,
    ));
    v.push(case(
        "junk after the media type",
        "x.com",
        TWEET,
        "Content-Type: application/json garbage\r\n",
        tweet(&format!("{CODENAME} news")),
        CODENAME,
        Blocked,
    ));
    v.push(case(
        "form type, JSON body",
        "mastodon.social",
        STATUSES,
        FORM,
        format!(r#"{{"status":"key {AWS}"}}"#),
        AWS,
        Blocked,
    ));
    v.push(case(
        "text/plain type, form body",
        "mastodon.social",
        STATUSES,
        "Content-Type: text/plain\r\n",
        format!("status=pay+{CARD}"),
        CARD,
        Blocked,
    ));
    v.push(case(
        "octet-stream type, JSON body",
        "x.com",
        TWEET,
        "Content-Type: application/octet-stream\r\n",
        tweet(&format!("pay {CARD}")),
        CARD,
        Redacted,
    ));
    v.push(case(
        "two Content-Type fields",
        "mastodon.social",
        STATUSES,
        "Content-Type: text/plain\r\nContent-Type: application/x-www-form-urlencoded\r\n",
        format!("status=key+{AWS}"),
        AWS,
        Blocked,
    ));
    {
        let (ct, body) = multipart(&[(
            "form-data; name=\"status\"\r\nContent-Type: application/octet-stream",
            &format!("key {AWS}"),
        )]);
        v.push(case(
            "multipart: part without filename typed octet-stream",
            "mastodon.social",
            STATUSES,
            &ct,
            body,
            AWS,
            Blocked,
        ));
        let (ct, body) = multipart(&[(
            "form-data; name=\"status\"\r\nContent-Type: application/octet-stream",
            &format!("pay {CARD}"),
        )]);
        v.push(case(
            "multipart: octet-stream part with a card is redacted",
            "mastodon.social",
            STATUSES,
            &ct,
            body,
            CARD,
            Redacted,
        ));
        let (ct, body) =
            multipart(&[("form-data; x; name=\"status\"", &format!("{CODENAME} soon"))]);
        v.push(case(
            "multipart: parameter without a value before the name",
            "mastodon.social",
            STATUSES,
            &ct,
            body,
            CODENAME,
            Blocked,
        ));
        let (ct, body) = multipart(&[("form-data; name*=UTF-8''status", &format!("pay {CARD}"))]);
        v.push(case(
            "multipart: RFC 2231 name",
            "mastodon.social",
            STATUSES,
            &ct,
            body,
            CARD,
            Redacted,
        ));
        let (ct, body) = multipart(&[(
            "form-data; name=\"status\"\r\nContent-Transfer-Encoding: quoted-printable",
            "key AKIA=5A7QW4TRX6NBLM3PK",
        )]);
        v.push(case(
            "multipart: quoted-printable part",
            "mastodon.social",
            STATUSES,
            &ct,
            body,
            AWS,
            Blocked,
        ));
        let (ct, body) = multipart(&[(
            "form-data; name=\"status\"\r\nContent-Transfer-Encoding: base64",
            "a2V5IEFLSUFaN1FXNFRSWDZOQkxNM1BL",
        )]);
        v.push(case(
            "multipart: base64 part",
            "mastodon.social",
            STATUSES,
            &ct,
            body,
            AWS,
            Blocked,
        ));
        let (_, body) = multipart(&[("form-data; name=\"status\"", &format!("pay {CARD}"))]);
        v.push(case(
            "multipart: two boundary parameters, the second frames it",
            "mastodon.social",
            STATUSES,
            "Content-Type: multipart/form-data; boundary=nope; boundary=XyZ\r\n",
            body,
            CARD,
            Redacted,
        ));
        let (_, body) = multipart(&[("form-data; name=\"status\"", &format!("key {AWS}"))]);
        v.push(case(
            "multipart without a type, sniffed by its first line",
            "mastodon.social",
            STATUSES,
            "",
            body,
            AWS,
            Blocked,
        ));
    }
    v.push(case(
        "declared JSON that does not parse, on a post",
        "x.com",
        TWEET,
        JSON,
        format!("{{\"variables\":{{\"tweet_text\":\"{CARD}\""),
        CARD,
        Blocked,
    ));
    v.push(case(
        "protobuf to an endpoint the catalogue does not know",
        "x.com",
        "POST /i/api/1.1/some/new/endpoint.json",
        "Content-Type: application/x-protobuf\r\n",
        format!("\n\x14{AWS}\x12\x02ok"),
        AWS,
        Blocked,
    ));

    // 5. Methods and paths as the site's router reads them.
    v.push(case(
        "PATCH routed like PUT (status edit)",
        "mastodon.social",
        "PATCH /api/v1/statuses/112233",
        FORM,
        format!("status={CODENAME}+soon"),
        CODENAME,
        Blocked,
    ));
    v.push(case(
        "PATCH edit with a card",
        "mastodon.social",
        "PATCH /api/v1/statuses/112233",
        FORM,
        format!("status=pay+{CARD}"),
        CARD,
        Redacted,
    ));
    v.push(case(
        "_method override on a POST",
        "mastodon.social",
        "POST /api/v1/accounts/update_credentials",
        FORM,
        format!("_method=patch&note=pay+{CARD}"),
        CARD,
        Redacted,
    ));
    v.push(case(
        "X-HTTP-Method-Override",
        "mastodon.social",
        "POST /api/v1/accounts/update_credentials",
        "Content-Type: application/x-www-form-urlencoded\r\nX-HTTP-Method-Override: PATCH\r\n",
        format!("note=pay+{CARD}"),
        CARD,
        Redacted,
    ));
    v.push(case(
        "doubled slashes",
        "mastodon.social",
        "POST //api//v1/statuses",
        FORM,
        format!("status=pay+{CARD}"),
        CARD,
        Redacted,
    ));
    v.push(case(
        "trailing slash",
        "api.x.com",
        "POST /2/tweets/",
        JSON,
        format!(r#"{{"text":"pay {CARD}"}}"#),
        CARD,
        Redacted,
    ));
    v.push(case(
        "dot segments",
        "api.x.com",
        "POST /2/x/../tweets",
        JSON,
        format!(r#"{{"text":"pay {CARD}"}}"#),
        CARD,
        Redacted,
    ));
    v.push(case(
        "percent-encoded path letters",
        "mastodon.social",
        "POST /api/v1/%73tatuses",
        FORM,
        format!("status=pay+{CARD}"),
        CARD,
        Redacted,
    ));
    v.push(case(
        "path in another case",
        "api.x.com",
        "POST /2/TWEETS",
        JSON,
        format!(r#"{{"text":"pay {CARD}"}}"#),
        CARD,
        Redacted,
    ));
    v.push(case(
        "path parameters after `;`",
        "api.x.com",
        "POST /2/tweets;v=1",
        JSON,
        format!(r#"{{"text":"pay {CARD}"}}"#),
        CARD,
        Redacted,
    ));
    v.push(case(
        "GraphQL operation name in the path lies",
        "x.com",
        "POST /i/api/graphql/bDE2rBtZb3uyrczSZ_pI9g/FavoriteTweet",
        JSON,
        tweet(&format!("pay {CARD}")),
        CARD,
        Redacted,
    ));
    v.push(case(
        "friendly name lies (the persisted query id decides)",
        "www.facebook.com",
        FB_GRAPHQL,
        FORM,
        fb_form("CometUFIFeedbackReactMutation", &format!("pay {CARD}")),
        CARD,
        Redacted,
    ));

    // The safety net: what the catalogue does not name still cannot carry secrets out.
    v.push(case(
        "net: an endpoint the catalogue does not know",
        "x.com",
        "POST /i/api/1.1/brand_new_feature.json",
        JSON,
        format!(r#"{{"note":{{"body":"key {AWS}"}}}}"#),
        AWS,
        Blocked,
    ));
    v.push(case(
        "net: an unlisted field of a known activity",
        "x.com",
        TWEET,
        JSON,
        format!(r#"{{"variables":{{"tweet_text":"hi","card_uri":"{CODENAME}"}}}}"#),
        CODENAME,
        Blocked,
    ));
    v.push(case(
        "net: a member name",
        "bsky.social",
        CREATE_RECORD,
        JSON,
        format!(r#"{{"collection":"app.bsky.feed.like","record":{{"{AWS}":1}}}}"#),
        AWS,
        Blocked,
    ));
    {
        let (ct, body) = multipart(&[(
            &format!("form-data; name=\"file\"; filename=\"{AWS}.txt\"\r\nContent-Type: image/png"),
            "\u{1}PNG",
        )]);
        v.push(case(
            "net: a file name",
            "mastodon.social",
            "POST /api/v2/media",
            &ct,
            body,
            AWS,
            Blocked,
        ));
        let (ct, body) = multipart(&[(
            "form-data; name=\"file\"; filename=\"notes.txt\"\r\nContent-Type: text/plain",
            &format!("key {AWS}"),
        )]);
        v.push(case(
            "net: a text file uploaded",
            "mastodon.social",
            "POST /api/v2/media",
            &ct,
            body,
            AWS,
            Blocked,
        ));
    }
    v.push(case(
        "net: a like with a secret in the query",
        "bsky.social",
        &format!("POST /xrpc/com.atproto.repo.createRecord?debug={AWS}"),
        JSON,
        r#"{"collection":"app.bsky.feed.like","record":{"subject":{"uri":"at://a","cid":"b"}}}"#,
        AWS,
        Blocked,
    ));

    // 6. Bodies in a charset other than UTF-8, read in it as a Java servlet, ASP.NET or
    //    Jackson would: UTF-16 by its byte-order mark, its label or its zero bytes
    //    (transcoded, redacted and written back in UTF-16), a legacy charset by its label.
    const FORM_UTF16: &str = "Content-Type: application/x-www-form-urlencoded; charset=utf-16\r\n";
    let statuses_json = format!("{{\"status\":\"pay {CARD} now\",\"visibility\":\"public\"}}");
    v.push(case(
        "charset: JSON in UTF-16LE after a byte-order mark, card redacted in UTF-16",
        "mastodon.social",
        STATUSES,
        JSON,
        utf16(&format!("\u{feff}{statuses_json}"), false),
        CARD,
        Redacted,
    ));
    v.push(case(
        "charset: JSON in UTF-16BE without a mark (RFC 4627), card redacted in UTF-16",
        "mastodon.social",
        STATUSES,
        JSON,
        utf16(&statuses_json, true),
        CARD,
        Redacted,
    ));
    v.push(case(
        "a card spelled as a JSON number with an exponent (JavaScript shows its digits)",
        "mastodon.social",
        STATUSES,
        JSON,
        r#"{"status": 4.539148803436467e15, "visibility": "public"}"#,
        "4539148803436467",
        Blocked,
    ));
    v.push(case(
        "escapes in a text body that is not UTF-8, on a write no activity names",
        "x.com",
        "POST /i/api/1.1/unlisted.json",
        "Content-Type: text/plain\r\n",
        b"\xff note BLUEHER%4FN soon".to_vec(),
        CODENAME,
        Blocked,
    ));
    // Markup a page renders: HTML and Markdown join what the text as sent keeps apart.
    v.push(case(
        "markup: a card split by an HTML tag",
        "mastodon.social",
        STATUSES,
        JSON,
        format!(r#"{{"status":"card <b>{}</b>{}"}}"#, &CARD[..4], &CARD[4..]),
        CARD,
        Blocked,
    ));
    v.push(case(
        "markup: the codename joined by Markdown emphasis",
        "x.com",
        TWEET,
        JSON,
        tweet("BLUE**HERON** ships in May"),
        CODENAME,
        Blocked,
    ));
    v.push(case(
        "markup: a plain card beside HTML is masked in place",
        "mastodon.social",
        STATUSES,
        JSON,
        format!(r#"{{"status":"<b>Refund</b> to {CARD}"}}"#),
        CARD,
        Redacted,
    ));
    // Untyped: a site that reads the body as JSON whatever its type (Jackson) reads it in
    // UTF-16 by its mark or its zero bytes; Rack reads the same bytes as a form. The JSON
    // reading cannot be rewritten, so a card only it shows blocks; a form hidden in the
    // bytes of its strings is masked in place.
    let mut in_units = b"&status=".to_vec();
    in_units.extend_from_slice(CARD.as_bytes());
    let in_units: String = in_units
        .chunks(2)
        .map(|p| char::from_u32(u32::from(p[0]) | u32::from(p[1]) << 8).unwrap())
        .collect();
    v.push(case(
        "charset: untyped UTF-16 JSON whose string's bytes spell a form with a card",
        "mastodon.social",
        STATUSES,
        "",
        utf16(&format!(r#"{{"a":"{in_units}"}}"#), false),
        CARD,
        Redacted,
    ));
    for (name, body) in [
        (
            "charset: untyped JSON in UTF-16LE after a mark, card",
            utf16(&format!("\u{feff}{statuses_json}"), false),
        ),
        (
            "charset: untyped JSON in UTF-16BE without a mark, card",
            utf16(&statuses_json, true),
        ),
    ] {
        v.push(case(
            name,
            "mastodon.social",
            STATUSES,
            "",
            body,
            CARD,
            Blocked,
        ));
    }
    // UTF-32, which Jackson reads by its mark, its label or RFC 4627's four bytes.
    for (name, headers, body) in [
        (
            "charset: JSON in UTF-32LE after a mark, card redacted in UTF-32",
            JSON,
            utf32(&format!("\u{feff}{statuses_json}"), false),
        ),
        (
            "charset: JSON labelled UTF-32 without a mark, card redacted in UTF-32",
            "Content-Type: application/json; charset=utf-32\r\n",
            utf32(&statuses_json, true),
        ),
    ] {
        v.push(case(
            name,
            "mastodon.social",
            STATUSES,
            headers,
            body,
            CARD,
            Redacted,
        ));
    }
    v.push(case(
        "charset: untyped JSON in UTF-32BE without a mark, card",
        "mastodon.social",
        STATUSES,
        "",
        utf32(&statuses_json, true),
        CARD,
        Blocked,
    ));
    v.push(case(
        "charset: a form declared UTF-16, card (its bytes stay a form as sent: blocked)",
        "mastodon.social",
        STATUSES,
        FORM_UTF16,
        utf16(&format!("status=pay+{CARD}+now&visibility=public"), false),
        CARD,
        Blocked,
    ));
    v.push(case(
        "charset: UTF-16 JSON, codename with a Cyrillic letter",
        "x.com",
        TWEET,
        JSON,
        utf16(&tweet("Update on BLUEH\u{415}RON"), false),
        CODENAME,
        Blocked,
    ));
    v.push(case(
        "charset: a form declared ISO-8859-1, codename with an escaped \u{c9}",
        "mastodon.social",
        STATUSES,
        "Content-Type: application/x-www-form-urlencoded; charset=ISO-8859-1\r\n",
        "status=Update+on+BLUEH%C9RON",
        CODENAME,
        Blocked,
    ));
    v.push(case(
        "charset: a form declared windows-1251, codename with a Cyrillic letter as its byte",
        "mastodon.social",
        STATUSES,
        "Content-Type: application/x-www-form-urlencoded; charset=windows-1251\r\n",
        b"status=Update+on+BLUEH\xc5RON".to_vec(),
        CODENAME,
        Blocked,
    ));
    v.push(case(
        "charset: a form declared Shift_JIS, card in full-width digits",
        "mastodon.social",
        STATUSES,
        "Content-Type: application/x-www-form-urlencoded; charset=Shift_JIS\r\n",
        format!(
            "status={}",
            CARD.bytes()
                .map(|d| format!("%82%{:02X}", 0x4f + (d - b'0')))
                .collect::<String>()
        ),
        CARD,
        Blocked,
    ));
    let mut marked = vec![0xff, 0xfe];
    marked.extend_from_slice(format!("{{\"status\":\"key {AWS}\" }}").as_bytes());
    v.push(case(
        "charset: a UTF-16 mark before UTF-8 text (a reader that ignores the mark)",
        "mastodon.social",
        "POST /api/v1/statuses/112233/favourite",
        "Content-Type: text/plain\r\n",
        marked,
        AWS,
        Blocked,
    ));
    v.push(case(
        "charset: a form without a charset, codename with an escaped \u{c9} (ISO-8859-1, the servlet default)",
        "mastodon.social",
        STATUSES,
        FORM,
        "status=Update+on+BLUEH%C9RON",
        CODENAME,
        Blocked,
    ));
    // A text file in ISO-8859-1 that declares no charset, typed or untyped (RFC 7578
    // makes an untyped part text/plain).
    for (name, typed) in [
        (
            "charset: a text file part in ISO-8859-1 without a charset",
            true,
        ),
        ("charset: an untyped file part in ISO-8859-1", false),
    ] {
        let mut body = format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"notes.txt\"\r\n{}\r\n",
            if typed { "Content-Type: text/plain\r\n" } else { "" }
        )
        .into_bytes();
        body.extend_from_slice(b"Status of BLUEH\xc9RON, internal\r\n--XyZ--\r\n");
        v.push(case(
            name,
            "mastodon.social",
            "POST /api/v2/media",
            "Content-Type: multipart/form-data; boundary=XyZ\r\n",
            body,
            CODENAME,
            Blocked,
        ));
    }
    // Escapes in the target that spell ISO-8859-1 (a servlet connector's default URI
    // encoding), in a query parameter and in a path segment.
    v.push(case(
        "charset: a query parameter whose escapes spell the codename in ISO-8859-1",
        "mastodon.social",
        "POST /api/v1/statuses?status=Update+on+BLUEH%C9RON",
        JSON,
        r#"{"visibility":"public"}"#,
        CODENAME,
        Blocked,
    ));
    v.push(case(
        "charset: a path segment whose escapes spell the codename in ISO-8859-1",
        "mastodon.social",
        "POST /api/v1/tags/BLUEH%C9RON/follow",
        "",
        "",
        CODENAME,
        Blocked,
    ));
    let mut marked_form = vec![0xff, 0xfe];
    marked_form.extend_from_slice(format!("&status=pay+{CARD}+now&x=1").as_bytes());
    v.push(case(
        "charset: a UTF-16 mark before a form a site reads by its bytes",
        "mastodon.social",
        STATUSES,
        FORM,
        marked_form,
        CARD,
        Redacted,
    ));
    // A multipart part in the charset it declares (Commons FileUpload reads it so).
    let part_in = |charset: &str, content: &[u8]| -> Vec<u8> {
        let mut body = format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"status\"\r\nContent-Type: text/plain; charset={charset}\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n--XyZ--\r\n");
        body
    };
    const MULTIPART: &str = "Content-Type: multipart/form-data; boundary=XyZ\r\n";
    v.push(case(
        "charset: a multipart part declared windows-1251, codename with a Cyrillic letter",
        "mastodon.social",
        STATUSES,
        MULTIPART,
        part_in("windows-1251", b"Update on BLUEH\xc5RON"),
        CODENAME,
        Blocked,
    ));
    v.push(case(
        "charset: a multipart part declared Shift_JIS, card in full-width digits",
        "mastodon.social",
        STATUSES,
        MULTIPART,
        part_in(
            "Shift_JIS",
            &CARD
                .bytes()
                .flat_map(|d| [0x82, 0x4f + (d - b'0')])
                .collect::<Vec<u8>>(),
        ),
        CARD,
        Blocked,
    ));

    // Harmless twins: the same shapes, delivered byte for byte.
    v.push(case(
        "harmless: repeated JSON key",
        "x.com",
        TWEET,
        JSON,
        r#"{"variables":{"tweet_text":"hello","tweet_text":"world"}}"#,
        "",
        Delivered,
    ));
    v.push(case(
        "harmless: v1.1 update_status in the query",
        "api.twitter.com",
        "POST /1.1/statuses/update.json?status=Looking%20forward%20to%20the%20keynote",
        "",
        "",
        "",
        Delivered,
    ));
    v.push(case("harmless: applyWrites", "bsky.social", APPLY_WRITES, JSON,
        r#"{"repo":"did:plc:abc","writes":[{"collection":"app.bsky.feed.like","value":{}},{"collection":"app.bsky.feed.post","value":{"text":"see you there"}}]}"#, "", Delivered));
    v.push(case(
        "harmless: no Content-Type",
        "mastodon.social",
        STATUSES,
        "",
        "status=good+morning&visibility=public",
        "",
        Delivered,
    ));
    v.push(case(
        "harmless: PATCH edit",
        "mastodon.social",
        "PATCH /api/v1/statuses/112233",
        FORM,
        "status=fixed+a+typo",
        "",
        Delivered,
    ));
    v.push(case("harmless: a like with a long id", "bsky.social", CREATE_RECORD, JSON,
        r#"{"repo":"did:plc:ewvi7nxzyoun6zhxrhs64oiz","collection":"app.bsky.feed.like","record":{"$type":"app.bsky.feed.like","subject":{"uri":"at://did:plc:z72i7hdynmk6r22z27h6tvur/app.bsky.feed.post/3kwhf6a5bmv2p","cid":"bafyreihsa6lrgzzqkp3ra2yuspjsh6ow7h6i7yyt4mwzk3iikbsinkzgva"},"createdAt":"2024-06-01T10:00:00.000Z"}}"#, "", Delivered));
    v.push(case(
        "harmless: JSON in UTF-16LE after a byte-order mark",
        "mastodon.social",
        STATUSES,
        JSON,
        utf16(
            "\u{feff}{\"status\":\"caf\u{e9} au lait, \u{418}\u{432}\u{430}\u{43d}\"}",
            false,
        ),
        "",
        Delivered,
    ));
    v.push(case(
        "harmless: a form declared ISO-8859-1 with an accent",
        "mastodon.social",
        STATUSES,
        "Content-Type: application/x-www-form-urlencoded; charset=ISO-8859-1\r\n",
        "status=caf%E9+au+lait",
        "",
        Delivered,
    ));
    v.push(case(
        "harmless: a query parameter in ISO-8859-1 with an accent",
        "mastodon.social",
        "POST /api/v1/statuses?status=caf%E9+au+lait",
        JSON,
        r#"{"visibility":"public"}"#,
        "",
        Delivered,
    ));
    v.push(case(
        "harmless: a text file part in ISO-8859-1",
        "mastodon.social",
        "POST /api/v2/media",
        "Content-Type: multipart/form-data; boundary=XyZ\r\n",
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"menu.txt\"\r\nContent-Type: text/plain\r\n\r\nCaf\xe9 cr\xe8me \xe0 la gare\r\n--XyZ--\r\n".to_vec(),
        "",
        Delivered,
    ));
    v.push(case(
        "harmless: Markdown and HTML without a secret",
        "x.com",
        TWEET,
        JSON,
        tweet("**Release** `4.5` &amp; <b>build</b> 2024~11 is out"),
        "",
        Delivered,
    ));
    v.push(case(
        "harmless: bsky post",
        "bsky.social",
        CREATE_RECORD,
        JSON,
        bsky_post("hello from the gateway"),
        "",
        Delivered,
    ));
    v
}

/// `text` in UTF-16, little- or big-endian.
fn utf32(text: &str, big_endian: bool) -> Vec<u8> {
    text.chars()
        .flat_map(|c| {
            if big_endian {
                u32::from(c).to_be_bytes()
            } else {
                u32::from(c).to_le_bytes()
            }
        })
        .collect()
}

fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
    text.encode_utf16()
        .flat_map(|u| {
            if big_endian {
                u.to_be_bytes()
            } else {
                u.to_le_bytes()
            }
        })
        .collect()
}

/// The text of everything a request put on the wire, read every way a site might: raw,
/// percent-decoded, and with JSON strings unescaped.
fn readings(path: &str, body: &[u8]) -> Vec<String> {
    let raw = format!("{path}\n{}", String::from_utf8_lossy(body));
    let decoded = percent_encoding::percent_decode_str(&raw.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned();
    let mut out = vec![raw, decoded.clone()];
    // Text in UTF-16, either byte order.
    let mut candidates = vec![String::from_utf8_lossy(body).into_owned(), decoded];
    if body.len().is_multiple_of(2) && body.contains(&0) {
        for big_endian in [false, true] {
            let units: Vec<u16> = body
                .chunks_exact(2)
                .map(|p| {
                    let pair = [p[0], p[1]];
                    if big_endian {
                        u16::from_be_bytes(pair)
                    } else {
                        u16::from_le_bytes(pair)
                    }
                })
                .collect();
            let text = String::from_utf16_lossy(&units);
            let text = text.trim_start_matches('\u{feff}').to_string();
            out.push(text.clone());
            candidates.push(text);
        }
    }
    // And in UTF-32.
    if body.len().is_multiple_of(4) && body.contains(&0) {
        for big_endian in [false, true] {
            let text: String = body
                .chunks_exact(4)
                .map(|u| {
                    let u = [u[0], u[1], u[2], u[3]];
                    let n = if big_endian {
                        u32::from_be_bytes(u)
                    } else {
                        u32::from_le_bytes(u)
                    };
                    char::from_u32(n).unwrap_or('\u{fffd}')
                })
                .collect();
            let text = text.trim_start_matches('\u{feff}').to_string();
            out.push(text.clone());
            candidates.push(text);
        }
    }
    for candidate in candidates {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&candidate) {
            out.push(strings_of(&v));
        }
    }
    out
}

fn strings_of(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => format!("{s}\n"),
        serde_json::Value::Array(a) => a.iter().map(strings_of).collect(),
        serde_json::Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k}\n{}", strings_of(v)))
            .collect(),
        _ => String::new(),
    }
}

/// Whether `secret` (its letters and digits, in order, whatever separates them in the text)
/// appears in `text`.
fn holds(text: &str, secret: &str) -> bool {
    let alnum = |s: &str| {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
    };
    alnum(text).contains(&alnum(secret))
}

async fn connect_tunnel(gw: &Gateway, target: &str, sni: &str) -> Tunnel {
    let mut tcp = TcpStream::connect(gw.proxy).await.unwrap();
    tcp.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 200"), "CONNECT {target}: {head}");
    tokio_rustls::TlsConnector::from(tls_client_config(gw, &[b"http/1.1"]))
        .connect(sni.to_string().try_into().unwrap(), tcp)
        .await
        .unwrap()
}

type Tunnel = tokio_rustls::client::TlsStream<TcpStream>;

async fn read_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if tcp.read_exact(&mut byte).await.is_err() {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Sends one case through an intercepted tunnel and returns the answer.
async fn send<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, c: &Case, id: usize) -> String {
    let mut req = format!(
        "{} HTTP/1.1\r\nHost: {}\r\nX-Case: {id}\r\n{}Content-Length: {}\r\nConnection: close\r\n\r\n",
        c.line,
        c.host,
        c.headers,
        c.body.len()
    )
    .into_bytes();
    req.extend_from_slice(&c.body);
    s.write_all(&req).await.unwrap();
    s.flush().await.unwrap();
    read_answer(s, Duration::from_secs(10)).await.0
}

fn received_by_case(up: &Upstream, id: usize) -> Vec<Received> {
    up.received
        .lock()
        .iter()
        .filter(|r| r.header("x-case") == Some(&id.to_string()))
        .cloned()
        .collect()
}

fn check(c: &Case, answer: &str, got: &[Received]) -> Result<(), String> {
    let code = status(answer);
    match c.expect {
        Outcome::Blocked => {
            if !(400..500).contains(&code) {
                return Err(format!("expected a refusal, got {code}"));
            }
            if !got.is_empty() {
                return Err(format!("the site received {} request(s)", got.len()));
            }
        }
        Outcome::Redacted | Outcome::Delivered => {
            if code != 200 {
                let first = answer.lines().next().unwrap_or("");
                let why = answer.rsplit("\r\n\r\n").next().unwrap_or("");
                return Err(format!("expected 200, got {first}: {why}"));
            }
            let [r] = got else {
                return Err(format!("the site received {} requests", got.len()));
            };
            if c.expect == Outcome::Delivered {
                if r.body != c.body {
                    return Err("body not delivered byte for byte".into());
                }
                let target = c.line.split_once(' ').map_or("", |(_, t)| t);
                if r.path != target {
                    return Err(format!("target changed: {} → {}", target, r.path));
                }
                return Ok(());
            }
            if !answer.contains("x-permeable-action: redact") {
                return Err("no x-permeable-action: redact on the answer".into());
            }
            for reading in readings(&r.path, &r.body) {
                if holds(&reading, c.secret) {
                    return Err(format!(
                        "the value reached the site in clear: {} {}",
                        r.path,
                        String::from_utf8_lossy(&r.body)
                    ));
                }
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn adversarial_requests_deliver_nothing_in_clear() {
    let s = setup().await;
    let cases = cases();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (id, c) in cases.iter().enumerate() {
        let mut tls = connect_tunnel(&s.gw, &format!("{}:443", c.host), c.host).await;
        let answer = send(&mut tls, c, id).await;
        let got = received_by_case(&s.up, id);
        if let Err(e) = check(c, &answer, &got) {
            failures.push(format!("{} ({:?}): {e}", c.name, c.expect));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Wraps a stream so that the first TLS record it writes (the ClientHello) goes out split
/// into records of `size` bytes: no single record holds the server name.
struct Fragmenting<S> {
    inner: S,
    size: usize,
    pending: Vec<u8>,
    done: bool,
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Fragmenting<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if !this.done && buf.len() >= 5 && buf[0] == 22 {
            this.done = true;
            let len = u16::from_be_bytes([buf[3], buf[4]]) as usize;
            let end = (5 + len).min(buf.len());
            for chunk in buf[5..end].chunks(this.size) {
                this.pending.extend_from_slice(&[22, buf[1], buf[2]]);
                this.pending
                    .extend_from_slice(&(chunk.len() as u16).to_be_bytes());
                this.pending.extend_from_slice(chunk);
            }
            this.pending.extend_from_slice(&buf[end..]);
            return Poll::Ready(Ok(buf.len()));
        }
        if !this.pending.is_empty() {
            match Pin::new(&mut this.inner).poll_write(cx, &this.pending) {
                Poll::Ready(Ok(n)) => {
                    this.pending.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            if !this.pending.is_empty() {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        while !this.pending.is_empty() {
            match Pin::new(&mut this.inner).poll_write(cx, &this.pending) {
                Poll::Ready(Ok(n)) => {
                    this.pending.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Fragmenting<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

/// 6. A CONNECT to an address (or to another name) whose TLS asks for a catalogue site is
/// intercepted and classified by that name; the site is reached by its name.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connect_to_an_address_is_intercepted_by_the_name_tls_asks_for() {
    let s = setup().await;
    let post = |text: &str| {
        let body = tweet(text);
        format!(
            "{TWEET} HTTP/1.1\r\nHost: x.com\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    for target in [
        format!("{SITE_ADDRESS}:443"),
        "evil.example:443".to_string(),
    ] {
        // The gateway mints the leaf: the client trusts only the gateway's CA.
        let mut tls = connect_tunnel(&s.gw, &target, "x.com").await;
        tls.write_all(post(&format!("key {AWS}")).as_bytes())
            .await
            .unwrap();
        let (answer, _) = read_answer(&mut tls, Duration::from_secs(10)).await;
        assert_eq!(status(&answer), 403, "{target}: {answer}");
        assert!(
            answer.contains("x-permeable-rule: block-aws-access-key"),
            "{answer}"
        );

        let mut tls = connect_tunnel(&s.gw, &target, "x.com").await;
        tls.write_all(post("hello").as_bytes()).await.unwrap();
        let (answer, _) = read_answer(&mut tls, Duration::from_secs(10)).await;
        assert_eq!(status(&answer), 200, "{target}: {answer}");
        let last = s.up.last().unwrap();
        assert_eq!(
            (last.host.as_str(), last.body.as_slice()),
            ("x.com", tweet("hello").as_bytes())
        );
    }
    assert!(
        s.up.received
            .lock()
            .iter()
            .all(|r| !holds(&String::from_utf8_lossy(&r.body), AWS)),
        "no key reached the site"
    );

    // A ClientHello split over many records still names the site.
    let mut tcp = TcpStream::connect(s.gw.proxy).await.unwrap();
    tcp.write_all(format!("CONNECT {SITE_ADDRESS}:443 HTTP/1.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    assert!(read_head(&mut tcp).await.starts_with("HTTP/1.1 200"));
    let stream = Fragmenting {
        inner: tcp,
        size: 7,
        pending: Vec::new(),
        done: false,
    };
    let mut tls = tokio_rustls::TlsConnector::from(tls_client_config(&s.gw, &[b"http/1.1"]))
        .connect("x.com".try_into().unwrap(), stream)
        .await
        .expect("the gateway intercepts a fragmented ClientHello");
    tls.write_all(post(&format!("{CODENAME} soon")).as_bytes())
        .await
        .unwrap();
    let (answer, _) = read_answer(&mut tls, Duration::from_secs(10)).await;
    assert_eq!(status(&answer), 403, "{answer}");

    // TLS that names no catalogue site stays a blind tunnel to the address: the client
    // sees the site's own certificate (which it does not trust here), not a minted one.
    let mut tcp = TcpStream::connect(s.gw.proxy).await.unwrap();
    tcp.write_all(format!("CONNECT {SITE_ADDRESS}:443 HTTP/1.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    assert!(read_head(&mut tcp).await.starts_with("HTTP/1.1 200"));
    let blind = tokio_rustls::TlsConnector::from(tls_client_config(&s.gw, &[b"http/1.1"]))
        .connect("unlisted.example".try_into().unwrap(), tcp)
        .await;
    assert!(
        blind.is_err(),
        "not intercepted: no leaf from the gateway's CA"
    );
}

/// 7b. TLS to an address whose ClientHello names no server (rustls, like every client,
/// sends no SNI for an IP address) could be meant for any site. By default it is
/// intercepted with a leaf for the address, and a request whose Host names another host
/// (here x.com, which the site at that address would serve) is refused before anything
/// reaches the site; a request for the address itself goes to it over TLS verified for
/// the address. `proxy.tls_without_sni: relay` keeps the blind tunnel, `refuse` closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_to_an_address_without_a_server_name_is_held_to_the_address() {
    let ca = TestCa::new("upstream test CA");
    let target = format!("{SITE_ADDRESS}:443");
    let post = {
        let body = tweet(&format!("key {AWS}"));
        format!(
            "{TWEET} HTTP/1.1\r\nHost: x.com\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };

    let s = setup_with(&ca, |_| {}).await;
    let mut tls = connect_tunnel(&s.gw, &target, SITE_ADDRESS).await;
    tls.write_all(post.as_bytes()).await.unwrap();
    let (answer, _) = read_answer(&mut tls, Duration::from_secs(10)).await;
    assert!(
        (400..500).contains(&status(&answer))
            && answer.contains("does not match the CONNECT target"),
        "{answer}"
    );
    let mut tls = connect_tunnel(&s.gw, &target, SITE_ADDRESS).await;
    tls.write_all(
        format!("GET /hello HTTP/1.1\r\nHost: {SITE_ADDRESS}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let (answer, _) = read_answer(&mut tls, Duration::from_secs(10)).await;
    assert_eq!(status(&answer), 200, "{answer}");
    let got: Vec<(String, String)> =
        s.up.received
            .lock()
            .iter()
            .map(|r| (r.host.clone(), r.path.clone()))
            .collect();
    assert_eq!(got, [(SITE_ADDRESS.to_string(), "/hello".to_string())]);

    // Relayed: the client meets the site's own certificate, and the site gets the request.
    let s = setup_with(&ca, |b| {
        b.config.proxy.tls_without_sni = permeable::config::WithoutSni::Relay
    })
    .await;
    let mut tcp = TcpStream::connect(s.gw.proxy).await.unwrap();
    tcp.write_all(format!("CONNECT {target} HTTP/1.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    assert!(read_head(&mut tcp).await.starts_with("HTTP/1.1 200"));
    let mut tls =
        tokio_rustls::TlsConnector::from(tls_client_config_trusting(&ca.pem, &[b"http/1.1"]))
            .connect(SITE_ADDRESS.try_into().unwrap(), tcp)
            .await
            .expect("a blind tunnel to the site");
    tls.write_all(post.as_bytes()).await.unwrap();
    let (answer, _) = read_answer(&mut tls, Duration::from_secs(10)).await;
    assert_eq!(status(&answer), 200, "{answer}");
    assert_eq!(s.up.received.lock().len(), 1);

    // Refused: closed before any TLS is spoken, whichever CA the client trusts.
    let s = setup_with(&ca, |b| {
        b.config.proxy.tls_without_sni = permeable::config::WithoutSni::Refuse
    })
    .await;
    for trusted in [s.gw.ca_pem.clone(), ca.pem.clone()] {
        let mut tcp = TcpStream::connect(s.gw.proxy).await.unwrap();
        tcp.write_all(format!("CONNECT {target} HTTP/1.1\r\n\r\n").as_bytes())
            .await
            .unwrap();
        assert!(read_head(&mut tcp).await.starts_with("HTTP/1.1 200"));
        let tls =
            tokio_rustls::TlsConnector::from(tls_client_config_trusting(&trusted, &[b"http/1.1"]))
                .connect(SITE_ADDRESS.try_into().unwrap(), tcp)
                .await;
        assert!(tls.is_err(), "refused");
    }
    assert!(s.up.received.lock().is_empty());
}

/// 8. Non-global IPv6 in every spelling is refused before any connection is attempted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn non_global_ipv6_spellings_are_refused_before_connecting() {
    let s = setup().await;
    let spellings = [
        "::127.0.0.1",
        "::ffff:0:169.254.169.254",
        "::ffff:127.0.0.1",
        "64:ff9b::10.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::1",
        "2002:7f00:1::1",
        "2002:a9fe:a9fe::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "fec0::1",
        "fd12:3456::1",
        "::",
    ];
    for ip in spellings {
        let mut tcp = TcpStream::connect(s.gw.proxy).await.unwrap();
        tcp.write_all(
            format!("CONNECT [{ip}]:443 HTTP/1.1\r\nHost: [{ip}]:443\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let (answer, _) = read_answer(&mut tcp, Duration::from_secs(5)).await;
        // 403 and this reason come from the address check, before any connection: an
        // attempt to connect would have failed with a 502.
        assert_eq!(status(&answer), 403, "CONNECT [{ip}]: {answer}");
        assert!(answer.contains("private or local address"), "{answer}");

        let mut tcp = TcpStream::connect(s.gw.proxy).await.unwrap();
        tcp.write_all(
            format!("GET http://[{ip}]/ HTTP/1.1\r\nHost: [{ip}]\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let (answer, _) = read_answer(&mut tcp, Duration::from_secs(5)).await;
        assert_eq!(status(&answer), 403, "GET http://[{ip}]/: {answer}");
        assert!(answer.contains("private or local address"), "{answer}");
    }
}
