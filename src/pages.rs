//! What the employee sees when the gateway answers instead of the site: block pages,
//! coaching interstitials with their signed acknowledgement, and error answers.
//!
//! A page navigation (`Accept: text/html`, `Sec-Fetch-Mode: navigate`) gets a
//! self-contained HTML page (no external assets); an API call gets JSON with the same
//! facts, so a single-page app shows an error instead of hanging. When the site file
//! declares how the site's API reports an error (`refusal:`), the JSON takes that shape and
//! status, so that the site's own clients and SDKs show the rule's message; otherwise it is
//! the gateway's own JSON with status 403. Every answer names the rule in
//! `X-Permeable-Action` / `X-Permeable-Rule` and carries `X-Permeable-Request-Id`, and never
//! the matched value.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use sha2::Sha256;

use crate::config::PagesConfig;
use crate::engine::policy::refusal::{Refusal, RefusalFacts};
use crate::engine::policy::{Action, Decision};

const ACK_COOKIE: &str = "permeable_ack";
const CONTINUE_PATH: &str = "/.permeable/continue";
const COACH_PATH: &str = "/.permeable/coach";

/// A response the gateway writes itself.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// Renders the gateway's own answers, with the organisation's branding.
pub struct Pages {
    config: PagesConfig,
    /// Signs coach acknowledgements and the messages carried in coach links; replicas
    /// sharing `pages.coach_key_file` accept each other's.
    coach_key: Vec<u8>,
}

/// Why a request got 503 when the directory cannot answer and `auth.on_unavailable: refuse`.
pub const AUTH_UNAVAILABLE: &str = "the gateway cannot check who you are right now: the \
     directory does not answer";

/// Generic text of a coach page whose link carries no verifiable message.
const COACH_GENERIC: &str = "Please take a moment before you continue.";

impl Pages {
    pub fn new(config: PagesConfig, coach_key: Vec<u8>) -> Pages {
        Pages { config, coach_key }
    }

    /// The answer for a block or coach decision; `refusal` is the site's error shape for
    /// this endpoint, when its site file declares one.
    pub fn decision_response(
        &self,
        decision: &Decision,
        request_id: &str,
        host: &str,
        req: &RequestHeader,
        refusal: Option<&Refusal>,
        user: Option<&str>,
    ) -> Answer {
        let rule = decision.rule.clone().unwrap_or_else(|| "policy".into());
        let action = decision.action;
        let message = decision
            .message
            .clone()
            .unwrap_or_else(|| "This request is not allowed by your organisation's policy.".into());
        let categories = categories(decision);
        let path = req.uri.path_and_query().map_or("/", |p| p.as_str());
        let coach_url = (action == Action::Coach).then(|| {
            let mut url = format!(
                "https://{host}{COACH_PATH}?rule={}&return={}",
                pct(&rule),
                pct(if is_navigation(req) { path } else { "/" })
            );
            if !categories.is_empty() {
                url.push_str(&format!("&cat={}", pct(&categories.join(","))));
            }
            url.push_str(&format!("&id={}", pct(request_id)));
            // The rule's message travels in the link, signed, so that the interstitial
            // explains the rule on whichever replica serves it, and nobody can make the
            // gateway's page say something else.
            if let Some(message) = &decision.message {
                url.push_str(&format!(
                    "&msg={}&sig={}",
                    pct(message),
                    self.mac(&[host, &rule, message])
                ));
            }
            url
        });
        let mut headers = vec![
            (
                "x-permeable-action".to_string(),
                action.as_str().to_string(),
            ),
            ("x-permeable-rule".to_string(), rule.clone()),
            ("x-permeable-request-id".to_string(), request_id.to_string()),
            ("cache-control".to_string(), "no-store".to_string()),
        ];
        if is_navigation(req) {
            let html = if action == Action::Coach {
                self.coach_page(&rule, &message, &categories, request_id, host, path, user)
            } else {
                self.block_page(
                    &rule,
                    &message,
                    &categories,
                    request_id,
                    decision.uninspectable_reason(),
                    host,
                    &BlockedWhat::of(req, &decision.activity),
                    user,
                )
            };
            headers.push(("content-type".into(), "text/html; charset=utf-8".into()));
            Answer {
                status: 403,
                headers,
                body: Bytes::from(html),
            }
        } else {
            let facts = RefusalFacts {
                action: action.as_str(),
                rule: &rule,
                message: &message,
                categories: &categories,
                request_id,
                site: decision.site.as_deref().unwrap_or(""),
                policy_url: self.config.policy_url.as_deref(),
                continue_url: coach_url.as_deref(),
                reason: decision.uninspectable_reason(),
            };
            let (status, json) = match refusal {
                Some(r) => (r.status, r.render(&facts)),
                None => {
                    let mut json = serde_json::Map::new();
                    json.insert(
                        "error".into(),
                        if action == Action::Coach {
                            "coached"
                        } else {
                            "blocked"
                        }
                        .into(),
                    );
                    json.extend(facts.gateway_fields());
                    // Whose request this was recorded as (the gateway's own shape only:
                    // a site's client would not show it).
                    json.insert("user".into(), user.into());
                    (403, serde_json::Value::Object(json))
                }
            };
            headers.push(("content-type".into(), "application/json".into()));
            Answer {
                status,
                headers,
                body: Bytes::from(json.to_string()),
            }
        }
    }

