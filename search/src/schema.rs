//! The index schema: which fields exist, how each is tokenized, and how an [`EventDocument`] is
//! turned into a tantivy document.
//!
//! Free-text fields share one analyzer (split on anything that is not a letter or digit, drop
//! over-long tokens, lowercase, fold accents to ASCII) and the query text goes through the very
//! same analyzer, so a query term and an indexed term are always comparable. There is no stemming:
//! fuzzy and prefix matching already absorb plural and typing variants, and stemmed terms would make
//! edit distances surprising ("runner" -> "runner", "running" -> "run").

use tantivy::schema::{Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RawTokenizer, RemoveLongFilter, SimpleTokenizer, TextAnalyzer, TokenStream,
};
use tantivy::{Index, TantivyDocument};

use crate::error::SearchError;
use crate::limits;

/// Analyzer of free-text fields and of query text.
pub const TEXT_TOKENIZER: &str = "turnstile_text";
/// Analyzer of case-insensitive exact filters (city, category): the whole value as one token.
pub const KEYWORD_TOKENIZER: &str = "turnstile_keyword";
/// Ids are matched byte for byte.
const ID_TOKENIZER: &str = "raw";

/// One event as search sees it: plain strings so the crate does not need the engine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventDocument {
    pub event_id: String,
    pub name: String,
    pub description: String,
    pub category: String,
    pub venue_id: String,
    pub venue_name: String,
    pub city: String,
    pub performer_ids: Vec<String>,
    pub performer_names: Vec<String>,
    pub starts_at_ms: i64,
}

/// Handles of every field, resolved once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fields {
    /// Indexed for deletes and filters; a fast field so hits are read without a document store.
    pub event_id: Field,
    /// A stable hash of `event_id` used as the last tiebreak, so result order is total and paging
    /// has no duplicates or gaps even when scores and dates tie.
    pub event_order: Field,
    pub name: Field,
    pub performer_names: Field,
    pub venue_name: Field,
    pub city: Field,
    pub category: Field,
    pub description: Field,
    /// Every free-text field in one: fuzzy and prefix expansion run against this one dictionary
    /// instead of once per field. Docs only (no frequencies, no norms): it is never BM25-scored.
    pub all_text: Field,
    pub venue_id: Field,
    pub performer_id: Field,
    pub city_keyword: Field,
    pub category_keyword: Field,
    /// Indexed and fast: range filters and date ordering both read it.
    pub starts_at: Field,
}

/// A free-text field and how much a match in it weighs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WeightedField {
    pub field: Field,
    pub boost: f32,
}

impl Fields {
    /// Free-text fields in order of importance. A match in the event's name or one of its
    /// performers says the most; the description is long and mentions many things in passing.
    pub fn text_fields(&self) -> [WeightedField; 6] {
        [
            WeightedField { field: self.name, boost: 3.0 },
            WeightedField { field: self.performer_names, boost: 3.0 },
            WeightedField { field: self.venue_name, boost: 1.5 },
            WeightedField { field: self.city, boost: 1.5 },
            WeightedField { field: self.category, boost: 1.0 },
            WeightedField { field: self.description, boost: 0.5 },
        ]
    }

    pub fn from_schema(schema: &Schema) -> Result<Fields, SearchError> {
        let field = |name: &str| {
            schema.get_field(name).map_err(|_| SearchError::Index(format!("index schema lacks field {name}")))
        };
        Ok(Fields {
            event_id: field("event_id")?,
            event_order: field("event_order")?,
            name: field("name")?,
            performer_names: field("performer_names")?,
            venue_name: field("venue_name")?,
            city: field("city")?,
            category: field("category")?,
            description: field("description")?,
            all_text: field("all_text")?,
            venue_id: field("venue_id")?,
            performer_id: field("performer_id")?,
            city_keyword: field("city_keyword")?,
            category_keyword: field("category_keyword")?,
            starts_at: field("starts_at")?,
        })
    }
}

