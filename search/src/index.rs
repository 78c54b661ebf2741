//! [`SearchIndex`]: the tantivy index, its single writer, the committer thread that makes writes
//! visible, and the result cache.
//!
//! Freshness: a write only lands in the writer's buffer and marks the index dirty. A committer
//! thread wakes on the first dirty mark, waits `commit_interval_ms` so a burst of writes shares one
//! commit, then commits and reloads the reader. A write is therefore searchable after about
//! `commit_interval_ms` plus one commit, well inside [`limits::FRESHNESS_MS_MAX`]. [`SearchIndex::flush`]
//! does the same at once.
//!
//! Caching: result pages are cached by their normalized query. Each reload bumps a generation
//! counter and a cached page is only served while the generation it was computed at is current, so
//! no page outlives a change to the index.
//!
//! Everything here blocks (disk, commits, merges); async callers go through `spawn_blocking`.

use std::collections::BinaryHeap;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lru::LruCache;
use tantivy::indexer::{LogMergePolicy, NoMergePolicy};
use tantivy::query::{AllQuery, EnableScoring, Query};
use tantivy::schema::Value;
use tantivy::store::Compressor;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{
    DocAddress, DocId, DocSet, Index, IndexReader, IndexSettings, IndexSortByField, IndexWriter, Order, ReloadPolicy,
    Searcher, TantivyDocument, TantivyError, Term, TERMINATED,
};

use crate::error::SearchError;
use crate::limits;
use crate::page_token::PageToken;
use crate::query::{QueryPlan, SearchHit, SearchPage, SearchQuery, SortOrder};
use crate::schema::{self, EventDocument, Fields};

#[derive(Clone, Debug)]
pub struct SearchConfig {
    /// Memory the writer buffers before it writes a segment. Bulk rebuilds of millions of events
    /// go faster with hundreds of megabytes; the default suits incremental updates.
    pub writer_heap_bytes: usize,
    /// Indexing threads; each needs at least 15 MB of the heap.
    pub writer_threads: usize,
    /// How long the committer gathers writes before committing them.
    pub commit_interval_ms: u64,
    /// Result pages kept in the query cache; 0 turns the cache off (benchmarks measure the index).
    pub query_cache_entries: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            writer_heap_bytes: limits::WRITER_HEAP_BYTES_DEFAULT,
            writer_threads: 1,
            commit_interval_ms: limits::COMMIT_INTERVAL_MS_DEFAULT,
            query_cache_entries: limits::QUERY_CACHE_ENTRIES_MAX,
        }
    }
}

/// Tells the committer there is something to commit, or that it should stop.
#[derive(Debug, Default)]
struct CommitState {
    dirty: bool,
    shutdown: bool,
}

/// What the committer thread shares with the index handle.
struct Shared {
    fields: Fields,
    /// One writer per index (tantivy holds a lock file); a mutex because commits need `&mut` and
    /// an upsert's delete and add must not be split by a commit. `None` once closed.
    writer: Mutex<Option<IndexWriter>>,
    /// Reloaded by hand after each commit, so "committed" and "visible" happen together.
    reader: IndexReader,
    /// Bumped after every reload; cached pages from an older generation are stale.
    generation: AtomicU64,
    commit_state: Mutex<CommitState>,
    commit_wake: Condvar,
}

/// A result page and the index generation it was computed at.
struct CachedPage {
    generation: u64,
    page: SearchPage,
}

pub struct SearchIndex {
    shared: Arc<Shared>,
    /// Keyed by the normalized query, which includes the page offset. `None` when turned off.
    cache: Option<Mutex<LruCache<QueryPlan, CachedPage>>>,
    /// Cloned per call: analyzers need `&mut` while tokenizing and clones are cheap.
    text_analyzer: TextAnalyzer,
    keyword_analyzer: TextAnalyzer,
    /// True when this open created the index (it was missing or unusable) and no rebuild has run
    /// since, so the caller must fill it from the catalog.
    created_fresh: AtomicBool,
    committer: Option<JoinHandle<()>>,
}

