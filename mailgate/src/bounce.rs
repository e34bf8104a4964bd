//! Bounce, complaint and auto-reply classification of one raw message: the
//! sans-IO core behind the bounce mailbox and `centralino bounce classify`.
//!
//! [`classify`] takes the bytes of a message and returns a [`Report`]: what
//! kind of message it is ([`Kind`]: a bounce, an ARF complaint, an auto-reply,
//! a delivery notice or ordinary mail) and, per failed recipient, a
//! [`Failure`] with the recipient address, the enhanced status code, the
//! [`Reason`] and whether the failure is **hard**.
//!
//! Extraction reads RFC 3464 `message/delivery-status` parts when there are
//! any and otherwise the human-readable text that Exim, qmail, old Sendmail,
//! Gmail, Yahoo, Exchange and friends write (recipient lines, the
//! "Remote host said" paragraph, `X-Failed-Recipients`). The reason is then
//! decided by [`reason`], a port of go-sisimai's procedure and phrase tables,
//! because sisimai's labelled corpus is what bounce handling is judged by.
//!
//! Hard or soft is decided **by reason, not by the first digit**: only an
//! unknown user or host, a moved mailbox and "does not accept mail" are hard;
//! a full mailbox (5.2.2), a block, a policy or spam reject are soft, because
//! they clear up and suppressing on them loses reachable people.
//!
//! Nothing here does I/O, reads a clock or panics on malformed input; a
//! message that cannot be parsed yields `Kind::NotBounce` with
//! `malformed = true` so the caller can keep and flag it.

mod known;
mod phrases;
mod reason;

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use regex::Regex;
use serde::Serialize;
use std::sync::LazyLock;

/// What kind of message was classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A delivery failure (or delay) report.
    Bounce,
    /// An ARF (RFC 5965) feedback report: the recipient marked us as spam.
    Complaint,
    /// An RFC 3834 auto-reply (vacation, out-of-office): not a bounce.
    AutoReply,
    /// A successful-delivery notification (DSN with `Action: delivered`).
    Delivered,
    /// Anything else: ordinary mail.
    NotBounce,
}

/// Why one recipient failed. The names are sisimai's, so reports can be
/// compared with its labelled corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Reason {
    AuthFailure, BadReputation, Blocked, ContentError, Delivered, ExceedLimit, Expired,
    FailedStartTls, Feedback, Filtered, HasMoved, HostUnknown, MailboxFull, MailerError,
    MesgTooBig, NetworkError, NoRelaying, NotAccept, NotCompliantRfc, OnHold, PolicyViolation,
    Rejected, RequirePtr, SecurityError, SpamDetected, Speeding, Suppressed, Suspend,
    SyntaxError, SystemError, SystemFull, TooManyConn, Undefined, UserUnknown, Vacation,
    VirusDetected,
}

impl Reason {
    const ALL: [Reason; 36] = [
        Reason::AuthFailure, Reason::BadReputation, Reason::Blocked, Reason::ContentError,
        Reason::Delivered, Reason::ExceedLimit, Reason::Expired, Reason::FailedStartTls,
        Reason::Feedback, Reason::Filtered, Reason::HasMoved, Reason::HostUnknown,
        Reason::MailboxFull, Reason::MailerError, Reason::MesgTooBig, Reason::NetworkError,
        Reason::NoRelaying, Reason::NotAccept, Reason::NotCompliantRfc, Reason::OnHold,
        Reason::PolicyViolation, Reason::Rejected, Reason::RequirePtr, Reason::SecurityError,
        Reason::SpamDetected, Reason::Speeding, Reason::Suppressed, Reason::Suspend,
        Reason::SyntaxError, Reason::SystemError, Reason::SystemFull, Reason::TooManyConn,
        Reason::Undefined, Reason::UserUnknown, Reason::Vacation, Reason::VirusDetected,
    ];