pub(crate) fn build_schema() -> Schema {
    // Scores are constants per field (see `query`), so neither term frequencies nor field norms
    // are needed: documents only.
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TEXT_TOKENIZER)
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false),
    );
    let keyword = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(KEYWORD_TOKENIZER)
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false),
    );
    let id = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ID_TOKENIZER)
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false),
    );

    let mut builder = Schema::builder();
    builder.add_text_field("event_id", id.clone().set_stored());
    builder.add_u64_field("event_order", NumericOptions::default().set_fast());
    builder.add_text_field("name", text.clone());
    builder.add_text_field("performer_names", text.clone());
    builder.add_text_field("venue_name", text.clone());
    builder.add_text_field("city", text.clone());
    builder.add_text_field("category", text.clone());
    builder.add_text_field("description", text);
    let all_text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TEXT_TOKENIZER)
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false),
    );
    builder.add_text_field("all_text", all_text);
    builder.add_text_field("venue_id", id.clone());
    builder.add_text_field("performer_id", id);
    builder.add_text_field("city_keyword", keyword.clone());
    builder.add_text_field("category_keyword", keyword);
    builder.add_i64_field("starts_at", NumericOptions::default().set_indexed().set_fast());
    builder.build()
}

pub(crate) fn text_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(limits::TOKEN_BYTES_MAX))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

pub(crate) fn keyword_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(RawTokenizer::default()).filter(LowerCaser).filter(AsciiFoldingFilter).build()
}

/// Tokenizers are not stored in the index, so every open registers them again.
pub(crate) fn register_tokenizers(index: &Index) {
    index.tokenizers().register(TEXT_TOKENIZER, text_analyzer());
    index.tokenizers().register(KEYWORD_TOKENIZER, keyword_analyzer());
}

/// Runs `text` through `analyzer`, keeping at most `tokens_max` distinct tokens in order.
pub(crate) fn analyze(analyzer: &mut TextAnalyzer, text: &str, tokens_max: usize) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while tokens.len() < tokens_max && stream.advance() {
        let token = &stream.token().text;
        if !token.is_empty() && !tokens.iter().any(|seen| seen == token) {
            tokens.push(token.clone());
        }
    }
    tokens
}

/// The normalized form of a city or category: what is indexed and what a filter must equal.
pub(crate) fn keyword(analyzer: &mut TextAnalyzer, value: &str) -> Option<String> {
    analyze(analyzer, value.trim(), 1).into_iter().next()
}

/// FNV-1a, 64 bits: a hash that is the same on every platform and every release, unlike std's
/// `DefaultHasher`, so orderings and page tokens do not change across restarts.
pub(crate) fn stable_hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

pub(crate) fn to_tantivy(
    fields: &Fields,
    keyword_analyzer: &mut TextAnalyzer,
    event: &EventDocument,
) -> TantivyDocument {
    let mut document = TantivyDocument::default();
    document.add_text(fields.event_id, &event.event_id);
    document.add_u64(fields.event_order, stable_hash(event.event_id.as_bytes()));
    document.add_text(fields.name, &event.name);
    for performer_name in &event.performer_names {
        document.add_text(fields.performer_names, performer_name);
    }
    document.add_text(fields.venue_name, &event.venue_name);
    document.add_text(fields.city, &event.city);
    document.add_text(fields.category, &event.category);
    document.add_text(fields.description, &event.description);
    for text in [&event.name, &event.venue_name, &event.city, &event.category, &event.description] {
        document.add_text(fields.all_text, text);
    }
    for performer_name in &event.performer_names {
        document.add_text(fields.all_text, performer_name);
    }
    if !event.venue_id.is_empty() {
        document.add_text(fields.venue_id, &event.venue_id);
    }
    for performer_id in &event.performer_ids {
        document.add_text(fields.performer_id, performer_id);
    }
    if let Some(city) = keyword(keyword_analyzer, &event.city) {
        document.add_text(fields.city_keyword, city);
    }
    if let Some(category) = keyword(keyword_analyzer, &event.category) {
        document.add_text(fields.category_keyword, category);
    }
    document.add_i64(fields.starts_at, event.starts_at_ms);
    document
}
