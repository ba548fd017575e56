//! Who may do what. Until the users/auth capability lands, every caller is treated as an
//! editor; this file is the one place that changes when it does (the extractor will read
//! the session or token and the policy methods below stay the contract).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::ApiError;

/// The caller of a request, as far as access rules are concerned.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    can_write: bool,
    can_see_drafts: bool,
}

impl Caller {
    /// Create, change and delete articles.
    pub fn require_writer(&self) -> Result<(), ApiError> {
        if self.can_write {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "editing articles needs the editor role".into(),
            ))
        }
    }
    /// Drafts are listed and readable only by callers who may edit them.
    pub fn can_see_drafts(&self) -> bool {
        self.can_see_drafts
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Caller {
            can_write: true,
            can_see_drafts: true,
        })
    }
}
