//! From raw RFC 822 bytes to what the desk stores: [`parse`] turns a
//! message into a [`crm::tickets::ParsedMail`] plus the gateway's own
//! findings (the loop/auto-reply [`Verdict`], the subject tag).
//!
//! `mail-parser` does the MIME work, including charsets (ISO-8859-x,
//! Windows-1252, ISO-2022-JP, GB18030 through its `full_encoding` tables;
//! broken declarations fall back to a lossy decode that it flags) and
//! RFC 2047/2231 names. This module decides what the desk sees: which body
//! is shown, how HTML is made safe, which attachments are kept, and which
//! flags a rep should notice. It never fails: a message that cannot be
//! parsed still yields a `ParsedMail`, with the raw source attached and the
//! `unparsable` flag, so it still becomes a ticket.

use crate::body;
use crate::classify::{self, Verdict};
use crate::thread::ThreadRefs;
use crm::EmailAddress;
use crm::tickets::{MailAttachment, ParsedMail, TicketNo};
use mail_parser::{Address, MessageParser, MimeHeaders, PartType};

/// Limits applied while parsing.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// Attachments larger than this are listed but their bytes are not
    /// stored with the ticket (the raw message still has them).
    pub max_attachment_bytes: usize,
    /// At most this many attachments are kept per message.
    pub max_attachments: usize,
    /// This installation's loop token (see [`classify::LOOP_HEADER`]).
    pub loop_token: String,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            max_attachment_bytes: crm::tickets::MAX_ATTACHMENT_BYTES,
            max_attachments: 100,
            loop_token: String::new(),
        }
    }
}

/// A parsed inbound message and what the gateway learnt about it.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// What the store ingests.
    pub mail: ParsedMail,
    pub verdict: Verdict,
    pub subject_tag: Option<TicketNo>,
}

/// Flags a parse can set on a message (also strings in `ParsedMail::flags`).
pub mod flag {
    /// mail-parser could not make sense of the bytes at all.
    pub const UNPARSABLE: &str = "unparsable";
    /// A part's declared charset was wrong or unknown; it was decoded lossily.
    pub const CHARSET_FALLBACK: &str = "charset-fallback";
    /// A `winmail.dat` (TNEF) attachment: its contents are not unpacked.
    pub const TNEF: &str = "tnef";
    /// An attachment was over the size limit and its bytes were not kept.
    pub const ATTACHMENT_TOO_LARGE: &str = "attachment-too-large";
    /// More attachments than the limit; the rest were not kept.
    pub const TOO_MANY_ATTACHMENTS: &str = "too-many-attachments";
    /// No usable `From` address.
    pub const NO_SENDER: &str = "no-sender";
    /// No usable `From`: the author was taken from `Sender` or
    /// `Return-Path`.
    pub const SENDER_FALLBACK: &str = "sender-fallback";
    /// No `Message-ID` header (threading by replies to it is impossible).
    pub const NO_MESSAGE_ID: &str = "no-message-id";
    /// The body was only HTML; the text is derived from it.
    pub const HTML_ONLY: &str = "html-only";
    /// The message was larger than the fetch limit: only its header was kept.
    pub const TRUNCATED: &str = "truncated";
}

/// Parses a raw message. Never panics and never fails.
pub fn parse(raw: &[u8], opts: &ParseOptions) -> Inbound {
    let mut inbound = match MessageParser::default().parse(raw) {
        // mail-parser makes a "message" of almost any bytes; without a single
        // header a person would recognise it is not one, and the rep is
        // better served by the raw source than by a parse of noise.
        Some(msg) if !msg.parts.is_empty() && has_mail_headers(&msg) => from_message(&msg, raw, opts),
        _ => unparsable(raw, opts),
    };
    without_nul(&mut inbound.mail);
    inbound
}

/// Removes NUL characters from every text the store keeps: PostgreSQL
/// refuses them in `text` columns (a UTF-16 body mail-parser cannot decode
/// comes out full of them), and a database error is taken for an outage,
/// so such a mail would stop its mailbox. The raw message keeps them.
fn without_nul(m: &mut ParsedMail) {
    fn strip(s: &mut String) {
        if s.contains('\0') {
            s.retain(|c| c != '\0');
        }
    }
    let ParsedMail { message_id, in_reply_to, references, subject, from_name, text, html_sanitized, attachments, flags, .. } = m;
    for s in [subject, text].into_iter().chain(message_id.as_mut()).chain(from_name.as_mut()).chain(html_sanitized.as_mut()) {
        strip(s);
    }
    for s in in_reply_to.iter_mut().chain(references.iter_mut()).chain(flags.iter_mut()) {
        strip(s);
    }
    for a in attachments {
        strip(&mut a.content_type);
        if let Some(f) = a.filename.as_mut() {
            strip(f);
        }
    }
    m.message_id = m.message_id.take().filter(|s| !s.is_empty());
}

