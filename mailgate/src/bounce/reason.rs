//! Deciding a bounce reason from what was extracted for one recipient: the
//! enhanced status code, the SMTP reply code, the SMTP command that failed and
//! the diagnostic text.
//!
//! The decision procedure follows go-sisimai's `reason.Find` (BSD-2-Clause):
//! first a fixed order of "probes" that weigh the status code against the
//! text, then a second pass over phrase tables, then fallbacks by status
//! class. Sisimai's hand-labelled corpus is the de-facto reference for bounce
//! reasons, so agreeing with its procedure is worth more than inventing our
//! own; the phrase tables live in [`super::phrases`].

use super::phrases as p;

/// What the extractor learned about one failed recipient, the input of
/// [`find`]. All text is lower-cased by the constructor.
#[derive(Debug, Default, Clone)]
pub(crate) struct Fact {
    /// A reason already decided by a format-specific rule (empty if none).
    pub reason: String,
    /// Enhanced status code, e.g. `5.1.1` (empty if none).
    pub status: String,
    /// Lower-cased diagnostic text.
    pub diag: String,
    /// `SMTP`, `X-UNIX`, … (empty if unknown).
    pub diag_type: String,
    /// DSN `Action:` value, lower case.
    pub action: String,
    /// The SMTP command the remote rejected (`RCPT`, `MAIL`, `DATA`, …).
    pub command: String,
    /// Three-digit SMTP reply code (empty if none).
    pub reply: String,
}

/// Reasons sisimai re-examines even when a format rule already set them.
fn retried(r: &str) -> bool {
    matches!(
        r,
        "undefined" | "onhold" | "systemerror" | "securityerror" | "expired" | "networkerror" | "hostunknown" | "userunknown"
    )
}

fn explicit(r: &str) -> bool {
    !(r.is_empty() || r == "undefined" || r == "onhold")
}

/// The reason an RFC 3463 status code names, or "" when it names none.
pub(crate) fn status_name(code: &str) -> &'static str {
    p::STATUS_REASON.iter().find(|(c, _)| *c == code).map_or("", |(_, r)| r)
}

/// sisimai's `Aligned`: every needle occurs, in order, without overlap.
fn aligned(hay: &str, needles: &[&str]) -> bool {
    let mut rest = hay;
    for n in needles {
        match rest.find(n) {
            Some(i) => rest = &rest[i + n.len()..],
            None => return false,
        }
    }
    !needles.is_empty()
}

fn any_of(hay: &str, index: &[&str], pairs: &[&[&str]]) -> bool {
    !hay.is_empty() && (index.iter().any(|s| hay.contains(s)) || pairs.iter().any(|pr| aligned(hay, pr)))
}

/// Does the lower-cased text contain one of the reason's phrases?
pub(crate) fn included(reason: &str, t: &str) -> bool {
    match reason {
        "authfailure" => any_of(t, p::AUTHFAILURE, p::AUTHFAILURE_PAIRS),
        "badreputation" => any_of(t, p::BADREPUTATION, p::BADREPUTATION_PAIRS),
        "blocked" => any_of(t, p::BLOCKED, p::BLOCKED_PAIRS),
        "contenterror" => any_of(t, p::CONTENTERROR, p::CONTENTERROR_PAIRS),
        "exceedlimit" => any_of(t, p::EXCEEDLIMIT, p::EXCEEDLIMIT_PAIRS),
        "expired" => any_of(t, p::EXPIRED, p::EXPIRED_PAIRS),
        "failedstarttls" => any_of(t, p::FAILEDSTARTTLS, p::FAILEDSTARTTLS_PAIRS),
        "filtered" => any_of(t, p::FILTERED, p::FILTERED_PAIRS),
        "hasmoved" => any_of(t, p::HASMOVED, p::HASMOVED_PAIRS),
        "hostunknown" => any_of(t, p::HOSTUNKNOWN, p::HOSTUNKNOWN_PAIRS),
        "mailboxfull" => any_of(t, p::MAILBOXFULL, p::MAILBOXFULL_PAIRS),
        "mailererror" => any_of(t, p::MAILERERROR, p::MAILERERROR_PAIRS),
        "mesgtoobig" => any_of(t, p::MESGTOOBIG, p::MESGTOOBIG_PAIRS),
        "networkerror" => any_of(t, p::NETWORKERROR, p::NETWORKERROR_PAIRS),
        "norelaying" => any_of(t, p::NORELAYING, p::NORELAYING_PAIRS),
        "notaccept" => any_of(t, p::NOTACCEPT, p::NOTACCEPT_PAIRS),
        "notcompliantrfc" => any_of(t, p::NOTCOMPLIANTRFC, p::NOTCOMPLIANTRFC_PAIRS),
        "policyviolation" => any_of(t, p::POLICYVIOLATION, p::POLICYVIOLATION_PAIRS),
        "rejected" => !p::REJECTED_ISNOT.iter().any(|s| t.contains(s)) && any_of(t, p::REJECTED, p::REJECTED_PAIRS),
        "requireptr" => any_of(t, p::REQUIREPTR, p::REQUIREPTR_PAIRS),
        "securityerror" => any_of(t, p::SECURITYERROR, p::SECURITYERROR_PAIRS),
        "spamdetected" => any_of(t, p::SPAMDETECTED, p::SPAMDETECTED_PAIRS),
        "speeding" => any_of(t, p::SPEEDING, p::SPEEDING_PAIRS),
        "suppressed" => any_of(t, p::SUPPRESSED, p::SUPPRESSED_PAIRS),
        "suspend" => any_of(t, p::SUSPEND, p::SUSPEND_PAIRS),
        "systemerror" => any_of(t, p::SYSTEMERROR, p::SYSTEMERROR_PAIRS),
        "systemfull" => any_of(t, p::SYSTEMFULL, p::SYSTEMFULL_PAIRS),
        "toomanyconn" => any_of(t, p::TOOMANYCONN, p::TOOMANYCONN_PAIRS),
        "userunknown" => any_of(t, p::USERUNKNOWN, p::USERUNKNOWN_PAIRS),
        "vacation" => any_of(t, p::VACATION, p::VACATION_PAIRS),
        "virusdetected" => any_of(t, p::VIRUSDETECTED, p::VIRUSDETECTED_PAIRS),
        _ => false,
    }
}

