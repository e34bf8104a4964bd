//! Threading inputs: the Message-IDs a mail names (`Message-ID`,
//! `In-Reply-To`, `References`), its subject tag `[#T-12345]`, and the
//! ticket numbers carried by our own HMAC-signed Message-IDs among them.
//!
//! Extraction is tolerant on purpose: Jira, some Exchange versions and many
//! scripts write ids without angle brackets, separated by commas, or with
//! comments; FreeScout and Zammad both grew workarounds for this. Ids are
//! kept without their brackets, as the store keys them.

use crm::tickets::TicketNo;

/// Ids longer than this are junk (RFC 5322 lines are ≤ 998 octets) and
/// are dropped rather than stored.
const MAX_ID_LEN: usize = 250;
/// A `References` header of a long thread is capped at this many ids (the
/// newest ones are kept: they are the likeliest to be ours).
const MAX_REFERENCES: usize = 50;

/// Every message id in a header value, in order, without brackets.
pub fn message_ids(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bracketed = value.contains('<');
    if bracketed {
        let mut rest = value;
        while let Some(a) = rest.find('<') {
            let after = &rest[a + 1..];
            let Some(b) = after.find('>') else { break };
            push_id(&mut out, &after[..b]);
            rest = &after[b + 1..];
        }
    } else {
        for tok in value.split([' ', '\t', '\r', '\n', ',', ';']) {
            if tok.contains('@') {
                push_id(&mut out, tok);
            }
        }
    }
    out
}

fn push_id(out: &mut Vec<String>, raw: &str) {
    let id: String = raw.trim().chars().filter(|c| !c.is_whitespace()).collect();
    if !id.is_empty() && id.len() <= MAX_ID_LEN && !id.chars().any(char::is_control) && !out.contains(&id) {
        out.push(id);
    }
}

/// The first message id of a header value (`Message-ID:` has one).
pub fn first_message_id(value: &str) -> Option<String> {
    message_ids(value).into_iter().next()
}

/// The threading inputs of one mail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadRefs {
    /// The mail's own id, when it has a usable one.
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    /// Capped at the newest [`MAX_REFERENCES`].
    pub references: Vec<String>,
    /// `[#T-12345]` in the subject.
    pub subject_tag: Option<TicketNo>,
}

impl ThreadRefs {
    /// From the raw header values (any may be absent).
    pub fn from_headers(message_id: Option<&str>, in_reply_to: Option<&str>, references: Option<&str>, subject: &str) -> Self {
        let mut references = references.map(message_ids).unwrap_or_default();
        if references.len() > MAX_REFERENCES {
            references.drain(..references.len() - MAX_REFERENCES);
        }
        ThreadRefs {
            message_id: message_id.and_then(first_message_id),
            in_reply_to: in_reply_to.map(message_ids).unwrap_or_default(),
            references,
            subject_tag: crm::tickets::subject_ticket_tag(subject),
        }
    }

    /// The ids this mail answers, most specific first (`In-Reply-To`, then
    /// `References` newest first), without repeats.
    pub fn parents(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for id in self.in_reply_to.iter().chain(self.references.iter().rev()) {
            if !out.contains(&id.as_str()) {
                out.push(id);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &[&str]) {
        assert_eq!(message_ids(input), expected, "input: {input:?}");
    }

    #[test]
    fn ids() {
        check("<a@b>", &["a@b"]);
        check("  <a@b> <c@d>\r\n\t<e@f>", &["a@b", "c@d", "e@f"]);
        check("<a@b>,<c@d>", &["a@b", "c@d"]);
        check("(comment) <a@b> (more)", &["a@b"]);
        check("<a@b> <a@b>", &["a@b"]);
        // Jira-style: no brackets, commas.
        check("a@b, c@d", &["a@b", "c@d"]);
        check("JIRA.123.456@jira.example.com", &["JIRA.123.456@jira.example.com"]);
        check("", &[]);
        check("<>", &[]);
        check("<unterminated@x", &[]);
        check("<folded\r\n @id>", &["folded@id"]);
    }

    #[test]
    fn refs() {
        let many: String = (0..80).map(|i| format!("<m{i}@x> ")).collect();
        let r = ThreadRefs::from_headers(Some("<me@x>"), Some("<p@x>"), Some(&many), "Re: [#T-42] printer");
        assert_eq!(r.message_id.as_deref(), Some("me@x"));
        assert_eq!(r.references.len(), MAX_REFERENCES);
        assert_eq!(r.references.last().map(String::as_str), Some("m79@x"));
        assert_eq!(r.subject_tag.map(|t| t.get()), Some(42));
        assert_eq!(r.parents()[..2], ["p@x", "m79@x"]);
    }
}
