//! What a caller asks ([`SearchQuery`]), how it is checked, and how it becomes a tantivy query.
//!
//! The query text is never handed to tantivy's query parser: it goes through the index's own
//! analyzer and every resulting token becomes term, fuzzy and prefix queries built in code. Quotes,
//! colons, brackets, `*`, `~`, `^` or `AND` in user input are therefore plain text (punctuation is
//! dropped by the analyzer, `AND` is just the word "and") and can never cause a parse error.
//!
//! Scoring, per query token and per free-text field (see [`Fields::text_fields`] for field boosts):
//! - an exact term query, BM25-scored, boosted by `EXACT_BOOST`;
//! - a fuzzy term query (1 edit from 4 characters, 2 from 7; a transposition counts as one edit),
//!   constant-scored at `FUZZY_BOOST`. It also matches the exact term, so an exact match always
//!   scores at least what a fuzzy one does, plus its BM25 part;
//! - for the last token only, a prefix query constant-scored at `PREFIX_BOOST`, so "madison sq"
//!   finds "Madison Square Garden" while the user is still typing.
//!
//! Each token must match somewhere; with three or more tokens one may miss, so a stray word such
//! as "tickets" does not empty the results.

use std::cmp::Reverse;
use std::ops::Bound;

use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::IndexRecordOption;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::Term;

use crate::error::SearchError;
use crate::limits;
use crate::page_token::PageToken;
use crate::schema::{self, Fields};

