//! Typo-tolerant search over events, built on tantivy.
//!
//! Layout:
//! - [`index`]: [`SearchIndex`], the one type callers hold: it owns the tantivy index, its single
//!   writer, a background committer that makes writes searchable within a second, and a cache of
//!   recent result pages;
//! - [`query`]: the caller's [`SearchQuery`], its validation, and how it becomes a tantivy query
//!   built term by term (user text never reaches tantivy's query parser);
//! - [`page_token`]: opaque page tokens bound to the query that produced them;
//! - [`schema`]: the fields, their tokenizers and how an [`EventDocument`] is written;
//! - [`catalog`] (feature `engine`): builds [`EventDocument`]s from the engine's catalog;
//! - [`limits`], [`error`]: bounds and the one error type.
//!
//! Every call is synchronous and may block on disk; async callers use `spawn_blocking`.

#[cfg(feature = "engine")]
pub mod catalog;
pub mod error;
pub mod index;
pub mod limits;
pub mod page_token;
pub mod query;
pub mod schema;

pub use error::SearchError;
pub use index::{SearchConfig, SearchIndex};
pub use query::{SearchHit, SearchPage, SearchQuery, SortOrder};
pub use schema::EventDocument;
