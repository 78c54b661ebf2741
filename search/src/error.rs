//! The one error type of the crate. `InvalidArgument` is the caller's fault and names the field;
//! `Index` means the index itself failed (disk, corruption) and maps to an internal error.

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error("search index failure: {0}")]
    Index(String),
}

impl SearchError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        SearchError::InvalidArgument { field, reason: reason.into() }
    }
}

impl From<tantivy::TantivyError> for SearchError {
    fn from(error: tantivy::TantivyError) -> Self {
        SearchError::Index(error.to_string())
    }
}

impl From<std::io::Error> for SearchError {
    fn from(error: std::io::Error) -> Self {
        SearchError::Index(error.to_string())
    }
}
