//! The rule tools for security staff, driving the very same engine as the proxy:
//! - `permeable check [DIR]`: compile the rule set; exit 0, or 2 with one located error a line;
//! - `permeable test [DIR]`: run `DIR/tests/*.yaml`; `PASS`/`FAIL` a case, every failure
//!   with expected vs actual, the trace and the forwarded body; `N passed, M failed`; exit 1
//!   on any failure (2 when the rules do not compile);
//! - `permeable scan [--rules DIR] [--content-type T] [--json] [FILE|-]`: the detectors'
//!   findings in a body; exit 0 with none, 1 with findings, 2 on error;
//! - `permeable explain … `: the decision and its trace for one request.
//!
//! The test runner is also called by `cargo test` (see the tests at the bottom), so a
//! failing rule test fails CI.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::engine::decode;
use crate::engine::policy::compile::{parse_doc, SourceFile};
use crate::engine::policy::schema::{BodyExpect, TestExpect, TestSpec};
use crate::engine::policy::{Decision, EngineOptions, Policy, RequestHead, RuleErrors};

/// Arguments of `permeable scan`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ScanArgs {
    /// Rules directory (default: ./rules).
    #[arg(long, default_value = "rules")]
    pub rules: PathBuf,
    /// How to decode the body (JSON, form, multipart; default: plain text).
    #[arg(long, default_value = "text/plain")]
    pub content_type: String,
    /// Print one JSON object `{"findings":[…]}`.
    #[arg(long)]
    pub json: bool,
    /// Also show what each finding was made on: the normalised text the detectors read
    /// (when it differs from the field), the matched text and how it matched (a pattern,
    /// a dictionary variant, a decoded base64 blob).
    #[arg(long)]
    pub explain: bool,
    /// The body to scan; `-` or nothing for standard input.
    pub file: Option<PathBuf>,
}

/// Arguments of `permeable explain`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ExplainArgs {
    /// Rules directory (default: ./rules).
    #[arg(long, default_value = "rules")]
    pub rules: PathBuf,
    /// Request method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// Absolute URL of the request.
    #[arg(long)]
    pub url: String,
    /// A request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// File holding the request body (`-` for standard input).
    #[arg(long)]
    pub body: Option<PathBuf>,
    /// The employee's group.
    #[arg(long)]
    pub group: Option<String>,
    /// Print the decision as JSON.
    #[arg(long)]
    pub json: bool,
}

fn load(dir: &Path) -> Result<Policy, RuleErrors> {
    Policy::load(dir, &EngineOptions::default())
}

/// `permeable check DIR`: 0 valid, 2 invalid.
pub fn run_check(dir: &Path) -> i32 {
    match load(dir) {
        Ok(p) => {
            let detectors = p.detector_ids().len();
            let rules = p.rule_ids().len() - 1;
            let tests = load_tests(dir).map(|t| t.len()).unwrap_or(0);
            println!(
                "{}: ok — {} sites, {} detectors, {} rules, {} tests (version {})",
                dir.display(),
                p.sites().len(),
                detectors,
                rules,
                tests,
                p.version()
            );
            0
        }
        Err(e) => {
            eprint!("{}", render_errors(&e));
            eprintln!("{}: {} error(s)", dir.display(), e.0.len());
            2
        }
    }
}

/// Every error as `FILE:LINE:COL: message` (one line, for tools), followed by the line it
/// points at with the offending text underlined (for people), as rustc shows them.
pub fn render_errors(errors: &RuleErrors) -> String {
    let mut out = String::new();
    let mut files: std::collections::HashMap<&Path, Option<String>> = Default::default();
    for e in &errors.0 {
        out.push_str(&format!("{e}\n"));
        let text = files
            .entry(e.file.as_path())
            .or_insert_with(|| std::fs::read_to_string(&e.file).ok());
        let Some(line) = text
            .as_deref()
            .and_then(|t| t.lines().nth(e.line.saturating_sub(1)))
        else {
            continue;
        };
        let number = e.line.to_string();
        let pad = " ".repeat(number.len());
        let start: String = line.chars().take(e.column.saturating_sub(1)).collect();
        let rest: String = line.chars().skip(e.column.saturating_sub(1)).collect();
        let width = underline_width(&rest).max(1);
        out.push_str(&format!("{pad} |\n{number} | {line}\n{pad} | "));
        out.push_str(&" ".repeat(start.chars().count()));
        out.push_str(&"^".repeat(width));
        out.push('\n');
    }
    out
}