/// Locks, carrying on after a panic elsewhere: the writer and the cache hold nothing a half-done
/// operation could leave inconsistent from our side (tantivy guards its own state).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn closed() -> SearchError {
    SearchError::Index("the search index is closed".into())
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// Why an existing index directory could not be used.
enum OpenFailure {
    /// Another writer holds it: never wipe it.
    Busy(SearchError),
    /// Unreadable or of another schema: safe to replace, as it is rebuilt from the catalog.
    Unusable(String),
}

type IndexParts = (Index, IndexWriter, IndexReader);

/// Documents are kept in start order within every segment (tantivy sorts each new segment and
/// keeps the order when merging), which date-ordered searches rely on (see `by_date`).
fn index_settings() -> IndexSettings {
    IndexSettings {
        sort_by_field: Some(IndexSortByField { field: "starts_at".into(), order: Order::Asc }),
        // The store holds only each event's id (about 30 bytes). Uncompressed small blocks make
        // reading a hit's id a short read and parse; the id as a fast column cost a compressed
        // dictionary block decoded per hit, most of a simple query's time (docs/SEARCH.md).
        docstore_compression: Compressor::None,
        docstore_blocksize: 2048,
        ..IndexSettings::default()
    }
}

fn finish_open(index: Index, config: &SearchConfig) -> Result<IndexParts, TantivyError> {
    schema::register_tokenizers(&index);
    let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
    let writer = index.writer_with_num_threads(config.writer_threads, config.writer_heap_bytes)?;
    Ok((index, writer, reader))
}

fn open_existing(path: &Path, config: &SearchConfig) -> Result<IndexParts, OpenFailure> {
    let classify = |error: TantivyError| match error {
        TantivyError::LockFailure(..) => OpenFailure::Busy(SearchError::Index(format!(
            "index at {} is in use by another writer: {error}",
            path.display()
        ))),
        other => OpenFailure::Unusable(other.to_string()),
    };
    let index = Index::open_in_dir(path).map_err(classify)?;
    if index.schema() != schema::build_schema() {
        return Err(OpenFailure::Unusable("schema differs from this version".into()));
    }
    let settings = index_settings();
    if index.settings().sort_by_field != settings.sort_by_field
        || index.settings().docstore_compression != settings.docstore_compression
    {
        return Err(OpenFailure::Unusable("index settings differ from this version".into()));
    }
    finish_open(index, config).map_err(classify)
}

impl SearchIndex {
    /// Opens the index in `path`, or creates an empty one there when it is missing or unusable
    /// (see [`SearchIndex::needs_rebuild`]).
    pub fn open_in_dir(path: &Path) -> Result<Self, SearchError> {
        Self::open_in_dir_with_config(path, SearchConfig::default())
    }

    pub fn open_in_dir_with_config(path: &Path, config: SearchConfig) -> Result<Self, SearchError> {
        if path.join("meta.json").exists() {
            match open_existing(path, &config) {
                Ok(parts) => return Self::start(parts, false, config),
                Err(OpenFailure::Busy(error)) => return Err(error),
                Err(OpenFailure::Unusable(reason)) => {
                    tracing::warn!(path = %path.display(), %reason, "search index unusable, recreating it");
                    std::fs::remove_dir_all(path)?;
                }
            }
        }
        std::fs::create_dir_all(path)?;
        let index = Index::builder().schema(schema::build_schema()).settings(index_settings()).create_in_dir(path)?;
        Self::start(finish_open(index, &config)?, true, config)
    }

    /// An index that lives in memory only; for tests and single-process setups.
    pub fn in_memory() -> Result<Self, SearchError> {
        Self::in_memory_with_config(SearchConfig::default())
    }

    pub fn in_memory_with_config(config: SearchConfig) -> Result<Self, SearchError> {
        let index = Index::builder().schema(schema::build_schema()).settings(index_settings()).create_in_ram()?;
        Self::start(finish_open(index, &config)?, true, config)
    }