    /// An answer for a request the gateway refuses or cannot relay.
    pub fn error_response(
        &self,
        status: u16,
        reason: &str,
        request_id: &str,
        req: &RequestHeader,
    ) -> Answer {
        let mut headers = own_answer_headers(reason, request_id);
        if is_navigation(req) {
            let title = match status {
                400 => "The request could not be understood",
                403 => "This destination is not allowed",
                504 => "The site did not answer in time",
                _ => "The site could not be reached",
            };
            let body = format!("<p class=\"lead\">{}</p>", esc(reason));
            self.page_with_request_id(status, headers, title, &body, request_id)
        } else {
            headers.push(("content-type".into(), "application/json".into()));
            let json =
                serde_json::json!({"error": reason, "status": status, "request_id": request_id});
            Answer {
                status,
                headers,
                body: Bytes::from(json.to_string()),
            }
        }
    }

    /// The answer to a request that must sign in first (407, with one `Proxy-Authenticate`
    /// per offered method) or that cannot be identified now (503). `navigation`: an HTML
    /// page rather than JSON.
    pub fn auth_response(
        &self,
        status: u16,
        challenges: &[String],
        reason: &str,
        request_id: &str,
        navigation: bool,
    ) -> Answer {
        let mut headers = own_answer_headers(reason, request_id);
        if status == 407 {
            for challenge in challenges {
                headers.push(("proxy-authenticate".to_string(), challenge.clone()));
            }
        } else {
            headers.push(("retry-after".to_string(), "60".to_string()));
        }
        if navigation {
            let (title, lead) = if status == 407 {
                (
                    "Sign-in required",
                    "This gateway needs to know who you are before it forwards your request. \
                     On a computer joined to the organisation's domain your browser signs in \
                     for you; elsewhere it asks for your user name and password.",
                )
            } else {
                (
                    "Sign-in is unavailable",
                    "The gateway cannot check who you are right now: the directory does not \
                     answer. Your organisation holds requests until it can. Try again in a \
                     few minutes; if it goes on, contact the helpdesk and quote the request id.",
                )
            };
            let body = format!("<p class=\"lead\">{}</p><p>{}</p>", esc(lead), esc(reason));
            self.page_with_request_id(status, headers, title, &body, request_id)
        } else {
            headers.push(("content-type".into(), "application/json".into()));
            let error = if status == 407 {
                "authentication required"
            } else {
                "authentication unavailable"
            };
            let json = serde_json::json!({"error": error, "reason": reason, "status": status, "request_id": request_id});
            Answer {
                status,
                headers,
                body: Bytes::from(json.to_string()),
            }
        }
    }

    /// Whether the request carries a valid acknowledgement of `rule`'s coaching on `host`,
    /// given by this `user` (an acknowledgement is one person's: another user's cookie,
    /// or one given before signing in, does not count).
    pub fn coach_acknowledged(
        &self,
        req: &RequestHeader,
        host: &str,
        rule: Option<&str>,
        user: Option<&str>,
    ) -> bool {
        let rule = rule.unwrap_or("policy");
        let now = unix_now();
        cookies(req, ACK_COOKIE).any(|value| {
            let mut parts = value.rsplitn(3, '.');
            let (Some(sig), Some(expiry), Some(ack_rule)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return false;
            };
            let Ok(expiry) = expiry.parse::<u64>() else {
                return false;
            };
            expiry > now && ack_rule == rule && self.sign(host, ack_rule, expiry, user) == sig
        })
    }

