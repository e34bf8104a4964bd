//! Errors as `application/problem+json` (RFC 9457) with field-level details.
//! Internal causes (SQL, I/O) are logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use crm::FieldError;
use serde::Serialize;

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A short, stable identifier of the problem kind.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// One entry per invalid field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub detail: Option<String>,
    pub errors: Vec<FieldError>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        Self { status, kind, detail: Some(detail.into()), errors: vec![] }
    }
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        Self { status: StatusCode::UNPROCESSABLE_ENTITY, kind: "invalid", detail: Some("the request has invalid fields".into()), errors }
    }
    pub fn field(field: &str, reason: impl Into<String>) -> Self {
        Self::invalid(vec![FieldError::new(field, reason)])
    }
    pub fn unauthenticated() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", "log in or send a bearer token")
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", format!("{what} not found"))
    }
}

impl From<crm::Error> for ApiError {
    fn from(e: crm::Error) -> Self {
        use crm::Error::*;
        match e {
            NotFound(what) => ApiError::not_found(what),
            Forbidden => ApiError::new(StatusCode::FORBIDDEN, "forbidden", "your role or team may not do this"),
            Conflict => ApiError::new(StatusCode::CONFLICT, "conflict", "the record was changed by someone else; reload it and try again"),
            Duplicate(msg) => ApiError::new(StatusCode::CONFLICT, "conflict", msg),
            Invalid(errors) => ApiError::invalid(errors),
            Unauthenticated => ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "wrong username or password"),
            Db(err) => {
                tracing::error!(error = %err, "database error");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the store is unavailable; try again")
            }
            Migrate(err) => {
                tracing::error!(error = %err, "migration error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error").to_string();
        let body = Problem { kind: self.kind.to_string(), title, status: self.status.as_u16(), detail: self.detail, errors: self.errors };
        let mut res = (self.status, axum::Json(body)).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        res
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
