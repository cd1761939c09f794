//! Rule files → compiled [`Policy`]: reading the rule directory, parsing each file, checking
//! every semantic constraint, and collecting *every* error with its position.
//!
//! Each list item (an activity, a detector, a rule, a test) is deserialised on its own, so
//! one faulty item does not hide the errors of the others.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::de::DeserializeOwned;
use serde_yaml::Value;
use sha2::{Digest, Sha256};

use super::locate::{Pos, PositionIndex, Seg};
use super::refusal::{self, Refusal, PLACEHOLDERS, REFUSED_STATUSES};
use super::schema::{self, ContentSpec, RedactionSpec};
use super::{Action, EngineOptions, LocatedError, Mode, Policy, RuleErrors, Site, UNCLASSIFIED};
use crate::engine::classify::{Activity, MAX_ACTIVITIES};
use crate::engine::decode::keys::selector_from_name;
use crate::engine::decode::{parse_pointer, ContentField, PtrSeg};
use crate::engine::detect::{self, Context, Detector, DetectorDef, Detectors, Validator};
use crate::engine::redact::Redaction;

/// A rule file's text, its path relative to the rule directory, and the path to show.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub display: PathBuf,
    pub relative: PathBuf,
    pub text: String,
}

fn is_yaml(p: &Path) -> bool {
    matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, std::io::Error> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    Ok(entries)
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> LocatedError {
    LocatedError {
        file: path.to_path_buf(),
        line: 1,
        column: 1,
        message: e.to_string(),
    }
}

/// Reads `sites/*.yaml`, `detectors/*` (YAML and dictionary files), `policy.yaml` and
/// `tests/*.yaml` (tests are only checked, never needed to run the policy).
pub fn read_rule_dir(dir: &Path) -> Result<Vec<SourceFile>, RuleErrors> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    if !dir.is_dir() {
        return Err(RuleErrors(vec![io_error(dir, "rule directory not found")]));
    }
    for sub in ["sites", "detectors", "tests"] {
        let d = dir.join(sub);
        if !d.is_dir() {
            if sub != "tests" {
                errors.push(io_error(&d, format!("missing directory {sub}/")));
            }
            continue;
        }
        match read_dir_sorted(&d) {
            Ok(paths) => {
                for p in paths {
                    // Dictionaries live beside detectors; tests may reference body files.
                    if !is_yaml(&p) && sub != "detectors" {
                        continue;
                    }
                    match std::fs::read_to_string(&p) {
                        Ok(text) => files.push(SourceFile {
                            relative: PathBuf::from(sub).join(p.file_name().unwrap_or_default()),
                            display: p.clone(),
                            text,
                        }),
                        Err(e) => errors.push(io_error(&p, e)),
                    }
                }
            }
            Err(e) => errors.push(io_error(&d, e)),
        }
    }
    let policy = dir.join("policy.yaml");
    match std::fs::read_to_string(&policy) {
        Ok(text) => files.push(SourceFile {
            display: policy,
            relative: PathBuf::from("policy.yaml"),
            text,
        }),
        Err(e) => errors.push(io_error(&policy, e)),
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(RuleErrors(errors))
    }
}

/// Short hex hash of the files' paths and contents.
pub fn version_of(files: &[SourceFile]) -> String {
    let mut sorted: Vec<&SourceFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.relative.cmp(&b.relative));
    let mut h = Sha256::new();
    for f in sorted {
        h.update(f.relative.to_string_lossy().as_bytes());
        h.update([0]);
        h.update(f.text.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..6])
}

/// A parsed YAML file: its value and the positions of its nodes.
pub struct Doc<'a> {
    pub file: &'a SourceFile,
    pub index: PositionIndex,
    pub value: Value,
}

impl Doc<'_> {
    pub fn error_at(&self, pos: Pos, message: impl Into<String>) -> LocatedError {
        LocatedError {
            file: self.file.display.clone(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
        }
    }

    /// An error about the value at `path`.
    pub fn err(&self, path: &[Seg], message: impl Into<String>) -> LocatedError {
        self.error_at(self.index.value(path), message)
    }

    /// An error about the key ending `path`.
    pub fn err_key(&self, path: &[Seg], message: impl Into<String>) -> LocatedError {
        self.error_at(self.index.key(path), message)
    }

    /// Deserialises `value` (found at `base`) into `T`, locating every error: after an
    /// error, the offending key is dropped and the rest read again, so that one run reports
    /// a misspelt key, a bad value and another misspelt key together (up to a missing
    /// required field, after which nothing more can be read).
    pub fn typed<T: DeserializeOwned>(&self, value: &Value, base: &[Seg]) -> Result<T, RuleErrors> {
        let mut errors = Vec::new();
        match self.typed_despite_errors(value, base, &mut errors) {
            Some(t) if errors.is_empty() => Ok(t),
            _ => Err(RuleErrors(errors)),
        }
    }

    /// [`Doc::typed`] that adds its errors to `errors` and still returns what the rest of
    /// the value reads as, so that the checks after deserialisation (unknown categories,
    /// sites, activities…) report their mistakes in the same run.
    pub fn typed_despite_errors<T: DeserializeOwned>(
        &self,
        value: &Value,
        base: &[Seg],
        all_errors: &mut Vec<LocatedError>,
    ) -> Option<T> {
        let mut value = value.clone();
        let mut errors = Vec::new();
        let mut dropped_keys: Vec<Vec<Seg>> = Vec::new();
        for _ in 0..64 {
            let e = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
                Ok(t) => {
                    all_errors.extend(errors);
                    return Some(t);
                }
                Err(e) => e,
            };
            let mut path: Vec<Seg> = Vec::new();
            for seg in e.path().iter() {
                match seg {
                    serde_path_to_error::Segment::Seq { index } => path.push(Seg::Index(*index)),
                    serde_path_to_error::Segment::Map { key } => path.push(Seg::Key(key.clone())),
                    serde_path_to_error::Segment::Enum { variant } => {
                        path.push(Seg::Key(variant.clone()))
                    }
                    serde_path_to_error::Segment::Unknown => {}
                }
            }
            let raw = e.inner().to_string();
            let message = super::suggest::serde_message_with_suggestion(&raw);
            let unknown = raw
                .strip_prefix("unknown field `")
                .and_then(|r| r.split('`').next());
            let full = |p: &[Seg]| [base, p].concat();
            let culprit: Vec<Seg> = match unknown {
                Some(field) => {
                    if path.last() != Some(&Seg::Key(field.to_string())) {
                        path.push(Seg::Key(field.to_string()));
                    }
                    errors.push(self.err_key(&full(&path), message));
                    path
                }
                None => {
                    errors.push(self.err(&full(&path), message));
                    path
                }
            };
            let culprit_copy = culprit.clone();
            if raw.starts_with("missing field") || !drop_at(&mut value, &culprit) {
                // A required field that was dropped for an error of its own is already
                // reported: its absence is not another mistake.
                let dropped = |name: &str| {
                    dropped_keys
                        .iter()
                        .any(|p: &Vec<Seg>| p.last() == Some(&Seg::Key(name.to_string())))
                };
                if let Some(name) = raw
                    .strip_prefix("missing field `")
                    .and_then(|r| r.split('`').next())
                {
                    if dropped(name) {
                        errors.pop();
                    }
                }
                break;
            }
            dropped_keys.push(culprit_copy);
        }
        all_errors.extend(errors);
        None
    }
}

