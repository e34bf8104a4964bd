//! Request extractors that turn every malformed input into a problem+json
//! naming the field: JSON bodies (via `serde_path_to_error`, so the path of
//! the bad field is known), query strings and path ids.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

/// A JSON body; `deny_unknown_fields` and type errors are reported with the
/// offending field's path.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let ct_ok = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !ct_ok {
            return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "send Content-Type: application/json"));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", "the body is larger than the limit")
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "bad-body", "the body could not be read")
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed-json", format!("malformed JSON: {inner}"))
        } else {
            let field = if path == "." { "body".to_string() } else { path };
            ApiError::field(&field, strip_position(&inner.to_string()))
        }
    })
}

fn strip_position(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// A query string; bad values are reported as invalid fields.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded_de(q);
        de.map(Query)
    }
}

fn serde_urlencoded_de<T: DeserializeOwned>(q: &str) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(&format!("/?{q}").parse().map_err(|_| ApiError::field("query", "malformed query string"))?)
        .map(|axum::extract::Query(v)| v)
        .map_err(|e| {
            let msg = e.body_text();
            let msg = msg.trim_start_matches("Failed to deserialize query string: ").to_string();
            let field = msg.split(':').next().filter(|f| !f.contains(' ')).unwrap_or("query").to_string();
            ApiError::field(&field, msg)
        })
}

/// A numeric id in the path; anything else is a 404 (it cannot name a record).
pub struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(raw): axum::extract::Path<Vec<String>> =
            axum::extract::Path::from_request_parts(parts, state).await.map_err(|_| ApiError::not_found("record"))?;
        let first = raw.first().ok_or_else(|| ApiError::not_found("record"))?;
        first.parse::<i64>().map(Id).map_err(|_| ApiError::not_found("record"))
    }
}
