//! A JSON body extractor whose rejections use the API's error body.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// Like `axum::Json`, but a body that is not JSON is a 400, JSON of the
/// wrong shape a 422 naming the exact path of the bad value
/// (`documents[3].content`; `body` for the whole body), a missing content
/// type a 415 and an oversized body a 413 — all in the API's error body.
pub struct ApiJson<T>(pub T);

/// Whether the request says its body is JSON (`application/json`, or a
/// `+json` type), as `axum::Json` requires.
fn is_json(request: &Request) -> bool {
    let Some(value) = request.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .split_once('/')
            .is_some_and(|(kind, subtype)| kind == "application" && subtype.ends_with("+json"))
}

/// Reads `bytes` as a `T`, naming the path of a value of the wrong shape.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_data() {
            let field = if path == "." { "body".to_owned() } else { path };
            ApiError::Invalid(vec![FieldError::new(field, inner.to_string())])
        } else {
            ApiError::Malformed(format!("the body is not valid JSON: {inner}"))
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::Malformed(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&request) {
            return Err(ApiError::UnsupportedMediaType(
                "Expected request with `Content-Type: application/json`".into(),
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::TooLarge(rejection.body_text())
                } else {
                    ApiError::Malformed(rejection.body_text())
                }
            })?;
        parse(&bytes).map(ApiJson)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::parse;
    use crate::error::ApiError;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        documents: Vec<Document>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Document {
        id: String,
        content: String,
    }

    fn field_of(json: &str) -> (String, String) {
        match parse::<Body>(json.as_bytes()) {
            Err(ApiError::Invalid(fields)) => (fields[0].field.clone(), fields[0].message.clone()),
            other => panic!("not a field error: {other:?}"),
        }
    }

    #[test]
    fn a_value_of_the_wrong_shape_is_named_by_its_exact_path() {
        // The whole body of the wrong type: the field is the body, not the
        // first words of serde's message.
        let (field, message) = field_of("7");
        assert_eq!(field, "body");
        assert!(
            message.starts_with("invalid type: integer `7`"),
            "{message}"
        );
        let (field, _) =
            field_of(r#"{"documents": [{"id": "a", "content": "x"}, {"id": 7, "content": "y"}]}"#);
        assert_eq!(field, "documents[1].id");
        let (field, message) = field_of(r#"{"documents": "none"}"#);
        assert_eq!(field, "documents");
        assert!(
            message.starts_with("invalid type: string \"none\""),
            "{message}"
        );
        let (field, message) = field_of(r#"{"documents": [{"id": "a"}]}"#);
        assert_eq!(field, "documents[0]");
        assert!(message.starts_with("missing field `content`"), "{message}");
    }

    #[test]
    fn text_that_is_not_json_is_malformed() {
        for body in ["{not json", r#"{"documents": []} trailing"#, ""] {
            assert!(
                matches!(parse::<Body>(body.as_bytes()), Err(ApiError::Malformed(_))),
                "{body:?}"
            );
        }
    }
}