    fn start(
        (index, writer, reader): IndexParts,
        created_fresh: bool,
        config: SearchConfig,
    ) -> Result<Self, SearchError> {
        let fields = Fields::from_schema(&index.schema())?;
        let shared = Arc::new(Shared {
            fields,
            writer: Mutex::new(Some(writer)),
            reader,
            generation: AtomicU64::new(0),
            commit_state: Mutex::new(CommitState::default()),
            commit_wake: Condvar::new(),
        });
        let committer_shared = shared.clone();
        let commit_interval = Duration::from_millis(config.commit_interval_ms);
        let committer = std::thread::Builder::new()
            .name("search-committer".into())
            .spawn(move || commit_loop(&committer_shared, commit_interval))?;
        let cache_entries_max = config.query_cache_entries.min(limits::QUERY_CACHE_ENTRIES_MAX);
        Ok(SearchIndex {
            shared,
            cache: NonZeroUsize::new(cache_entries_max).map(|entries| Mutex::new(LruCache::new(entries))),
            text_analyzer: schema::text_analyzer(),
            keyword_analyzer: schema::keyword_analyzer(),
            created_fresh: AtomicBool::new(created_fresh),
            committer: Some(committer),
        })
    }

    /// Adds `event`, replacing any document with the same `event_id`. Searchable within a second.
    pub fn upsert(&self, event: &EventDocument) -> Result<(), SearchError> {
        if event.event_id.is_empty() {
            return Err(SearchError::invalid("event_id", "is required"));
        }
        let fields = &self.shared.fields;
        let document = schema::to_tantivy(fields, &mut self.keyword_analyzer.clone(), event);
        self.shared.with_writer(|writer| {
            writer.delete_term(Term::from_field_text(fields.event_id, &event.event_id));
            writer.add_document(document)?;
            Ok(())
        })?;
        self.shared.mark_dirty();
        Ok(())
    }

    /// Removes the event (cancelled, deleted). Removing an unknown id is not an error.
    pub fn remove(&self, event_id: &str) -> Result<(), SearchError> {
        self.shared.with_writer(|writer| {
            writer.delete_term(Term::from_field_text(self.shared.fields.event_id, event_id));
            Ok(())
        })?;
        self.shared.mark_dirty();
        Ok(())
    }

    /// Replaces the whole index with `events` in one commit: searches see the old contents until
    /// the new ones are complete. On error the index is left as it was.
    pub fn rebuild(&self, events: impl Iterator<Item = EventDocument>) -> Result<(), SearchError> {
        let fields = &self.shared.fields;
        let mut keyword_analyzer = self.keyword_analyzer.clone();
        let mut guard = lock(&self.shared.writer);
        let writer = guard.as_mut().ok_or_else(closed)?;
        // Commit what is pending first, so a failed rebuild rolls back to a state that still
        // holds every upsert that came before it.
        writer.commit()?;
        let filled = (|| {
            writer.delete_query(Box::new(AllQuery))?;
            for event in events {
                if event.event_id.is_empty() {
                    return Err(SearchError::invalid("event_id", "is required"));
                }
                writer.add_document(schema::to_tantivy(fields, &mut keyword_analyzer, &event))?;
            }
            Ok(())
        })();
        if let Err(error) = filled {
            writer.rollback()?;
            return Err(error);
        }
        // While the bulk segments are written, tantivy's background merges would merge them
        // piecemeal and compete with searches for the CPU; merge them into one segment instead,
        // once, below. Incremental writes afterwards use the default log merge policy again.
        writer.set_merge_policy(Box::new(NoMergePolicy));
        let committed = self.shared.commit_locked(writer);
        if committed.is_ok() {
            self.merge_into_one_segment(writer);
        }
        writer.set_merge_policy(Box::new(LogMergePolicy::default()));
        committed?;
        drop(guard);
        self.created_fresh.store(false, Ordering::Release);
        Ok(())
    }