    /// The sisimai name, e.g. `userunknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::AuthFailure => "authfailure",
            Reason::BadReputation => "badreputation",
            Reason::Blocked => "blocked",
            Reason::ContentError => "contenterror",
            Reason::Delivered => "delivered",
            Reason::ExceedLimit => "exceedlimit",
            Reason::Expired => "expired",
            Reason::FailedStartTls => "failedstarttls",
            Reason::Feedback => "feedback",
            Reason::Filtered => "filtered",
            Reason::HasMoved => "hasmoved",
            Reason::HostUnknown => "hostunknown",
            Reason::MailboxFull => "mailboxfull",
            Reason::MailerError => "mailererror",
            Reason::MesgTooBig => "mesgtoobig",
            Reason::NetworkError => "networkerror",
            Reason::NoRelaying => "norelaying",
            Reason::NotAccept => "notaccept",
            Reason::NotCompliantRfc => "notcompliantrfc",
            Reason::OnHold => "onhold",
            Reason::PolicyViolation => "policyviolation",
            Reason::Rejected => "rejected",
            Reason::RequirePtr => "requireptr",
            Reason::SecurityError => "securityerror",
            Reason::SpamDetected => "spamdetected",
            Reason::Speeding => "speeding",
            Reason::Suppressed => "suppressed",
            Reason::Suspend => "suspend",
            Reason::SyntaxError => "syntaxerror",
            Reason::SystemError => "systemerror",
            Reason::SystemFull => "systemfull",
            Reason::TooManyConn => "toomanyconn",
            Reason::Undefined => "undefined",
            Reason::UserUnknown => "userunknown",
            Reason::Vacation => "vacation",
            Reason::VirusDetected => "virusdetected",
        }
    }

    /// Parses a sisimai reason name.
    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether a failure for this reason is permanent regardless of status
    /// digits (`notaccept` depends on the code; see [`Failure::hard`]).
    pub fn always_hard(self) -> bool {
        matches!(self, Reason::UserUnknown | Reason::HostUnknown | Reason::HasMoved)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failed (or reported) recipient.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// The recipient address, lower-cased, if one could be found.
    pub recipient: Option<String>,
    /// Why it failed.
    pub reason: Reason,
    /// Permanent: suppress the address at once.
    pub hard: bool,
    /// Enhanced status code (RFC 3463), e.g. `5.1.1`.
    pub status: Option<String>,
    /// SMTP reply code, e.g. `550`.
    pub reply_code: Option<String>,
    /// The diagnostic text the reason was decided from (trimmed, one line).
    pub diagnostic: String,
}

/// The classification of one message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// What the message is.
    pub kind: Kind,
    /// One entry per failed (or complained-about) recipient; for an
    /// auto-reply, the person who is away.
    pub failures: Vec<Failure>,
    /// The `TOKEN` of a VERP return path `bounces+TOKEN@domain` the report
    /// was addressed to, which maps it back to one outbox row.
    pub verp_token: Option<String>,
    /// The Message-ID of the original message, if the report quotes it.
    pub original_message_id: Option<String>,
    /// The message could not be parsed as mail at all.
    pub malformed: bool,
}

impl Report {
    /// True for a bounce or a complaint (something that changes
    /// deliverability), false for auto-replies, delivery notices and mail.
    pub fn is_bounce(&self) -> bool {
        matches!(self.kind, Kind::Bounce | Kind::Complaint)
    }
}

static ADDR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+")
        .unwrap_or_else(|_| unreachable!("constant regex"))
});
static STATUS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[^0-9.vV])([245]\.[0-7]\.[0-9]{1,3})(?:[^0-9]|$)").unwrap_or_else(|_| unreachable!("constant regex"))
});
static REPLY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|[^0-9.])([245][0-5][0-9])(?:[ -]|$)").unwrap_or_else(|_| unreachable!("constant regex")));
static COMMAND: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:after|in reply to|>>>|response to|to|command)\s+(rcpt to|mail from|end of data|data|helo|ehlo|starttls|rcpt|mail|quit)\b")
        .unwrap_or_else(|_| unreachable!("constant regex"))
});
static MARKER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?im)^[\s\-=_*|>]*(?:",
        r"original message|\(?original message follows|below this line is a copy|this is a copy of|a copy of (?:the|your) (?:original )?message|",
        r"returned message|returned mail|unsent message|undelivered message|message header follows|headers of the original message|",
        r"the original message headers|original message headers|forwarded message|the text you sent|content-type: message/rfc822|",
        r"message that you sent:|your message reads|reason: this message|the message you sent|---+ ?the header of original|",
        r"-+ ?original|\S+ original message|the original message was received",
        r")"
    ))
    .unwrap_or_else(|_| unreachable!("constant regex"))
});
static BOUNCE_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)undeliver|delivery (?:status )?notification|returned mail|failure notice|delivery fail|mail delivery|",
        r"could not be delivered|not delivered|delivery problem|non remis|nondeliver|non-deliver|mail system error|",
        r"rejected|warning: could not|message you sent|delayed mail|delivery report|unzustellbar|error sending|",
        r"delivery has failed|returned to sender|mail failure|bounce|permanent error|delivery error|message status|notice$"
    ))
    .unwrap_or_else(|_| unreachable!("constant regex"))
});
static AUTOREPLY_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)out of (?:the )?office|auto(?:matic)?[ -]?(?:reply|response|antwort)|vacation|away from|abwesen|^auto:|r[ée]ponse automatique|absence|autoreply")
        .unwrap_or_else(|_| unreachable!("constant regex"))
});

