//! Keeps the search index in step with the catalog and answers `SearchEvents`.
//!
//! The index is fed by catalog changes: the engine announces the id of every event that is
//! created, updated or cancelled, and one indexer task writes that event's document (or removes it
//! when cancelled). On start the index is compared with the catalog and rebuilt when it is missing
//! or holds a different number of events. Tantivy work is blocking, so it runs on the blocking pool.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tonic::Status;
use turnstile_engine::ids::EventId;
use turnstile_engine::inventory::EventStatus;
use turnstile_engine::Engine;
use turnstile_proto::v1 as pb;
use turnstile_search::{catalog, SearchError, SearchIndex, SearchQuery, SortOrder};

use crate::convert;
use crate::error::invalid;

/// Opens (or creates) the index at `path`, or in memory when `None`, rebuilds it if it does not
/// match the catalog, and starts the indexer.
/// Returns the index and the indexer task, which the caller aborts when it shuts down.
pub async fn start(
    engine: &Engine,
    path: Option<PathBuf>,
) -> anyhow::Result<(Arc<SearchIndex>, tokio::task::JoinHandle<()>)> {
    // Subscribe first: a change made while the index is being checked is not missed.
    let changes = engine.subscribe_catalog_changes();
    let index = Arc::new(
        tokio::task::spawn_blocking(move || match path {
            Some(path) => SearchIndex::open_in_dir(&path),
            None => SearchIndex::in_memory(),
        })
        .await??,
    );
    let searchable =
        engine.catalog().events().iter().filter(|event| event.status != EventStatus::Cancelled).count() as u64;
    if index.needs_rebuild(searchable) {
        let started = std::time::Instant::now();
        rebuild(engine, &index).await?;
        tracing::info!(events = searchable, elapsed_ms = started.elapsed().as_millis() as u64, "search index rebuilt");
    }
    let indexer = tokio::spawn(run_indexer(engine.clone(), index.clone(), changes));
    Ok((index, indexer))
}

async fn rebuild(engine: &Engine, index: &Arc<SearchIndex>) -> Result<(), SearchError> {
    let (engine, index) = (engine.clone(), index.clone());
    tokio::task::spawn_blocking(move || index.rebuild(catalog::event_documents(engine.catalog())))
        .await
        .map_err(|error| SearchError::Index(error.to_string()))?
}

async fn run_indexer(engine: Engine, index: Arc<SearchIndex>, mut changes: tokio::sync::broadcast::Receiver<EventId>) {
    loop {
        let result = match changes.recv().await {
            Ok(event_id) => {
                let (engine, index) = (engine.clone(), index.clone());
                tokio::task::spawn_blocking(move || {
                    let Ok(event) = engine.catalog().event(&event_id) else { return Ok(()) };
                    match catalog::event_document(engine.catalog(), &event) {
                        Some(document) => index.upsert(&document),
                        None => index.remove(event_id.as_str()),
                    }
                })
                .await
                .map_err(|error| SearchError::Index(error.to_string()))
                .and_then(|result| result)
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "search indexer fell behind the catalog; rebuilding");
                rebuild(&engine, &index).await
            }
            Err(RecvError::Closed) => break,
        };
        if let Err(error) = result {
            tracing::error!(%error, "search index update failed");
        }
    }
}

fn search_status(error: SearchError) -> Status {
    match error {
        SearchError::InvalidArgument { field, reason } => invalid(field, reason),
        SearchError::Index(reason) => Status::unavailable(format!("search index: {reason}")),
    }
}

fn optional(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// Runs a search and fills each hit with its event summary and remaining availability.
pub async fn search(
    engine: &Engine,
    index: &Arc<SearchIndex>,
    request: pb::SearchEventsRequest,
) -> Result<pb::SearchEventsResponse, Status> {
    let sort = match pb::search_events_request::Sort::try_from(request.sort) {
        Ok(pb::search_events_request::Sort::Relevance) => SortOrder::Relevance,
        Ok(pb::search_events_request::Sort::Date) => SortOrder::Date,
        Err(_) => return Err(invalid("sort", format!("unknown sort order {}", request.sort))),
    };
    let query = SearchQuery {
        text: request.query,
        starts_after_ms: request.starts_after.as_ref().map(|at| convert::unix_ms("starts_after", at)).transpose()?,
        starts_before_ms: request.starts_before.as_ref().map(|at| convert::unix_ms("starts_before", at)).transpose()?,
        venue_id: optional(request.venue_id),
        performer_id: optional(request.performer_id),
        city: optional(request.city),
        category: optional(request.category),
        sort,
        page_size: request.page_size,
        page_token: optional(request.page_token),
    };
    let searcher = index.clone();
    let page = tokio::task::spawn_blocking(move || searcher.search(&query))
        .await
        .map_err(|error| Status::internal(format!("search task failed: {error}")))?
        .map_err(search_status)?;
    let catalog = engine.catalog();
    let mut events = Vec::with_capacity(page.hits.len());
    for hit in page.hits {
        let event_id = EventId::new(hit.event_id);
        // An event the index still has but the catalog no longer shows (a cancellation being
        // indexed) is left out rather than shown.
        let Ok(event) = catalog.event(&event_id) else { continue };
        if event.status == EventStatus::Cancelled {
            continue;
        }
        let venue = catalog.venue(&event.venue_id).ok();
        events.push(pb::EventSummary {
            event_id: event_id.to_string(),
            name: event.name.clone(),
            category: event.category.clone(),
            venue_name: venue.as_ref().map(|venue| venue.name.clone()).unwrap_or_default(),
            city: venue.as_ref().map(|venue| venue.city.clone()).unwrap_or_default(),
            performer_names: event
                .performer_ids
                .iter()
                .filter_map(|performer_id| catalog.performer(performer_id).ok())
                .map(|performer| performer.name.clone())
                .collect(),
            starts_at: Some(convert::timestamp(event.starts_at_ms)),
            available: engine.available_places(&event_id).await.unwrap_or(0),
            score: hit.score,
        });
    }
    Ok(pb::SearchEventsResponse { events, next_page_token: page.next_page_token.unwrap_or_default() })
}