/// Removes what `path` names from a document: the key it ends with, or, for a list
/// element, the key of the list (removing an element would shift the positions of the
/// others). Returns whether something was removed.
fn drop_at(value: &mut Value, path: &[Seg]) -> bool {
    let Some(cut) = path.iter().rposition(|s| matches!(s, Seg::Key(_))) else {
        return false;
    };
    let mut node = value;
    for seg in &path[..cut] {
        node = match (seg, node) {
            (Seg::Key(k), Value::Mapping(m)) => match m.get_mut(k.as_str()) {
                Some(v) => v,
                None => return false,
            },
            (Seg::Index(i), Value::Sequence(items)) => match items.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (&path[cut], node) {
        (Seg::Key(k), Value::Mapping(m)) => m.remove(k.as_str()).is_some(),
        _ => false,
    }
}

/// Parses a YAML file into a [`Doc`], or its located syntax error.
pub fn parse_doc(file: &SourceFile) -> Result<Doc<'_>, LocatedError> {
    let index = PositionIndex::build(&file.text).map_err(|(pos, msg)| LocatedError {
        file: file.display.clone(),
        line: pos.line,
        column: pos.column,
        message: format!("YAML syntax error: {msg}"),
    })?;
    let value: Value = serde_yaml::from_str(&file.text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        LocatedError {
            file: file.display.clone(),
            line,
            column,
            message: msg,
        }
    })?;
    Ok(Doc { file, index, value })
}

fn key(s: &str) -> Seg {
    Seg::Key(s.to_string())
}

fn with(path: &[Seg], seg: Seg) -> Vec<Seg> {
    let mut p = path.to_vec();
    p.push(seg);
    p
}

/// Checks a top-level mapping has only the key `list_key` and returns the list under it.
fn top_list<'v>(
    doc: &'v Doc<'_>,
    list_key: &str,
    errors: &mut Vec<LocatedError>,
) -> Vec<&'v Value> {
    top_list_with(doc, list_key, &[], errors)
}

/// [`top_list`], where the keys `also` may stand beside `list_key`.
fn top_list_with<'v>(
    doc: &'v Doc<'_>,
    list_key: &str,
    also: &[&str],
    errors: &mut Vec<LocatedError>,
) -> Vec<&'v Value> {
    let Value::Mapping(map) = &doc.value else {
        if !matches!(doc.value, Value::Null) {
            errors.push(doc.err(&[], format!("expected a mapping with `{list_key}:`")));
        }
        return Vec::new();
    };
    for (k, _) in map {
        let name = k.as_str().unwrap_or("");
        if name != list_key && !also.contains(&name) {
            let known: Vec<&str> = std::iter::once(list_key)
                .chain(also.iter().copied())
                .collect();
            let hint = super::suggest::did_you_mean(name, known.iter().copied())
                .map(|s| format!(", did you mean `{s}`?"))
                .unwrap_or_default();
            errors.push(doc.err_key(
                &[key(name)],
                format!(
                    "unknown field `{name}`{hint} (expected {})",
                    known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    match map.get(list_key) {
        Some(Value::Sequence(items)) => items.iter().collect(),
        Some(Value::Null) | None => Vec::new(),
        Some(_) => {
            errors.push(doc.err(&[key(list_key)], format!("`{list_key}` must be a list")));
            Vec::new()
        }
    }
}

fn compile_regex(
    doc: &Doc<'_>,
    path: &[Seg],
    src: &str,
    errors: &mut Vec<LocatedError>,
) -> Option<Regex> {
    compile_regex_case(doc, path, src, false, errors)
}

fn compile_regex_case(
    doc: &Doc<'_>,
    path: &[Seg],
    src: &str,
    ignore_case: bool,
    errors: &mut Vec<LocatedError>,
) -> Option<Regex> {
    match regex::RegexBuilder::new(src)
        .case_insensitive(ignore_case)
        .size_limit(16 * 1024 * 1024)
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            let detail = e.to_string();
            let detail = detail.lines().last().unwrap_or("").trim().to_string();
            errors.push(doc.err(path, format!("invalid regex {src:?}: {detail}")));
            None
        }
    }
}

fn compile_pointer(
    doc: &Doc<'_>,
    path: &[Seg],
    src: &str,
    errors: &mut Vec<LocatedError>,
) -> Option<Vec<PtrSeg>> {
    match parse_pointer(src) {
        Ok(p) => Some(p),
        Err(e) => {
            errors.push(doc.err(path, e.to_string()));
            None
        }
    }
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' || c == '.'
        })
}

/// Where an id was first defined, for duplicate errors.
type Seen = HashMap<String, (PathBuf, Pos)>;

fn check_duplicate(
    seen: &mut Seen,
    doc: &Doc<'_>,
    path: &[Seg],
    what: &str,
    id: &str,
    errors: &mut Vec<LocatedError>,
) {
    let pos = doc.index.value(path);
    if let Some((file, first)) = seen.get(id) {
        errors.push(doc.error_at(
            pos,
            format!(
                "duplicate {what} id `{id}` (first defined at {}:{}:{})",
                file.display(),
                first.line,
                first.column
            ),
        ));
    } else {
        seen.insert(id.to_string(), (doc.file.display.clone(), pos));
    }
}