/// Local parts of system mailboxes that are never a failed recipient.
fn is_system_address(a: &str) -> bool {
    let local = a.split('@').next().unwrap_or("");
    matches!(
        local,
        "mailer-daemon" | "postmaster" | "mail-daemon" | "mailerdaemon" | "daemon" | "root" | "nobody" | "abuse" | "noreply" | "no-reply"
    ) || local.starts_with("bounce") || local.starts_with("mailer-daemon")
}

fn clean_addr(s: &str) -> Option<String> {
    ADDR.find(s).map(|m| m.as_str().trim_matches(|c| c == '.' || c == '\'').to_ascii_lowercase())
}

/// Classifies one raw message. Never panics; unparseable input is reported
/// as `NotBounce` with `malformed`.
pub fn classify(raw: &[u8]) -> Report {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Report { kind: Kind::NotBounce, failures: vec![], verp_token: None, original_message_id: None, malformed: true };
    };
    Classifier::new(&msg).run()
}

/// Everything read from the message that the decisions need.
struct Classifier<'m> {
    msg: &'m Message<'m>,
    report_type: String,
    /// Raw text of `message/delivery-status` parts.
    dsn: Vec<String>,
    /// Raw text of `message/feedback-report` parts.
    feedback: Vec<String>,
    /// Human-readable text of the report, cut before the quoted original.
    text: String,
    /// Headers of the quoted original message, if any.
    original: Option<Message<'m>>,
    /// Addresses that are the sender side, never a failed recipient.
    senders: Vec<String>,
}

fn header_text(msg: &Message<'_>, name: &str) -> String {
    msg.header_raw(name).map(|s| s.trim().to_string()).unwrap_or_default()
}

fn addresses_of(v: Option<&mail_parser::Address<'_>>) -> Vec<String> {
    v.map(|a| a.iter().filter_map(|x| x.address.as_deref().and_then(clean_addr)).collect()).unwrap_or_default()
}

fn html_to_text(h: &str) -> String {
    static TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?s)<[^>]*>").unwrap_or_else(|_| unreachable!("constant regex")));
    let t = h.replace("<br>", "\n").replace("<br/>", "\n").replace("<BR>", "\n").replace("</p>", "\n").replace("</P>", "\n");
    TAG.replace_all(&t, " ").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").replace("&nbsp;", " ")
}