    /// The gateway's own endpoints on intercepted hosts: the coach page and its Continue,
    /// whose acknowledgement is signed for `user`.
    pub fn coach_continue(
        &self,
        req: &RequestHeader,
        host: &str,
        user: Option<&str>,
    ) -> Option<Answer> {
        let path = req.uri.path();
        if path != CONTINUE_PATH && path != COACH_PATH {
            return None;
        }
        let query = req.uri.query().unwrap_or("");
        let rule = query_param(query, "rule").unwrap_or_else(|| "policy".into());
        let mut ret = query_param(query, "return").unwrap_or_else(|| "/".into());
        if !ret.starts_with('/') || ret.starts_with("//") {
            ret = "/".into(); // only same-site paths: no open redirect
        }
        if path == COACH_PATH {
            let message = match (query_param(query, "msg"), query_param(query, "sig")) {
                (Some(msg), Some(sig)) if self.mac(&[host, &rule, &msg]) == sig => msg,
                _ => COACH_GENERIC.into(),
            };
            // Only category names the page knows are shown; anything else in the URL is not.
            let categories: Vec<String> = query_param(query, "cat")
                .unwrap_or_default()
                .split(',')
                .filter(|c| known_category(c).is_some())
                .map(str::to_string)
                .collect();
            let request_id = query_param(query, "id")
                .filter(|id| id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric()))
                .unwrap_or_default();
            let html = self.coach_page(&rule, &message, &categories, &request_id, host, &ret, user);
            return Some(Answer {
                status: 200,
                headers: vec![
                    ("content-type".into(), "text/html; charset=utf-8".into()),
                    ("cache-control".into(), "no-store".into()),
                ],
                body: Bytes::from(html),
            });
        }
        if req.method != http::Method::POST {
            return Some(Answer {
                status: 405,
                headers: vec![("allow".into(), "POST".into())],
                body: Bytes::from_static(b"use the Continue button\n"),
            });
        }
        let ttl = self.config.coach_ttl_minutes.max(1) * 60;
        let expiry = unix_now() + ttl;
        let cookie = format!(
            "{ACK_COOKIE}={rule}.{expiry}.{}; Path=/; Max-Age={ttl}; Secure; HttpOnly; SameSite=Lax",
            self.sign(host, &rule, expiry, user)
        );
        Some(Answer {
            status: 303,
            headers: vec![
                ("location".into(), ret),
                ("set-cookie".into(), cookie),
                ("cache-control".into(), "no-store".into()),
                ("content-length".into(), "0".into()),
            ],
            body: Bytes::new(),
        })
    }

    /// The acknowledgement's signature: over the user too when there is one (the cookie
    /// itself never names the user).
    fn sign(&self, host: &str, rule: &str, expiry: u64, user: Option<&str>) -> String {
        let expiry = expiry.to_string();
        match user {
            Some(user) => self.mac(&[host, rule, &expiry, "user", user]),
            None => self.mac(&[host, rule, &expiry]),
        }
    }

    /// A keyed MAC over `parts` (length-prefixed, so no two lists sign alike), in hex.
    fn mac(&self, parts: &[&str]) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.coach_key) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p.as_bytes());
        }
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    #[allow(clippy::too_many_arguments)]
    fn block_page(
        &self,
        rule: &str,
        message: &str,
        categories: &[String],
        request_id: &str,
        reason: Option<&str>,
        host: &str,
        what: &BlockedWhat,
        user: Option<&str>,
    ) -> String {
        let content = !categories.is_empty() || reason.is_some();
        let mut body = format!("<p class=\"lead\">{}</p>", esc(message));
        if !categories.is_empty() {
            body.push_str("<h2>What was found</h2><ul>");
            for c in categories {
                body.push_str(&format!("<li>{}</li>", esc(&describe_category(c))));
            }
            body.push_str("</ul>");
        }
        if let Some(reason) = reason {
            body.push_str(&format!(
                "<h2>Why it could not be checked</h2><p>{}</p>",
                esc(reason)
            ));
        }
        body.push_str("<h2>What you can do</h2>");
        let site = esc(host);
        if !categories.is_empty() {
            body.push_str(&format!(
                "<p>Remove the sensitive content and try again. Nothing of this {} was sent to {site}.</p>\
                 <p><a href=\"javascript:history.back()\">Go back and edit</a></p>",
                what.noun
            ));
        } else if content {
            body.push_str(&format!(
                "<p>Nothing of this {} was sent to {site}. If you need to send it for your work, contact the helpdesk and quote the request id below.</p>",
                what.noun
            ));
        } else {
            body.push_str(
                "<p>This is not available on your organisation's network. If you need it for your work, contact the helpdesk and quote the request id below.</p>",
            );
        }
        body.push_str(&self.footer(rule, request_id, host, user));
        let title = if content || !what.page {
            format!("This {} was blocked", what.noun)
        } else {
            "This page is blocked".to_string()
        };
        self.layout(&title, &body)
    }

    #[allow(clippy::too_many_arguments)]
    fn coach_page(
        &self,
        rule: &str,
        message: &str,
        categories: &[String],
        request_id: &str,
        host: &str,
        ret: &str,
        user: Option<&str>,
    ) -> String {
        let mut body = format!("<p class=\"lead\">{}</p>", esc(message));
        if !categories.is_empty() {
            body.push_str("<h2>What we noticed</h2><ul>");
            for c in categories {
                body.push_str(&format!("<li>{}</li>", esc(&describe_category(c))));
            }
            body.push_str("</ul>");
        }
        body.push_str(&format!(
            "<h2>If you continue</h2><p>Your request goes to {host} as it is. Continuing is recorded, and you will not be asked again about this for {} minutes on {host}.</p>\
             <form class=\"actions\" method=\"post\" action=\"https://{host}{CONTINUE_PATH}?rule={}&amp;return={}\">\
             <button type=\"submit\" autofocus>Continue</button>\
             <a class=\"secondary\" href=\"javascript:history.back()\">Go back</a></form>",
            self.config.coach_ttl_minutes,
            esc(&pct(rule)),
            esc(&pct(ret)),
            host = esc(host),
        ));
        body.push_str(&self.footer(rule, request_id, host, user));
        self.layout("Before you continue", &body)
    }

    fn footer(&self, rule: &str, request_id: &str, host: &str, user: Option<&str>) -> String {
        let mut f = String::from("<dl class=\"meta\">");
        if let Some(user) = user {
            // The employee sees whose request this was recorded as.
            f.push_str(&format!("<dt>Signed in as</dt><dd>{}</dd>", esc(user)));
        }
        if !host.is_empty() {
            f.push_str(&format!("<dt>Site</dt><dd>{}</dd>", esc(host)));
        }
        f.push_str(&format!("<dt>Rule</dt><dd><code>{}</code></dd>", esc(rule)));
        if !request_id.is_empty() {
            f.push_str(&format!(
                "<dt>Request id</dt><dd><code>{}</code> (quote it to the helpdesk)</dd>",
                esc(request_id)
            ));
        }
        f.push_str("</dl>");
        let mut links = Vec::new();
        if let Some(url) = &self.config.policy_url {
            links.push(format!(
                "<li><a href=\"{}\">Read the policy</a></li>",
                esc(url)
            ));
        }
        if let Some(url) = &self.config.help_url {
            links.push(format!("<li><a href=\"{}\">Get help</a></li>", esc(url)));
        }
        if !links.is_empty() {
            f.push_str(&format!(
                "<nav aria-label=\"Help\"><ul class=\"links\">{}</ul></nav>",
                links.concat()
            ));
        }
        f
    }

    /// An HTML page of the gateway's own: `body`, then the request id to quote.
    fn page_with_request_id(
        &self,
        status: u16,
        mut headers: Vec<(String, String)>,
        title: &str,
        body: &str,
        request_id: &str,
    ) -> Answer {
        let body = format!(
            "{body}<dl class=\"meta\"><dt>Request id</dt><dd><code>{}</code> (quote it to the helpdesk)</dd></dl>",
            esc(request_id)
        );
        headers.push(("content-type".into(), "text/html; charset=utf-8".into()));
        Answer {
            status,
            headers,
            body: Bytes::from(self.layout(title, &body)),
        }
    }

    fn layout(&self, title: &str, body: &str) -> String {
        // The organisation's name is written next to the logo: the image itself is decorative.
        let logo = self
            .config
            .logo
            .as_deref()
            .map(|src| format!("<img src=\"{}\" alt=\"\">", esc(src)))
            .unwrap_or_default();
        let accent = sanitize_color(&self.config.accent_color);
        // Whatever the brand colour, text on it and links in its colour stay readable
        // (WCAG AA, 4.5:1).
        let readable_on_white = contrast_with_white(&accent) >= 4.5;
        let on_accent = if readable_on_white { "#fff" } else { "#1a1a1a" };
        let link = if readable_on_white {
            accent.as_str()
        } else {
            "#1a1a1a"
        };
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"color-scheme\" content=\"light\"><meta name=\"robots\" content=\"noindex\">\
<title>{title} — {org}</title><style>\
:root{{--accent:{accent};--on-accent:{on_accent};--link:{link}}}\
*{{box-sizing:border-box}}\
body{{margin:0;font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;color:#1a1a1a;background:#f4f5f7}}\
header{{background:var(--accent);color:var(--on-accent);padding:12px 24px;display:flex;gap:12px;align-items:center;font-weight:600}}\
header img{{height:32px;width:auto;max-width:160px;flex:none}}\
main{{max-width:640px;margin:32px auto;background:#fff;padding:24px 32px;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.15)}}\
h1{{font-size:1.6rem;line-height:1.25;margin:0 0 .75rem}}h2{{font-size:1.05rem;margin:1.25rem 0 .25rem}}\
p,ul{{margin:.25rem 0 .75rem}}.lead{{font-size:1.15rem}}\
.meta{{color:#4a4a4a;font-size:.9rem}}\
dl.meta{{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:1.5rem 0 .75rem;padding-top:1rem;border-top:1px solid #dde1e6}}\
dl.meta dt{{font-weight:600}}dl.meta dd{{margin:0;overflow-wrap:anywhere}}\
code{{background:#eef0f3;padding:0 4px;border-radius:3px;font-size:.95em}}\
.actions{{display:flex;flex-wrap:wrap;gap:12px 20px;align-items:center;margin:1.25rem 0}}\
button{{background:var(--accent);color:var(--on-accent);border:0;padding:12px 24px;border-radius:6px;font:inherit;font-weight:600;cursor:pointer;min-height:44px}}\
a{{color:var(--link)}}a.secondary{{padding:10px 0}}\
ul.links{{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:4px 20px}}\
button:focus,a:focus{{outline:3px solid #1a1a1a;outline-offset:3px}}\
@media (max-width:480px){{header{{padding:12px 16px}}main{{margin:0;border-radius:0;padding:20px 16px;box-shadow:none}}h1{{font-size:1.4rem}}.actions button{{width:100%}}}}\
</style></head><body><header>{logo}<span>{org} · social media gateway</span></header>\
<main><h1>{title}</h1>{body}</main></body></html>",
            title = esc(title),
            org = esc(&self.config.organisation),
        )
    }
}