/// How many characters of `rest` the token it starts with takes: a quoted string, or up
/// to the next separator of YAML's flow syntax.
fn underline_width(rest: &str) -> usize {
    let mut chars = rest.chars();
    match chars.next() {
        Some(q @ ('"' | '\'')) => 2 + chars.take_while(|c| *c != q).count(),
        Some(_) => rest
            .chars()
            .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | ']' | '}' | '#' | ':'))
            .count(),
        None => 1,
    }
}

/// A test case with where it came from.
#[derive(Clone, Debug)]
pub struct TestCase {
    pub file: PathBuf,
    pub line: usize,
    pub spec: TestSpec,
}

/// Reads every test case of `DIR/tests/*.yaml`.
pub fn load_tests(dir: &Path) -> Result<Vec<TestCase>, RuleErrors> {
    let tdir = dir.join("tests");
    let mut cases = Vec::new();
    let mut errors = Vec::new();
    let Ok(entries) = std::fs::read_dir(&tdir) else {
        return Ok(cases);
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if !matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            continue;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(crate::engine::policy::LocatedError {
                    file: path.clone(),
                    line: 1,
                    column: 1,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let file = SourceFile {
            display: path.clone(),
            relative: PathBuf::from("tests"),
            text,
        };
        let doc = match parse_doc(&file) {
            Ok(d) => d,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let items = match doc.value.get("tests") {
            Some(serde_yaml::Value::Sequence(items)) => items.clone(),
            _ => Vec::new(),
        };
        for (i, item) in items.iter().enumerate() {
            let base = vec![
                crate::engine::policy::locate::Seg::Key("tests".into()),
                crate::engine::policy::locate::Seg::Index(i),
            ];
            match doc.typed::<TestSpec>(item, &base) {
                Ok(spec) => cases.push(TestCase {
                    file: path.clone(),
                    line: doc.index.value(&base).line,
                    spec,
                }),
                Err(e) => errors.extend(e.0),
            }
        }
    }
    if errors.is_empty() {
        Ok(cases)
    } else {
        Err(RuleErrors(errors))
    }
}

/// The outcome of one test case.
#[derive(Clone, Debug)]
pub struct CaseResult {
    pub name: String,
    pub location: String,
    /// Empty when the case passed.
    pub failures: Vec<String>,
    pub decision: Option<Decision>,
    /// The body as it would be forwarded.
    pub forwarded: Vec<u8>,
    /// A shell command that re-runs the case with `permeable explain`.
    pub rerun: String,
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The `permeable explain` command line equivalent to a test request.
fn rerun_command(dir: &Path, spec: &TestSpec) -> String {
    let r = &spec.request;
    let mut cmd = String::new();
    if let Some(b) = &r.body {
        cmd.push_str(&format!("printf %s {} | ", shell_quote(b)));
    }
    cmd.push_str(&format!(
        "permeable explain --rules {} --method {} --url {}",
        shell_quote(&dir.display().to_string()),
        r.method,
        shell_quote(&r.url)
    ));
    for (k, v) in &r.headers {
        cmd.push_str(&format!(" -H {}", shell_quote(&format!("{k}: {v}"))));
    }
    if let Some(g) = &r.group {
        cmd.push_str(&format!(" --group {}", shell_quote(g)));
    }
    if r.body.is_some() {
        cmd.push_str(" --body -");
    } else if let Some(f) = &r.body_file {
        cmd.push_str(&format!(
            " --body {}",
            shell_quote(&dir.join("tests").join(f).display().to_string())
        ));
    }
    cmd
}

fn parse_header(h: &str) -> Option<(String, String)> {
    let (k, v) = h.split_once(':')?;
    Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
}

/// Runs one request through the engine the way the proxy does: classify, buffer the body
/// only when asked (and only up to `max_body`), decide.
pub fn run_request(policy: &Policy, head: &RequestHead, body: &[u8]) -> Decision {
    let class = policy.classify(head);
    let body = if class.needs_body {
        if body.len() > policy.options().max_body {
            None
        } else {
            Some(body)
        }
    } else if body.is_empty() {
        None
    } else {
        Some(body)
    };
    policy.decide(head, &class, body)
}

fn forwarded_body(decision: &Decision, head: &RequestHead, original: &[u8]) -> Vec<u8> {
    let wire = decision.body.clone().unwrap_or_else(|| original.to_vec());
    // Show the decoded text: undo the Content-Encoding for checks and display.
    match decode::decode_body(None, head.header("content-encoding"), &wire, usize::MAX / 2) {
        Ok(d) => d.raw,
        Err(_) => wire,
    }
}

fn check_body(exp: &BodyExpect, forwarded: &[u8], changed: bool, failures: &mut Vec<String>) {
    let text = String::from_utf8_lossy(forwarded);
    for s in &exp.contains {
        if !text.contains(s.as_str()) {
            failures.push(format!("body: expected to contain {s:?}"));
        }
    }
    for s in &exp.not_contains {
        if text.contains(s.as_str()) {
            failures.push(format!("body: expected not to contain {s:?}"));
        }
    }
    if let Some(unchanged) = exp.unchanged {
        if unchanged == changed {
            failures.push(format!(
                "body: expected {}",
                if unchanged { "unchanged" } else { "rewritten" }
            ));
        }
    }
    if !exp.json.is_empty() {
        match serde_json::from_slice::<serde_json::Value>(forwarded) {
            Ok(v) => {
                for (ptr, want) in &exp.json {
                    let want = serde_json::to_value(want).unwrap_or(serde_json::Value::Null);
                    match v.pointer(ptr) {
                        Some(got) if *got == want => {}
                        Some(got) => {
                            failures.push(format!("body {ptr}: expected {want}, got {got}"))
                        }
                        None => failures.push(format!("body {ptr}: expected {want}, missing")),
                    }
                }
            }
            Err(e) => failures.push(format!("body: expected JSON, got invalid JSON ({e})")),
        }
    }
}

fn check_expect(exp: &TestExpect, d: &Decision, failures: &mut Vec<String>) {
    if let Some(site) = &exp.site {
        if d.site != *site {
            failures.push(format!("site: expected {:?}, got {:?}", site, d.site));
        }
    }
    if let Some(a) = &exp.activity {
        if &d.activity != a {
            failures.push(format!("activity: expected {a}, got {}", d.activity));
        }
    }
    if let Some(a) = exp.action {
        if d.action != a {
            failures.push(format!(
                "action: expected {a}, got {} (rule {})",
                d.action,
                d.rule.as_deref().unwrap_or("none")
            ));
        }
    }
    if let Some(r) = &exp.rule {
        if d.rule.as_deref() != Some(r.as_str()) {
            failures.push(format!(
                "rule: expected {r}, got {}",
                d.rule.as_deref().unwrap_or("none")
            ));
        }
    }
    let matched: Vec<&str> = d.matches.iter().map(|m| m.id.as_str()).collect();
    for r in &exp.rules {
        if !matched.contains(&r.as_str()) {
            failures.push(format!("rules: expected {r} to match; matched {matched:?}"));
        }
    }
    for r in &exp.not_rules {
        if matched.contains(&r.as_str()) {
            failures.push(format!(
                "not_rules: expected {r} not to match; matched {matched:?}"
            ));
        }
    }
    let cats: Vec<&str> = d.findings.iter().map(|f| f.category.as_str()).collect();
    for c in &exp.categories {
        if !cats.contains(&c.as_str()) {
            failures.push(format!("categories: expected {c}; found {cats:?}"));
        }
    }
    for c in &exp.not_categories {
        if cats.contains(&c.as_str()) {
            failures.push(format!("not_categories: expected no {c}; found {cats:?}"));
        }
    }
    if let Some(u) = exp.uninspectable {
        if u != d.uninspectable.is_some() {
            failures.push(format!(
                "uninspectable: expected {u}, got {:?}",
                d.uninspectable
            ));
        }
    }
}

/// Runs one case.
pub fn run_case(policy: &Policy, dir: &Path, case: &TestCase) -> CaseResult {
    let spec = &case.spec;
    let location = format!("{}:{}", case.file.display(), case.line);
    let rerun = rerun_command(dir, spec);
    let mut failures = Vec::new();
    let headers: Vec<(String, String)> = spec
        .request
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    let head = match RequestHead::from_url(
        &spec.request.method,
        &spec.request.url,
        headers,
        spec.request.group.clone(),
    ) {
        Ok(h) => h,
        Err(e) => {
            return CaseResult {
                name: spec.name.clone(),
                location,
                failures: vec![format!("{e}: {}", spec.request.url)],
                decision: None,
                forwarded: vec![],
                rerun,
            };
        }
    };
    let body: Vec<u8> = match (&spec.request.body, &spec.request.body_file) {
        (Some(b), _) => b.clone().into_bytes(),
        (None, Some(f)) => match std::fs::read(dir.join("tests").join(f)) {
            Ok(b) => b,
            Err(e) => {
                let msg = format!("body_file {f}: {e}");
                return CaseResult {
                    name: spec.name.clone(),
                    location,
                    failures: vec![msg],
                    decision: None,
                    forwarded: vec![],
                    rerun,
                };
            }
        },
        (None, None) => Vec::new(),
    };
    let decision = run_request(policy, &head, &body);
    let forwarded = forwarded_body(&decision, &head, &body);
    check_expect(&spec.expect, &decision, &mut failures);
    if let Some(b) = &spec.expect.body {
        check_body(b, &forwarded, decision.body.is_some(), &mut failures);
    }
    if let Some(t) = &spec.expect.target {
        let target = decision.target.as_deref().unwrap_or(&head.path);
        for s in &t.contains {
            if !target.contains(s.as_str()) {
                failures.push(format!("target: expected {target:?} to contain {s:?}"));
            }
        }
        for s in &t.not_contains {
            if target.contains(s.as_str()) {
                failures.push(format!("target: expected {target:?} not to contain {s:?}"));
            }
        }
    }
    CaseResult {
        name: spec.name.clone(),
        location,
        failures,
        decision: Some(decision),
        forwarded,
        rerun,
    }
}

/// Runs every case of `DIR/tests`; returns the results, or the rule errors.
pub fn run_tests(dir: &Path) -> Result<Vec<CaseResult>, RuleErrors> {
    let policy = load(dir)?;
    let cases = load_tests(dir)?;
    Ok(cases.iter().map(|c| run_case(&policy, dir, c)).collect())
}

/// Renders the failures section and the summary, as printed by `permeable test`.
pub fn report(results: &[CaseResult]) -> (String, usize, usize) {
    let mut out = String::new();
    let mut passed = 0;
    let mut failed = 0;
    for r in results {
        if r.failures.is_empty() {
            passed += 1;
            out.push_str(&format!("PASS {}\n", r.name));
        } else {
            failed += 1;
            out.push_str(&format!("FAIL {} ({})\n", r.name, r.location));
        }
    }
    if failed > 0 {
        out.push_str("\nFAILURES\n");
        for r in results.iter().filter(|r| !r.failures.is_empty()) {
            out.push_str(&format!("\n--- {} ({})\n", r.name, r.location));
            for f in &r.failures {
                out.push_str(&format!("  {f}\n"));
            }
            if let Some(d) = &r.decision {
                out.push_str(&format!(
                    "  actual: site={} activity={} action={} rule={} uninspectable={}\n",
                    d.site.as_deref().unwrap_or("none"),
                    d.activity,
                    d.action,
                    d.rule.as_deref().unwrap_or("none"),
                    d.uninspectable_reason().unwrap_or("no")
                ));
                out.push_str("  trace:\n");
                for t in &d.trace {
                    out.push_str(&format!("    {t}\n"));
                }
                out.push_str(&format!(
                    "  forwarded body: {}\n",
                    String::from_utf8_lossy(&r.forwarded)
                ));
            }
            out.push_str(&format!("  re-run: {}\n", r.rerun));
        }
    }
    out.push_str(&format!("\n{passed} passed, {failed} failed\n"));
    (out, passed, failed)
}

/// `permeable test DIR`: 0 all pass, 1 a failure, 2 the rules or tests do not load.
pub fn run_test(dir: &Path) -> i32 {
    match run_tests(dir) {
        Ok(results) => {
            let (text, _, failed) = report(&results);
            print!("{text}");
            if failed > 0 {
                1
            } else {
                0
            }
        }
        Err(e) => {
            eprintln!("{e}");
            2
        }
    }
}

fn read_input(file: Option<&Path>) -> Result<Vec<u8>, String> {
    match file {
        None => read_stdin(),
        Some(p) if p == Path::new("-") => read_stdin(),
        Some(p) => std::fs::read(p).map_err(|e| format!("{}: {e}", p.display())),
    }
}

fn read_stdin() -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    std::io::stdin()
        .read_to_end(&mut buf)
        .map_err(|e| format!("stdin: {e}"))?;
    Ok(buf)
}

/// `permeable scan`: 0 no findings, 1 findings, 2 error.
pub fn run_scan(args: &ScanArgs) -> i32 {
    let policy = match load(&args.rules) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let body = match read_input(args.file.as_deref()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    if args.explain {
        return match explain_scan(&policy, &args.content_type, &body, args.json) {
            Ok((text, n)) => {
                print!("{text}");
                i32::from(n > 0)
            }
            Err(e) => {
                eprintln!("cannot decode the body as {}: {e}", args.content_type);
                2
            }
        };
    }
    let findings = match policy.scan(&args.content_type, &body) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cannot decode the body as {}: {e}", args.content_type);
            return 2;
        }
    };
    if args.json {
        let list: Vec<serde_json::Value> = findings
            .iter()
            .map(|f| {
                serde_json::json!({
                    "category": f.category,
                    "detector": f.detector,
                    "field": f.field,
                    "start": f.start,
                    "end": f.end,
                    "value_hash": f.value_hash,
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "findings": list }));
    } else if findings.is_empty() {
        println!("no findings");
    } else {
        for f in &findings {
            println!(
                "{}\t{}\t{}\t{}..{}",
                f.category, f.detector, f.field, f.start, f.end
            );
        }
        println!("{} finding(s)", findings.len());
    }
    if findings.is_empty() {
        0
    } else {
        1
    }
}

/// `scan --explain`: per field, the matching view the detectors read and, per finding, the
/// text it matched and how. Returns the report and the number of findings.
fn explain_scan(
    policy: &Policy,
    content_type: &str,
    body: &[u8],
    json: bool,
) -> Result<(String, usize), String> {
    use std::fmt::Write as _;
    let decoded = decode::decode_body(Some(content_type), None, body, body.len().max(1))
        .map_err(|e| e.reason)?;
    let (fields, rendered) = crate::engine::policy::evaluate::scanned_fields(&decoded);
    let scans: Vec<_> = fields
        .iter()
        .map(|f| policy.detectors.scan_explained(&f.text))
        .collect();
    // What a rendered reading shares with its field's text is that text's finding.
    let mut kept: Vec<_> = scans
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.matches.iter().map(move |e| (i, e.matched)))
        .collect();
    crate::engine::policy::evaluate::shared_with_the_text(&fields, &rendered, &mut kept);
    let mut out = String::new();
    let mut list = Vec::new();
    let mut count = 0;
    for (i, (field, mut scan)) in fields.iter().zip(scans).enumerate() {
        scan.matches.retain(|e| kept.contains(&(i, e.matched)));
        if scan.matches.is_empty() {
            continue;
        }
        if !json {
            let _ = writeln!(out, "field {}", field.name);
            if let Some(v) = &scan.view {
                let _ = writeln!(out, "  normalised text: {v:?}");
            }
        }
        for e in &scan.matches {
            let Some(d) = policy.detectors.get(e.matched.detector) else {
                continue;
            };
            count += 1;
            if json {
                list.push(serde_json::json!({
                    "category": d.category,
                    "detector": d.id,
                    "field": field.name,
                    "start": e.matched.start,
                    "end": e.matched.end,
                    "matched": e.view_text,
                    "how": e.how,
                    "normalised_text": scan.view,
                }));
            } else {
                let _ = writeln!(
                    out,
                    "  {}\t{}\t{}..{}\tmatched {:?} ({})",
                    d.category, d.id, e.matched.start, e.matched.end, e.view_text, e.how
                );
            }
        }
    }
    if json {
        let _ = writeln!(out, "{}", serde_json::json!({ "findings": list }));
    } else if count == 0 {
        out.push_str("no findings\n");
    } else {
        let _ = writeln!(out, "{count} finding(s)");
    }
    Ok((out, count))
}

fn decision_json(d: &Decision, forwarded: &[u8]) -> serde_json::Value {
    serde_json::json!({
        "site": d.site,
        "activity": d.activity,
        "action": d.action.as_str(),
        "rule": d.rule,
        "message": d.message,
        "matches": d.matches.iter().map(|m| serde_json::json!({"id": m.id, "action": m.action.as_str(), "mode": m.mode.as_str()})).collect::<Vec<_>>(),
        "findings": d.findings.iter().map(|f| serde_json::json!({"category": f.category, "detector": f.detector, "field": f.field, "start": f.start, "end": f.end, "value_hash": f.value_hash, "in_content": f.in_content})).collect::<Vec<_>>(),
        "uninspectable": d.uninspectable_reason(),
        "body_rewritten": d.body.is_some(),
        "target": d.target,
        "body": String::from_utf8_lossy(forwarded),
        "trace": d.trace,
    })
}

/// `permeable explain`: 0 on success (whatever the decision), 2 on error.
pub fn run_explain(args: &ExplainArgs) -> i32 {
    let policy = match load(&args.rules) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let mut headers = Vec::new();
    for h in &args.headers {
        match parse_header(h) {
            Some(kv) => headers.push(kv),
            None => {
                eprintln!("bad header {h:?}: expected 'Name: value'");
                return 2;
            }
        }
    }
    let body = match &args.body {
        Some(p) => match read_input(Some(p)) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{e}");
                return 2;
            }
        },
        None => Vec::new(),
    };
    if !body.is_empty() && !headers.iter().any(|(k, _)| k == "content-length") {
        headers.push(("content-length".into(), body.len().to_string()));
    }
    let head = match RequestHead::from_url(&args.method, &args.url, headers, args.group.clone()) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("{e}: {}", args.url);
            return 2;
        }
    };
    let d = run_request(&policy, &head, &body);
    let forwarded = forwarded_body(&d, &head, &body);
    if args.json {
        println!("{}", decision_json(&d, &forwarded));
        return 0;
    }
    println!("{} {}", head.method, args.url);
    println!("policy version {}", policy.version());
    for t in &d.trace {
        println!("  {t}");
    }
    println!(
        "site:      {}",
        d.site.as_deref().unwrap_or("none (not a catalogue site)")
    );
    println!("activity:  {}", d.activity);
    println!("action:    {}", d.action);
    println!("rule:      {}", d.rule.as_deref().unwrap_or("none"));
    if let Some(m) = &d.message {
        println!("message:   {m}");
    }
    if let Some(u) = &d.uninspectable {
        println!("uninspectable: {u}");
    }
    let monitored: Vec<&str> = d
        .matches
        .iter()
        .filter(|m| m.mode == crate::engine::policy::Mode::Monitor)
        .map(|m| m.id.as_str())
        .collect();
    if !monitored.is_empty() {
        println!(
            "monitor rules that would have applied: {}",
            monitored.join(", ")
        );
    }
    if let Some(t) = &d.target {
        println!("target (redacted): {t}");
    }
    if !body.is_empty() {
        let state = if d.body.is_some() {
            "redacted"
        } else {
            "unchanged"
        };
        let what = if d.action == crate::engine::policy::Action::Block {
            "not forwarded (blocked)"
        } else {
            state
        };
        println!("body ({what}):");
        println!("{}", String::from_utf8_lossy(&forwarded));
    }
    0
}

