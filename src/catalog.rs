//! Article writes, written once for the API, bulk ingest and the CLI import: stamp the
//! time, write (upserts by `external_id`, each change with its outbox row), name a
//! unique-constraint conflict by its field and value, and wake the indexer when there
//! is one in this process (a command's writes reach the server's indexer through the
//! outbox). Input is validated before it gets here ([`parse_new`], [`parse_patch`] with
//! the configured [`limits`]).

use crate::articles::{self, Article, ArticlePatch, Limits, NewArticle};
use crate::auth::audit::Actor;
use crate::config::ArticlesConfig;
use crate::db::articles::{self as store, ArticleKey, Upserted};
use crate::db::{Db, DbError};
use crate::search::Search;
use crate::validate::FieldError;

pub mod from_postgres;
pub mod import;

/// One audit entry for a write of `article`: lean (no details), so a create costs one
/// more row.
fn audit_write(
    tx: &rusqlite::Connection,
    actor: &Actor,
    action: &'static str,
    article: &Article,
) -> Result<(), DbError> {
    let e = actor
        .event(action, crate::db::audit::Outcome::Success)
        .target(format!("article:{}", article.id));
    crate::db::audit::record(tx, &e).map(|_| ())
}

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A unique field collided: which one, and a sentence naming the value.
    #[error("{message}")]
    Conflict { field: String, message: String },
    /// `If-Match` named a version the article has moved on from: here it is now.
    #[error("the article was changed by someone else since you loaded it")]
    Moved(Box<Article>),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The configured size limits of article input.
pub fn limits(config: &ArticlesConfig) -> Limits {
    Limits {
        body_max_bytes: usize::try_from(config.body_max_bytes).unwrap_or(usize::MAX),
    }
}

/// Validate a new article (`prefix` goes before field names, e.g. `3.` in a bulk body).
pub fn parse_new(
    v: &serde_json::Value,
    config: &ArticlesConfig,
    prefix: &str,
) -> Result<NewArticle, Vec<FieldError>> {
    articles::parse_new(v, limits(config), prefix)
}

/// Validate a change to an article.
pub fn parse_patch(
    v: &serde_json::Value,
    config: &ArticlesConfig,
) -> Result<ArticlePatch, Vec<FieldError>> {
    articles::parse_patch(v, limits(config))
}

/// A unique-constraint conflict names the field and the value that collided.
fn conflict(err: DbError, slug: Option<&str>, external_id: Option<&str>) -> WriteError {
    match err {
        DbError::Unique { target } if target.ends_with("slug") => WriteError::Conflict {
            field: "slug".into(),
            message: format!(
                "slug `{}` is taken by another article",
                crate::validate::excerpt(slug.unwrap_or("?"), 80)
            ),
        },
        DbError::Unique { target } if target.ends_with("external_id") => WriteError::Conflict {
            field: "external_id".into(),
            message: format!(
                "external_id `{}` exists",
                crate::validate::excerpt(external_id.unwrap_or("?"), 80)
            ),
        },
        other => WriteError::Db(other),
    }
}

/// One item of a batch that failed: its key (position or line) and why.
#[derive(Debug)]
pub struct ItemError {
    pub key: usize,
    pub error: WriteError,
}

/// A batch that did not commit: one item failed (nothing of the batch was written), or
/// the transaction itself.
#[derive(Debug)]
pub enum BatchError {
    Item(ItemError),
    Db(DbError),
}

impl From<DbError> for BatchError {
    fn from(e: DbError) -> Self {
        BatchError::Db(e)
    }
}

/// Where article writes go, the indexer to wake after each, and who writes (audited in
/// the same transaction as the write).
#[derive(Clone)]
pub struct Catalog<'a> {
    db: &'a Db,
    index: Option<&'a Search>,
    actor: Option<Actor>,
}