/// What a blocked request was, in the employee's words.
struct BlockedWhat {
    noun: &'static str,
    /// A page being opened (GET/HEAD), rather than something being sent.
    page: bool,
}

impl BlockedWhat {
    fn of(req: &RequestHeader, activity: &str) -> BlockedWhat {
        let page = matches!(req.method, http::Method::GET | http::Method::HEAD);
        let noun = match activity {
            "comment" => "comment",
            "message" => "message",
            "upload" => "upload",
            "share" => "share",
            "login" => "sign-in",
            "post" => "post",
            _ if page => "page",
            _ => "post",
        };
        BlockedWhat { noun, page }
    }
}

/// Write an [`Answer`] to the client.
pub async fn write(session: &mut Session, answer: Answer) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(answer.status, Some(answer.headers.len() + 1))?;
    // Appended, not inserted: some fields come several times (`Proxy-Authenticate`).
    for (k, v) in answer.headers {
        resp.append_header(k, v)?;
    }
    if resp.headers.get("content-length").is_none() {
        resp.insert_header("content-length", answer.body.len().to_string())?;
    }
    session
        .write_response_header(Box::new(resp), answer.body.is_empty())
        .await?;
    if !answer.body.is_empty() {
        session.write_response_body(Some(answer.body), true).await?;
    }
    Ok(())
}

