//! Message templates with merge fields ("stampa unione"): a subject, a text
//! body and an HTML alternative written in minijinja's Jinja dialect, merged
//! with one party's fields and characteristics.
//!
//! A template is checked when it is saved, not when the campaign is half
//! sent: [`validate`] names every merge field that no party has (from
//! minijinja's list of undeclared variables), then dry-renders each part in
//! strict mode against a sample party that has *every* field and every
//! characteristic key in use, so a typo or an unsupported construct fails at
//! save time with the part it is in. HTML that could run code in a mail
//! client or a web-mail page (`<script>`, `on…=` handlers, `javascript:`
//! URLs, frames and plugins) is rejected at save time too, by a scan of the
//! source: a marketing template has no legitimate use for any of them.
//!
//! Merged values are HTML-escaped in the HTML part (minijinja's
//! auto-escaping, chosen by the part's name), never in the subject or text.

use crate::error::{FieldError, Result};
use crate::parties::Party;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// The three parts of an email template (SMS and fax use `text` only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Template {
    pub subject: String,
    pub text: String,
    #[serde(default)]
    pub html: String,
}

/// A template merged for one recipient.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    /// Absent when the template has no HTML part.
    pub html: Option<String>,
}

/// The merge fields every party has, besides `characteristics.KEY`.
pub const FIELDS: &[&str] = &["name", "first_name", "last_name", "kind", "stage", "city", "zone", "email", "phone", "party_id"];

/// Fields the sender supplies per recipient rather than the party.
pub const SENDER_FIELDS: &[&str] = &["unsubscribe_url"];

/// The merge context of one party (what a template sees).
pub fn party_context(p: &Party) -> serde_json::Value {
    let chars: BTreeMap<&str, &str> = p.characteristics.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    serde_json::json!({
        "party_id": p.id.0,
        "name": p.name,
        "first_name": p.first_name.clone().unwrap_or_default(),
        "last_name": p.last_name.clone().unwrap_or_default(),
        "kind": p.kind.as_str(),
        "stage": p.stage.as_str(),
        "city": p.city.clone().unwrap_or_default(),
        "zone": p.zone.clone().unwrap_or_default(),
        "email": p.emails.first().map(|e| e.address.as_str().to_string()).unwrap_or_default(),
        "phone": p.phones.first().map(|e| e.number.as_str().to_string()).unwrap_or_default(),
        "characteristics": chars,
    })
}

/// A party with every field and every characteristic key in `keys`, for
/// the dry render at save time.
pub fn sample_context(keys: &[String]) -> serde_json::Value {
    let chars: BTreeMap<&str, &str> = keys.iter().map(|k| (k.as_str(), "x")).collect();
    let mut m = serde_json::Map::new();
    for f in FIELDS {
        m.insert((*f).into(), serde_json::Value::String(format!("sample {f}")));
    }
    m.insert("characteristics".into(), serde_json::json!(chars));
    m.insert("unsubscribe_url".into(), "https://example.invalid/u/sample".into());
    serde_json::Value::Object(m)
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Only the HTML part escapes merged values; the name decides.
    env.set_auto_escape_callback(|name| if name == "html" { AutoEscape::Html } else { AutoEscape::None });
    env
}

static UNSAFE: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        (r"(?i)<\s*script\b", "<script> is not allowed"),
        (r"(?i)<[^>]*\son[a-z]+\s*=", "event-handler attributes (on…=) are not allowed"),
        (r"(?i)(?:java|vb)script\s*:", "javascript: URLs are not allowed"),
        (r"(?i)data\s*:\s*text/html", "data:text/html URLs are not allowed"),
        (r"(?i)<\s*(?:iframe|frame|object|embed|applet|base)\b", "frames, plugins and <base> are not allowed"),
    ]
    .into_iter()
    .filter_map(|(re, why)| Regex::new(re).ok().map(|r| (r, why)))
    .collect()
});

/// Why an HTML source is unsafe, if it is.
pub fn unsafe_html(html: &str) -> Option<&'static str> {
    UNSAFE.iter().find(|(re, _)| re.is_match(html)).map(|(_, why)| *why)
}