const EXACT_BOOST: f32 = 2.0;
const FUZZY_BOOST: f32 = 1.0;
const PREFIX_BOOST: f32 = 1.0;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SortOrder {
    /// Best match first; ties go to the earlier event. Empty query text sorts by date instead.
    #[default]
    Relevance,
    /// Earliest start first.
    Date,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SearchQuery {
    /// Free text matched against name, performers, venue, city, category and description; at most
    /// 256 characters. Empty text lists upcoming events by date.
    pub text: String,
    /// Events starting at or after this instant. With empty text and no value, defaults to now.
    pub starts_after_ms: Option<i64>,
    /// Events starting strictly before this instant.
    pub starts_before_ms: Option<i64>,
    /// Exact venue id. An empty string means no filter, as do the other filters below.
    pub venue_id: Option<String>,
    /// Exact performer id.
    pub performer_id: Option<String>,
    /// City, compared without regard to case or accents.
    pub city: Option<String>,
    /// Category, compared without regard to case or accents.
    pub category: Option<String>,
    pub sort: SortOrder,
    /// 0 means 20; at most 100.
    pub page_size: u32,
    /// `next_page_token` of the previous page of the same query.
    pub page_token: Option<String>,
}

impl SearchQuery {
    pub fn text(text: impl Into<String>) -> Self {
        SearchQuery { text: text.into(), ..SearchQuery::default() }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SearchHit {
    pub event_id: String,
    /// Relevance score; comparable only within one result list.
    pub score: f32,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SearchPage {
    pub hits: Vec<SearchHit>,
    /// `None` on the last page (or when the depth limit is reached).
    pub next_page_token: Option<String>,
}

/// A checked, normalized query: everything the search needs and nothing else. It is also the key
/// of the result cache, so two requests that differ only in spelling of a filter share an entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct QueryPlan {
    pub terms: Vec<String>,
    /// Inclusive.
    pub starts_after_ms: Option<i64>,
    /// Exclusive.
    pub starts_before_ms: Option<i64>,
    pub venue_id: Option<String>,
    pub performer_id: Option<String>,
    pub city_keyword: Option<String>,
    pub category_keyword: Option<String>,
    pub sort: SortOrder,
    pub page_size: u32,
    pub offset: u32,
    /// Binds issued page tokens to this query.
    pub query_fingerprint: u64,
}

fn filter_value<'a>(field: &'static str, value: &'a Option<String>) -> Result<Option<&'a str>, SearchError> {
    let Some(value) = value else {
        return Ok(None);
    };
    if value.chars().count() > limits::FILTER_VALUE_CHARS_MAX {
        return Err(SearchError::invalid(
            field,
            format!("is longer than {} characters", limits::FILTER_VALUE_CHARS_MAX),
        ));
    }
    let trimmed = value.trim();
    Ok((!trimmed.is_empty()).then_some(trimmed))
}

/// Fingerprint of what the caller asked, page size and token excluded, so the next page of the
/// same question matches whatever page size it is asked with.
fn query_fingerprint(query: &SearchQuery) -> u64 {
    let mut encoded: Vec<u8> = Vec::with_capacity(query.text.len() + 64);
    let mut put = |part: &[u8]| {
        encoded.extend_from_slice(&(part.len() as u64).to_le_bytes());
        encoded.extend_from_slice(part);
    };
    put(query.text.as_bytes());
    let bound = |value: Option<i64>| {
        value.map_or([0u8; 9], |ms| {
            let mut bytes = [1u8; 9];
            bytes[1..].copy_from_slice(&ms.to_le_bytes());
            bytes
        })
    };
    put(&bound(query.starts_after_ms));
    put(&bound(query.starts_before_ms));
    for filter in [&query.venue_id, &query.performer_id, &query.city, &query.category] {
        match filter {
            Some(value) => put(format!("+{value}").as_bytes()),
            None => put(b"-"),
        }
    }
    put(match query.sort {
        SortOrder::Relevance => b"relevance",
        SortOrder::Date => b"date",
    });
    schema::stable_hash(&encoded)
}

impl QueryPlan {
    /// Checks `query` and normalizes it. `now_ms` is the default lower date bound of an empty
    /// text query.
    pub fn new(
        query: &SearchQuery,
        text_analyzer: &mut TextAnalyzer,
        keyword_analyzer: &mut TextAnalyzer,
        now_ms: i64,
    ) -> Result<QueryPlan, SearchError> {
        if query.text.chars().count() > limits::QUERY_TEXT_CHARS_MAX {
            return Err(SearchError::invalid(
                "query",
                format!("is longer than {} characters", limits::QUERY_TEXT_CHARS_MAX),
            ));
        }
        if let (Some(after), Some(before)) = (query.starts_after_ms, query.starts_before_ms) {
            if before < after {
                return Err(SearchError::invalid("starts_before", "is earlier than starts_after"));
            }
        }
        if query.page_size > limits::PAGE_SIZE_MAX {
            return Err(SearchError::invalid("page_size", format!("is larger than {}", limits::PAGE_SIZE_MAX)));
        }
        let page_size = if query.page_size == 0 { limits::PAGE_SIZE_DEFAULT } else { query.page_size };
        let venue_id = filter_value("venue_id", &query.venue_id)?.map(str::to_owned);
        let performer_id = filter_value("performer_id", &query.performer_id)?.map(str::to_owned);
        let city_keyword = filter_value("city", &query.city)?.and_then(|city| schema::keyword(keyword_analyzer, city));
        let category_keyword =
            filter_value("category", &query.category)?.and_then(|category| schema::keyword(keyword_analyzer, category));

        let query_fingerprint = query_fingerprint(query);
        let offset = match &query.page_token {
            Some(token) if !token.is_empty() => PageToken::decode(token, query_fingerprint)?.offset,
            _ => 0,
        };

        let terms = schema::analyze(text_analyzer, &query.text, limits::QUERY_TERMS_MAX);
        let (sort, starts_after_ms) = if terms.is_empty() {
            // Nothing to rank by: list what is coming up. `now` is cut to the second so that
            // repeated listings within a second share a cache entry.
            let now_second_ms = now_ms - now_ms.rem_euclid(1_000);
            (SortOrder::Date, Some(query.starts_after_ms.unwrap_or(now_second_ms)))
        } else {
            (query.sort, query.starts_after_ms)
        };

        Ok(QueryPlan {
            terms,
            starts_after_ms,
            starts_before_ms: query.starts_before_ms,
            venue_id,
            performer_id,
            city_keyword,
            category_keyword,
            sort,
            page_size,
            offset,
            query_fingerprint,
        })
    }

    pub fn to_tantivy(&self, fields: &Fields) -> Box<dyn Query> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if !self.terms.is_empty() {
            clauses.push((Occur::Must, self.text_query(fields)));
        }
        let exact_filters = [
            (fields.venue_id, &self.venue_id),
            (fields.performer_id, &self.performer_id),
            (fields.city_keyword, &self.city_keyword),
            (fields.category_keyword, &self.category_keyword),
        ];
        for (field, value) in exact_filters {
            if let Some(value) = value {
                let term_query = TermQuery::new(Term::from_field_text(field, value), IndexRecordOption::Basic);
                clauses.push((Occur::Must, filter(Box::new(term_query))));
            }
        }
        if self.starts_after_ms.is_some() || self.starts_before_ms.is_some() {
            let lower = self
                .starts_after_ms
                .map_or(Bound::Unbounded, |ms| Bound::Included(Term::from_field_i64(fields.starts_at, ms)));
            let upper = self
                .starts_before_ms
                .map_or(Bound::Unbounded, |ms| Bound::Excluded(Term::from_field_i64(fields.starts_at, ms)));
            clauses.push((Occur::Must, filter(Box::new(RangeQuery::new(lower, upper)))));
        }
        if clauses.is_empty() {
            return Box::new(AllQuery);
        }
        Box::new(BooleanQuery::new(clauses))
    }

    fn text_query(&self, fields: &Fields) -> Box<dyn Query> {
        debug_assert!(!self.terms.is_empty());
        let last_index = self.terms.len() - 1;
        let per_term: Vec<(Occur, Box<dyn Query>)> = self
            .terms
            .iter()
            .enumerate()
            .map(|(index, term)| {
                let query = term_query(fields, term, index == last_index);
                (Occur::Should, query)
            })
            .collect();
        let terms_count = per_term.len();
        let terms_required = if terms_count <= 2 { terms_count } else { terms_count - 1 };
        Box::new(BooleanQuery::with_minimum_required_clauses(per_term, terms_required))
    }

    /// Key by which hits are ranked; larger is better. See [`RankKey`].
    pub fn rank_key(sort: SortOrder, score: f32, starts_at_ms: i64, event_order: u64) -> RankKey {
        let primary = match sort {
            SortOrder::Relevance => score,
            SortOrder::Date => 0.0,
        };
        (primary, Reverse(starts_at_ms), Reverse(event_order), score)
    }
}

/// (primary score, earlier start, smaller event hash, reported score). Relevance puts the score
/// first; date ordering leaves it 0 so the start decides. The event hash makes the order total,
/// which is what keeps offset paging free of duplicates and gaps.
pub(crate) type RankKey = (f32, Reverse<i64>, Reverse<u64>, f32);

/// Restricts without scoring: a filter must not move a hit up or down.
fn filter(query: Box<dyn Query>) -> Box<dyn Query> {
    Box::new(ConstScoreQuery::new(query, 0.0))
}

fn edit_distance_for(term: &str) -> u8 {
    let chars = term.chars().count();
    if chars >= limits::FUZZY_TWO_EDITS_CHARS_MIN {
        2
    } else if chars >= limits::FUZZY_ONE_EDIT_CHARS_MIN {
        1
    } else {
        0
    }
}

fn term_query(fields: &Fields, text: &str, is_last: bool) -> Box<dyn Query> {
    let distance = edit_distance_for(text);
    let with_prefix = is_last && text.chars().count() >= limits::PREFIX_CHARS_MIN;
    let mut alternatives: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for weighted in fields.text_fields() {
        let term = Term::from_field_text(weighted.field, text);
        let exact = TermQuery::new(term.clone(), IndexRecordOption::WithFreqs);
        alternatives.push((Occur::Should, Box::new(BoostQuery::new(Box::new(exact), weighted.boost * EXACT_BOOST))));
        if distance > 0 {
            let fuzzy = FuzzyTermQuery::new(term.clone(), distance, true);
            alternatives
                .push((Occur::Should, Box::new(BoostQuery::new(Box::new(fuzzy), weighted.boost * FUZZY_BOOST))));
        }
        if with_prefix {
            let prefix = FuzzyTermQuery::new_prefix(term, 0, true);
            alternatives
                .push((Occur::Should, Box::new(BoostQuery::new(Box::new(prefix), weighted.boost * PREFIX_BOOST))));
        }
    }
    Box::new(BooleanQuery::new(alternatives))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{keyword_analyzer, text_analyzer};

    fn plan(query: &SearchQuery) -> Result<QueryPlan, SearchError> {
        QueryPlan::new(query, &mut text_analyzer(), &mut keyword_analyzer(), 1_000_500)
    }

    #[test]
    fn syntax_characters_are_plain_text() {
        let plan = plan(&SearchQuery::text("name:\"Tay*lor\" AND (swift~2)^3 [x TO y]")).unwrap();
        assert_eq!(plan.terms, ["name", "tay", "lor", "and", "swift", "2", "3", "x", "to", "y"]);
    }

    #[test]
    fn empty_text_lists_upcoming_by_date() {
        let plan = plan(&SearchQuery::text("  ?! ")).unwrap();
        assert!(plan.terms.is_empty());
        assert_eq!(plan.sort, SortOrder::Date);
        assert_eq!(plan.starts_after_ms, Some(1_000_000));
    }

    #[test]
    fn edit_distance_grows_with_length() {
        assert_eq!(edit_distance_for("abc"), 0);
        assert_eq!(edit_distance_for("abcd"), 1);
        assert_eq!(edit_distance_for("abcdefg"), 2);
        assert_eq!(edit_distance_for("ééé"), 0);
    }

    #[test]
    fn invalid_arguments_name_their_field() {
        let field_of = |query: SearchQuery| match plan(&query) {
            Err(SearchError::InvalidArgument { field, .. }) => field,
            other => panic!("expected an invalid argument, got {other:?}"),
        };
        assert_eq!(field_of(SearchQuery::text("x".repeat(257))), "query");
        assert_eq!(field_of(SearchQuery { page_size: 101, ..SearchQuery::default() }), "page_size");
        assert_eq!(
            field_of(SearchQuery { starts_after_ms: Some(10), starts_before_ms: Some(9), ..SearchQuery::default() }),
            "starts_before"
        );
        assert_eq!(
            field_of(SearchQuery { page_token: Some("garbage".into()), ..SearchQuery::default() }),
            "page_token"
        );
        assert_eq!(field_of(SearchQuery { city: Some("c".repeat(300)), ..SearchQuery::default() }), "city");
        assert!(plan(&SearchQuery::text("é".repeat(256))).is_ok());
    }

    #[test]
    fn fingerprint_ignores_page_size_but_not_filters() {
        let base = SearchQuery::text("jazz");
        let bigger_pages = SearchQuery { page_size: 50, ..base.clone() };
        let in_paris = SearchQuery { city: Some("Paris".into()), ..base.clone() };
        assert_eq!(query_fingerprint(&base), query_fingerprint(&bigger_pages));
        assert_ne!(query_fingerprint(&base), query_fingerprint(&in_paris));
    }
}