/// `category=count` pairs for the redaction header, e.g. `pii.credit_card=2`.
pub fn redaction_summary(decision: &Decision) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for f in &decision.findings {
        *counts.entry(f.category.as_str()).or_default() += 1;
    }
    counts
        .iter()
        .map(|(c, n)| format!("{c}={n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn categories(decision: &Decision) -> Vec<String> {
    let mut cats: Vec<String> = decision
        .findings
        .iter()
        .map(|f| f.category.clone())
        .collect();
    cats.sort();
    cats.dedup();
    cats
}

fn describe_category(c: &str) -> String {
    format!("{} ({c})", known_category(c).unwrap_or(c))
}

/// What a category is, in plain words; `None` for a category the pages do not know.
fn known_category(c: &str) -> Option<&'static str> {
    Some(match c {
        "pii.credit_card" => "a payment card number",
        "pii.iban" => "a bank account number (IBAN)",
        "pii.us_ssn" => "a US Social Security number",
        "pii.uk_nino" => "a UK National Insurance number",
        "pii.email" => "an email address",
        "secret.aws_access_key" => "an AWS access key",
        "secret.github_token" => "a GitHub token",
        "secret.slack_token" => "a Slack token or webhook",
        "secret.private_key" => "a private key",
        "secret.jwt" => "a session token (JWT)",
        "secret.google_api_key" => "a Google API key",
        "secret.stripe_key" => "a Stripe secret key",
        "corp.internal_host" => "an internal host name or address",
        "corp.internal_url" => "a link to an internal system",
        "corp.marking" => "a classification marking",
        "corp.codename" => "a confidential project name",
        _ => return None,
    })
}