#[cfg(test)]
mod tests {

    /// `permeable scan` and `scan --explain` read a body as the proxy reads a write: markup
    /// as rendered (what only the rendering shows is found there, what the text holds too
    /// is the text's) and values in their declared charset.
    #[test]
    fn scan_reads_markup_and_charsets_as_the_proxy_does() {
        let policy = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")).unwrap();
        let fields = |ct: &str, body: &[u8]| -> Vec<String> {
            policy
                .scan(ct, body)
                .unwrap()
                .into_iter()
                .map(|f| format!("{} {}", f.detector, f.field))
                .collect()
        };
        let json = "application/json";
        assert_eq!(
            fields(json, br#"{"text":"card <b>4539</b>148803436467"}"#),
            ["credit_card /text (as rendered)"]
        );
        assert_eq!(
            fields(json, br#"{"text":"<b>card</b> 4539 1488 0343 6467"}"#),
            ["credit_card /text"]
        );
        assert_eq!(
            fields(
                "application/x-www-form-urlencoded; charset=ISO-8859-1",
                b"status=BLUEH%C9RON"
            ),
            [
                "codename status (read as windows-1252)",
                "codename body (read as windows-1252)"
            ]
        );
        let (out, count) = explain_scan(
            &policy,
            json,
            br#"{"text":"BLUE**HERON** and <b>card</b> 4539 1488 0343 6467"}"#,
            false,
        )
        .unwrap();
        assert_eq!(count, 2, "{out}");
        assert!(out.contains("field /text (as rendered)\n"), "{out}");
    }

    /// A rule file with several mistakes of each kind gets all of them, each located and
    /// with a suggestion, in one `permeable check` run.
    #[test]
    fn check_reports_every_mistake_at_once_with_suggestions() {
        let dir = tempfile::tempdir().unwrap();
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        crate::engine::policy::copy_catalogue(&shipped, dir.path());
        std::fs::write(
            dir.path().join("policy.yaml"),
            "groups: [engineering, communications]\nrules:\n  - id: one\n    when: { activites: [post], categories: [corp.codenme], sites: [mastadon] }\n    action: blok\n    mesage: hi\n  - id: two\n    when: { activities: [coment], groups: [comunications], categoris: [secret.jwt], sites: [linkdin] }\n    action: redcat\n    mode: monitr\n  - id: three\n    when: { categories: [pii.credt_card], groups: [enginering], activities: [mesage] }\n    action: blcok\n",
        )
        .unwrap();
        let errors = load(dir.path()).unwrap_err();
        let shown = render_errors(&errors);
        let want = [
            (4, "unknown field `activites`, did you mean `activities`?"),
            (
                4,
                "unknown category `corp.codenme`, did you mean `corp.codename`?",
            ),
            (4, "unknown site `mastadon`, did you mean `mastodon`?"),
            (5, "unknown action `blok`, did you mean `block`?"),
            (6, "unknown field `mesage`, did you mean `message`?"),
            (8, "unknown activity `coment`, did you mean `comment`?"),
            (
                8,
                "unknown group `comunications`, did you mean `communications`?",
            ),
            (8, "unknown field `categoris`, did you mean `categories`?"),
            (8, "unknown site `linkdin`, did you mean `linkedin`?"),
            (9, "unknown action `redcat`, did you mean `redact`?"),
            (10, "unknown mode `monitr`, did you mean `monitor`?"),
            (
                12,
                "unknown category `pii.credt_card`, did you mean `pii.credit_card`?",
            ),
            (
                12,
                "unknown group `enginering`, did you mean `engineering`?",
            ),
            (12, "unknown activity `mesage`, did you mean `message`?"),
            (13, "unknown action `blcok`, did you mean `block`?"),
        ];
        for (line, message) in want {
            assert!(
                errors
                    .0
                    .iter()
                    .any(|e| e.line == line && e.message.starts_with(message)),
                "missing line {line}: {message}\n{shown}"
            );
        }
        assert_eq!(errors.0.len(), want.len(), "{shown}");
        // Each error shows its line with the mistake underlined.
        assert!(
            shown.contains("5 |     action: blok\n  |             ^^^^\n"),
            "{shown}"
        );
    }

    use super::*;

    fn run_dir(dir: &Path, must_have_tests: bool) {
        let results = match run_tests(dir) {
            Ok(r) => r,
            Err(e) => panic!("rules under {} do not load:\n{e}", dir.display()),
        };
        let (text, passed, failed) = report(&results);
        assert!(
            passed > 0 || !must_have_tests,
            "no rule tests under {}",
            dir.display()
        );
        assert_eq!(
            failed,
            0,
            "rule tests failed under {}:\n{text}",
            dir.display()
        );
    }

    #[test]
    fn engine_fixture_rule_tests_pass() {
        run_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/engine-rules"),
            true,
        );
    }

    /// The shipped rule pack's own tests run under `cargo test` too.
    #[test]
    fn shipped_rule_tests_pass() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        if dir.join("policy.yaml").exists() {
            run_dir(&dir, false);
        }
    }

