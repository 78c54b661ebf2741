//! What a caller asks ([`SearchQuery`]), how it is checked, and how it becomes a tantivy query.
//!
//! The query text is never handed to tantivy's query parser: it goes through the index's own
//! analyzer and every resulting token becomes term, fuzzy and prefix queries built in code. Quotes,
//! colons, brackets, `*`, `~`, `^` or `AND` in user input are therefore plain text (punctuation is
//! dropped by the analyzer, `AND` is just the word "and") and can never cause a parse error.
//!
//! Scoring, per query token, all constants times the token's weight (its inverse document
//! frequency; see [`Fields::text_fields`] for field boosts):
//! - per free-text field holding the word, the field's boost times `EXACT_BOOST`;
//! - once, `VARIANT_SCORE` for a match in the set of terms of the combined `all_text` field: the
//!   token, its fuzzy variants (1 edit from 4 characters, 2 from 7; a transposition counts as one
//!   edit) and, for the last token only, its completions, so "madison sq" finds "Madison Square
//!   Garden" while the user is still typing. The variants are looked up in the dictionary when the
//!   query is built and bounded to the most frequent few. The set holds the exact token, so an
//!   exact match always scores what a fuzzy one does plus its field part.
//!
//! Each token must match somewhere; with three or more tokens one may miss, so a stray word such
//! as "tickets" does not empty the results. Documents that match every token rank above those
//! that miss one (see [`Tiers`] and `QueryPlan::text_queries`).

use std::collections::{BTreeSet, HashMap};

use tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, DisjunctionMaxQuery, EmptyQuery, FuzzyTermQuery, Occur, Query, TermQuery,
    TermSetQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Searcher, Term};

use crate::error::SearchError;
use crate::limits;
use crate::page_token::PageToken;
use crate::schema::{self, Fields};

const EXACT_BOOST: f32 = 2.0;
/// Score of a token matched through its variant set (exact, fuzzy or prefix): what a fuzzy match
/// in the name, the heaviest field, used to score.
const VARIANT_SCORE: f32 = 3.0;

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

    /// The tantivy queries of this plan, one per tier (see [`Tiers`]). The date bounds are not
    /// in them: the index is sorted by start, so the search applies them as a range of document
    /// ids (see `index::walk`).
    pub fn to_tantivy(&self, fields: &Fields, searcher: &Searcher) -> Result<Tiers, SearchError> {
        let mut filters: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let exact_filters = [
            (fields.venue_id, &self.venue_id),
            (fields.performer_id, &self.performer_id),
            (fields.city_keyword, &self.city_keyword),
            (fields.category_keyword, &self.category_keyword),
        ];
        for (field, value) in exact_filters {
            if let Some(value) = value {
                let term_query = TermQuery::new(Term::from_field_text(field, value), IndexRecordOption::Basic);
                filters.push((Occur::Must, filter(Box::new(term_query))));
            }
        }
        let with_filters = |mut clauses: Vec<(Occur, Box<dyn Query>)>| -> Box<dyn Query> {
            clauses.extend(filters.iter().map(|(occur, query)| (*occur, query.box_clone())));
            if clauses.is_empty() {
                Box::new(AllQuery)
            } else {
                Box::new(BooleanQuery::new(clauses))
            }
        };
        if self.terms.is_empty() {
            // Nothing scores: an `AllQuery` scores 1 and the filters 0.
            let score_max = if filters.is_empty() { 1.0 } else { 0.0 };
            return Ok(Tiers { full: with_filters(Vec::new()), full_score_max: score_max, ..Tiers::empty() });
        }
        let text = self.text_queries(fields, searcher)?;
        let partial = text
            .partial
            .map(|partial| with_filters(vec![(Occur::Must, partial), (Occur::MustNot, text.full.box_clone())]));
        Ok(Tiers {
            full: with_filters(vec![(Occur::Must, text.full)]),
            full_score_max: text.full_score_max,
            partial,
            partial_score_max: text.partial_score_max,
        })
    }

    /// Every token must match; with three or more tokens one may miss. A token that matches
    /// nothing in the index is that one, so the others are all required and there is one tier.
    /// Otherwise the first tier is every token and the second all but one: a max over the
    /// conjunctions that each leave one token out (a conjunction scores the sum of its tokens, so
    /// the max is the sum over the tokens a document matches). Conjunctions are driven by their
    /// rarest token and can skip.
    fn text_queries(&self, fields: &Fields, searcher: &Searcher) -> Result<Tiers, SearchError> {
        debug_assert!(!self.terms.is_empty());
        let last_index = self.terms.len() - 1;
        let mut tokens: Vec<TokenQuery> = Vec::with_capacity(self.terms.len());
        let mut missing = 0usize;
        for (index, term) in self.terms.iter().enumerate() {
            match term_query(fields, searcher, term, index == last_index)? {
                Some(token) => tokens.push(token),
                None => missing += 1,
            }
        }
        let misses_allowed = if self.terms.len() <= 2 { 0 } else { 1 };
        if missing > misses_allowed || tokens.is_empty() {
            return Ok(Tiers::empty());
        }
        let score_sum: f32 = tokens.iter().map(|token| token.score_max).sum();
        let full = conjunction(tokens.iter().map(|token| &token.query));
        if missing == misses_allowed {
            return Ok(Tiers { full, full_score_max: score_sum, partial: None, partial_score_max: 0.0 });
        }
        let leave_one_out: Vec<Box<dyn Query>> = (0..tokens.len())
            .map(|left_out| {
                conjunction(
                    tokens.iter().enumerate().filter(|(index, _)| *index != left_out).map(|(_, token)| &token.query),
                )
            })
            .collect();
        let lightest = tokens.iter().map(|token| token.score_max).fold(f32::INFINITY, f32::min);
        Ok(Tiers {
            full,
            full_score_max: score_sum,
            partial: Some(Box::new(DisjunctionMaxQuery::new(leave_one_out))),
            partial_score_max: score_sum - lightest,
        })
    }
}