impl<'m> Classifier<'m> {
    fn new(msg: &'m Message<'m>) -> Self {
        let report_type = msg
            .content_type()
            .and_then(|c| c.attribute("report-type"))
            .map(|s| s.to_ascii_lowercase())
            .unwrap_or_default();
        let mut dsn = Vec::new();
        let mut feedback = Vec::new();
        let mut texts: Vec<String> = Vec::new();
        let mut htmls: Vec<String> = Vec::new();
        let mut original: Option<Message<'m>> = None;
        for part in &msg.parts {
            let (ct, sub) = part
                .content_type()
                .map(|c| (c.ctype().to_ascii_lowercase(), c.subtype().unwrap_or("").to_ascii_lowercase()))
                .unwrap_or_else(|| ("text".into(), "plain".into()));
            let body_text = || -> String {
                match &part.body {
                    PartType::Text(t) | PartType::Html(t) => t.to_string(),
                    PartType::Binary(b) | PartType::InlineBinary(b) => String::from_utf8_lossy(b).into_owned(),
                    PartType::Message(m) => String::from_utf8_lossy(m.raw_message()).into_owned(),
                    PartType::Multipart(_) => String::new(),
                }
            };
            match (ct.as_str(), sub.as_str()) {
                ("message", "delivery-status" | "global-delivery-status") => dsn.push(body_text()),
                ("message", "feedback-report") => feedback.push(body_text()),
                ("text", "rfc822-headers") | ("message", "rfc822-headers") | ("text", "rfc822") => {
                    if original.is_none() {
                        let b = body_text();
                        original = MessageParser::default().parse(b.as_bytes()).map(|m| m.into_owned());
                    }
                }
                _ => match &part.body {
                    PartType::Message(m) if original.is_none() => original = Some(m.clone()),
                    PartType::Text(t) if ct == "text" && (sub == "plain" || sub.is_empty()) => texts.push(t.to_string()),
                    PartType::Html(t) => htmls.push(html_to_text(t)),
                    PartType::Text(t) if ct == "text" && sub == "html" => htmls.push(html_to_text(t)),
                    _ => {}
                },
            }
        }
        if texts.is_empty() {
            texts = htmls;
        }
        let mut text = texts.join("\n");
        // The quoted original is noise for recipient and reason extraction
        // (its To: is the recipient, but its body can say anything), so the
        // text is cut where the copy starts; the copy itself is parsed as a
        // message when no MIME part carried it.
        if let Some(m) = MARKER.find(&text) {
            let start = m.start();
            if start > 0 {
                let rest = &text[start..];
                let after = rest.find('\n').map_or("", |i| &rest[i + 1..]);
                if original.is_none() {
                    let hdrs = after.trim_start_matches(['\n', '\r', ' ']);
                    original = MessageParser::default().parse(hdrs.as_bytes()).map(|m| m.into_owned()).filter(|m| m.to().is_some() || m.from().is_some());
                }
                text.truncate(start);
            }
        }
        let mut senders = addresses_of(msg.to());
        senders.extend(addresses_of(msg.from()));
        if let Some(o) = &original {
            senders.extend(addresses_of(o.from()));
            if let Some(rp) = o.return_address().and_then(clean_addr) {
                senders.push(rp);
            }
        }
        senders.retain(|s| !s.is_empty());
        Classifier { msg, report_type, dsn, feedback, text, original, senders }
    }

    fn verp_token(&self) -> Option<String> {
        let mut cands = addresses_of(self.msg.to());
        for h in ["Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To"] {
            if let Some(a) = clean_addr(&header_text(self.msg, h)) {
                cands.push(a);
            }
        }
        cands.into_iter().find_map(|a| {
            let local = a.split('@').next()?;
            let (_, tok) = local.split_once("bounces+")?;
            (!tok.is_empty()).then(|| tok.to_string())
        })
    }

    fn run(self) -> Report {
        let verp_token = self.verp_token();
        let original_message_id = self.original.as_ref().and_then(|o| o.message_id()).map(str::to_string);
        let (kind, failures) = self.decide();
        Report { kind, failures, verp_token, original_message_id, malformed: false }
    }

    fn decide(&self) -> (Kind, Vec<Failure>) {
        if self.report_type == "feedback-report" || !self.feedback.is_empty() || self.looks_like_arf_text() {
            return (Kind::Complaint, self.complaint());
        }
        if !self.dsn.is_empty() {
            let fs = self.from_dsn();
            if !fs.is_empty() {
                if fs.iter().all(|f| f.reason == Reason::Delivered) {
                    return (Kind::Delivered, fs);
                }
                let fs: Vec<Failure> = fs.into_iter().filter(|f| f.reason != Reason::Delivered).collect();
                return (Kind::Bounce, fs);
            }
        }
        let from_system = addresses_of(self.msg.from()).iter().any(|a| is_system_address(a))
            || self.msg.from().and_then(|f| f.first()).and_then(|a| a.name.as_deref()).is_some_and(|n| {
                let n = n.to_ascii_lowercase();
                n.contains("mailer-daemon") || n.contains("mail delivery") || n.contains("postmaster") || n.contains("mail administrator")
            });
        let subject = self.msg.subject().unwrap_or("");
        let failed_hdr = !header_text(self.msg, "X-Failed-Recipients").is_empty();
        let bounce_like = failed_hdr || !self.dsn.is_empty() || (from_system && !self.text.trim().is_empty()) || BOUNCE_SUBJECT.is_match(subject);
        if self.is_auto_reply(bounce_like) {
            return (Kind::AutoReply, self.auto_reply());
        }
        if !bounce_like {
            return (Kind::NotBounce, vec![]);
        }
        let fs = self.from_text();
        if fs.is_empty() {
            return (Kind::NotBounce, vec![]);
        }
        (Kind::Bounce, fs)
    }

