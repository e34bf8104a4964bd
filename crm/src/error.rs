//! Typed errors of the domain: callers branch on them (the HTTP layer maps
//! each to a status code) and none of them leaks SQL or internals in its
//! `Display`.

use serde::Serialize;

/// A problem with one input field: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("not allowed")]
    Forbidden,
    #[error("the record was changed by someone else (stale version)")]
    Conflict,
    #[error("{0}")]
    Duplicate(String),
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("authentication failed")]
    Unauthenticated,
    #[error("database error")]
    Db(#[from] sqlx::Error),
    #[error("migration error")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl Error {
    /// Whether trying the same thing again later may succeed: a database
    /// outage, a lost connection, a lock timeout. Errors about the data
    /// itself — PostgreSQL's data exceptions (SQLSTATE class 22, e.g. a NUL
    /// in text) and constraint violations (class 23), SQLite's TOOBIG,
    /// CONSTRAINT, MISMATCH and RANGE — will fail the same way every time,
    /// as will every non-database error.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Db(sqlx::Error::Database(db)) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                let pg_data_class = code.len() == 5 && (code.starts_with("22") || code.starts_with("23"));
                // SQLite reports (extended) result codes; the primary code is the low byte.
                let sqlite_data = code.parse::<u32>().is_ok_and(|c| matches!(c & 0xff, 18 | 19 | 20 | 25));
                let constraint = !matches!(db.kind(), sqlx::error::ErrorKind::Other);
                !(pg_data_class || sqlite_data || constraint)
            }
            Error::Db(_) | Error::Migrate(_) => true,
            _ => false,
        }
    }

    /// One invalid field.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldError::new(field, reason)])
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Collects field errors while validating an input, so a caller hears about
/// every bad field at once, not just the first.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<FieldError>);

impl Problems {
    pub fn push(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(FieldError::new(field, reason));
    }
    /// Records the error of a parse, returning the value when it parsed.
    pub fn check<T>(&mut self, field: &str, r: std::result::Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(reason) => {
                self.push(field, reason);
                None
            }
        }
    }
    pub fn finish(self) -> Result<()> {
        if self.0.is_empty() { Ok(()) } else { Err(Error::Invalid(self.0)) }
    }
}
