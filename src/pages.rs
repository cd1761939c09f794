//! What the employee sees when the gateway answers instead of the site: block pages,
//! coaching interstitials with their signed acknowledgement, and error answers.
//!
//! A page navigation (`Accept: text/html`, `Sec-Fetch-Mode: navigate`) gets a
//! self-contained HTML page (no external assets); an API call gets JSON with the same
//! facts and status 403, so a single-page app shows an error instead of hanging. Both name
//! the rule in `X-Permeable-Action` / `X-Permeable-Rule`, and never the matched value.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use sha2::Sha256;

use crate::config::PagesConfig;
use crate::policy::{Action, Decision};

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
    coach_key: Vec<u8>,
}

impl Pages {
    pub fn new(config: PagesConfig, coach_key: Vec<u8>) -> Pages {
        Pages { config, coach_key }
    }

    /// The answer for a block or coach decision.
    pub fn decision_response(
        &self,
        decision: &Decision,
        request_id: &str,
        host: &str,
        req: &RequestHeader,
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
            format!(
                "https://{host}{COACH_PATH}?rule={}&return={}",
                pct(&rule),
                pct(if is_navigation(req) { path } else { "/" })
            )
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
                self.coach_page(&rule, &message, &categories, request_id, host, path)
            } else {
                self.block_page(
                    &rule,
                    &message,
                    &categories,
                    request_id,
                    decision.uninspectable.as_deref(),
                )
            };
            headers.push(("content-type".into(), "text/html; charset=utf-8".into()));
            Answer {
                status: 403,
                headers,
                body: Bytes::from(html),
            }
        } else {
            let json = serde_json::json!({
                "error": if action == Action::Coach { "coached" } else { "blocked" },
                "action": action.as_str(),
                "rule": rule,
                "message": message,
                "categories": categories,
                "request_id": request_id,
                "policy_url": self.config.policy_url,
                "continue_url": coach_url,
                "reason": decision.uninspectable,
            });
            headers.push(("content-type".into(), "application/json".into()));
            Answer {
                status: 403,
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
        let mut headers = vec![
            ("x-permeable-request-id".to_string(), request_id.to_string()),
            (
                "x-permeable-reason".to_string(),
                reason.replace(['\r', '\n'], " "),
            ),
            ("cache-control".to_string(), "no-store".to_string()),
        ];
        if is_navigation(req) {
            let title = match status {
                400 => "The request could not be understood",
                403 => "This destination is not allowed",
                504 => "The site did not answer in time",
                _ => "The site could not be reached",
            };
            let body = format!(
                "<p>{}</p><p class=\"meta\">Request id: <code>{}</code></p>",
                esc(reason),
                esc(request_id)
            );
            headers.push(("content-type".into(), "text/html; charset=utf-8".into()));
            Answer {
                status,
                headers,
                body: Bytes::from(self.layout(title, &body)),
            }
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

    /// Whether the request carries a valid acknowledgement of `rule`'s coaching on `host`.
    pub fn coach_acknowledged(&self, req: &RequestHeader, host: &str, rule: Option<&str>) -> bool {
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
            expiry > now && ack_rule == rule && self.sign(host, ack_rule, expiry) == sig
        })
    }

    /// The gateway's own endpoints on intercepted hosts: the coach page and its Continue.
    pub fn coach_continue(&self, req: &RequestHeader, host: &str) -> Option<Answer> {
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
            let html = self.coach_page(
                &rule,
                "Please take a moment before you continue.",
                &[],
                "",
                host,
                &ret,
            );
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
            self.sign(host, &rule, expiry)
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

    fn sign(&self, host: &str, rule: &str, expiry: u64) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.coach_key) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        mac.update(format!("{host}|{rule}|{expiry}").as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    fn block_page(
        &self,
        rule: &str,
        message: &str,
        categories: &[String],
        request_id: &str,
        reason: Option<&str>,
    ) -> String {
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
                "<p>Why the content could not be checked: {}</p>",
                esc(reason)
            ));
        }
        body.push_str("<h2>What you can do</h2><p>Remove the sensitive content and try again. Nothing of this request was sent to the site.</p>");
        body.push_str(&self.footer(rule, request_id));
        self.layout("This post was blocked", &body)
    }

    fn coach_page(
        &self,
        rule: &str,
        message: &str,
        categories: &[String],
        request_id: &str,
        host: &str,
        ret: &str,
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
            "<form method=\"post\" action=\"https://{}{CONTINUE_PATH}?rule={}&amp;return={}\">\
             <button type=\"submit\" autofocus>Continue</button> \
             <a class=\"secondary\" href=\"javascript:history.back()\">Go back</a></form>\
             <p class=\"meta\">Continuing is recorded. You will not be asked again for {} minutes on this site.</p>",
            esc(host),
            esc(&pct(rule)),
            esc(&pct(ret)),
            self.config.coach_ttl_minutes
        ));
        body.push_str(&self.footer(rule, request_id));
        self.layout("Before you continue", &body)
    }

    fn footer(&self, rule: &str, request_id: &str) -> String {
        let mut f = format!("<p class=\"meta\">Rule: <code>{}</code>", esc(rule));
        if !request_id.is_empty() {
            f.push_str(&format!(
                " · Request id: <code>{}</code> (quote it to the helpdesk)",
                esc(request_id)
            ));
        }
        f.push_str("</p>");
        let mut links = Vec::new();
        if let Some(url) = &self.config.policy_url {
            links.push(format!("<a href=\"{}\">Read the policy</a>", esc(url)));
        }
        if let Some(url) = &self.config.help_url {
            links.push(format!("<a href=\"{}\">Get help</a>", esc(url)));
        }
        if !links.is_empty() {
            f.push_str(&format!("<p>{}</p>", links.join(" · ")));
        }
        f
    }

    fn layout(&self, title: &str, body: &str) -> String {
        let logo = self
            .config
            .logo
            .as_deref()
            .map(|src| {
                format!(
                    "<img src=\"{}\" alt=\"{}\" height=\"32\">",
                    esc(src),
                    esc(&self.config.organisation)
                )
            })
            .unwrap_or_default();
        let accent = sanitize_color(&self.config.accent_color);
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} — {org}</title><style>\
:root{{--accent:{accent}}}\
body{{margin:0;font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;color:#1a1a1a;background:#f4f5f7}}\
header{{background:var(--accent);color:#fff;padding:12px 24px;display:flex;gap:12px;align-items:center}}\
main{{max-width:640px;margin:32px auto;background:#fff;padding:24px 32px;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.15)}}\
h1{{font-size:1.6rem;margin-top:0}}h2{{font-size:1.1rem;margin-bottom:.25rem}}\
.lead{{font-size:1.1rem}}.meta{{color:#4a4a4a;font-size:.9rem}}code{{background:#eef0f3;padding:0 4px;border-radius:3px}}\
button{{background:var(--accent);color:#fff;border:0;padding:10px 20px;border-radius:6px;font-size:1rem;cursor:pointer}}\
button:focus,a:focus{{outline:3px solid #ffbf47;outline-offset:2px}}a{{color:var(--accent)}}a.secondary{{margin-left:12px}}\
@media (max-width:480px){{main{{margin:0;border-radius:0;padding:16px}}}}\
</style></head><body><header>{logo}<span>{org} · social media gateway</span></header>\
<main role=\"main\"><h1>{title}</h1>{body}</main></body></html>",
            title = esc(title),
            org = esc(&self.config.organisation),
        )
    }
}

/// Write an [`Answer`] to the client.
pub async fn write(session: &mut Session, answer: Answer) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(answer.status, Some(answer.headers.len() + 1))?;
    for (k, v) in answer.headers {
        resp.insert_header(k, v)?;
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
    let what = match c {
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
        other => other,
    };
    format!("{what} ({c})")
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

fn sanitize_color(c: &str) -> String {
    let ok = c.starts_with('#') && c.len() <= 9 && c[1..].bytes().all(|b| b.is_ascii_hexdigit());
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
        let answer = pages.coach_continue(&post, "x.com").unwrap();
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
        assert!(pages.coach_acknowledged(&with, "x.com", Some("coach-codename")));
        assert!(!pages.coach_acknowledged(&with, "www.linkedin.com", Some("coach-codename")));
        assert!(!pages.coach_acknowledged(&with, "x.com", Some("other-rule")));
        let forged = req(
            "/",
            &[("cookie", "permeable_ack=coach-codename.99999999999.00")],
        );
        assert!(!pages.coach_acknowledged(&forged, "x.com", Some("coach-codename")));
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
        let answer = pages.coach_continue(&post, "x.com").unwrap();
        assert!(answer
            .headers
            .iter()
            .any(|(k, v)| k == "location" && v == "/"));
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