    fn looks_like_arf_text(&self) -> bool {
        // Some providers (old Hotmail/Yahoo FBLs) send complaint reports as
        // plain text with the ARF fields inline.
        let t = self.text.to_ascii_lowercase();
        t.contains("feedback-type: abuse") || t.contains("feedback-type:abuse")
    }

    fn is_auto_reply(&self, bounce_like: bool) -> bool {
        let auto = header_text(self.msg, "Auto-Submitted").to_ascii_lowercase();
        let prec = header_text(self.msg, "Precedence").to_ascii_lowercase();
        let subject = self.msg.subject().unwrap_or("");
        let flagged = auto.starts_with("auto-replied")
            || !header_text(self.msg, "X-Autoreply").is_empty()
            || !header_text(self.msg, "X-Autorespond").is_empty()
            || prec == "auto_reply"
            || AUTOREPLY_SUBJECT.is_match(subject);
        if !flagged {
            return false;
        }
        // A DSN also says "Auto-Submitted: auto-replied" (Postfix does); an
        // auto-reply is only one when nothing marks it as a failure report.
        !bounce_like || AUTOREPLY_SUBJECT.is_match(subject)
    }

    fn auto_reply(&self) -> Vec<Failure> {
        let who = addresses_of(self.msg.from()).into_iter().next();
        vec![Failure {
            recipient: who,
            reason: Reason::Vacation,
            hard: false,
            status: None,
            reply_code: None,
            diagnostic: one_line(&self.text, 200),
        }]
    }

    fn complaint(&self) -> Vec<Failure> {
        let mut fields = Vec::new();
        for f in &self.feedback {
            fields.extend(parse_fields(f));
        }
        if fields.is_empty() {
            fields = parse_fields(&self.text);
        }
        let get = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let mut rcpt = get("original-rcpt-to").or_else(|| get("removal-recipient")).and_then(|v| clean_addr(&v));
        if rcpt.is_none() {
            rcpt = self.original.as_ref().and_then(|o| addresses_of(o.to()).into_iter().next());
        }
        if rcpt.is_none() {
            // Redacted reports still often carry the address in the text.
            rcpt = ADDR.find_iter(&self.text).filter_map(|m| clean_addr(m.as_str())).find(|a| !self.senders.contains(a) && !is_system_address(a));
        }
        let ftype = get("feedback-type").unwrap_or_else(|| "abuse".into());
        vec![Failure { recipient: rcpt, reason: Reason::Feedback, hard: false, status: None, reply_code: None, diagnostic: ftype }]
    }

    fn from_dsn(&self) -> Vec<Failure> {
        let mut out = Vec::new();
        let blocks = self.text_blocks();
        for part in &self.dsn {
            let mut groups = split_groups(part);
            // The first group holds per-message fields (Reporting-MTA,
            // Arrival-Date) unless the report omitted them.
            if groups.len() > 1 && !groups[0].iter().any(|(k, _)| k == "final-recipient" || k == "original-recipient") {
                groups.remove(0);
            }
            for g in groups {
                let get = |n: &str| g.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
                let rcpt = get("final-recipient").or_else(|| get("original-recipient")).or_else(|| get("x-actual-recipient"));
                let Some(rcpt) = rcpt.map(strip_type) else { continue };
                let rcpt = clean_addr(&rcpt);
                let action = get("action").unwrap_or("").to_ascii_lowercase();
                let (diag_type, mut diag) = match get("diagnostic-code") {
                    Some(d) => match d.split_once(';') {
                        Some((t, rest)) => (t.trim().to_ascii_uppercase(), rest.trim().to_string()),
                        None => (String::new(), d.trim().to_string()),
                    },
                    None => (String::new(), String::new()),
                };
                // The DSN often lacks the remote's words; the prose part
                // next to it usually has them for the same recipient.
                if let Some(r) = &rcpt
                    && let Some(b) = blocks.iter().find(|(a, _)| a == r).map(|(_, b)| b)
                    && (diag.len() < 8 || !diag.chars().any(|c| c.is_ascii_alphabetic()))
                {
                    diag = format!("{diag} {b}");
                }
                if diag.trim().is_empty() && blocks.len() <= 1 {
                    diag = self.text.clone();
                }
                let status = get("status").map(|s| s.split_whitespace().next().unwrap_or("").to_string()).unwrap_or_default();
                let ctx = rcpt.as_ref().and_then(|r| blocks.iter().find(|(a, _)| a == r)).map(|(_, b)| b.as_str()).unwrap_or(self.text.as_str());
                out.push(self.failure(rcpt, status, diag, diag_type, action, Some(ctx)));
            }
        }
        out
    }

