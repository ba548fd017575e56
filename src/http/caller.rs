//! Who is calling: the route's [`Access`] rule and [`RouteSpec`] (the route table in
//! `http/mod.rs` is the one place that decides roles), and the [`Caller`] every handler
//! receives (one extractor, put in place by `access::authorize`).

use std::net::IpAddr;

use axum::http::Method;
use serde::Serialize;

use super::ApiError;
use super::limits::Tier;
use crate::auth::Role;
use crate::auth::ops::Actor;
use crate::db::audit::{Event, Outcome};
use crate::db::users::User;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Anyone (health, sign-in, setup, reset).
    Public,
    /// Anyone when `security.public_read`, else any signed-in user.
    PublicRead,
    /// Any signed-in user (viewer and up).
    Viewer,
    Editor,
    Admin,
}

/// One route of the API: method, path pattern, access rule and rate-limit tier.
#[derive(Debug, Clone, Serialize)]
pub struct RouteSpec {
    #[serde(serialize_with = "ser_method")]
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub tier: Tier,
}

fn ser_method<S: serde::Serializer>(m: &Method, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.as_str())
}

/// How a principal proved who it is.
#[derive(Debug, Clone)]
pub enum Via {
    Session { id_hash: String, csrf_token: String },
    Token { id: i64, prefix: String },
}

/// A signed-in user with the role in effect for this request (for a token, the lower
/// of the token's role and the user's current role).
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub role: Role,
    pub via: Via,
}

/// The caller of a request, as resolved by [`authorize`].
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Option<Principal>,
    pub ip: IpAddr,
    pub request_id: Option<String>,
}

impl Caller {
    pub fn role(&self) -> Option<Role> {
        self.principal.as_ref().map(|p| p.role)
    }
    /// Drafts and deleted articles are visible only to those who may edit them.
    pub fn can_see_drafts(&self) -> bool {
        self.role().is_some_and(|r| r >= Role::Editor)
    }
    /// The audit actor of this request.
    pub fn actor(&self) -> Actor {
        Actor {
            id: self.principal.as_ref().map(|p| p.user.id),
            name: self
                .principal
                .as_ref()
                .map_or_else(|| "anonymous".into(), |p| p.user.email.clone()),
            role: self.role(),
            ip: Some(self.ip.to_string()),
            request_id: self.request_id.clone(),
        }
    }
    pub fn event(&self, action: &'static str, outcome: Outcome) -> Event {
        self.actor().event(action, outcome)
    }
    pub(super) fn principal(&self) -> Result<&Principal, ApiError> {
        self.principal
            .as_ref()
            .ok_or_else(|| ApiError::Unauthorized("sign in or send an API token".into()))
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        // Every routed request passed `authorize`, which put the caller there.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("route without the authorize layer")))
    }
}
