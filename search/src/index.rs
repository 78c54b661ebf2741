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

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lru::LruCache;
use tantivy::collector::sort_key::{SortBySimilarityScore, SortByStaticFastValue};
use tantivy::collector::TopDocs;
use tantivy::columnar::StrColumn;
use tantivy::indexer::{LogMergePolicy, NoMergePolicy};
use tantivy::query::AllQuery;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyError, Term};

use crate::error::SearchError;
use crate::limits;
use crate::page_token::PageToken;
use crate::query::{QueryPlan, RankKey, SearchHit, SearchPage, SearchQuery, SortOrder};
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
    /// an upsert's delete and add must not be split by a commit.
    writer: Mutex<IndexWriter>,
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
        let index = Index::create_in_dir(path, schema::build_schema())?;
        Self::start(finish_open(index, &config)?, true, config)
    }

    /// An index that lives in memory only; for tests and single-process setups.
    pub fn in_memory() -> Result<Self, SearchError> {
        Self::in_memory_with_config(SearchConfig::default())
    }

    pub fn in_memory_with_config(config: SearchConfig) -> Result<Self, SearchError> {
        let index = Index::create_in_ram(schema::build_schema());
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
            writer: Mutex::new(writer),
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
        {
            let writer = lock(&self.shared.writer);
            writer.delete_term(Term::from_field_text(fields.event_id, &event.event_id));
            writer.add_document(document)?;
        }
        self.shared.mark_dirty();
        Ok(())
    }

    /// Removes the event (cancelled, deleted). Removing an unknown id is not an error.
    pub fn remove(&self, event_id: &str) -> Result<(), SearchError> {
        {
            let writer = lock(&self.shared.writer);
            writer.delete_term(Term::from_field_text(self.shared.fields.event_id, event_id));
        }
        self.shared.mark_dirty();
        Ok(())
    }

    /// Replaces the whole index with `events` in one commit: searches see the old contents until
    /// the new ones are complete. On error the index is left as it was.
    pub fn rebuild(&self, events: impl Iterator<Item = EventDocument>) -> Result<(), SearchError> {
        let fields = &self.shared.fields;
        let mut keyword_analyzer = self.keyword_analyzer.clone();
        let mut writer = lock(&self.shared.writer);
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
        let committed = self.shared.commit_locked(&mut writer);
        if committed.is_ok() {
            self.merge_into_one_segment(&mut writer);
        }
        writer.set_merge_policy(Box::new(LogMergePolicy::default()));
        committed?;
        drop(writer);
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
        let mut writer = lock(&self.shared.writer);
        self.shared.commit_locked(&mut writer)
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
        let query = plan.to_tantivy(&fields, &searcher)?;

        let offset = u64::from(plan.offset);
        let page_size = u64::from(plan.page_size);
        assert!(offset < limits::RESULT_DEPTH_MAX, "page token decoding bounds the offset");
        // One extra hit tells whether there is a next page.
        let fetch = (page_size + 1).min(limits::RESULT_DEPTH_MAX - offset);
        // Ties on the first key are broken by the start, then by the event hash, so the order is
        // total. The keys are tuples of tantivy sort keys, which it evaluates lazily: the two
        // fast-field reads only happen for a document whose first key reaches the current top-k
        // threshold, instead of for every match (they were 9% of the profile).
        let starts_at = || (SortByStaticFastValue::<i64>::for_field("starts_at"), Order::Asc);
        let event_order = || (SortByStaticFastValue::<u64>::for_field("event_order"), Order::Asc);
        let top = TopDocs::with_limit(fetch as usize).and_offset(offset as usize);
        let ranked: Vec<(RankKey, DocAddress)> = match plan.sort {
            SortOrder::Relevance => {
                let collector = top.order_by(((SortBySimilarityScore, Order::Desc), (starts_at(), event_order())));
                let found = searcher.search(query.as_ref(), &collector)?;
                found
                    .into_iter()
                    .map(|((score, (starts_at_ms, order)), address)| {
                        let key = QueryPlan::rank_key(
                            SortOrder::Relevance,
                            score,
                            starts_at_ms.unwrap_or(0),
                            order.unwrap_or(0),
                        );
                        (key, address)
                    })
                    .collect()
            }
            // No score is needed: the collector says so, so tantivy builds the query without
            // scoring (no BM25, no score sums), and hits report a score of 0.
            SortOrder::Date => {
                let collector = top.order_by((starts_at(), event_order()));
                let found = searcher.search(query.as_ref(), &collector)?;
                found
                    .into_iter()
                    .map(|((starts_at_ms, order), address)| {
                        let key =
                            QueryPlan::rank_key(SortOrder::Date, 0.0, starts_at_ms.unwrap_or(0), order.unwrap_or(0));
                        (key, address)
                    })
                    .collect()
            }
        };

        let has_more = ranked.len() as u64 > page_size;
        let mut event_id_columns: HashMap<u32, StrColumn> = HashMap::new();
        let mut hits = Vec::with_capacity(ranked.len().min(page_size as usize));
        for (rank_key, address) in ranked.into_iter().take(page_size as usize) {
            let column = match event_id_columns.entry(address.segment_ord) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    let column = searcher
                        .segment_reader(address.segment_ord)
                        .fast_fields()
                        .str("event_id")?
                        .ok_or_else(|| SearchError::Index("event_id column missing".into()))?;
                    entry.insert(column)
                }
            };
            let mut event_id = String::new();
            let found = match column.term_ords(address.doc_id).next() {
                Some(ordinal) => column.ord_to_str(ordinal, &mut event_id)?,
                None => false,
            };
            if !found {
                return Err(SearchError::Index(format!("document {address:?} has no event_id")));
            }
            hits.push(SearchHit { event_id, score: rank_key.3 });
        }
        let next_page_token = has_more.then(|| {
            let next_offset = offset + page_size;
            debug_assert!(next_offset < limits::RESULT_DEPTH_MAX);
            PageToken { offset: next_offset as u32, query_fingerprint: plan.query_fingerprint }.encode()
        });
        Ok(SearchPage { hits, next_page_token })
    }
}

impl Shared {
    fn mark_dirty(&self) {
        let mut state = lock(&self.commit_state);
        if !state.dirty {
            state.dirty = true;
            self.commit_wake.notify_one();
        }
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
        let mut writer = lock(&shared.writer);
        if let Err(error) = shared.commit_locked(&mut writer) {
            tracing::error!(%error, "search index commit failed");
            drop(writer);
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
        if lock(&self.shared.commit_state).dirty {
            if let Err(error) = self.flush() {
                tracing::error!(%error, "final search index commit failed");
            }
        }
    }
}