/// A query in ranking tiers: every hit of `full` ranks above every hit of `partial`, and `partial`
/// excludes the hits of `full`. Each tier is ordered by the plan's sort on its own. Only the first
/// tier runs when it fills the requested page, which is most of the time: documents that match
/// every word are the cheap, selective part of a query, the ones missing a word the expensive one.
///
/// Scores are sums of constants (multiples of 1/64, so exact), and `*_score_max` is the highest
/// score a hit of the tier can have: once a search holds a full page of hits at that score it can
/// stop, as later documents start later (see `index::walk`).
pub(crate) struct Tiers {
    pub full: Box<dyn Query>,
    pub full_score_max: f32,
    /// `None` when no token may be missing (one or two tokens, or one already matches nothing).
    pub partial: Option<Box<dyn Query>>,
    pub partial_score_max: f32,
}

impl Tiers {
    fn empty() -> Tiers {
        Tiers { full: Box::new(EmptyQuery), full_score_max: 0.0, partial: None, partial_score_max: 0.0 }
    }
}

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

/// Every token must match; the score is the sum of the tokens' scores.
fn conjunction<'a>(tokens: impl Iterator<Item = &'a Box<dyn Query>>) -> Box<dyn Query> {
    let clauses: Vec<(Occur, Box<dyn Query>)> = tokens.map(|token| (Occur::Must, token.box_clone())).collect();
    Box::new(BooleanQuery::new(clauses))
}

/// A query token as a tantivy query and the highest score a document can get from it.
struct TokenQuery {
    query: Box<dyn Query>,
    score_max: f32,
}

/// The weight of a token: its inverse document frequency (BM25's formula), rounded to a multiple
/// of 1/64 within [1/64, 32], so that every score is a sum of a few multiples of 1/64 and exact
/// in f32 whatever order tantivy adds them in (see [`Tiers::score_max`]).
fn token_weight(doc_freq: u64, docs: u64) -> f32 {
    let docs = docs.max(1) as f64;
    let doc_freq = (doc_freq as f64).min(docs);
    let idf = (1.0 + (docs - doc_freq + 0.5) / (doc_freq + 0.5)).ln();
    ((idf * 64.0).round().clamp(1.0, 32.0 * 64.0) / 64.0) as f32
}