const BEFORE_DATA: &[&str] = &["CONN", "EHLO", "HELO", "MAIL", "RCPT"];

/// sisimai's `ProbesInto`: does this fact show the reason, weighing the
/// status code against the text?
fn probes(reason: &str, f: &Fact) -> bool {
    if f.reason == reason {
        return true;
    }
    let sn = status_name(&f.status);
    let d = f.diag.as_str();
    let cmd = f.command.as_str();
    match reason {
        "mailboxfull" | "authfailure" | "blocked" | "requireptr" | "toomanyconn" | "exceedlimit" => {
            sn == reason || included(reason, d)
        }
        "mesgtoobig" => {
            if sn == "mesgtoobig" {
                return true;
            }
            if sn == "exceedlimit" || f.status == "5.2.3" {
                return false;
            }
            included(reason, d)
        }
        "suspend" => f.reply == "525" || included(reason, d),
        "hasmoved" | "notcompliantrfc" | "badreputation" | "speeding" => included(reason, d),
        "norelaying" => {
            if matches!(f.reason.as_str(), "securityerror" | "systemerror" | "undefined") {
                return false;
            }
            if matches!(cmd, "CONN" | "EHLO" | "HELO") {
                return false;
            }
            included(reason, d)
        }
        "userunknown" => {
            if sn == "suspend" {
                return false;
            }
            if sn == "userunknown" {
                let other = ["norelaying", "blocked", "mailboxfull", "hasmoved", "rejected", "notaccept"]
                    .iter()
                    .any(|r| included(r, d));
                !other
            } else {
                cmd == "RCPT" && included(reason, d)
            }
        }
        "filtered" => {
            if sn == "suspend" {
                return false;
            }
            if sn == "filtered" {
                included("userunknown", d) || included("filtered", d)
            } else {
                if BEFORE_DATA.contains(&cmd) {
                    return false;
                }
                // Without RCPT as the failed command, "user unknown" after
                // the message was accepted is a content filter speaking.
                included("filtered", d) || included("userunknown", d)
            }
        }
        "contenterror" => {
            if probes("spamdetected", f) {
                return false;
            }
            sn == "contenterror" || included(reason, d)
        }
        "rejected" => {
            let t = if sn.is_empty() { "undefined" } else { sn };
            if t == "rejected" {
                return true;
            }
            match cmd {
                "MAIL" => included(reason, d),
                "DATA" => t != "userunknown" && included(reason, d),
                _ => (!explicit(t) || matches!(t, "securityerror" | "systemerror")) && included(reason, d),
            }
        }
        "hostunknown" => {
            if sn == "hostunknown" {
                !included("networkerror", d)
            } else {
                included(reason, d)
            }
        }
        "spamdetected" => {
            if f.status.is_empty() {
                return false;
            }
            if sn == "spamdetected" {
                return true;
            }
            if BEFORE_DATA.contains(&cmd) {
                return false;
            }
            included(reason, d)
        }
        "syntaxerror" => match f.reply.parse::<u16>() {
            Ok(r) => (400 < r && r < 408) || (500 < r && r < 508),
            Err(_) => false,
        },
        _ => false,
    }
}