/// Checks a template at save time; every problem is reported, each under
/// the part it is in (`subject`, `text`, `html`), naming unknown fields.
pub fn validate(t: &Template, characteristic_keys: &[String]) -> Result<()> {
    let mut problems = Vec::new();
    if t.subject.trim().is_empty() {
        problems.push(FieldError::new("subject", "required"));
    }
    if t.text.trim().is_empty() && t.html.trim().is_empty() {
        problems.push(FieldError::new("text", "a text or an HTML body is required"));
    }
    let env = environment();
    let sample = Value::from(minijinja::value::Serde(sample_context(characteristic_keys)));
    for (part, src) in [("subject", &t.subject), ("text", &t.text), ("html", &t.html)] {
        let tmpl = match env.template_from_named_str(part, src) {
            Ok(tmpl) => tmpl,
            Err(e) => {
                problems.push(FieldError::new(part, format!("template syntax: {}", e.detail().unwrap_or("invalid"))));
                continue;
            }
        };
        let mut unknown: Vec<String> = tmpl.undeclared_variables(true).into_iter().filter(|v| !known(v, characteristic_keys)).collect();
        unknown.sort();
        if !unknown.is_empty() {
            for u in &unknown {
                problems.push(FieldError::new(part, format!("unknown merge field {u:?}")));
            }
            continue;
        }
        if let Err(e) = tmpl.render(sample.clone()) {
            problems.push(FieldError::new(part, format!("cannot be merged: {e}")));
        }
    }
    if let Some(why) = unsafe_html(&t.html) {
        problems.push(FieldError::new("html", why));
    }
    if problems.is_empty() { Ok(()) } else { Err(crate::Error::Invalid(problems)) }
}

fn known(var: &str, keys: &[String]) -> bool {
    if FIELDS.contains(&var) || SENDER_FIELDS.contains(&var) || var == "characteristics" {
        return true;
    }
    match var.strip_prefix("characteristics.") {
        Some(k) => keys.iter().any(|key| key == k),
        None => false,
    }
}

/// Merges a template with a context (a [`party_context`] plus sender
/// fields). Strict: a field missing for this recipient is an error, which
/// the sender records on that recipient's row.
pub fn render(t: &Template, ctx: &serde_json::Value) -> std::result::Result<Rendered, String> {
    let env = environment();
    let ctx = Value::from(minijinja::value::Serde(ctx));
    let part = |name: &str, src: &str| -> std::result::Result<String, String> {
        env.template_from_named_str(name, src).and_then(|t| t.render(ctx.clone())).map_err(|e| format!("{name}: {e}"))
    };
    let subject = part("subject", &t.subject)?;
    // A subject is one line whatever the merge put in it.
    let subject = subject.split(['\r', '\n']).map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ");
    let text = part("text", &t.text)?;
    let html = if t.html.trim().is_empty() { None } else { Some(part("html", &t.html)?) };
    Ok(Rendered { subject, text, html })
}

/// Whether any part of the template places the unsubscribe link itself (else
/// the sender appends a footer with it).
pub fn uses_unsubscribe(t: &Template) -> bool {
    [&t.text, &t.html].iter().any(|s| s.contains("unsubscribe_url"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(subject: &str, text: &str, html: &str) -> Template {
        Template { subject: subject.into(), text: text.into(), html: html.into() }
    }

    fn fields(r: Result<()>) -> Vec<(String, String)> {
        match r {
            Err(crate::Error::Invalid(v)) => v.into_iter().map(|f| (f.field, f.reason)).collect(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn unknown_fields_are_named_at_save_time() {
        let keys = vec!["settore".to_string()];
        assert!(validate(&t("Ciao {{ first_name }}", "{{ characteristics.settore }} {{ unsubscribe_url }}", "<p>{{ city }}</p>"), &keys).is_ok());
        let f = fields(validate(&t("Ciao {{ frist_name }}", "{{ characteristics.sector }}", ""), &keys));
        assert_eq!(f[0], ("subject".to_string(), "unknown merge field \"frist_name\"".to_string()));
        assert_eq!(f[1], ("text".to_string(), "unknown merge field \"characteristics.sector\"".to_string()));
        // A subscript with an unknown key is caught by the strict dry render.
        let f = fields(validate(&t("x", "{{ characteristics['nope'] }}", ""), &keys));
        assert_eq!(f[0].0, "text");
        let f = fields(validate(&t("x", "{% if %}", ""), &keys));
        assert!(f[0].1.starts_with("template syntax"), "{f:?}");
    }

    #[test]
    fn unsafe_html_is_rejected() {
        for bad in [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "<a href=\"JavaScript:alert(1)\">x</a>",
            "<iframe src=//evil></iframe>",
        ] {
            let f = fields(validate(&t("s", "x", bad), &[]));
            assert!(f.iter().any(|(p, _)| p == "html"), "{bad}: {f:?}");
        }
        assert!(validate(&t("s", "x", "<p style=\"color:red\"><a href=\"https://example.com/?on=1\">onboarding</a></p>"), &[]).is_ok());
    }

    #[test]
    fn merged_values_are_escaped_in_html_only() {
        let ctx = serde_json::json!({"name": "Rossi & <Figli>", "characteristics": {}});
        let r = render(&t("Per {{ name }}\r\nBcc: x", "Gentile {{ name }}", "<b>{{ name }}</b>"), &ctx).unwrap();
        assert_eq!(r.subject, "Per Rossi & <Figli> Bcc: x");
        assert_eq!(r.text, "Gentile Rossi & <Figli>");
        assert_eq!(r.html.as_deref(), Some("<b>Rossi &amp; &lt;Figli&gt;</b>"));
    }
}