    /// Merges every segment into one and waits for it. A search visits every segment (term
    /// dictionaries, automata, scorers, collectors), so one large segment answers much faster than
    /// the dozen a bulk load leaves behind. A failure only costs speed, so it is logged, not returned.
    fn merge_into_one_segment(&self, writer: &mut IndexWriter) {
        let merged = (|| -> Result<(), SearchError> {
            let segment_ids = writer.index().searchable_segment_ids()?;
            if segment_ids.len() > 1 {
                writer.merge(&segment_ids).wait()?;
                self.shared.reader.reload()?;
                self.shared.generation.fetch_add(1, Ordering::AcqRel);
            }
            Ok(())
        })();
        if let Err(error) = merged {
            tracing::warn!(%error, "merging the rebuilt search index into one segment failed");
        }
    }

    /// Commits pending writes and makes them searchable now.
    pub fn flush(&self) -> Result<(), SearchError> {
        self.shared.with_writer(|writer| self.shared.commit_locked(writer))
    }

    /// Commits what is pending and lets go of the index now: its writer, and with it the
    /// directory's lock, is dropped (after its merges), not when the last handle is. Searches
    /// still answer; later writes are refused. A server stopping calls it, so the same directory
    /// can be opened again at once.
    pub fn close(&self) -> Result<(), SearchError> {
        let taken = lock(&self.shared.writer).take();
        let Some(mut writer) = taken else { return Ok(()) };
        let committed = self.shared.commit_locked(&mut writer);
        writer.wait_merging_threads()?;
        committed
    }

    /// Events currently searchable (committed writes only).
    pub fn doc_count(&self) -> u64 {
        self.shared.reader.searcher().num_docs()
    }

    /// Whether the caller should [`rebuild`](Self::rebuild) from its catalog: the index was just
    /// created (missing or unusable on disk) or its size differs from the number of events that
    /// should be searchable (`catalog_event_count`, cancelled events excluded).
    pub fn needs_rebuild(&self, catalog_event_count: u64) -> bool {
        let created_fresh = self.created_fresh.load(Ordering::Acquire);
        (created_fresh && catalog_event_count > 0) || self.doc_count() != catalog_event_count
    }

    pub fn search(&self, query: &SearchQuery) -> Result<SearchPage, SearchError> {
        let plan =
            QueryPlan::new(query, &mut self.text_analyzer.clone(), &mut self.keyword_analyzer.clone(), now_ms())?;
        // Read the generation before taking a searcher: the searcher is then at least that new,
        // and a page cached under an old generation is only ever discarded, never wrongly served.
        let generation = self.shared.generation.load(Ordering::Acquire);
        let Some(cache) = &self.cache else {
            return self.execute(&plan);
        };
        if let Some(cached) = lock(cache).get(&plan) {
            if cached.generation == generation {
                return Ok(cached.page.clone());
            }
        }
        let page = self.execute(&plan)?;
        lock(cache).put(plan, CachedPage { generation, page: page.clone() });
        Ok(page)
    }

    fn execute(&self, plan: &QueryPlan) -> Result<SearchPage, SearchError> {
        let searcher = self.shared.reader.searcher();
        let fields = self.shared.fields;
        let tiers = plan.to_tantivy(&fields, &searcher)?;

        let offset = u64::from(plan.offset);
        let page_size = u64::from(plan.page_size);
        assert!(offset < limits::RESULT_DEPTH_MAX, "page token decoding bounds the offset");
        // Hits from the top that this page needs: the ones before it, its own, and one more that
        // tells whether there is a next page.
        let wanted = (offset + page_size + 1).min(limits::RESULT_DEPTH_MAX) as usize;
        let scoring = plan.sort == SortOrder::Relevance;
        let (after, before) = (plan.starts_after_ms, plan.starts_before_ms);
        let mut ranked = walk(&searcher, tiers.full.as_ref(), scoring, tiers.full_score_max, after, before, wanted)?;
        if ranked.len() < wanted {
            if let Some(partial) = &tiers.partial {
                let still_wanted = wanted - ranked.len();
                let score_max = tiers.partial_score_max;
                ranked.extend(walk(&searcher, partial.as_ref(), scoring, score_max, after, before, still_wanted)?);
            }
        }
        let ranked: Vec<Candidate> = ranked.into_iter().skip(offset as usize).collect();

        let has_more = ranked.len() as u64 > page_size;
        let mut hits = Vec::with_capacity(ranked.len().min(page_size as usize));
        for Candidate { score, address, .. } in ranked.into_iter().take(page_size as usize) {
            let document: TantivyDocument = searcher.doc(address)?;
            let event_id = document
                .get_first(fields.event_id)
                .and_then(|value| value.as_str())
                .ok_or_else(|| SearchError::Index(format!("document {address:?} has no event_id")))?;
            hits.push(SearchHit { event_id: event_id.to_owned(), score });
        }
        let next_page_token = has_more.then(|| {
            let next_offset = offset + page_size;
            debug_assert!(next_offset < limits::RESULT_DEPTH_MAX);
            PageToken { offset: next_offset as u32, query_fingerprint: plan.query_fingerprint }.encode()
        });
        Ok(SearchPage { hits, next_page_token })
    }
}