const ORDER_PROBE: &[&str] = &[
    "mailboxfull", "mesgtoobig", "exceedlimit", "suspend", "hasmoved", "norelaying", "authfailure", "userunknown",
    "filtered", "requireptr", "notcompliantrfc", "badreputation", "contenterror", "rejected", "hostunknown",
    "spamdetected", "speeding", "toomanyconn", "blocked",
];
const ORDER_TEXT: &[&str] = &[
    "mailboxfull", "authfailure", "badreputation", "speeding", "spamdetected", "virusdetected", "policyviolation",
    "norelaying", "systemerror", "networkerror", "suspend", "contenterror", "systemfull", "notaccept", "expired",
    "failedstarttls", "securityerror", "suppressed", "mailererror",
];

/// Decides the reason for one fact (sisimai `reason.Find`).
pub(crate) fn find(f: &Fact) -> String {
    if !f.reason.is_empty() && !retried(&f.reason) {
        return f.reason.clone();
    }
    if f.status.starts_with("2.") {
        return "delivered".into();
    }
    let mut r = String::new();
    if f.diag_type == "SMTP" || f.diag_type.is_empty() {
        if let Some(x) = ORDER_PROBE.iter().find(|x| probes(x, f)) {
            r = (*x).to_string();
        }
    }
    if r.is_empty() || r == "undefined" {
        r = anotherone(f);
        if r == "undefined" {
            r.clear();
        }
        if r.is_empty() && f.action == "delayed" {
            r = "expired".into();
        }
        if !r.is_empty() {
            return r;
        }
        if included("vacation", &f.diag) {
            return "vacation".into();
        }
        return if f.diag.is_empty() { "undefined".into() } else { "onhold".into() };
    }
    r
}

fn anotherone(f: &Fact) -> String {
    if status_name(&f.status) == "expired" && f.diag.contains("expired") {
        // The code and the words agree ("4.4.7 message expired: … connection
        // timed out"); the network detail is why it expired, not the reason.
        return "expired".into();
    }
    if explicit(&f.reason) {
        return f.reason.clone();
    }
    let sn = status_name(&f.status);
    let try_match = sn.is_empty() || retried(sn) || f.diag_type == "SMTP";
    if !try_match {
        return sn.to_string();
    }
    if let Some(x) = ORDER_TEXT.iter().find(|x| included(x, &f.diag)) {
        return (*x).to_string();
    }
    if !sn.is_empty() {
        return sn.to_string();
    }
    let class = f.status.get(0..3).unwrap_or("");
    if class == "5.6" || class == "4.6" {
        return "contenterror".into();
    }
    if class == "5.7" || class == "4.7" {
        return "securityerror".into();
    }
    if f.diag_type.starts_with("X-UNIX") {
        return "mailererror".into();
    }
    if probes("syntaxerror", f) {
        return "syntaxerror".into();
    }
    if f.action == "delayed" || f.action == "expired" {
        return "expired".into();
    }
    if f.command == "EHLO" || f.command == "HELO" {
        return "blocked".into();
    }
    String::new()
}

/// sisimai's `IsHardBounce`: hard by reason, not by the status class. Only
/// an unknown user or host, or a mailbox that moved, is permanent;
/// `notaccept` (a null MX, a host that takes no mail) is hard unless the
/// server said it was temporary. A full mailbox, a block or a policy reject
/// may clear up, so they are soft even under a 5.x.x code.
pub(crate) fn is_hard(reason: &str, status: &str, diag: &str) -> bool {
    match reason {
        "hasmoved" | "userunknown" | "hostunknown" => true,
        "notaccept" => {
            let first = status.chars().next().or_else(|| first_reply_class(diag));
            first == Some('5') || !is_temporary(status, diag)
        }
        _ => false,
    }
}

fn first_reply_class(diag: &str) -> Option<char> {
    diag.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 3 && (w.starts_with('4') || w.starts_with('5')))
        .and_then(|w| w.chars().next())
}

fn is_temporary(status: &str, diag: &str) -> bool {
    status.starts_with('4')
        || (status.is_empty() && first_reply_class(diag) == Some('4'))
        || diag.contains(" temporar")
        || diag.contains(" persistent")
}
