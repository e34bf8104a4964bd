//! Message bodies for people and for search: HTML sanitised for display
//! (`ammonia`), HTML turned into plain text (`html2text`), and quoted
//! history trimmed for display. The raw message is stored untouched
//! elsewhere; everything here derives from it and may be recomputed.

use std::borrow::Cow;

/// HTML larger than this is not rendered to text by `html2text` (which
/// builds a full tree and recurses): the tag-stripping fallback is used.
const HTML2TEXT_MAX_BYTES: usize = 2 * 1024 * 1024;
/// Deeper element nesting than this falls back too, because a deep enough
/// tree would exhaust the stack of a recursive renderer.
const HTML2TEXT_MAX_DEPTH: usize = 256;

/// HTML made safe to show inside the console: no scripts, styles, event
/// handlers, forms or frames; links open without a referrer. Images keep
/// only `cid:` sources (the message's own parts), so opening a ticket does
/// not fetch remote trackers; `data:` URLs are refused everywhere because a
/// `data:text/html` link is a script in disguise.
pub fn sanitise_html(html: &str) -> String {
    ammonia::Builder::default()
        .url_schemes(["http", "https", "mailto", "cid"].into_iter().collect())
        .attribute_filter(|element, attribute, value| {
            if element == "img" && attribute == "src" && !value.starts_with("cid:") {
                return None;
            }
            Some(Cow::Borrowed(value))
        })
        .clean(html)
        .to_string()
}

/// HTML as plain text, for search and for the text view of HTML-only mail.
pub fn html_to_text(html: &str) -> String {
    if html.len() <= HTML2TEXT_MAX_BYTES && nesting_depth(html) <= HTML2TEXT_MAX_DEPTH {
        // A panic inside the renderer must not take the ingest task down;
        // the fallback below still gives searchable text.
        let rendered = std::panic::catch_unwind(|| html2text::from_read(html.as_bytes(), 100));
        if let Ok(Ok(text)) = rendered {
            return text;
        }
    }
    strip_tags(html)
}

/// A cheap upper bound on element nesting: opening tags minus closing tags,
/// ignoring comments, declarations and self-closing tags.
fn nesting_depth(html: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let b = html.as_bytes();
    let mut i = 0;
    while let Some(off) = b[i..].iter().position(|&c| c == b'<') {
        i += off + 1;
        match b.get(i) {
            Some(b'/') => depth = depth.saturating_sub(1),
            Some(b'!') | Some(b'?') => {}
            Some(c) if c.is_ascii_alphabetic() => {
                let end = b[i..].iter().position(|&c| c == b'>').map(|e| i + e).unwrap_or(b.len());
                if end == 0 || b.get(end.saturating_sub(1)) != Some(&b'/') {
                    depth += 1;
                    max = max.max(depth);
                }
            }
            _ => {}
        }
    }
    max
}

/// Text without tags: everything ammonia keeps when no tag is allowed,
/// with the entities it writes turned back into characters.
fn strip_tags(html: &str) -> String {
    let cleaned = ammonia::Builder::empty().clean(html).to_string();
    cleaned
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

/// Separators that help desks put above the quoted history; everything from
/// the first one on is history (FreeScout, osTicket, Zammad, Jira).
const REPLY_ABOVE: &[&str] = &[
    "reply above this line",
    "type your reply above this line",
    "write above this line",
    "rispondi sopra questa riga",
    "scrivi sopra questa riga",
];

/// Text for display: the new part of a reply, without the quoted history
/// that mail clients append. Conservative: if trimming would leave nothing,
/// the whole text is kept.
pub fn trim_quoted(text: &str) -> &str {
    let mut cut = text.len();
    let mut offset = 0;
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        let l = line.trim();
        let ll = l.to_lowercase();
        let starts_history = REPLY_ABOVE.iter().any(|s| ll.contains(s))
            || is_original_message_marker(&ll)
            || (is_attribution(&ll) && lines.peek().is_none_or(|n| n.trim().is_empty() || n.trim_start().starts_with('>')))
            || (l.starts_with('>') && rest_is_quoted(&text[offset..]));
        if starts_history {
            cut = offset;
            break;
        }
        offset += line.len();
    }
    let kept = text[..cut].trim_end();
    if kept.trim().is_empty() { text.trim_end() } else { kept }
}