/// `None` when the token matches no term of the index at all (nor any variant of it).
///
/// Scores are constants, not BM25: the token's weight times the boost of each field that holds
/// the word exactly, plus `VARIANT_SCORE` times the weight when the word or one of its variants is
/// anywhere. Term frequency and field length hardly tell anything in fields of a few words (an
/// event's name, its city), and constant scores take few values with a known maximum, which lets
/// a search stop early (see `index::walk`).
fn term_query(
    fields: &Fields,
    searcher: &Searcher,
    text: &str,
    is_last: bool,
) -> Result<Option<TokenQuery>, SearchError> {
    let docs = searcher.num_docs();
    let with_prefix = is_last && text.chars().count() >= limits::PREFIX_CHARS_MIN;
    let variants = expand(searcher, fields.all_text, text, edit_distance_for(text), with_prefix)?;
    let exact_doc_freq = searcher.doc_freq(&Term::from_field_text(fields.all_text, text))?;
    let exact_found = exact_doc_freq > 0;
    let has_variants = variants.len() > 1;
    if !exact_found && !has_variants {
        return Ok(None);
    }
    let weight = if exact_found {
        token_weight(exact_doc_freq, docs)
    } else {
        let mut doc_freq = 0u64;
        for variant in &variants {
            doc_freq += searcher.doc_freq(variant)?;
        }
        token_weight(doc_freq, docs)
    };
    // What matches: the word (and its variants) in `all_text`, one postings list or a few. What
    // scores: a constant for the match, plus one per field that holds the word exactly. The field
    // clauses are optional (`Should` beside a `Must`), which tantivy evaluates lazily: a field's
    // postings are only sought for a document that is about to be scored, that is, one that
    // matched every token, instead of being merged into a union that an intersection would have
    // to refill at every step.
    let mut matcher_terms = variants;
    if !exact_found {
        let absent = Term::from_field_text(fields.all_text, text);
        matcher_terms.retain(|variant| *variant != absent);
    }
    // A few terms are or-ed lazily from their postings, which an intersection can skip through;
    // many become one set, whose scorer reads every posting of every term into a bitset up front
    // (cheaper than a union of dozens of scorers, costly for a few long lists).
    let matcher: Box<dyn Query> = if matcher_terms.len() == 1 {
        Box::new(TermQuery::new(matcher_terms.remove(0), IndexRecordOption::Basic))
    } else if matcher_terms.len() <= limits::LAZY_VARIANTS_MAX {
        let terms = matcher_terms
            .into_iter()
            .map(|variant| -> (Occur, Box<dyn Query>) {
                (Occur::Should, Box::new(TermQuery::new(variant, IndexRecordOption::Basic)))
            })
            .collect();
        Box::new(BooleanQuery::new(terms))
    } else {
        Box::new(TermSetQuery::new(matcher_terms))
    };
    let mut score_max = if has_variants { VARIANT_SCORE * weight } else { 0.0 };
    let mut query: Box<dyn Query> = Box::new(ConstScoreQuery::new(matcher, score_max));
    if exact_found {
        for weighted in fields.text_fields() {
            let term = Term::from_field_text(weighted.field, text);
            if searcher.doc_freq(&term)? == 0 {
                continue;
            }
            let score = weighted.boost * EXACT_BOOST * weight;
            let in_field = ConstScoreQuery::new(Box::new(TermQuery::new(term, IndexRecordOption::Basic)), score);
            // One optional clause per level: an optional union of several fields would be a
            // union scorer again.
            query = Box::new(BooleanQuery::new(vec![(Occur::Must, query), (Occur::Should, Box::new(in_field))]));
            score_max += score;
        }
    }
    Ok(Some(TokenQuery { query, score_max }))
}

/// The terms of `field` that `text` stands for: itself, the terms within `distance` edits (a
/// transposition is one edit) and, `with_prefix`, the terms it starts. Each kind of expansion is cut
/// to its most frequent terms (`limits::FUZZY_VARIANTS_MAX`, `limits::PREFIX_VARIANTS_MAX`), so a
/// short prefix cannot turn into thousands of postings lists. Doc frequencies are summed over
/// segments, so every segment sees the same set.
fn expand(
    searcher: &Searcher,
    field: Field,
    text: &str,
    distance: u8,
    with_prefix: bool,
) -> Result<Vec<Term>, SearchError> {
    let term = Term::from_field_text(field, text);
    let mut selected: BTreeSet<Vec<u8>> = BTreeSet::from([text.as_bytes().to_vec()]);
    let mut automata = Vec::with_capacity(2);
    if distance > 0 {
        automata.push((FuzzyTermQuery::new(term.clone(), distance, true).automaton()?, limits::FUZZY_VARIANTS_MAX));
    }
    if with_prefix {
        automata.push((FuzzyTermQuery::new_prefix(term, 0, true).automaton()?, limits::PREFIX_VARIANTS_MAX));
    }
    for (automaton, variants_max) in automata {
        let mut doc_freqs: HashMap<Vec<u8>, u64> = HashMap::new();
        for segment in searcher.segment_readers() {
            let inverted_index = segment.inverted_index(field)?;
            let mut stream = inverted_index.terms().search(&automaton).into_stream()?;
            while stream.advance() {
                *doc_freqs.entry(stream.key().to_vec()).or_default() += u64::from(stream.value().doc_freq);
            }
        }
        let mut ranked: Vec<(Vec<u8>, u64)> = doc_freqs.into_iter().collect();
        if ranked.len() > variants_max {
            ranked.sort_unstable_by(|left, right| right.1.cmp(&left.1).then_with(|| left.0.cmp(&right.0)));
            ranked.truncate(variants_max);
        }
        selected.extend(ranked.into_iter().map(|(bytes, _)| bytes));
    }
    Ok(selected
        .into_iter()
        .filter_map(|bytes| String::from_utf8(bytes).ok())
        .map(|variant| Term::from_field_text(field, &variant))
        .collect())
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