fn compile_site(doc: &Doc<'_>, errors: &mut Vec<LocatedError>) -> Option<Site> {
    let spec: schema::SiteSpec = doc.typed_despite_errors(&doc.value, &[], errors)?;
    let before = errors.len();
    if !valid_id(&spec.site) {
        errors.push(doc.err(
            &[key("site")],
            format!("site id `{}` must match [a-z0-9_.-]+", spec.site),
        ));
    }
    let mut domains = Vec::new();
    for (i, d) in spec.domains.iter().enumerate() {
        let d = d.trim().trim_end_matches('.').to_string();
        let bare = d.strip_prefix("*.").unwrap_or(&d);
        let ok = !bare.is_empty()
            && bare
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && !bare.starts_with('.')
            && !bare.contains("..");
        if !ok {
            errors.push(doc.err(
                &[key("domains"), Seg::Index(i)],
                format!("invalid domain `{d}`: lowercase host name, or `*.` followed by one"),
            ));
        }
        domains.push(d);
    }
    let mut activities = Vec::new();
    match &spec.activities {
        None | Some(Value::Null) => {}
        Some(Value::Sequence(items)) => {
            if items.len() > MAX_ACTIVITIES {
                errors.push(doc.err(
                    &[key("activities")],
                    format!("a site may have at most {MAX_ACTIVITIES} activities"),
                ));
            }
            for (i, item) in items.iter().enumerate() {
                let base = vec![key("activities"), Seg::Index(i)];
                if let Some(a) =
                    doc.typed_despite_errors::<schema::ActivitySpec>(item, &base, errors)
                {
                    let ignore_case = !spec.paths_case_sensitive;
                    if let Some(a) = compile_activity(doc, &base, a, ignore_case, errors) {
                        activities.push(a);
                    }
                }
            }
        }
        Some(_) => errors.push(doc.err(&[key("activities")], "`activities` must be a list")),
    }
    let method_aliases = spec
        .method_aliases
        .iter()
        .map(|(from, to)| {
            (
                from.to_ascii_uppercase(),
                to.to_vec().iter().map(|m| m.to_ascii_uppercase()).collect(),
            )
        })
        .collect();
    let names: Vec<String> = {
        let mut n: Vec<String> = Vec::new();
        for a in &activities {
            let a: &Activity = a;
            if !n.iter().any(|x| **x == *a.name) {
                n.push(a.name.to_string());
            }
        }
        n
    };
    let mut noise = Vec::new();
    let mut noise_activities = Vec::new();
    for (i, n) in spec.noise.iter().enumerate() {
        let p = [key("noise"), Seg::Index(i)];
        if let Some(act) = &n.activity {
            if !names.contains(act) {
                errors.push(doc.err(
                    &with(&p, key("activity")),
                    format!("unknown activity `{act}` of site `{}`", spec.site),
                ));
            }
            noise_activities.push(act.clone());
            continue;
        }
        if n.body.is_some() {
            errors.push(doc.err_key(
                &with(&p, key("body")),
                "`body` is not noise: the whole body would go unscanned",
            ));
            continue;
        }
        if let Some(field) = compile_content(doc, &p, n, errors) {
            noise.push(field);
        }
    }
    let refusals = compile_refusals(
        doc,
        spec.refusal.as_ref(),
        spec.paths_case_sensitive,
        errors,
    );
    if errors.len() > before {
        return None;
    }
    Some(Site {
        id: spec.site.into(),
        name: spec.name,
        domains,
        intercept: spec.intercept,
        any_host: spec.any_host,
        activities,
        method_aliases,
        noise,
        noise_activities,
        refusals,
    })
}

/// A site's `refusal:`: one entry or a list of them, each checked on its own.
fn compile_refusals(
    doc: &Doc<'_>,
    value: Option<&Value>,
    paths_case_sensitive: bool,
    errors: &mut Vec<LocatedError>,
) -> Vec<Refusal> {
    let items: Vec<(Vec<Seg>, &Value)> = match value {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (vec![key("refusal"), Seg::Index(i)], v))
            .collect(),
        Some(v) => vec![(vec![key("refusal")], v)],
    };
    let mut refusals = Vec::new();
    let mut catch_all: Option<Pos> = None;
    for (base, item) in items {
        let spec = match doc.typed::<schema::RefusalSpec>(item, &base) {
            Ok(s) => s,
            Err(e) => {
                errors.extend(e.0);
                continue;
            }
        };
        let before = errors.len();
        if let Some(first) = catch_all {
            errors.push(doc.err(
                &base,
                format!(
                    "never used: the refusal at line {} has no `host` or `path` and answers every request",
                    first.line
                ),
            ));
        }
        if spec.host.is_none() && spec.path.is_none() {
            catch_all.get_or_insert(doc.index.value(&base));
        }
        let host = spec
            .host
            .as_ref()
            .and_then(|h| compile_regex_case(doc, &with(&base, key("host")), h, true, errors));
        let path = spec.path.as_ref().and_then(|p| {
            compile_regex_case(
                doc,
                &with(&base, key("path")),
                p,
                !paths_case_sensitive,
                errors,
            )
        });
        if !(400..=499).contains(&spec.status) {
            errors.push(doc.err(
                &with(&base, key("status")),
                format!(
                    "refusal status {} is not a 4xx: clients must read a refusal as final",
                    spec.status
                ),
            ));
        } else if let Some((_, why)) = REFUSED_STATUSES.iter().find(|(s, _)| *s == spec.status) {
            errors.push(doc.err(
                &with(&base, key("status")),
                format!(
                    "refusal status {} reads as something else: {why}; use 400, 403 or 422",
                    spec.status
                ),
            ));
        }
        let body_path = with(&base, key("body"));
        let body = match serde_json::to_value(&spec.body) {
            Ok(serde_json::Value::Object(m)) => Some(m),
            Ok(_) => {
                errors.push(doc.err(
                    &body_path,
                    "a refusal body must be a mapping (a JSON object)",
                ));
                None
            }
            Err(e) => {
                errors.push(doc.err(&body_path, format!("not expressible as JSON: {e}")));
                None
            }
        };
        if let Some(body) = &body {
            check_placeholders(
                doc,
                &body_path,
                &serde_json::Value::Object(body.clone()),
                errors,
            );
        }
        if errors.len() > before {
            continue;
        }
        if let Some(body) = body {
            refusals.push(Refusal {
                host,
                path,
                status: spec.status,
                body,
                gateway_fields: spec.gateway_fields,
            });
        }
    }
    refusals
}