    #[test]
    fn a_failing_case_reports_expected_actual_trace_and_body() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/engine-rules");
        let policy = load(&dir).expect("fixture rules load");
        let case: TestSpec = serde_yaml::from_str(
            "name: wrong on purpose\nrequest: { method: POST, url: 'https://x.com/i/api/graphql/a/CreateTweet', headers: { content-type: application/json }, body: '{\"variables\":{\"tweet_text\":\"4111111111111111\"}}' }\nexpect: { action: allow, body: { contains: [nope] } }\n",
        )
        .expect("case parses");
        let r = run_case(
            &policy,
            &dir,
            &TestCase {
                file: PathBuf::from("t.yaml"),
                line: 1,
                spec: case,
            },
        );
        let (text, passed, failed) = report(&[r]);
        assert_eq!((passed, failed), (0, 1));
        assert!(text.contains("FAIL wrong on purpose"), "{text}");
        assert!(
            text.contains("action: expected allow, got redact"),
            "{text}"
        );
        assert!(text.contains("trace:"), "{text}");
        assert!(
            text.contains("forwarded body: {\"variables\":{\"tweet_text\":\"************1111\"}}"),
            "{text}"
        );
        assert!(
            text.contains("re-run: printf %s '{\"variables\"") && text.contains("--method POST"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("0 passed, 1 failed"), "{text}");
    }
}