fn is_original_message_marker(l: &str) -> bool {
    let dashed = l.starts_with("-----") && l.ends_with("-----");
    (dashed
        && (l.contains("original message")
            || l.contains("messaggio originale")
            || l.contains("ursprüngliche nachricht")
            || l.contains("message d'origine")
            || l.contains("forwarded message")))
        || (l.len() >= 20 && l.chars().all(|c| c == '_'))
}

/// "On Mon, 1 Jan 2024, Ada <a@b> wrote:" and its translations.
fn is_attribution(l: &str) -> bool {
    let l = l.trim_end();
    (l.starts_with("on ") && l.ends_with("wrote:"))
        || (l.starts_with("il ") && (l.ends_with("ha scritto:") || l.ends_with("ha scritto")))
        || (l.starts_with("am ") && l.ends_with("schrieb:"))
        || (l.starts_with("le ") && (l.ends_with("a écrit :") || l.ends_with("a écrit:")))
        || (l.starts_with("el ") && l.ends_with("escribió:"))
}

/// Is everything from here on quoted lines or blank lines?
fn rest_is_quoted(rest: &str) -> bool {
    rest.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('>'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        assert_eq!(trim_quoted(input), expected, "input:\n{input}");
    }

    #[test]
    fn trims_history() {
        check("Thanks!\n\nOn Mon, 1 Jan 2024, Desk <d@x> wrote:\n> old\n> older\n", "Thanks!");
        check("Grazie\n\nIl giorno lun 1 gen 2024 alle 10:00 Desk <d@x> ha scritto:\n\n> vecchio\n", "Grazie");
        check("Fine.\n-----Original Message-----\nFrom: x\nSent: y\n\nold", "Fine.");
        check("Fine.\n________________________________\nFrom: x\n", "Fine.");
        check("new text\n-- Please reply above this line --\nTicket history…", "new text");
        check("ok\n\n> quoted\n>more\n\n", "ok");
        // Interleaved replies keep everything after the first quote.
        check("> q1\nanswer 1\n> q2\nanswer 2", "> q1\nanswer 1\n> q2\nanswer 2");
        // Nothing new: keep the whole text rather than show an empty body.
        check("> only quoted\n", "> only quoted");
        check("On the other hand, it wrote: nothing\nbye", "On the other hand, it wrote: nothing\nbye");
        check("", "");
    }

    #[test]
    fn html() {
        let s = sanitise_html(r#"<p onclick="x()">Hi<script>alert(1)</script><img src="https://t.example/p.gif"><img src="cid:logo"></p>"#);
        assert!(!s.contains("script") && !s.contains("onclick") && !s.contains("t.example"), "{s}");
        assert!(s.contains("cid:logo"), "{s}");
        let d = sanitise_html(r#"<a href="data:text/html,<script>alert(1)</script>">x</a><a href="javascript:alert(1)">y</a>"#);
        assert!(!d.contains("data:") && !d.contains("javascript:"), "{d}");
        let t = html_to_text("<p>Hello&nbsp;<b>world</b></p><p>second &amp; last</p>");
        assert!(t.contains("Hello") && t.contains("world") && t.contains("second & last"), "{t}");
        let deep = "<div>".repeat(10_000) + "deep text" + &"</div>".repeat(10_000);
        assert!(html_to_text(&deep).contains("deep text"));
        assert_eq!(strip_tags("a &lt;b&gt; <i>c</i>"), "a <b> c");
    }
}
