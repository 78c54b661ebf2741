//! Every bound the search crate enforces, in one place.

/// Results per page when the caller asks for 0.
pub const PAGE_SIZE_DEFAULT: u32 = 20;
/// Largest page a caller may ask for; more is rejected rather than silently cut.
pub const PAGE_SIZE_MAX: u32 = 100;
/// How deep paging may go. Offset paging costs O(offset) per page, so deep pages are refused.
pub const RESULT_DEPTH_MAX: u64 = 10_000;
/// Longest query text, in characters.
pub const QUERY_TEXT_CHARS_MAX: usize = 256;
/// Terms of the query text that take part in matching; later terms are ignored so one request
/// cannot build thousands of fuzzy sub-queries.
pub const QUERY_TERMS_MAX: usize = 12;
/// Longest value of an exact filter (`venue_id`, `performer_id`, `city`, `category`), in characters.
pub const FILTER_VALUE_CHARS_MAX: usize = 256;
/// Tokens longer than this (in bytes) are dropped at indexing and at query time alike.
pub const TOKEN_BYTES_MAX: usize = 40;
/// The last query term also matches as a prefix once it has this many characters; a single
/// letter would match a large share of the dictionary and say little about intent.
pub const PREFIX_CHARS_MIN: usize = 2;
/// Terms of this many characters or more tolerate one edit.
pub const FUZZY_ONE_EDIT_CHARS_MIN: usize = 4;
/// Terms of this many characters or more tolerate two edits.
pub const FUZZY_TWO_EDITS_CHARS_MIN: usize = 7;
/// Fuzzy variants of one query term that take part in matching, the most frequent first. Keeps a
/// term in a dense part of the dictionary from expanding into many postings lists.
pub const FUZZY_VARIANTS_MAX: usize = 16;
/// Completions of the last query term that take part in matching, the most frequent first.
pub const PREFIX_VARIANTS_MAX: usize = 32;
/// A token's variant set of at most this many terms (the token itself included) is matched as a
/// lazy union of their postings; a larger one as a bitset built up front.
pub const LAZY_VARIANTS_MAX: usize = 4;
/// Result pages kept in the query cache.
pub const QUERY_CACHE_ENTRIES_MAX: usize = 1_024;
/// How long the committer waits after the first uncommitted write before committing, so a burst
/// of writes shares one commit.
pub const COMMIT_INTERVAL_MS_DEFAULT: u64 = 150;
/// Promise made to callers: a write is searchable within this long.
pub const FRESHNESS_MS_MAX: u64 = 1_000;
/// Memory budget of the index writer (tantivy requires at least 15 MB per indexing thread).
pub const WRITER_HEAP_BYTES_DEFAULT: usize = 64 * 1024 * 1024;

const _: () = assert!(PAGE_SIZE_DEFAULT >= 1 && PAGE_SIZE_DEFAULT <= PAGE_SIZE_MAX);
const _: () = assert!(PAGE_SIZE_MAX as u64 <= RESULT_DEPTH_MAX);
const _: () = assert!(RESULT_DEPTH_MAX <= u32::MAX as u64);
const _: () = assert!(FUZZY_ONE_EDIT_CHARS_MIN < FUZZY_TWO_EDITS_CHARS_MIN);
// The committer must leave room inside the freshness promise for the commit itself.
const _: () = assert!(COMMIT_INTERVAL_MS_DEFAULT * 4 <= FRESHNESS_MS_MAX);