/// Whether the top part has at least one header of RFC 5322 or MIME. A
/// bare MIME entity (only `MIME-Version` and `Content-Type`, as some
/// gateways and forwarding tools produce) is a message whose bodies and
/// attachments are worth showing, not noise.
fn has_mail_headers(msg: &mail_parser::Message<'_>) -> bool {
    use mail_parser::HeaderName as H;
    msg.headers().iter().any(|h| {
        matches!(
            h.name,
            H::From
                | H::Sender
                | H::Subject
                | H::MessageId
                | H::Date
                | H::To
                | H::Cc
                | H::ReplyTo
                | H::ReturnPath
                | H::Received
                | H::MimeVersion
                | H::ContentType
                | H::ContentTransferEncoding
        )
    })
}

/// The author: `From`, else `Sender`, else a non-empty `Return-Path` (the
/// envelope sender), so a mail whose From is missing or unusable still has
/// someone to answer. Whether a fallback was used is returned too.
fn author(msg: &mail_parser::Message<'_>) -> (Option<EmailAddress>, Option<String>, bool) {
    let usable = |a: Option<&Address<'_>>| {
        a.and_then(Address::first).and_then(|a| {
            let e = a.address.as_deref().and_then(|s| EmailAddress::parse(s.trim()).ok())?;
            Some((e, a.name.as_deref().map(clean_line).filter(|s| !s.is_empty())))
        })
    };
    if let Some((e, name)) = usable(msg.from()) {
        return (Some(e), name, false);
    }
    // A From without a usable address may still carry the name.
    let from_name = msg.from().and_then(Address::first).and_then(|a| a.name.as_deref()).map(clean_line).filter(|s| !s.is_empty());
    if let Some((e, name)) = usable(msg.sender()) {
        return (Some(e), from_name.or(name), true);
    }
    let envelope = match msg.return_path() {
        mail_parser::HeaderValue::Text(t) => Some(t.as_ref()),
        mail_parser::HeaderValue::TextList(l) => l.last().map(|t| t.as_ref()),
        _ => None,
    };
    let envelope = envelope.map(|s| s.trim().trim_start_matches('<').trim_end_matches('>').trim()).filter(|s| !s.is_empty());
    match envelope.and_then(|s| EmailAddress::parse(s).ok()) {
        Some(e) => (Some(e), from_name, true),
        None => (None, from_name, false),
    }
}