    /// Recipient paragraphs of the prose: (address, text that follows it).
    fn text_blocks(&self) -> Vec<(String, String)> {
        let lines: Vec<&str> = self.text.lines().collect();
        // Anchors: lines that introduce a recipient. A line that is little
        // more than an address ("  user@example.com", "<user@x>:") is the
        // strongest sign; Sendmail's "<user@x>... User unknown" too.
        let mut anchors: Vec<(usize, String, bool)> = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            let lt = l.trim();
            let low = lt.to_ascii_lowercase();
            if ["message-id", "in-reply-to", "references", "from:", "return-path", "sender:", "reporting-mta", "received", "x-postfix-sender", "arrival-date"]
                .iter()
                .any(|h| low.starts_with(h))
            {
                continue;
            }
            for m in ADDR.find_iter(l) {
                let Some(a) = clean_addr(m.as_str()) else { continue };
                if self.senders.contains(&a) || is_system_address(&a) {
                    continue;
                }
                let rest = lt.replace(m.as_str(), "");
                let rest = rest.trim_matches(|c: char| c.is_whitespace() || "<>:;,\"'()[]".contains(c));
                let strong = rest.is_empty()
                    || lt.starts_with('<') && lt.contains(">:")
                    || lt.contains(">...")
                    || lt.starts_with(&format!("{}:", m.as_str()))
                    || rest.len() < 40 && (rest.starts_with("(expanded from") || rest.starts_with("(generated from") || rest.to_ascii_lowercase().starts_with("recipient"));
                anchors.push((i, a, strong));
            }
        }
        let any_strong = anchors.iter().any(|a| a.2);
        if any_strong {
            anchors.retain(|a| a.2);
        }
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, (i, a, _)) in anchors.iter().enumerate() {
            if out.iter().any(|(x, _)| x == a) {
                continue;
            }
            let end = anchors[k + 1..].iter().find(|(_, b, _)| b != a).map_or(lines.len(), |(j, _, _)| *j);
            let end = end.max(*i + 1);
            let block = lines[*i..end].join(" ");
            out.push((a.clone(), block));
        }
        out
    }

    fn from_text(&self) -> Vec<Failure> {
        let mut blocks = self.text_blocks();
        let failed: Vec<String> = header_text(self.msg, "X-Failed-Recipients").split(',').filter_map(clean_addr).collect();
        if !failed.is_empty() {
            let mut ordered = Vec::new();
            for f in &failed {
                let b = blocks.iter().find(|(a, _)| a == f).map(|(_, b)| b.clone()).unwrap_or_default();
                ordered.push((f.clone(), b));
            }
            blocks = ordered;
        }
        if blocks.is_empty() {
            let to = self.original.as_ref().map(|o| addresses_of(o.to())).unwrap_or_default();
            blocks = to.into_iter().filter(|a| !is_system_address(a)).take(1).map(|a| (a, String::new())).collect();
        }
        if blocks.is_empty() {
            blocks.push((String::new(), String::new()));
        }
        let whole = self.text.clone();
        let single = blocks.len() == 1;
        blocks
            .into_iter()
            .map(|(a, b)| {
                // A block that is only the address (Gmail and Exim put the
                // reason in a later paragraph) is not enough to decide on.
                let meat = b.replace(&a, "");
                let diag = if single || meat.chars().filter(|c| c.is_ascii_alphabetic()).count() < 12 { format!("{b} {whole}") } else { b };
                let rcpt = (!a.is_empty()).then_some(a);
                self.failure(rcpt, String::new(), diag, String::new(), String::new(), Some(whole.as_str()))
            })
            .collect()
    }

    fn failure(&self, rcpt: Option<String>, status: String, diag: String, diag_type: String, action: String, context: Option<&str>) -> Failure {
        let diag = one_line(&diag, 2000);
        let found_status = STATUS.captures(&diag).map(|c| c[1].to_string()).unwrap_or_default();
        let status = prefer_status(&status, &found_status);
        let reply = REPLY.captures(&diag).map(|c| c[1].to_string()).unwrap_or_default();
        let command = find_command(&diag).or_else(|| context.and_then(find_command)).unwrap_or_default();
        let low = diag.to_ascii_lowercase();
        // A phrase an MTA writes in its own bounce format decides first, as
        // sisimai's format decoders do before its generic procedure.
        let preset = known::KNOWN.iter().find(|(own, r, p)| *own && *r != "onhold" && low.contains(p)).map(|(_, r, _)| (*r).to_string()).unwrap_or_default();
        let fact = reason::Fact {
            reason: preset,
            status: status.clone(),
            diag: diag.to_ascii_lowercase(),
            diag_type: if diag_type.is_empty() { "SMTP".into() } else { diag_type },
            action: action.clone(),
            command,
            reply: reply.clone(),
        };
        let mut r = reason::find(&fact);
        if r == "onhold" || r == "undefined" {
            // Phrases specific MTAs and providers are known to write decide
            // what the generic procedure could not. They are only a
            // fallback: out of their format's context some are too broad.
            if let Some((_, k, _)) = known::KNOWN.iter().find(|(_, _, p)| low.contains(p)) {
                r = (*k).to_string();
            }
        }
        if action == "delivered" || action == "relayed" || action == "expanded" {
            r = "delivered".into();
        }
        if (r == "onhold" || r == "undefined") && rcpt.as_deref().is_some_and(|a| a.ends_with("@googlegroups.com")) {
            // A Google Group refusing a post: the sender may not post.
            r = "rejected".into();
        }
        let reason = Reason::parse(&r).unwrap_or(Reason::Undefined);
        let hard = reason::is_hard(reason.as_str(), &status, &fact.diag);
        Failure {
            recipient: rcpt,
            reason,
            hard,
            status: (!status.is_empty()).then_some(status),
            reply_code: (!reply.is_empty()).then_some(reply),
            diagnostic: one_line(&diag, 300),
        }
    }
}

