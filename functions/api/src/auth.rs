//! The caller of a request, from its bearer token: who is calling (the
//! tenant and tier of the API key in `Authorization: Bearer <token>`). Any
//! other request is a 401.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
pub use docket_core::auth::Caller;

use crate::{ApiError, AppState};

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthorized("missing bearer token".into()))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
            })?;
        state
            .pipeline
            .authenticate(token)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("unknown API key".into()))
    }
}
