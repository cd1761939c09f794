//! `permeable pac` evaluated in a real JavaScript engine (Node.js): catalogue domains and
//! their subdomains go through the gateway, everything else goes direct.

#[test]
fn pac_file_routes_only_catalogue_sites_through_the_gateway() {
    let repo = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_permeable"))
        .args(["pac", "--proxy", "gw.corp.example:3128"])
        .current_dir(repo)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pac = String::from_utf8(out.stdout).unwrap();
    let table: &[(&str, &str, bool)] = &[
        ("https://x.com/home", "x.com", true),
        ("https://api.x.com/2/tweets", "api.x.com", true),
        (
            "https://upload.x.com/i/media/upload.json",
            "upload.x.com",
            true,
        ),
        ("https://twitter.com/", "twitter.com", true),
        ("https://www.linkedin.com/feed/", "www.linkedin.com", true),
        ("https://WWW.LinkedIn.com/feed/", "WWW.LinkedIn.com", true),
        ("https://mastodon.social/@alice", "mastodon.social", true),
        ("https://bsky.app/", "bsky.app", true),
        ("https://www.reddit.com/r/rust", "www.reddit.com", true),
        ("https://www.facebook.com/", "www.facebook.com", true),
        ("https://www.youtube.com/watch?v=1", "www.youtube.com", true),
        (
            "https://news.ycombinator.com/",
            "news.ycombinator.com",
            true,
        ),
        ("https://x.com./home", "x.com.", true),
        ("https://example.org/", "example.org", false),
        ("https://notx.com/", "notx.com", false),
        ("https://x.com.evil.example/", "x.com.evil.example", false),
        ("https://mybank.example/login", "mybank.example", false),
        (
            "http://intranet.corp.example/",
            "intranet.corp.example",
            false,
        ),
        ("https://10.1.2.3/", "10.1.2.3", false),
    ];
    let cases: Vec<serde_json::Value> = table
        .iter()
        .map(|(url, host, _)| serde_json::json!([url, host]))
        .collect();
    let script = format!(
        "{pac}\nconst cases = {};\nfor (const [u, h] of cases) console.log(FindProxyForURL(u, h));\n",
        serde_json::Value::Array(cases)
    );
    let node = std::process::Command::new("node")
        .args(["-e", &script])
        .output()
        .expect("node runs");
    assert!(
        node.status.success(),
        "{}",
        String::from_utf8_lossy(&node.stderr)
    );
    let answers: Vec<String> = String::from_utf8(node.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(answers.len(), table.len());
    let mut wrong = Vec::new();
    for ((url, _, proxied), answer) in table.iter().zip(&answers) {
        let want = if *proxied {
            "PROXY gw.corp.example:3128"
        } else {
            "DIRECT"
        };
        if answer != want {
            wrong.push(format!("{url}: got {answer}, want {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
