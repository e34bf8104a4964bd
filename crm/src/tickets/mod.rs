//! The support desk (seed 001 "CRM Support"): service centres fed by
//! mailboxes, tickets with a full history, reason codes ("causali") that
//! drive every action, split tickets, rules as data (assignment, scheduled,
//! notification), SLA on a business-hours calendar, the knowledge base and
//! customer feedback.
//!
//! The principal type is [`Ticket`], numbered by [`TicketNo`] (shown
//! `T-12345`). Mail meets the desk through [`mail`]: the mail gateway stores
//! the raw message first ([`Store::store_raw_mail`]), then hands the parsed
//! message to [`Store::ingest_mail`], and sends what [`Store::pending_outbound`]
//! returns. This module knows nothing about IMAP, SMTP or MIME: it receives
//! parsed values and produces rows to send.
//!
//! Jobs take `now` and never read the clock themselves:
//! [`Store::run_scheduled_rules`], [`Store::sla_scan`] and
//! [`Store::propagate_split_states`].

pub mod calendar;
pub mod centres;
pub mod desk;
pub mod feedback;
pub mod kb;
pub mod mail;
pub mod rules;
pub mod sla;

pub use calendar::{BusinessCalendar, add_business_ms, business_ms_between};
pub use centres::*;
pub use desk::*;
pub use feedback::*;
pub use kb::*;
pub use mail::*;
pub use rules::*;
pub use sla::*;

use crate::error::{Error, Result};
use crate::types::{Millis, str_enum};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

pub(crate) type Tx = sqlx::Transaction<'static, sqlx::Any>;

macro_rules! ticket_id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $name(pub i64);
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { self.0.fmt(f) }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                s.parse::<i64>().map($name).map_err(|_| format!("not a valid id: {s:?}"))
            }
        }
    };
}

ticket_id_type!(/// A service centre.
    ServiceCentreId);
ticket_id_type!(/// A stored raw inbound message.
    RawMailId);
ticket_id_type!(/// A row of the outbound mail queue.
    OutboxId);
ticket_id_type!(/// A message (in, out or internal note) in a ticket's history.
    MessageRowId);
ticket_id_type!(/// A business-hours calendar.
    CalendarId);
ticket_id_type!(/// A reason code ("causale").
    ReasonCodeId);
ticket_id_type!(/// A ticket rule (assignment, scheduled or notification).
    RuleId);
ticket_id_type!(/// A knowledge-base article.
    ArticleId);

/// A ticket number, shown and parsed as `T-12345` (plain digits and a
/// leading `#` are accepted too). Serialised as the display string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, utoipa::ToSchema)]
#[schema(value_type = String, example = "T-12345")]
pub struct TicketNo(i64);

impl TicketNo {
    /// A number from the store (positive).
    pub fn new(n: i64) -> Option<TicketNo> {
        (n > 0).then_some(TicketNo(n))
    }
    pub fn get(self) -> i64 {
        self.0
    }
    pub fn parse(s: &str) -> Result<TicketNo, String> {
        let t = s.trim();
        let t = t.strip_prefix('#').unwrap_or(t);
        let digits = t.strip_prefix("T-").or_else(|| t.strip_prefix("t-")).unwrap_or(t);
        if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{s:?} is not a ticket number (T-12345)"));
        }
        digits.parse::<i64>().ok().and_then(TicketNo::new).ok_or_else(|| format!("{s:?} is not a ticket number (T-12345)"))
    }
    /// The subject tag that threads a reply by subject: `[#T-12345]`.
    pub fn subject_tag(self) -> String {
        format!("[#{self}]")
    }
}

impl fmt::Display for TicketNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "T-{}", self.0)
    }
}

impl FromStr for TicketNo {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TicketNo::parse(s)
    }
}

impl Serialize for TicketNo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TicketNo {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => TicketNo::new(n).ok_or_else(|| serde::de::Error::custom("ticket numbers are positive")),
            Raw::S(s) => TicketNo::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// Finds the first `[#T-12345]` tag in a subject.
pub fn subject_ticket_tag(subject: &str) -> Option<TicketNo> {
    let mut rest = subject;
    while let Some(i) = rest.find("[#") {
        let after = &rest[i + 2..];
        if let Some(end) = after.find(']') {
            if let Ok(no) = TicketNo::parse(&after[..end]) {
                if after[..end].starts_with("T-") || after[..end].starts_with("t-") {
                    return Some(no);
                }
            }
        }
        rest = after;
    }
    None
}

str_enum!(/// Where a ticket is in its life.
    TicketState { New => "new", Open => "open", Pending => "pending", Solved => "solved", Closed => "closed" });
str_enum!(/// How urgent a ticket is.
    Priority { Low => "low", Normal => "normal", High => "high", Urgent => "urgent" });
str_enum!(/// Which way a history message went.
    Direction { In => "in", Out => "out", Note => "note" });
str_enum!(/// Why a mail is in the outbox.
    OutboxKind { Reply => "reply", AutoAck => "auto_ack", Reminder => "reminder", FeedbackRequest => "feedback_request", Notification => "notification" });

impl TicketState {
    /// Solved and closed tickets are no longer worked.
    pub fn is_done(self) -> bool {
        matches!(self, TicketState::Solved | TicketState::Closed)
    }
}

/// A multi-level category such as `Hardware/Printer`: non-empty segments
/// separated by `/`, trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct CategoryPath(String);

impl CategoryPath {
    pub fn parse(s: &str) -> Result<CategoryPath, String> {
        let segs: Vec<&str> = s.split('/').map(str::trim).collect();
        if segs.iter().any(|x| x.is_empty()) {
            return Err("a category is a path of non-empty names separated by /".into());
        }
        if s.len() > 200 || segs.len() > 8 {
            return Err("category too long".into());
        }
        Ok(CategoryPath(segs.join("/")))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Is `self` equal to `prefix` or below it (`Hardware/Printer` is under
    /// `Hardware`)?
    pub fn is_under(&self, prefix: &str) -> bool {
        self.0 == prefix || self.0.strip_prefix(prefix).is_some_and(|r| r.starts_with('/'))
    }
}

pub(crate) fn json_list(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

pub(crate) fn bad_row(what: &'static str) -> Error {
    Error::NotFound(what)
}

/// Milliseconds in an hour and a day, for readable arithmetic.
pub const HOUR_MS: Millis = 3_600_000;
pub const DAY_MS: Millis = 24 * HOUR_MS;

type HmacSha256 = hmac::Hmac<sha256::Sha256>;

/// HMAC-SHA256 of `msg` under `secret`, truncated to `len` bytes.
pub(crate) fn hmac_tag(secret: &[u8], msg: &[u8], len: usize) -> Vec<u8> {
    use hmac::{KeyInit, Mac};
    // HMAC accepts keys of any length, so this never fails.
    let Ok(mut mac) = <HmacSha256 as KeyInit>::new_from_slice(secret) else { return Vec::new() };
    mac.update(msg);
    let out = mac.finalize().into_bytes();
    out[..len.min(out.len())].to_vec()
}

/// Checks a (left-truncated) HMAC-SHA256 tag in constant time.
pub(crate) fn hmac_verify(secret: &[u8], msg: &[u8], tag: &[u8]) -> bool {
    use hmac::{KeyInit, Mac};
    if tag.len() < 8 {
        return false;
    }
    let Ok(mut mac) = <HmacSha256 as KeyInit>::new_from_slice(secret) else { return false };
    mac.update(msg);
    mac.verify_truncated_left(tag).is_ok()
}