/// Every `{name}` in the strings of a refusal body names a known placeholder.
fn check_placeholders(
    doc: &Doc<'_>,
    path: &[Seg],
    v: &serde_json::Value,
    errors: &mut Vec<LocatedError>,
) {
    match v {
        serde_json::Value::String(s) => {
            for (_, _, name) in refusal::placeholders(s) {
                if !PLACEHOLDERS.contains(&name) {
                    errors.push(doc.err(
                        path,
                        format!(
                            "unknown placeholder `{{{name}}}` (known: {})",
                            PLACEHOLDERS
                                .iter()
                                .map(|p| format!("{{{p}}}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_placeholders(doc, &with(path, Seg::Index(i)), item, errors);
            }
        }
        serde_json::Value::Object(m) => {
            for (k, item) in m {
                check_placeholders(doc, &with(path, key(k)), item, errors);
            }
        }
        _ => {}
    }
}

/// One `content:` (or `noise:`) entry: exactly one selector.
fn compile_content(
    doc: &Doc<'_>,
    p: &[Seg],
    c: &ContentSpec,
    errors: &mut Vec<LocatedError>,
) -> Option<ContentField> {
    let given = [
        c.json.is_some(),
        c.form.is_some(),
        c.query.is_some(),
        c.form_json.is_some(),
        c.multipart.is_some(),
        c.body.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if given != 1 {
        errors.push(doc.err(p, "a content entry needs exactly one of `json`, `form`, `query`, `form_json`, `multipart`, `body`"));
        return None;
    }
    let ContentSpec {
        json,
        form,
        query,
        form_json,
        multipart,
        body,
        activity,
    } = c;
    if activity.is_some() {
        errors.push(doc.err_key(
            &with(p, key("activity")),
            "`activity` belongs in a site's `noise:`, not in `content:`",
        ));
        return None;
    }
    if let Some(ptr) = json {
        compile_pointer(doc, &with(p, key("json")), ptr, errors).map(ContentField::Param)
    } else if let Some(name) = form.as_ref().or(query.as_ref()).or(multipart.as_ref()) {
        Some(ContentField::Param(selector_from_name(name)))
    } else if let Some(fj) = form_json {
        let ptr = compile_pointer(
            doc,
            &[p, &[key("form_json"), key("pointer")]].concat(),
            &fj.pointer,
            errors,
        )?;
        let mut segs = selector_from_name(&fj.field);
        segs.extend(ptr);
        Some(ContentField::Param(segs))
    } else if body == &Some(true) {
        Some(ContentField::Body)
    } else {
        errors.push(doc.err(&with(p, key("body")), "`body` must be `true`"));
        None
    }
}

fn compile_activity(
    doc: &Doc<'_>,
    base: &[Seg],
    a: schema::ActivitySpec,
    paths_ignore_case: bool,
    errors: &mut Vec<LocatedError>,
) -> Option<Activity> {
    let before = errors.len();
    if !valid_id(&a.activity) || a.activity == UNCLASSIFIED {
        errors.push(doc.err(
            &with(base, key("activity")),
            format!("invalid activity name `{}`", a.activity),
        ));
    }
    let methods: Vec<String> = a
        .method
        .map(|m| m.to_vec())
        .unwrap_or_default()
        .iter()
        .map(|m| m.to_ascii_uppercase())
        .collect();
    let host = a
        .host
        .as_ref()
        .and_then(|h| compile_regex_case(doc, &with(base, key("host")), h, true, errors));
    let path = a.path.as_ref().and_then(|p| {
        compile_regex_case(doc, &with(base, key("path")), p, paths_ignore_case, errors)
    });
    // `form:` and `json:` conditions both name parameters, wherever the request carries
    // them (see `decode::fields`).
    let mut params = Vec::new();
    for (k, v) in &a.form {
        let p = [base, &[key("form"), key(k)]].concat();
        if let Some(re) = compile_regex(doc, &p, v, errors) {
            params.push((k.clone(), selector_from_name(k), re));
        }
    }
    for (k, v) in &a.json {
        let p = [base, &[key("json"), key(k)]].concat();
        let ptr = compile_pointer(doc, &p, k, errors);
        if let (Some(ptr), Some(re)) = (ptr, compile_regex(doc, &p, v, errors)) {
            params.push((k.clone(), ptr, re));
        }
    }
    let mut query = Vec::new();
    for (k, v) in &a.query {
        let p = [base, &[key("query"), key(k)]].concat();
        if let Some(re) = compile_regex(doc, &p, v, errors) {
            query.push((k.clone(), selector_from_name(k), re));
        }
    }
    let mut content = Vec::new();
    for (i, c) in a.content.iter().enumerate() {
        let p = [base, &[key("content"), Seg::Index(i)]].concat();
        if let Some(field) = compile_content(doc, &p, c, errors) {
            if !content.contains(&field) {
                content.push(field);
            }
        }
    }
    if errors.len() > before {
        return None;
    }
    Some(Activity {
        name: a.activity.into(),
        method_bits: crate::engine::classify::method_bits(&methods),
        methods,
        host,
        path,
        graphql_operation: a.graphql_operation,
        params,
        query,
        content,
    })
}

fn compile_redaction(spec: &Option<RedactionSpec>, category: &str) -> Redaction {
    let Some(spec) = spec else {
        return Redaction::default_for(category);
    };
    if let Some(m) = &spec.mask {
        Redaction::Mask {
            keep_last: m.keep_last,
            ch: m.char,
        }
    } else if let Some(t) = &spec.replace {
        Redaction::Replace(t.clone())
    } else if let Some(h) = &spec.hash {
        Redaction::Hash {
            length: h.length.unwrap_or(16),
            template: h
                .template
                .clone()
                .unwrap_or_else(|| "[{category}:{hash}]".into()),
        }
    } else {
        Redaction::default_for(category)
    }
}

fn compile_detector(
    doc: &Doc<'_>,
    base: &[Seg],
    d: schema::DetectorSpec,
    files: &[SourceFile],
    errors: &mut Vec<LocatedError>,
) -> Option<DetectorDef> {
    let before = errors.len();
    if !valid_id(&d.id) {
        errors.push(doc.err(
            &with(base, key("id")),
            format!("detector id `{}` must match [a-z0-9_.-]+", d.id),
        ));
    }
    if !detect::is_known_category(&d.category) {
        errors.push(doc.err(
            &with(base, key("category")),
            format!(
                "unknown category `{}` (known: {}, or custom.NAME)",
                d.category,
                detect::CATEGORIES.join(", ")
            ),
        ));
    }
    let mut patterns = Vec::new();
    let mut sources: Vec<(Vec<Seg>, String)> = Vec::new();
    if let Some(r) = &d.regex {
        sources.push((with(base, key("regex")), r.clone()));
    }
    for (i, p) in d.patterns.iter().enumerate() {
        sources.push((
            [base, &[key("patterns"), Seg::Index(i)]].concat(),
            p.clone(),
        ));
    }
    for (path, src) in sources {
        let eff = detect::effective_pattern(&src, d.case_insensitive);
        if compile_regex(doc, &path, &eff, errors).is_some() {
            patterns.push(src);
        }
    }
    let mut dictionary = d.dictionary.clone();
    if let Some(f) = &d.dictionary_file {
        let wanted = doc.file.relative.parent().unwrap_or(Path::new("")).join(f);
        match files.iter().find(|s| s.relative == wanted) {
            Some(src) => dictionary.extend(
                src.text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string),
            ),
            None => errors.push(doc.err(
                &with(base, key("dictionary_file")),
                format!("dictionary file `{f}` not found beside this file"),
            )),
        }
    }
    if patterns.is_empty() && dictionary.is_empty() && errors.len() == before {
        errors.push(doc.err(
            base,
            format!(
                "detector `{}` has no `regex`, `patterns`, `dictionary` or `dictionary_file`",
                d.id
            ),
        ));
    }
    let validator = match &d.validator {
        None => None,
        Some(v) => match Validator::parse(v) {
            Some(v) => Some(v),
            None => {
                errors.push(doc.err(
                    &with(base, key("validator")),
                    format!(
                        "unknown validator `{v}` (known: {})",
                        Validator::NAMES.join(", ")
                    ),
                ));
                None
            }
        },
    };
    let context = d.context.as_ref().map(|c| Context {
        words: c
            .words
            .iter()
            .map(|w| w.trim().to_lowercase())
            .filter(|w| !w.is_empty())
            .collect(),
        window: c.window,
        required: c.required,
    });
    if let Some(c) = &context {
        if c.words.is_empty() {
            errors.push(doc.err(
                &[base, &[key("context"), key("words")]].concat(),
                "context needs at least one word",
            ));
        }
    }
    if let Some(r) = &d.redaction {
        let given = [r.mask.is_some(), r.replace.is_some(), r.hash.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if given != 1 {
            errors.push(doc.err(
                &with(base, key("redaction")),
                "redaction needs exactly one of `mask`, `replace`, `hash`",
            ));
        }
        if r.replace.as_deref() == Some("") {
            errors.push(doc.err(
                &[base, &[key("redaction"), key("replace")]].concat(),
                "empty replacement",
            ));
        }
    }
    let placeholders = d
        .placeholders
        .as_ref()
        .map(|p| compile_placeholders(doc, base, p, errors));
    if let Some(v) = &d.variants {
        if dictionary.is_empty() && *v != detect::Variants::default() {
            errors.push(doc.err(
                &with(base, key("variants")),
                "`variants` applies to a `dictionary` or `dictionary_file`",
            ));
        }
    }
    if errors.len() > before {
        return None;
    }
    let redaction = compile_redaction(&d.redaction, &d.category);
    let wrapped = d
        .wrapped
        .unwrap_or_else(|| Detector::wrapped_by_default(&d.category));
    Some(DetectorDef {
        detector: Detector {
            id: d.id,
            category: d.category,
            validator,
            context,
            redaction,
            placeholders,
            wrapped,
        },
        patterns,
        case_insensitive: d.case_insensitive,
        dictionary,
        variants: d.variants.unwrap_or_default(),
    })
}

/// A detector's `placeholders:` block, its patterns checked where they are written.
fn compile_placeholders(
    doc: &Doc<'_>,
    base: &[Seg],
    p: &schema::PlaceholdersSpec,
    errors: &mut Vec<LocatedError>,
) -> detect::Placeholders {
    let at = |k: &str| [base, &[key("placeholders"), key(k)]].concat();
    let mut regex = |k: &str, src: &Option<String>, anchored: bool| {
        let src = src.as_ref()?;
        let src = if anchored {
            format!("^(?:{src})")
        } else {
            src.clone()
        };
        compile_regex(doc, &at(k), &src, errors)
    };
    let prefix = regex("prefix", &p.prefix, true);
    let example_pattern = regex("example_pattern", &p.example_pattern, false);
    let min_entropy = p.min_entropy.unwrap_or(0.0);
    if !(0.0..=8.0).contains(&min_entropy) {
        errors.push(doc.err(
            &at("min_entropy"),
            "min_entropy is in bits per character: 0 to 8",
        ));
    }
    detect::Placeholders {
        prefix,
        min_entropy,
        runs: p.runs.unwrap_or(true),
        examples: p.examples.clone(),
        example_pattern,
        report_examples: p.report_examples,
    }
}

/// A category condition: exact, `prefix.*`, or `*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CategoryPattern {
    Exact(String),
    /// Includes the trailing dot.
    Prefix(String),
}

impl CategoryPattern {
    pub fn parse(s: &str) -> CategoryPattern {
        if s == "*" {
            CategoryPattern::Prefix(String::new())
        } else if let Some(p) = s.strip_suffix('*') {
            CategoryPattern::Prefix(p.to_string())
        } else {
            CategoryPattern::Exact(s.to_string())
        }
    }

    pub fn matches(&self, category: &str) -> bool {
        match self {
            CategoryPattern::Exact(c) => c == category,
            CategoryPattern::Prefix(p) => category.starts_with(p.as_str()),
        }
    }
}

/// A compiled `when:` / `unless:`.
#[derive(Clone, Debug, Default)]
pub struct Condition {
    pub sites: Option<Vec<String>>,
    pub activities: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
    pub categories: Option<Vec<CategoryPattern>>,
    pub detectors: Option<Vec<String>>,
    pub min_count: Option<usize>,
    pub uninspectable: Option<bool>,
    pub unclassified: Option<bool>,
    /// Findings outside content fields (the safety net's) count too.
    pub anywhere: bool,
}

/// A compiled policy rule.
#[derive(Clone, Debug)]
pub struct Rule {
    pub id: String,
    pub description: Option<String>,
    pub when: Condition,
    pub unless: Option<Condition>,
    pub action: Action,
    pub message: Option<String>,
    pub mode: Mode,
}

struct Known<'a> {
    sites: HashSet<&'a str>,
    activities: HashSet<String>,
    detectors: HashSet<String>,
    categories: HashSet<String>,
    /// The groups `policy.yaml` declares, when it declares them.
    groups: Option<HashSet<String>>,
}

/// Names in a stable order (suggestions must not depend on a hash map's).
fn sorted_names<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<&str> = names.collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn compile_condition(
    doc: &Doc<'_>,
    base: &[Seg],
    c: &schema::ConditionSpec,
    known: &Known<'_>,
    errors: &mut Vec<LocatedError>,
) -> Condition {
    let check = |errors: &mut Vec<LocatedError>,
                 field: &str,
                 list: &Option<Vec<String>>,
                 ok: &dyn Fn(&str) -> bool,
                 names: &[&str],
                 what: &str| {
        if let Some(items) = list {
            for (i, item) in items.iter().enumerate() {
                if !ok(item) {
                    let hint = super::suggest::did_you_mean(item, names.iter().copied())
                        .map(|s| format!(", did you mean `{s}`?"))
                        .unwrap_or_default();
                    errors.push(doc.err(
                        &[base, &[key(field), Seg::Index(i)]].concat(),
                        format!("unknown {what} `{item}`{hint}"),
                    ));
                }
            }
        }
    };
    if c.anywhere == Some(true) && c.categories.is_none() && c.detectors.is_none() {
        errors.push(doc.err(
            &[base, &[key("anywhere")]].concat(),
            "`anywhere` says where findings count: give `categories` or `detectors` too",
        ));
    }
    let sites = sorted_names(known.sites.iter().copied());
    check(
        errors,
        "sites",
        &c.sites,
        &|s| known.sites.contains(s),
        &sites,
        "site",
    );
    let activities = sorted_names(known.activities.iter().map(String::as_str));
    check(
        errors,
        "activities",
        &c.activities,
        &|a| known.activities.contains(a),
        &activities,
        "activity",
    );
    let detectors = sorted_names(known.detectors.iter().map(String::as_str));
    check(
        errors,
        "detectors",
        &c.detectors,
        &|d| known.detectors.contains(d),
        &detectors,
        "detector",
    );
    let categories = sorted_names(
        detect::CATEGORIES
            .iter()
            .copied()
            .chain(known.categories.iter().map(String::as_str)),
    );
    check(
        errors,
        "categories",
        &c.categories,
        &|cat| {
            let p = CategoryPattern::parse(cat);
            match &p {
                CategoryPattern::Exact(e) => detect::is_known_category(e),
                CategoryPattern::Prefix(_) => {
                    detect::CATEGORIES.iter().any(|k| p.matches(k))
                        || known.categories.iter().any(|k| p.matches(k))
                }
            }
        },
        &categories,
        "category",
    );
    if let Some(declared) = &known.groups {
        let groups = sorted_names(declared.iter().map(String::as_str));
        check(
            errors,
            "groups",
            &c.groups,
            &|g| declared.contains(g),
            &groups,
            "group",
        );
    }
    Condition {
        sites: c.sites.clone(),
        activities: c.activities.clone(),
        groups: c.groups.clone(),
        categories: c
            .categories
            .as_ref()
            .map(|l| l.iter().map(|s| CategoryPattern::parse(s)).collect()),
        detectors: c.detectors.clone(),
        min_count: c.min_count,
        uninspectable: c.uninspectable,
        unclassified: c.unclassified,
        anywhere: c.anywhere.unwrap_or(false),
    }
}

/// The groups `policy.yaml` declares (`groups: [engineering, communications]`), if it
/// does: rules may then name only those, and a misspelt one is an error.
fn declared_groups(
    docs: &[(Doc<'_>, &str)],
    errors: &mut Vec<LocatedError>,
) -> Option<HashSet<String>> {
    let (doc, _) = docs.iter().find(|(_, k)| *k == "policy")?;
    let value = doc.value.get("groups")?;
    match doc.typed::<Vec<String>>(value, &[key("groups")]) {
        Ok(groups) => Some(groups.into_iter().collect()),
        Err(e) => {
            errors.extend(e.0);
            None
        }
    }
}

/// Checks the test files (structure and references); they are not part of the policy.
fn check_tests(doc: &Doc<'_>, rule_ids: &HashSet<String>, errors: &mut Vec<LocatedError>) {
    for (i, item) in top_list(doc, "tests", errors).into_iter().enumerate() {
        let base = vec![key("tests"), Seg::Index(i)];
        if let Some(t) = doc.typed_despite_errors::<schema::TestSpec>(item, &base, errors) {
            let exp = [&base[..], &[key("expect")]].concat();
            for (field, list) in [
                ("rules", &t.expect.rules),
                ("not_rules", &t.expect.not_rules),
            ] {
                for (j, r) in list.iter().enumerate() {
                    if !rule_ids.contains(r) && r != super::UNINSPECTABLE_RULE {
                        errors.push(doc.err(
                            &[&exp[..], &[key(field), Seg::Index(j)]].concat(),
                            format!("unknown rule `{r}`"),
                        ));
                    }
                }
            }
            for (field, list) in [
                ("categories", &t.expect.categories),
                ("not_categories", &t.expect.not_categories),
            ] {
                for (j, c) in list.iter().enumerate() {
                    if !detect::is_known_category(c) {
                        errors.push(doc.err(
                            &[&exp[..], &[key(field), Seg::Index(j)]].concat(),
                            format!("unknown category `{c}`"),
                        ));
                    }
                }
            }
            if t.request.body.is_some() && t.request.body_file.is_some() {
                errors.push(doc.err(
                    &with(&base, key("request")),
                    "give `body` or `body_file`, not both",
                ));
            }
            if super::RequestHead::from_url(&t.request.method, &t.request.url, vec![], None)
                .is_err()
            {
                errors.push(doc.err(
                    &[&base[..], &[key("request"), key("url")]].concat(),
                    format!("not an absolute URL: {}", t.request.url),
                ));
            }
        }
    }
}

/// Compiles a rule set. Files are recognised by their relative path. Every error of every
/// file is returned together, sorted by place.
pub fn compile(files: &[SourceFile], opts: &EngineOptions) -> Result<Policy, RuleErrors> {
    let mut errors: Vec<LocatedError> = Vec::new();
    let docs = parse_docs(files, &mut errors);
    let (sites, site_ids) = compile_sites(&docs, &mut errors);
    let (defs, detector_ids) = compile_detectors(&docs, files, &mut errors);
    let mut activities: HashSet<String> = sites.iter().flat_map(|s| s.activity_names()).collect();
    activities.insert(UNCLASSIFIED.to_string());
    let known = Known {
        sites: site_ids.keys().map(String::as_str).collect(),
        activities,
        detectors: detector_ids.keys().cloned().collect(),
        categories: defs.iter().map(|d| d.detector.category.clone()).collect(),
        groups: declared_groups(&docs, &mut errors),
    };
    let (rules, rule_ids) = compile_rules(&docs, &known, &mut errors);
    for (doc, _) in docs.iter().filter(|(_, k)| *k == "tests") {
        check_tests(doc, &rule_ids, &mut errors);
    }
    let detectors = match Detectors::build(defs) {
        Ok(d) => d,
        Err(e) => {
            errors.push(LocatedError {
                file: PathBuf::from("detectors"),
                line: 1,
                column: 1,
                message: e.to_string(),
            });
            Detectors::default()
        }
    };
    if !errors.is_empty() {
        errors.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        return Err(RuleErrors(errors));
    }
    let (exact_hosts, suffix_hosts, any_host_sites) = host_maps(&sites);
    Ok(Policy {
        version: version_of(files),
        net: safety_net_detectors(&detectors, &rules),
        sites,
        exact_hosts,
        suffix_hosts,
        any_host_sites,
        detectors,
        rules,
        opts: opts.clone(),
        bodiless: Default::default(),
        remembered_scans: Default::default(),
    })
}

/// Stage: every rule file parsed, with its kind (`policy`, `site`, `detectors`, `tests`).
fn parse_docs<'f>(
    files: &'f [SourceFile],
    errors: &mut Vec<LocatedError>,
) -> Vec<(Doc<'f>, &'static str)> {
    let mut docs = Vec::new();
    for f in files {
        let rel = f.relative.to_string_lossy().replace('\\', "/");
        let kind = if rel == "policy.yaml" {
            "policy"
        } else if rel.starts_with("sites/") && is_yaml(&f.relative) {
            "site"
        } else if rel.starts_with("detectors/") && is_yaml(&f.relative) {
            "detectors"
        } else if rel.starts_with("tests/") && is_yaml(&f.relative) {
            "tests"
        } else {
            continue;
        };
        match parse_doc(f) {
            Ok(doc) => docs.push((doc, kind)),
            Err(e) => errors.push(e),
        }
    }
    if !docs.iter().any(|(_, k)| *k == "policy")
        && !errors.iter().any(|e| e.file.ends_with("policy.yaml"))
    {
        errors.push(LocatedError {
            file: PathBuf::from("policy.yaml"),
            line: 1,
            column: 1,
            message: "missing policy.yaml".into(),
        });
    }
    docs
}

/// Stage: the site catalogue; site ids and domains are unique.
fn compile_sites(docs: &[(Doc<'_>, &str)], errors: &mut Vec<LocatedError>) -> (Vec<Site>, Seen) {
    let mut sites = Vec::new();
    let mut site_ids: Seen = HashMap::new();
    let mut domain_owner: Seen = HashMap::new();
    for (doc, _) in docs.iter().filter(|(_, k)| *k == "site") {
        if let Some(site) = compile_site(doc, errors) {
            check_duplicate(&mut site_ids, doc, &[key("site")], "site", &site.id, errors);
            for (i, d) in site.domains.iter().enumerate() {
                check_duplicate(
                    &mut domain_owner,
                    doc,
                    &[key("domains"), Seg::Index(i)],
                    "domain",
                    d,
                    errors,
                );
            }
            sites.push(site);
        }
    }
    (sites, site_ids)
}

/// Stage: the detectors; ids are unique.
fn compile_detectors(
    docs: &[(Doc<'_>, &str)],
    files: &[SourceFile],
    errors: &mut Vec<LocatedError>,
) -> (Vec<DetectorDef>, Seen) {
    let mut defs = Vec::new();
    let mut detector_ids: Seen = HashMap::new();
    for (doc, _) in docs.iter().filter(|(_, k)| *k == "detectors") {
        for (i, item) in top_list(doc, "detectors", errors).into_iter().enumerate() {
            let base = vec![key("detectors"), Seg::Index(i)];
            if let Some(spec) =
                doc.typed_despite_errors::<schema::DetectorSpec>(item, &base, errors)
            {
                check_duplicate(
                    &mut detector_ids,
                    doc,
                    &with(&base, key("id")),
                    "detector",
                    &spec.id,
                    errors,
                );
                if let Some(def) = compile_detector(doc, &base, spec, files, errors) {
                    defs.push(def);
                }
            }
        }
    }
    (defs, detector_ids)
}

/// Stage: the policy's rules; ids are unique, references are checked against `known`.
/// Returns the rules and their ids.
fn compile_rules(
    docs: &[(Doc<'_>, &str)],
    known: &Known<'_>,
    errors: &mut Vec<LocatedError>,
) -> (Vec<Rule>, HashSet<String>) {
    let mut rules = Vec::new();
    let mut rule_ids: Seen = HashMap::new();
    for (doc, _) in docs.iter().filter(|(_, k)| *k == "policy") {
        for (i, item) in top_list_with(doc, "rules", &["groups"], errors)
            .into_iter()
            .enumerate()
        {
            let base = vec![key("rules"), Seg::Index(i)];
            if let Some(spec) = doc.typed_despite_errors::<schema::RuleSpec>(item, &base, errors) {
                check_duplicate(
                    &mut rule_ids,
                    doc,
                    &with(&base, key("id")),
                    "rule",
                    &spec.id,
                    errors,
                );
                rules.push(compile_rule(doc, &base, spec, known, errors));
            }
        }
    }
    (rules, rule_ids.into_keys().collect())
}

fn compile_rule(
    doc: &Doc<'_>,
    base: &[Seg],
    spec: schema::RuleSpec,
    known: &Known<'_>,
    errors: &mut Vec<LocatedError>,
) -> Rule {
    if spec.id == super::UNINSPECTABLE_RULE {
        errors.push(doc.err(&with(base, key("id")), "this rule id is reserved"));
    }
    let action = Action::parse(&spec.action).unwrap_or_else(|| {
        let names = ["allow", "log", "redact", "coach", "block"];
        let hint = super::suggest::did_you_mean(&spec.action, names)
            .map(|s| format!(", did you mean `{s}`?"))
            .unwrap_or_default();
        errors.push(doc.err(
            &with(base, key("action")),
            format!(
                "unknown action `{}`{hint} (expected one of `allow`, `log`, `redact`, `coach`, `block`)",
                spec.action
            ),
        ));
        Action::Allow
    });
    let mode = match spec.mode.as_deref() {
        None | Some("enforce") => Mode::Enforce,
        Some("monitor") => Mode::Monitor,
        Some(other) => {
            let hint = super::suggest::did_you_mean(other, ["enforce", "monitor"])
                .map(|s| format!(", did you mean `{s}`?"))
                .unwrap_or_default();
            errors.push(doc.err(
                &with(base, key("mode")),
                format!("unknown mode `{other}`{hint} (expected `enforce` or `monitor`)"),
            ));
            Mode::Enforce
        }
    };
    let when = compile_condition(doc, &with(base, key("when")), &spec.when, known, errors);
    let unless = spec
        .unless
        .as_ref()
        .map(|u| compile_condition(doc, &with(base, key("unless")), u, known, errors));
    Rule {
        id: spec.id,
        description: spec.description,
        when,
        unless,
        action,
        message: spec.message,
        mode,
    }
}

/// Host → site lookups: exact domains, `*.suffix` domains longest first, and the sites
/// that also claim other hosts by API shape.
type HostMaps = (
    foldhash::HashMap<String, usize>,
    Vec<(String, usize)>,
    Vec<usize>,
);

fn host_maps(sites: &[Site]) -> HostMaps {
    let mut exact_hosts = foldhash::HashMap::default();
    let mut suffix_hosts = Vec::new();
    let mut any_host_sites = Vec::new();
    for (i, s) in sites.iter().enumerate() {
        for d in &s.domains {
            match d.strip_prefix("*.") {
                Some(rest) => suffix_hosts.push((format!(".{rest}"), i)),
                None => {
                    exact_hosts.insert(d.clone(), i);
                }
            }
        }
        if s.any_host {
            any_host_sites.push(i);
        }
    }
    suffix_hosts.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
    (exact_hosts, suffix_hosts, any_host_sites)
}

/// By detector index: whether the safety net runs it, i.e. whether a rule with
/// `anywhere: true` names its category or id.
fn safety_net_detectors(detectors: &Detectors, rules: &[Rule]) -> Vec<bool> {
    (0..detectors.len())
        .map(|i| {
            detectors.get(i).is_some_and(|d| {
                rules.iter().any(|r| {
                    [Some(&r.when), r.unless.as_ref()]
                        .into_iter()
                        .flatten()
                        .filter(|c| c.anywhere)
                        .any(|c| {
                            let cat = c
                                .categories
                                .as_ref()
                                .is_none_or(|cs| cs.iter().any(|p| p.matches(&d.category)));
                            let det = c
                                .detectors
                                .as_ref()
                                .is_none_or(|ds| ds.iter().any(|x| x == &d.id));
                            cat && det
                        })
                })
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(rel: &str, text: &str) -> SourceFile {
        SourceFile {
            display: PathBuf::from(format!("rules/{rel}")),
            relative: PathBuf::from(rel),
            text: text.to_string(),
        }
    }

    const SITE: &str = "site: x\nname: X\ndomains: [x.com, \"*.x.com\"]\nactivities:\n  - activity: post\n    method: POST\n    path: '^/i/api/graphql/[^/]+/CreateTweet$'\n    content:\n      - json: /variables/tweet_text\n";
    const DETS: &str = "detectors:\n  - id: aws\n    category: secret.aws_access_key\n    regex: '\\bAKIA[0-9A-Z]{16}\\b'\n";
    const POLICY: &str = "rules:\n  - id: block-secrets\n    when: { categories: [\"secret.*\"] }\n    action: block\n";

    #[test]
    fn a_valid_set_compiles() {
        let p = compile(
            &[
                file("sites/x.yaml", SITE),
                file("detectors/s.yaml", DETS),
                file("policy.yaml", POLICY),
            ],
            &EngineOptions::default(),
        )
        .unwrap();
        assert_eq!(p.sites().len(), 1);
        assert_eq!(p.site_for_host("api.x.com").map(|s| &*s.id), Some("x"));
        assert_eq!(p.site_for_host("x.com").map(|s| &*s.id), Some("x"));
        assert!(p.site_for_host("notx.com").is_none());
        assert_eq!(p.version().len(), 12);
    }

    #[test]
    fn every_error_is_reported_with_its_position() {
        let site = "site: x\nname: X\ndomains: [x.com]\nactivities:\n  - activity: post\n    path: '^/(unclosed$'\n  - activity: view\n    bogus: 1\n";
        let dets = "detectors:\n  - id: a\n    category: pii.nonsense\n    regex: 'a'\n  - id: a\n    category: pii.email\n    regex: 'b'\n    validator: nope\n";
        let policy = "rules:\n  - id: r1\n    when: { sites: [nosuch], categories: [pii.email] }\n    action: block\n  - id: r2\n    action: maybe\n";
        let err = compile(
            &[
                file("sites/x.yaml", site),
                file("detectors/d.yaml", dets),
                file("policy.yaml", policy),
            ],
            &EngineOptions::default(),
        )
        .unwrap_err();
        let text = err.to_string();
        let lines: Vec<&str> = text.lines().collect();
        let expect = [
            "rules/sites/x.yaml:6:11: invalid regex",
            "rules/sites/x.yaml:8:5: unknown field `bogus`",
            "rules/detectors/d.yaml:3:15: unknown category `pii.nonsense`",
            "rules/detectors/d.yaml:5:9: duplicate detector id `a`",
            "rules/detectors/d.yaml:8:16: unknown validator `nope`",
            "rules/policy.yaml:3:21: unknown site `nosuch`",
            "rules/policy.yaml:6:13: unknown action `maybe`",
        ];
        for e in expect {
            assert!(
                lines.iter().any(|l| l.starts_with(e)),
                "missing {e:?} in:\n{text}"
            );
        }
    }

    #[test]
    fn refusal_shapes_are_checked_and_located() {
        let site = format!(
            "{SITE}refusal:\n  - path: '^/2/'\n    status: 429\n    body: {{ detail: \"{{message}}\" }}\n  - path: '^/(1\\.1'\n    body: {{ errors: [{{ message: \"{{mesage}}\" }}] }}\n  - body: [1]\n  - status: 500\n    body: {{ error: \"{{message}}\" }}\n  - body: {{ error: x }}\n    gateway_field: true\n"
        );
        let err = compile(
            &[
                file("sites/x.yaml", &site),
                file("detectors/s.yaml", DETS),
                file("policy.yaml", POLICY),
            ],
            &EngineOptions::default(),
        )
        .unwrap_err();
        let text = err.to_string();
        let expect = [
            "rules/sites/x.yaml:12:13: refusal status 429 reads as something else",
            "rules/sites/x.yaml:14:11: invalid regex",
            "rules/sites/x.yaml:15:33: unknown placeholder `{mesage}`",
            "rules/sites/x.yaml:16:11: a refusal body must be a mapping",
            "rules/sites/x.yaml:17:5: never used: the refusal at line 16",
            "rules/sites/x.yaml:17:13: refusal status 500 is not a 4xx",
            "rules/sites/x.yaml:20:5: unknown field `gateway_field`",
        ];
        for e in expect {
            assert!(
                text.lines().any(|l| l.starts_with(e)),
                "missing {e:?} in:\n{text}"
            );
        }
    }

    #[test]
    fn a_refusal_is_chosen_by_path_then_falls_back() {
        let site = format!(
            "{SITE}refusal:\n  - path: '^/2/'\n    body: {{ detail: \"{{message}}\" }}\n    gateway_fields: true\n  - status: 400\n    body: {{ error: Name, message: \"{{message}}\" }}\n"
        );
        let p = compile(
            &[
                file("sites/x.yaml", &site),
                file("detectors/s.yaml", DETS),
                file("policy.yaml", POLICY),
            ],
            &EngineOptions::default(),
        )
        .unwrap();
        let x = p.site_by_id("x").unwrap();
        let facts = refusal::RefusalFacts {
            message: "m",
            request_id: "id1",
            ..Default::default()
        };
        let v2 = x.refusal_for("api.x.com", "/2/tweets").unwrap();
        assert_eq!(v2.status, 403);
        let body = v2.render(&facts);
        assert_eq!(body["detail"], "m");
        assert_eq!(body["request_id"], "id1");
        let other = x
            .refusal_for("x.com", "/i/api/graphql/a/CreateTweet")
            .unwrap();
        assert_eq!(other.status, 400);
        assert_eq!(
            other.render(&facts),
            serde_json::json!({"error": "Name", "message": "m"})
        );
    }

    #[test]
    fn syntax_errors_are_located() {
        let err = compile(
            &[file("policy.yaml", "rules:\n  - id: [a\n")],
            &EngineOptions::default(),
        )
        .unwrap_err();
        assert!(
            err.0[0].to_string().starts_with("rules/policy.yaml:"),
            "{err}"
        );
        assert!(err.0[0].line >= 2, "{err}");
    }
}