pub fn is_navigation(req: &RequestHeader) -> bool {
    let get = |n: &str| {
        req.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    if get("sec-fetch-mode") == "navigate" || get("sec-fetch-dest") == "document" {
        return true;
    }
    if !get("sec-fetch-mode").is_empty() {
        return false; // fetch/XHR from a page
    }
    get("accept").contains("text/html")
}

fn cookies<'a>(req: &'a RequestHeader, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    req.headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// Characters left as they are in query values: unreserved, per RFC 3986.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn pct(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, QUERY_VALUE).to_string()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Escape text for HTML.
/// The fields of an answer the gateway gives itself (a refusal, a sign-in challenge): the
/// request id, the reason on one line, and no caching.
fn own_answer_headers(reason: &str, request_id: &str) -> Vec<(String, String)> {
    vec![
        ("x-permeable-request-id".to_string(), request_id.to_string()),
        (
            "x-permeable-reason".to_string(),
            reason.replace(['\r', '\n'], " "),
        ),
        ("cache-control".to_string(), "no-store".to_string()),
    ]
}

pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// WCAG contrast ratio of a `#rgb`/`#rrggbb`/`#rrggbbaa` colour against white.
fn contrast_with_white(c: &str) -> f64 {
    let hex = c.trim_start_matches('#');
    let hex: String = match hex.len() {
        3 | 4 => hex.chars().take(3).flat_map(|ch| [ch, ch]).collect(),
        _ => hex.chars().take(6).collect(),
    };
    let channel = |i: usize| {
        let v =
            u8::from_str_radix(hex.get(i..i + 2).unwrap_or("00"), 16).unwrap_or(0) as f64 / 255.0;
        if v <= 0.03928 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    let luminance = 0.2126 * channel(0) + 0.7152 * channel(2) + 0.0722 * channel(4);
    1.05 / (luminance + 0.05)
}

fn sanitize_color(c: &str) -> String {
    let ok = c.starts_with('#')
        && matches!(c.len(), 4 | 5 | 7 | 9)
        && c[1..].bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        c.to_string()
    } else {
        "#1f4e9c".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
        for (k, v) in headers {
            r.insert_header(k.to_string(), v.to_string()).unwrap();
        }
        r
    }

    #[test]
    fn acknowledgement_round_trip() {
        let pages = Pages::new(PagesConfig::default(), b"k".to_vec());
        let mut post = RequestHeader::build(
            "POST",
            b"/.permeable/continue?rule=coach-codename&return=%2Fhome",
            None,
        )
        .unwrap();
        post.insert_header("host", "x.com").unwrap();
        let answer = pages.coach_continue(&post, "x.com", None).unwrap();
        assert_eq!(answer.status, 303);
        let cookie = answer
            .headers
            .iter()
            .find(|(k, _)| k == "set-cookie")
            .unwrap()
            .1
            .clone();
        let value = cookie.split(';').next().unwrap();
        let with = req("/", &[("cookie", value)]);
        assert!(pages.coach_acknowledged(&with, "x.com", Some("coach-codename"), None));
        assert!(!pages.coach_acknowledged(&with, "www.linkedin.com", Some("coach-codename"), None));
        assert!(!pages.coach_acknowledged(&with, "x.com", Some("other-rule"), None));
        let forged = req(
            "/",
            &[("cookie", "permeable_ack=coach-codename.99999999999.00")],
        );
        assert!(!pages.coach_acknowledged(&forged, "x.com", Some("coach-codename"), None));
    }

    #[test]
    fn an_acknowledgement_is_the_user_s_own() {
        let pages = Pages::new(PagesConfig::default(), b"k".to_vec());
        let post =
            RequestHeader::build("POST", b"/.permeable/continue?rule=r&return=%2F", None).unwrap();
        let answer = pages.coach_continue(&post, "x.com", Some("alice")).unwrap();
        let cookie = &answer
            .headers
            .iter()
            .find(|(k, _)| k == "set-cookie")
            .unwrap()
            .1;
        assert!(
            !cookie.contains("alice"),
            "the cookie never names the user: {cookie}"
        );
        let with = req("/", &[("cookie", cookie.split(';').next().unwrap())]);
        assert!(pages.coach_acknowledged(&with, "x.com", Some("r"), Some("alice")));
        assert!(!pages.coach_acknowledged(&with, "x.com", Some("r"), Some("bob")));
        assert!(!pages.coach_acknowledged(&with, "x.com", Some("r"), None));
    }

    #[test]
    fn sign_in_answers_offer_every_method_and_say_why() {
        let pages = Pages::new(PagesConfig::default(), b"k".to_vec());
        let challenges = ["Negotiate".to_string(), "Basic realm=\"r\"".to_string()];
        let answer = pages.auth_response(407, &challenges, "sign-in required", "id1", true);
        assert_eq!(answer.status, 407);
        let offered: Vec<_> = answer
            .headers
            .iter()
            .filter(|(k, _)| k == "proxy-authenticate")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(offered, ["Negotiate", "Basic realm=\"r\""]);
        assert!(text(&answer).contains("<h1>Sign-in required</h1>"));
        let down = pages.auth_response(503, &challenges, AUTH_UNAVAILABLE, "id2", false);
        assert!(!down.headers.iter().any(|(k, _)| k == "proxy-authenticate"));
        assert!(
            text(&down).contains("directory does not answer"),
            "{}",
            text(&down)
        );
    }

    #[test]
    fn no_open_redirect() {
        let pages = Pages::new(PagesConfig::default(), b"k".to_vec());
        let post = RequestHeader::build(
            "POST",
            b"/.permeable/continue?rule=r&return=https%3A%2F%2Fevil.example",
            None,
        )
        .unwrap();
        let answer = pages.coach_continue(&post, "x.com", None).unwrap();
        assert!(answer
            .headers
            .iter()
            .any(|(k, v)| k == "location" && v == "/"));
    }

    fn decision(action: Action, activity: &str, categories: &[&str]) -> Decision {
        Decision {
            site: Some("x".into()),
            activity: activity.into(),
            action,
            rule: Some("r1".into()),
            message: Some("Rule message <b>".into()),
            matches: vec![],
            findings: categories
                .iter()
                .map(|c| crate::engine::policy::Finding {
                    category: c.to_string(),
                    detector: "d".into(),
                    field: "/text".into(),
                    start: 0,
                    end: 1,
                    value_hash: String::new(),
                    in_content: true,
                })
                .collect(),
            body: None,
            target: None,
            uninspectable: None,
            trace: vec![],
        }
    }

    fn text(answer: &Answer) -> String {
        String::from_utf8_lossy(&answer.body).into_owned()
    }

    #[test]
    fn block_page_names_what_was_blocked() {
        let pages = Pages::new(PagesConfig::default(), b"k".to_vec());
        let nav = [("accept", "text/html"), ("sec-fetch-mode", "navigate")];
        let area = pages.decision_response(
            &decision(Action::Block, "message", &[]),
            "abc123",
            "x.com",
            &req("/messages", &nav),
            None,
            None,
        );
        let page = text(&area);
        assert!(page.contains("<h1>This page is blocked</h1>"), "{page}");
        assert!(!page.contains("sensitive content"), "{page}");
        assert!(page.contains("Rule message &lt;b&gt;") && page.contains("abc123"));
        let mut post = RequestHeader::build("POST", b"/i/api/graphql/a/CreateTweet", None).unwrap();
        for (k, v) in nav {
            post.insert_header(k, v).unwrap();
        }
        let page = text(&pages.decision_response(
            &decision(Action::Block, "post", &["secret.aws_access_key"]),
            "abc123",
            "x.com",
            &post,
            None,
            None,
        ));
        assert!(page.contains("<h1>This post was blocked</h1>"), "{page}");
        assert!(
            page.contains("an AWS access key") && page.contains("Remove the sensitive content")
        );
    }

    #[test]
    fn coach_interstitial_from_an_api_call_explains_the_rule() {
        let pages = Pages::new(PagesConfig::default(), b"k".to_vec());
        let api = req("/i/api", &[("accept", "*/*"), ("sec-fetch-mode", "cors")]);
        let json: serde_json::Value = serde_json::from_slice(
            &pages
                .decision_response(
                    &decision(Action::Coach, "post", &["corp.codename"]),
                    "abc123",
                    "x.com",
                    &api,
                    None,
                    None,
                )
                .body,
        )
        .unwrap();
        let url = json["continue_url"].as_str().unwrap();
        let path = url.strip_prefix("https://x.com").unwrap();
        let page = text(
            &pages
                .coach_continue(&req(path, &[]), "x.com", None)
                .unwrap(),
        );
        assert!(page.contains("Rule message &lt;b&gt;"), "{page}");
        assert!(page.contains("a confidential project name"), "{page}");
        assert!(page.contains("abc123"), "{page}");
        // Category names the pages do not know are not echoed from the URL.
        let forged = "/.permeable/coach?rule=r1&cat=%3Cscript%3E,pii.email&id=%3Cx%3E";
        let page = text(
            &pages
                .coach_continue(&req(forged, &[]), "x.com", None)
                .unwrap(),
        );
        assert!(
            !page.contains("&lt;script") && !page.contains("<script") && !page.contains("&lt;x"),
            "{page}"
        );
        assert!(page.contains("an email address"));
    }

    #[test]
    fn api_calls_get_the_site_shape_and_navigations_the_page() {
        let files = [
            (
                "sites/b.yaml",
                "site: b\nname: B\ndomains: [b.example]\nactivities:\n  - activity: post\n    method: POST\nrefusal:\n  status: 400\n  body: { error: InvalidRequest, message: \"{message}\" }\n",
            ),
            ("detectors/d.yaml", "detectors:\n  - id: d\n    category: pii.email\n    regex: '@'\n"),
            ("policy.yaml", "rules: []\n"),
        ]
        .map(|(rel, text)| crate::engine::policy::compile::SourceFile {
            display: rel.into(),
            relative: rel.into(),
            text: text.into(),
        });
        let policy = crate::engine::policy::compile::compile(&files, &Default::default()).unwrap();
        let refusal = policy
            .site_by_id("b")
            .and_then(|s| s.refusal_for("b.example", "/xrpc/x"));
        assert!(refusal.is_some());
        let pages = Pages::new(PagesConfig::default(), b"k".to_vec());
        let d = decision(Action::Block, "post", &["pii.email"]);
        let api = req("/xrpc/x", &[("accept", "application/json")]);
        let answer = pages.decision_response(&d, "abc123", "b.example", &api, refusal, None);
        assert_eq!(answer.status, 400);
        let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": "InvalidRequest", "message": "Rule message <b>"})
        );
        let header = |a: &Answer, n: &str| {
            a.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            header(&answer, "x-permeable-action").as_deref(),
            Some("block")
        );
        assert_eq!(header(&answer, "x-permeable-rule").as_deref(), Some("r1"));
        assert_eq!(
            header(&answer, "x-permeable-request-id").as_deref(),
            Some("abc123")
        );
        let nav = req(
            "/xrpc/x",
            &[("accept", "text/html"), ("sec-fetch-mode", "navigate")],
        );
        let page = pages.decision_response(&d, "abc123", "b.example", &nav, refusal, None);
        assert_eq!(page.status, 403);
        assert!(
            text(&page).starts_with("<!doctype html>"),
            "{}",
            text(&page)
        );
    }

    #[test]
    fn brand_colour_stays_readable() {
        let light = PagesConfig {
            accent_color: "#ffd400".into(),
            ..PagesConfig::default()
        };
        let page = Pages::new(light, vec![]).layout("t", "");
        assert!(
            page.contains("--on-accent:#1a1a1a;--link:#1a1a1a"),
            "{page}"
        );
        let page = Pages::new(PagesConfig::default(), vec![]).layout("t", "");
        assert!(page.contains("--on-accent:#fff;--link:#1f4e9c"), "{page}");
        assert!(contrast_with_white("#000") > 20.0);
        assert!((contrast_with_white("#fff") - 1.0).abs() < 1e-9);
        assert_eq!(sanitize_color("#12345"), "#1f4e9c");
        assert_eq!(sanitize_color("red;}"), "#1f4e9c");
    }

    #[test]
    fn navigation_detection() {
        assert!(is_navigation(&req(
            "/",
            &[("accept", "text/html,application/xhtml+xml")]
        )));
        assert!(!is_navigation(&req(
            "/",
            &[("accept", "*/*"), ("sec-fetch-mode", "cors")]
        )));
        assert!(!is_navigation(&req("/", &[("accept", "application/json")])));
    }
}