/// The SMTP command a transcript or diagnostic says was rejected.
fn find_command(text: &str) -> Option<String> {
    if let Some(c) = COMMAND.captures(text) {
        let c = c[1].to_ascii_uppercase();
        return Some(match c.as_str() {
            "RCPT TO" => "RCPT".to_string(),
            "MAIL FROM" => "MAIL".to_string(),
            "END OF DATA" => "DATA".to_string(),
            _ => c,
        });
    }
    let up = text.to_ascii_uppercase();
    // A session transcript shows the last command sent before the error.
    let last = ["RCPT TO:", "MAIL FROM:", ">>> DATA", "EHLO ", "HELO "].iter().filter_map(|k| up.rfind(k).map(|i| (i, *k))).max_by_key(|(i, _)| *i);
    last.map(|(_, k)| match k {
        "RCPT TO:" => "RCPT".to_string(),
        "MAIL FROM:" => "MAIL".to_string(),
        ">>> DATA" => "DATA".to_string(),
        other => other.trim().to_string(),
    })
}

/// Prefers the DSN field unless it is the vague `X.0.0` and the text has a
/// specific code of the same class.
fn prefer_status(field: &str, found: &str) -> String {
    if field.is_empty() {
        return found.to_string();
    }
    if !found.is_empty() && field.ends_with(".0.0") && found.get(0..1) == field.get(0..1) {
        return found.to_string();
    }
    field.to_string()
}

fn strip_type(v: &str) -> String {
    match v.split_once(';') {
        Some((_, a)) => a.trim().to_string(),
        None => v.trim().to_string(),
    }
}

fn one_line(s: &str, max: usize) -> String {
    let mut out = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.len() > max {
        let mut cut = max;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// Parses `Name: value` header-style fields (with folding), lower-casing
/// names; used for DSN and ARF bodies.
fn parse_fields(s: &str) -> Vec<(String, String)> {
    split_groups(s).into_iter().flatten().collect()
}

/// Splits a DSN body into blank-line separated groups of fields.
fn split_groups(s: &str) -> Vec<Vec<(String, String)>> {
    let mut groups = Vec::new();
    let mut cur: Vec<(String, String)> = Vec::new();
    for line in s.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !cur.is_empty() {
                groups.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = cur.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':')
            && !k.is_empty()
            && !k.contains(' ')
        {
            cur.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    if !cur.is_empty() {
        groups.push(cur);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table_is_ported() {
        assert_eq!(reason::status_name("5.2.2"), "mailboxfull");
        assert_eq!(reason::status_name("5.1.1"), "userunknown");
    }

    #[test]
    fn garbage_is_not_a_bounce() {
        let r = classify(b"\x00\x01\x02");
        assert!(!r.is_bounce());
    }
}
