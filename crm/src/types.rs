//! Newtypes parsed at the boundary: ids, [`PhoneNumber`] (E.164),
//! [`EmailAddress`], and the small closed enums of the domain. A value of one
//! of these types is valid by construction; nothing inward re-validates.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Milliseconds since the Unix epoch: the one time representation in the
/// store (portable between SQLite and PostgreSQL, cheap to compare).
pub type Millis = i64;

/// The current time in [`Millis`]. Only glue code reads the clock; domain
/// functions that depend on time take `now` as an argument.
pub fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

macro_rules! id_type {
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

id_type!(/// A party: a company or a person.
    PartyId);
id_type!(/// A user of centralino (agent, support rep, marketer, supervisor, admin).
    UserId);
id_type!(/// A team in the hierarchy.
    TeamId);
id_type!(/// A deal (trattativa).
    DealId);
id_type!(/// An activity: appointment, to-do, call or note.
    ActivityId);
id_type!(/// A configurable commercial state.
    CommercialStateId);
id_type!(/// A marketing or calling list.
    ListId);

/// A telephone number in E.164 form (`+390212345678`), parsed and validated
/// with the `phonenumber` crate (libphonenumber's metadata).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct PhoneNumber(String);

/// An ISO 3166 region used when a number is written without a country code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region(phonenumber::country::Id);

impl Region {
    pub fn parse(code: &str) -> Result<Self, String> {
        phonenumber::country::Id::from_str(&code.to_ascii_uppercase())
            .map(Region)
            .map_err(|_| format!("unknown region code {code:?}"))
    }
}

impl Default for Region {
    /// The seeds are Italian: a number without a country code is Italian.
    fn default() -> Self {
        Region(phonenumber::country::Id::IT)
    }
}

impl PhoneNumber {
    /// Parses a number as a person would write it (`02 1234 5678`,
    /// `+1 (415) 555-0100`, `0039 ...`) in the given default region.
    pub fn parse(raw: &str, region: Region) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("empty phone number".into());
        }
        if trimmed.len() > 40 {
            return Err("phone number too long".into());
        }
        let n = phonenumber::parse(Some(region.0), trimmed)
            .map_err(|e| format!("not a phone number: {e}"))?;
        if !phonenumber::is_valid(&n) {
            return Err(format!("{trimmed:?} is not a valid phone number"));
        }
        Ok(PhoneNumber(n.format().mode(phonenumber::Mode::E164).to_string()))
    }

    /// Accepts only an already-normalised E.164 string (from the store).
    pub fn from_e164(s: &str) -> Result<Self, String> {
        if s.starts_with('+') && s.len() > 3 && s[1..].bytes().all(|b| b.is_ascii_digit()) {
            Ok(PhoneNumber(s.to_string()))
        } else {
            Err(format!("{s:?} is not in E.164 form"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The region the number belongs to, if its metadata knows one (used for
    /// the callee's local time).
    pub fn region_code(&self) -> Option<String> {
        let n = phonenumber::parse(None, &self.0).ok()?;
        n.country().id().map(|id| id.as_ref().to_string())
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A syntactically valid, lower-cased email address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim().to_lowercase();
        if s.len() > 254 {
            return Err("email address too long".into());
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(|| format!("{raw:?} has no @"))?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if local_ok && domain_ok {
            Ok(EmailAddress(s))
        } else {
            Err(format!("{raw:?} is not a valid email address"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Declares a closed string enum that is stored and serialised as its
/// lower-case name, and parses with an error that lists the allowed values.
macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $($var:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize, ::utoipa::ToSchema)]
        pub enum $name { $(#[serde(rename = $s)] $var),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$var),+];
            pub fn as_str(self) -> &'static str { match self { $($name::$var => $s),+ } }
            pub fn parse(s: &str) -> Result<Self, String> {
                match s { $($s => Ok($name::$var),)+
                    _ => Err(format!("unknown value {:?}; expected one of: {}", s, [$($s),+].join(", "))) }
            }
        }
        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result { f.write_str(self.as_str()) }
        }
        impl ::std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> { Self::parse(s) }
        }
    };
}
pub(crate) use str_enum;

str_enum!(/// A company (B2B) or a person (B2C, or the referent of a company).
    PartyKind { Company => "company", Person => "person" });
str_enum!(/// The lifecycle stage of a party (seed 003).
    Stage { Lead => "lead", Suspect => "suspect", Prospect => "prospect", Customer => "customer" });
str_enum!(/// A contact channel, for consent.
    Channel { Email => "email", Sms => "sms", Phone => "phone", Fax => "fax" });
str_enum!(/// What a phone number is for.
    PhoneKind { Mobile => "mobile", Office => "office", Home => "home", Fax => "fax", Other => "other" });