impl<'a> Catalog<'a> {
    /// `index`: the search index of this process, woken after each write (None in a
    /// command: the server's indexer finds the outbox rows).
    pub fn new(db: &'a Db, index: Option<&'a Search>) -> Catalog<'a> {
        Catalog {
            db,
            index,
            actor: None,
        }
    }

    /// Audit writes as `actor`, in the write's own transaction: `article.create` and
    /// `article.update` (target `article:<id>`), `article.bulk` once per batch.
    pub fn by(mut self, actor: Actor) -> Catalog<'a> {
        self.actor = Some(actor);
        self
    }

    fn wake(&self) {
        if let Some(index) = self.index {
            index.notify();
        }
    }

    /// Create, or update the article with the same `external_id`.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn upsert(&self, new: NewArticle) -> Result<(Article, Upserted), WriteError> {
        let (slug, ext) = (new.slug.clone(), new.external_id.clone());
        let now = crate::clock::now();
        // Who created or changed it is audited in the same transaction (target
        // `article:<id>`).
        let actor = self.actor.clone();
        let res = self
            .db
            .write(move |tx| {
                let (article, how) = store::upsert(tx, &new, &now)?;
                let action = match how {
                    Upserted::Created => Some("article.create"),
                    Upserted::Updated => Some("article.update"),
                    Upserted::Unchanged => None,
                };
                if let (Some(actor), Some(action)) = (&actor, action) {
                    audit_write(tx, actor, action, &article)?;
                }
                Ok((article, how))
            })
            .await
            .map_err(|e| conflict(e, slug.as_deref(), ext.as_deref()));
        if res.is_ok() {
            self.wake();
        }
        res
    }

    /// Upsert every item in one transaction, all or nothing; `key` names an item in the
    /// error (its position in a request, its line in a file).
    #[tracing::instrument(level = "debug", skip_all, fields(items = items.len()))]
    pub async fn upsert_all(
        &self,
        items: Vec<(usize, NewArticle)>,
    ) -> Result<Vec<(usize, Article, Upserted)>, BatchError> {
        let now = crate::clock::now();
        let actor = self.actor.clone();
        let res = self
            .db
            .write(move |tx| {
                let mut out = Vec::with_capacity(items.len());
                for (key, a) in &items {
                    let (article, how) = store::upsert(tx, a, &now).map_err(|e| {
                        BatchError::Item(ItemError {
                            key: *key,
                            error: conflict(e, a.slug.as_deref(), a.external_id.as_deref()),
                        })
                    })?;
                    out.push((*key, article, how));
                }
                // One entry for the batch, not one per article.
                if let Some(actor) = &actor {
                    let count = |u: Upserted| out.iter().filter(|o| o.2 == u).count();
                    let e = actor
                        .event("article.bulk", crate::db::audit::Outcome::Success)
                        .details(serde_json::json!({
                            "created": count(Upserted::Created),
                            "updated": count(Upserted::Updated),
                            "unchanged": count(Upserted::Unchanged),
                            "first_id": out.iter().map(|o| o.1.id).min(),
                            "last_id": out.iter().map(|o| o.1.id).max(),
                        }));
                    crate::db::audit::record(tx, &e)?;
                }
                Ok::<_, BatchError>(out)
            })
            .await;
        if res.is_ok() {
            self.wake();
        }
        res
    }

    /// Change an article (`Ok(None)`: there is none by that key); with `if_match` (an
    /// `If-Match` header: its `ETag`, or `*`) only while it is at that version; [`WriteError::Moved`] with the current article when
    /// it changed since.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn update_if(
        &self,
        key: ArticleKey,
        patch: ArticlePatch,
        if_match: Option<String>,
    ) -> Result<Option<Article>, WriteError> {
        let slug = patch.slug.clone();
        let now = crate::clock::now();
        let actor = self.actor.clone();
        let res = self
            .db
            .write(move |tx| {
                let res = store::update_if(tx, &key, &patch, &now, if_match.as_deref())?;
                if let (Some(actor), Ok(Some(article))) = (&actor, &res) {
                    audit_write(tx, actor, "article.update", article)?;
                }
                Ok(res)
            })
            .await
            .map_err(|e| conflict(e, slug.as_deref(), None))?;
        match res {
            Ok(updated) => {
                self.wake();
                Ok(updated)
            }
            Err(current) => Err(WriteError::Moved(current)),
        }
    }

    /// Soft-delete an article, or remove it for good with `purge`; false when there is
    /// none by that key.
    #[tracing::instrument(level = "debug", skip_all, fields(purge))]
    pub async fn delete(&self, key: ArticleKey, purge: bool) -> Result<bool, WriteError> {
        let now = crate::clock::now();
        let res = self
            .db
            .write(move |tx| {
                if purge {
                    store::purge(tx, &key, &now)
                } else {
                    store::soft_delete(tx, &key, &now)
                }
            })
            .await;
        if res.is_ok() {
            self.wake();
        }
        Ok(res?)
    }

    /// Undo a soft delete; None when there is no deleted article by that key.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn restore(&self, key: ArticleKey) -> Result<Option<Article>, WriteError> {
        let now = crate::clock::now();
        let res = self
            .db
            .write(move |tx| store::restore(tx, &key, &now))
            .await;
        if res.is_ok() {
            self.wake();
        }
        Ok(res?)
    }
}