/// A hit found by [`walk`]. Ordered best first: higher score, then earlier start, then smaller
/// event hash (the document address only makes the order total for the heap).
#[derive(Clone, Copy, Debug)]
struct Candidate {
    score: f32,
    start: i64,
    order: u64,
    address: DocAddress,
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.start.cmp(&other.start))
            .then(self.order.cmp(&other.order))
            .then(self.address.cmp(&other.address))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Candidate {}

/// The best `limit` hits of `query` (best first) among events starting in `[after, before)`:
/// by score, then start, then event hash when `scoring`; by start, then event hash otherwise.
///
/// Every segment is sorted by `starts_at` (the index's sort field), so document order is start
/// order. A binary search over the `starts_at` column finds the first document in range, the
/// query's matches are walked from there, and the walk stops at the end of the range, or as soon
/// as it holds `limit` hits that all have the best score possible (`score_max`; always, when not
/// scoring) and the start has moved past the worst of them: every later document starts later and
/// cannot score more, so it cannot rank higher. A query whose first matches score the maximum,
/// the common case for one or two words and for anything by date, costs the hits it returns
/// rather than every match.
fn walk(
    searcher: &Searcher,
    query: &dyn Query,
    scoring: bool,
    score_max: f32,
    after_ms: Option<i64>,
    before_ms: Option<i64>,
    limit: usize,
) -> Result<Vec<Candidate>, SearchError> {
    let enable_scoring = if scoring {
        EnableScoring::enabled_from_searcher(searcher)
    } else {
        EnableScoring::disabled_from_searcher(searcher)
    };
    let score_max = if scoring { score_max } else { 0.0 };
    let weight = query.weight(enable_scoring)?;
    // The worst kept hit on top.
    let mut kept: BinaryHeap<Candidate> = BinaryHeap::with_capacity(limit + 1);
    for (segment_ord, reader) in searcher.segment_readers().iter().enumerate() {
        let fast_fields = reader.fast_fields();
        let starts_at = fast_fields.i64("starts_at")?;
        let event_order = fast_fields.u64("event_order")?;
        let start_of = |doc: DocId| starts_at.first(doc).unwrap_or(i64::MIN);
        let max_doc = reader.max_doc();
        let first_in_range = match after_ms {
            Some(after) => first_doc_at_or_after(max_doc, |doc| start_of(doc) >= after),
            None => 0,
        };
        if first_in_range >= max_doc {
            continue;
        }
        let alive = reader.alive_bitset();
        let mut scorer = weight.scorer(reader, 1.0)?;
        let mut doc = scorer.doc();
        if doc < first_in_range {
            doc = scorer.seek(first_in_range);
        }
        while doc != TERMINATED {
            let start = start_of(doc);
            if before_ms.is_some_and(|before| start >= before) {
                break;
            }
            let worst = if kept.len() >= limit { kept.peek().copied() } else { None };
            if let Some(worst) = worst {
                if worst.score >= score_max && start > worst.start {
                    break;
                }
            }
            if alive.is_none_or(|alive| alive.is_alive(doc)) {
                let score = if scoring { scorer.score() } else { 0.0 };
                debug_assert!(score <= score_max, "score {score} above the tier's maximum {score_max}");
                // Cheap test first: a hit that scores less than the worst kept one, or as much but
                // starts later, cannot enter (the event hash is only read for the ones that might).
                let may_enter =
                    worst.is_none_or(|worst| score > worst.score || (score == worst.score && start <= worst.start));
                if may_enter {
                    let candidate = Candidate {
                        score,
                        start,
                        order: event_order.first(doc).unwrap_or(0),
                        address: DocAddress::new(segment_ord as u32, doc),
                    };
                    if worst.is_none() {
                        kept.push(candidate);
                    } else if worst.is_some_and(|worst| candidate < worst) {
                        kept.pop();
                        kept.push(candidate);
                    }
                }
            }
            doc = scorer.advance();
        }
    }
    Ok(kept.into_sorted_vec())
}

