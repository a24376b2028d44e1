//! The caller of a request, from its bearer token.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use docket_core::auth::{Tier, hash_token};
use docket_core::model::TenantId;
use docket_core::ports::StoreError;

use crate::{ApiError, AppState};

/// Who is calling: the tenant and tier of the API key in
/// `Authorization: Bearer <token>`. Any other request is a 401.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key's tenant: it sees only its own jobs.
    pub tenant: TenantId,
    /// The key's tier: its limits apply.
    pub tier: Tier,
    /// The stored hash of the key: names its rate-limit buckets.
    pub key_hash: String,
}

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
        match state.pipeline.store.api_key(&hash_token(token)).await {
            Ok(key) => Ok(Caller {
                tenant: key.tenant,
                tier: key.tier,
                key_hash: key.hash,
            }),
            Err(StoreError::NotFound(_)) => Err(ApiError::Unauthorized("unknown API key".into())),
            Err(e) => Err(docket_core::PipelineError::Store(e).into()),
        }
    }
}