fn from_message(msg: &mail_parser::Message<'_>, raw: &[u8], opts: &ParseOptions) -> Inbound {
    let mut flags: Vec<String> = Vec::new();
    let headers: Vec<(&str, &str)> = msg.headers_raw().collect();
    let verdict = classify::classify(headers.iter().copied(), &opts.loop_token);

    let raw_header = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v);
    let subject = clean_line(msg.subject().unwrap_or(""));
    let refs = ThreadRefs::from_headers(raw_header("Message-ID"), raw_header("In-Reply-To"), raw_header("References"), &subject);
    if refs.message_id.is_none() {
        flags.push(flag::NO_MESSAGE_ID.into());
    }

    // Reply-To is not the requester: the desk answers the author, and a
    // Reply-To pointing elsewhere is recorded as a CC instead of trusted.
    let (from, from_name, fallback) = author(msg);
    if from.is_none() {
        flags.push(flag::NO_SENDER.into());
    } else if fallback {
        flags.push(flag::SENDER_FALLBACK.into());
    }
    let mut to = addresses(msg.to());
    let mut cc = addresses(msg.cc());
    for a in addresses(msg.reply_to()) {
        if Some(&a) != from.as_ref() && !cc.contains(&a) {
            cc.push(a);
        }
    }
    to.dedup();
    cc.retain(|a| !to.contains(a));

    // Bodies: prefer a real text part for the text view; HTML is kept
    // sanitised for display and also rendered to text when it is all there is.
    let text_part = msg.text_bodies().find(|p| matches!(p.body, PartType::Text(_)));
    let html_part = msg.html_bodies().find(|p| matches!(p.body, PartType::Html(_)));
    let html = html_part.and_then(|p| match &p.body {
        PartType::Html(h) => Some(h.as_ref()),
        _ => None,
    });
    let full_text = match text_part.map(|p| &p.body) {
        Some(PartType::Text(t)) => t.to_string(),
        _ => match html {
            Some(h) => {
                flags.push(flag::HTML_ONLY.into());
                body::html_to_text(h)
            }
            None => String::new(),
        },
    };
    let text = body::trim_quoted(&full_text).to_string();
    let html_sanitized = html.map(body::sanitise_html);

    if msg.parts.iter().any(|p| p.is_encoding_problem) {
        flags.push(flag::CHARSET_FALLBACK.into());
    }

    let mut attachments = Vec::new();
    for part in msg.attachments() {
        let content_type = part
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(st) => format!("{}/{}", ct.ctype(), st),
                None => ct.ctype().to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".into())
            .to_ascii_lowercase();
        let filename = part.attachment_name().map(clean_line).filter(|s| !s.is_empty());
        if content_type == "application/ms-tnef"
            || filename.as_deref().is_some_and(|n| n.eq_ignore_ascii_case("winmail.dat"))
        {
            push_flag(&mut flags, flag::TNEF);
        }
        if attachments.len() >= opts.max_attachments {
            push_flag(&mut flags, flag::TOO_MANY_ATTACHMENTS);
            break;
        }
        let data: Vec<u8> = match &part.body {
            PartType::Text(t) | PartType::Html(t) => t.as_bytes().to_vec(),
            PartType::Binary(b) | PartType::InlineBinary(b) => b.to_vec(),
            // A forwarded message or a DSN's returned original: keep its
            // own bytes, as they were in the raw message.
            PartType::Message(_) => raw
                .get(part.offset_body as usize..part.offset_end as usize)
                .map(<[u8]>::to_vec)
                .unwrap_or_default(),
            PartType::Multipart(_) => continue,
        };
        let data = if data.len() > opts.max_attachment_bytes {
            push_flag(&mut flags, flag::ATTACHMENT_TOO_LARGE);
            Vec::new()
        } else {
            data
        };
        attachments.push(MailAttachment { filename, content_type, data });
    }

    // A bounce, an auto-reply or a list mail: the desk must not answer it.
    if verdict.is_automatic() {
        flags.push(format!("auto:{}", verdict.reason));
    } else if verdict.kind == classify::Kind::HumanNoAutoReply {
        flags.push("no-auto-reply".into());
    }

    let date = msg.date().filter(|d| d.is_valid()).map(|d| d.to_timestamp().saturating_mul(1000));
    let subject_tag = refs.subject_tag;
    Inbound {
        mail: ParsedMail {
            message_id: refs.message_id,
            in_reply_to: refs.in_reply_to,
            references: refs.references,
            subject,
            from,
            from_name,
            to,
            cc,
            text,
            html_sanitized,
            attachments,
            // HumanNoAutoReply is not "auto" (its ticket is normal), but it
            // must not be acknowledged either; the store only looks at this.
            is_auto: !verdict.may_auto_ack(),
            flags,
            date,
        },
        verdict,
        subject_tag,
    }
}

/// A message mail-parser rejected: still a ticket, with the raw source as
/// an attachment and a readable excerpt as text.
fn unparsable(raw: &[u8], opts: &ParseOptions) -> Inbound {
    const EXCERPT: usize = 4096;
    let head = String::from_utf8_lossy(&raw[..raw.len().min(EXCERPT)]).into_owned();
    let data = if raw.len() <= opts.max_attachment_bytes { raw.to_vec() } else { Vec::new() };
    Inbound {
        mail: ParsedMail {
            subject: "(unparsable message)".into(),
            text: clean_text(&head),
            attachments: vec![MailAttachment {
                filename: Some("original.eml".into()),
                content_type: "message/rfc822".into(),
                data,
            }],
            // Nobody is known to have written it, so nobody is answered.
            is_auto: true,
            flags: vec![flag::UNPARSABLE.into(), flag::NO_SENDER.into()],
            ..ParsedMail::default()
        },
        verdict: Verdict { kind: classify::Kind::Human, reason: "" },
        subject_tag: None,
    }
}

fn addresses(a: Option<&Address<'_>>) -> Vec<EmailAddress> {
    let mut out: Vec<EmailAddress> = Vec::new();
    if let Some(a) = a {
        for addr in a.iter().take(100) {
            if let Some(e) = addr.address.as_deref().and_then(|s| EmailAddress::parse(s).ok())
                && !out.contains(&e)
            {
                out.push(e);
            }
        }
    }
    out
}

fn push_flag(flags: &mut Vec<String>, f: &str) {
    if !flags.iter().any(|x| x == f) {
        flags.push(f.to_string());
    }
}

/// One line of header text as the desk shows it: control characters
/// (header injection attempts such as `\r\nBcc:`) become spaces, runs of
/// blanks collapse, and the length is capped.
pub fn clean_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(1000));
    let mut blank = false;
    for c in s.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c.is_whitespace() {
            if !blank && !out.is_empty() {
                out.push(' ');
            }
            blank = true;
        } else {
            out.push(c);
            blank = false;
        }
        if out.len() >= 998 {
            break;
        }
    }
    out.trim_end().to_string()
}

/// Text without control characters other than newlines and tabs.
fn clean_text(s: &str) -> String {
    s.chars().filter(|c| !c.is_control() || *c == '\n' || *c == '\t').collect()
}