/// The smallest document id in `0..max_doc` for which `reached` holds, or `max_doc`; `reached`
/// must be false then true along the ids (the index is sorted by start).
fn first_doc_at_or_after(max_doc: DocId, reached: impl Fn(DocId) -> bool) -> DocId {
    let (mut low, mut high) = (0, max_doc);
    while low < high {
        let middle = low + (high - low) / 2;
        if reached(middle) {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    low
}

impl Shared {
    fn mark_dirty(&self) {
        let mut state = lock(&self.commit_state);
        if !state.dirty {
            state.dirty = true;
            self.commit_wake.notify_one();
        }
    }

    /// Runs `work` on the writer, under its lock; refused once the index is closed.
    fn with_writer<R>(&self, work: impl FnOnce(&mut IndexWriter) -> Result<R, SearchError>) -> Result<R, SearchError> {
        let mut guard = lock(&self.writer);
        work(guard.as_mut().ok_or_else(closed)?)
    }

    /// Commits and reloads; the caller holds the writer lock, so no write can slip in between the
    /// dirty flag being cleared and the commit that covers it.
    fn commit_locked(&self, writer: &mut IndexWriter) -> Result<(), SearchError> {
        lock(&self.commit_state).dirty = false;
        let committed = writer.commit().map_err(SearchError::from).and_then(|_| {
            self.reader.reload()?;
            Ok(())
        });
        if committed.is_err() {
            // Let the committer try again later rather than losing the writes' visibility.
            lock(&self.commit_state).dirty = true;
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        committed
    }
}

fn commit_loop(shared: &Shared, commit_interval: Duration) {
    loop {
        {
            let state = lock(&shared.commit_state);
            let state = shared
                .commit_wake
                .wait_while(state, |state| !state.dirty && !state.shutdown)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if state.shutdown {
                return;
            }
            // Gather the burst; a shutdown cuts the wait short and the final flush in `drop`
            // commits what is pending.
            let (state, _) = shared
                .commit_wake
                .wait_timeout_while(state, commit_interval, |state| !state.shutdown)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if state.shutdown {
                return;
            }
        }
        let mut guard = lock(&shared.writer);
        let Some(writer) = guard.as_mut() else { return };
        if let Err(error) = shared.commit_locked(writer) {
            tracing::error!(%error, "search index commit failed");
            drop(guard);
            // Back off so a failing disk does not turn into a busy loop.
            std::thread::sleep(commit_interval);
        }
    }
}

impl Drop for SearchIndex {
    fn drop(&mut self) {
        {
            let mut state = lock(&self.shared.commit_state);
            state.shutdown = true;
            self.shared.commit_wake.notify_all();
        }
        if let Some(committer) = self.committer.take() {
            let _ = committer.join();
        }
        if lock(&self.shared.commit_state).dirty && lock(&self.shared.writer).is_some() {
            if let Err(error) = self.flush() {
                tracing::error!(%error, "final search index commit failed");
            }
        }
    }
}
