//! End-to-end tests of `SearchIndex` over a real tantivy index (in memory or in a temp dir).

use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use turnstile_search::{EventDocument, SearchError, SearchIndex, SearchQuery, SortOrder};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn event(event_id: &str, name: &str) -> EventDocument {
    EventDocument {
        event_id: event_id.into(),
        name: name.into(),
        description: String::new(),
        category: "Concert".into(),
        venue_id: "ven_default".into(),
        venue_name: "Town Hall".into(),
        city: "Springfield".into(),
        performer_ids: Vec::new(),
        performer_names: Vec::new(),
        starts_at_ms: now_ms() + 30 * DAY_MS,
    }
}

fn index_with(events: &[EventDocument]) -> SearchIndex {
    let index = SearchIndex::in_memory().unwrap();
    for event in events {
        index.upsert(event).unwrap();
    }
    index.flush().unwrap();
    index
}

fn ids(index: &SearchIndex, query: &SearchQuery) -> Vec<String> {
    index.search(query).unwrap().hits.into_iter().map(|hit| hit.event_id).collect()
}

fn invalid_field(result: Result<impl std::fmt::Debug, SearchError>) -> &'static str {
    match result {
        Err(SearchError::InvalidArgument { field, .. }) => field,
        other => panic!("expected an invalid argument, got {other:?}"),
    }
}

#[test]
fn exact_match_ranks_above_fuzzy_match() {
    let index =
        index_with(&[event("evt_fuzzy", "Tayler Swifty Tribute Night"), event("evt_exact", "Taylor Swift Live")]);
    let found = ids(&index, &SearchQuery::text("taylor swift"));
    assert_eq!(found, ["evt_exact", "evt_fuzzy"]);
}

#[test]
fn name_match_ranks_above_description_match() {
    let mut in_description = event("evt_description", "An Evening Downtown");
    in_description.description = "A relaxed evening with jazz standards and a late bar".into();
    let index = index_with(&[in_description, event("evt_name", "Jazz at Midnight")]);
    let found = ids(&index, &SearchQuery::text("jazz"));
    assert_eq!(found, ["evt_name", "evt_description"]);
}

#[test]
fn typos_find_performers() {
    let mut eras = event("evt_eras", "The Eras Tour");
    eras.performer_names = vec!["Taylor Swift".into()];
    let index = index_with(&[eras, event("evt_other", "Symphony in Blue")]);
    assert_eq!(ids(&index, &SearchQuery::text("tayler swift")), ["evt_eras"]);
    assert_eq!(ids(&index, &SearchQuery::text("TAYLRO swfit")), ["evt_eras"]);
}

#[test]
fn last_term_matches_as_prefix() {
    let mut garden = event("evt_garden", "Knicks vs Celtics");
    garden.venue_name = "Madison Square Garden".into();
    garden.city = "New York".into();
    let index = index_with(&[garden, event("evt_other", "Madison County Fair")]);
    assert_eq!(ids(&index, &SearchQuery::text("madison sq")), ["evt_garden"]);
    // Accents and case fold away on both sides.
    assert_eq!(ids(&index, &SearchQuery::text("MÁDISON squ")), ["evt_garden"]);
}

#[test]
fn date_range_filters_and_date_sort() {
    let base_ms = now_ms() + DAY_MS;
    let events: Vec<EventDocument> = (0..10)
        .map(|day| {
            let mut show = event(&format!("evt_{day}"), "Comedy Club");
            show.starts_at_ms = base_ms + day * DAY_MS;
            show
        })
        .collect();
    let index = index_with(&events);
    let query = SearchQuery {
        text: "comedy".into(),
        starts_after_ms: Some(base_ms + 3 * DAY_MS),
        starts_before_ms: Some(base_ms + 6 * DAY_MS),
        sort: SortOrder::Date,
        ..SearchQuery::default()
    };
    assert_eq!(ids(&index, &query), ["evt_3", "evt_4", "evt_5"]);

    let inverted = SearchQuery {
        starts_after_ms: Some(base_ms + 6 * DAY_MS),
        starts_before_ms: Some(base_ms + 3 * DAY_MS),
        ..query
    };
    assert_eq!(invalid_field(index.search(&inverted)), "starts_before");
}

#[test]
fn empty_text_lists_upcoming_events_by_date() {
    let now = now_ms();
    let mut past = event("evt_past", "Yesterday's Show");
    past.starts_at_ms = now - DAY_MS;
    let mut later = event("evt_later", "Later Show");
    later.starts_at_ms = now + 5 * DAY_MS;
    let mut soon = event("evt_soon", "Soon Show");
    soon.starts_at_ms = now + DAY_MS;
    let index = index_with(&[past, later, soon]);
    assert_eq!(ids(&index, &SearchQuery::default()), ["evt_soon", "evt_later"]);
    // An explicit lower bound replaces "now".
    let since_last_week = SearchQuery { starts_after_ms: Some(now - 7 * DAY_MS), ..SearchQuery::default() };
    assert_eq!(ids(&index, &since_last_week), ["evt_past", "evt_soon", "evt_later"]);
}

#[test]
fn exact_filters() {
    let mut paris = event("evt_paris", "Orchestra Night");
    paris.city = "Paris".into();
    paris.venue_id = "ven_paris".into();
    paris.category = "Classical".into();
    paris.performer_ids = vec!["prf_orchestra".into(), "prf_soloist".into()];
    let mut lyon = event("evt_lyon", "Orchestra Night");
    lyon.city = "Lyon".into();
    lyon.venue_id = "ven_lyon".into();
    lyon.category = "Classical Crossover".into();
    lyon.performer_ids = vec!["prf_orchestra".into()];
    let index = index_with(&[paris, lyon]);

    let filtered = |edit: fn(&mut SearchQuery)| {
        let mut query = SearchQuery { text: "orchestra".into(), sort: SortOrder::Date, ..SearchQuery::default() };
        edit(&mut query);
        let mut found = ids(&index, &query);
        found.sort();
        found
    };
    assert_eq!(filtered(|query| query.city = Some("  PARIS ".into())), ["evt_paris"]);
    assert_eq!(filtered(|query| query.venue_id = Some("ven_lyon".into())), ["evt_lyon"]);
    assert_eq!(filtered(|query| query.venue_id = Some("VEN_LYON".into())), Vec::<String>::new());
    assert_eq!(filtered(|query| query.category = Some("classical".into())), ["evt_paris"]);
    assert_eq!(filtered(|query| query.performer_id = Some("prf_orchestra".into())), ["evt_lyon", "evt_paris"]);
    assert_eq!(filtered(|query| query.performer_id = Some("prf_soloist".into())), ["evt_paris"]);
    // An empty filter is no filter.
    assert_eq!(filtered(|query| query.city = Some(String::new())), ["evt_lyon", "evt_paris"]);
    // Filters work without text too.
    let query = SearchQuery { city: Some("lyon".into()), ..SearchQuery::default() };
    assert_eq!(ids(&index, &query), ["evt_lyon"]);
}

/// 250 events with many tied scores and dates, so only the event-id tiebreak makes the order total.
fn paging_index() -> (SearchIndex, HashSet<String>) {
    let base_ms = now_ms() + DAY_MS;
    let names = ["Rock Festival", "Rock Festival Encore", "Indie Rock Evening"];
    let events: Vec<EventDocument> = (0..250)
        .map(|number| {
            let mut show = event(&format!("evt_{number:03}"), names[number % names.len()]);
            show.starts_at_ms = base_ms + (number % 10) as i64 * DAY_MS;
            show
        })
        .collect();
    let expected = events.iter().map(|show| show.event_id.clone()).collect();
    (index_with(&events), expected)
}

fn collect_all_pages(index: &SearchIndex, mut query: SearchQuery) -> Vec<String> {
    let mut collected = Vec::new();
    for _ in 0..100 {
        let page = index.search(&query).unwrap();
        assert!(page.hits.len() <= query.page_size as usize);
        collected.extend(page.hits.into_iter().map(|hit| hit.event_id));
        match page.next_page_token {
            Some(token) => query.page_token = Some(token),
            None => return collected,
        }
    }
    panic!("paging did not end");
}

#[test]
fn paging_has_no_duplicates_or_gaps() {
    let (index, expected) = paging_index();
    for sort in [SortOrder::Relevance, SortOrder::Date] {
        let query = SearchQuery { text: "rock".into(), sort, page_size: 7, ..SearchQuery::default() };
        let collected = collect_all_pages(&index, query);
        let unique: HashSet<String> = collected.iter().cloned().collect();
        assert_eq!(collected.len(), 250, "{sort:?}: duplicates or gaps");
        assert_eq!(unique, expected, "{sort:?}");
    }
    let listing = SearchQuery { page_size: 7, ..SearchQuery::default() };
    assert_eq!(collect_all_pages(&index, listing).len(), 250);
}

#[test]
fn page_size_bounds() {
    let (index, _) = paging_index();
    let page = index.search(&SearchQuery::text("rock")).unwrap();
    assert_eq!(page.hits.len(), 20);
    let query = SearchQuery { text: "rock".into(), page_size: 100, ..SearchQuery::default() };
    assert_eq!(index.search(&query).unwrap().hits.len(), 100);
    let too_big = SearchQuery { page_size: 101, ..query };
    assert_eq!(invalid_field(index.search(&too_big)), "page_size");
}

#[test]
fn bad_page_tokens_are_rejected() {
    let (index, _) = paging_index();
    let first = index.search(&SearchQuery::text("rock")).unwrap();
    let token = first.next_page_token.unwrap();
    let other_query = SearchQuery { page_token: Some(token.clone()), ..SearchQuery::text("festival") };
    assert_eq!(invalid_field(index.search(&other_query)), "page_token");
    for garbage in ["x", "not a token", "////", "AQAAAAAAAAAAAAAAAA", "🎸"] {
        let query = SearchQuery { page_token: Some(garbage.into()), ..SearchQuery::text("rock") };
        assert_eq!(invalid_field(index.search(&query)), "page_token", "{garbage}");
    }
    // The same token with a different page size is still the same query.
    let resized = SearchQuery { page_token: Some(token), page_size: 3, ..SearchQuery::text("rock") };
    assert_eq!(index.search(&resized).unwrap().hits.len(), 3);
}

#[test]
fn too_long_query_is_rejected() {
    let index = index_with(&[]);
    assert_eq!(invalid_field(index.search(&SearchQuery::text("a".repeat(257)))), "query");
}

#[test]
fn upsert_replace_and_remove_are_visible_after_flush() {
    let index = index_with(&[event("evt_1", "Opera Gala")]);
    assert_eq!(ids(&index, &SearchQuery::text("opera")), ["evt_1"]);

    index.upsert(&event("evt_1", "Ballet Gala")).unwrap();
    index.flush().unwrap();
    assert!(ids(&index, &SearchQuery::text("opera")).is_empty());
    assert_eq!(ids(&index, &SearchQuery::text("ballet")), ["evt_1"]);
    assert_eq!(index.doc_count(), 1);

    index.remove("evt_1").unwrap();
    index.flush().unwrap();
    assert!(ids(&index, &SearchQuery::text("ballet")).is_empty());
    assert_eq!(index.doc_count(), 0);
    assert_eq!(invalid_field(index.upsert(&event("", "Nameless"))), "event_id");
}

fn wait_until(deadline: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < deadline {
        if done() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[test]
fn background_committer_makes_writes_visible_within_a_second() {
    let index = index_with(&[]);
    // Warm the cache with the empty answer: it must not hide the write.
    assert!(ids(&index, &SearchQuery::text("marathon")).is_empty());

    index.upsert(&event("evt_run", "City Marathon")).unwrap();
    let visible_after =
        wait_until(Duration::from_secs(2), || ids(&index, &SearchQuery::text("marathon")) == ["evt_run"])
            .expect("upsert never became visible");
    assert!(visible_after <= Duration::from_secs(1), "took {visible_after:?}");

    index.remove("evt_run").unwrap();
    let gone_after = wait_until(Duration::from_secs(2), || ids(&index, &SearchQuery::text("marathon")).is_empty())
        .expect("remove never became visible");
    assert!(gone_after <= Duration::from_secs(1), "took {gone_after:?}");
}

#[test]
fn reopens_existing_index_and_recreates_missing_or_corrupt_one() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("search");
    let events = vec![event("evt_a", "Film Night"), event("evt_b", "Poetry Slam")];
    {
        let index = SearchIndex::open_in_dir(&path).unwrap();
        assert!(index.needs_rebuild(2));
        index.rebuild(events.clone().into_iter()).unwrap();
        assert!(!index.needs_rebuild(2));
        // Pending at drop: the final commit keeps it.
        index.upsert(&event("evt_c", "Magic Show")).unwrap();
    }
    {
        let index = SearchIndex::open_in_dir(&path).unwrap();
        assert_eq!(index.doc_count(), 3);
        assert!(!index.needs_rebuild(3));
        assert!(index.needs_rebuild(4), "an index behind the catalog needs a rebuild");
        assert_eq!(ids(&index, &SearchQuery::text("poetry")), ["evt_b"]);
    }

    std::fs::remove_dir_all(&path).unwrap();
    {
        let index = SearchIndex::open_in_dir(&path).unwrap();
        assert_eq!(index.doc_count(), 0);
        assert!(index.needs_rebuild(2));
        index.rebuild(events.clone().into_iter()).unwrap();
        assert_eq!(index.doc_count(), 2);
        assert_eq!(ids(&index, &SearchQuery::text("film")), ["evt_a"]);
    }

    std::fs::write(path.join("meta.json"), b"{ not json").unwrap();
    let index = SearchIndex::open_in_dir(&path).unwrap();
    assert_eq!(index.doc_count(), 0);
    assert!(index.needs_rebuild(2));
}

#[test]
fn rebuild_replaces_everything() {
    let index = index_with(&[event("evt_old", "Old Show")]);
    index.upsert(&event("evt_pending", "Pending Show")).unwrap();
    index.rebuild(vec![event("evt_new", "New Show")].into_iter()).unwrap();
    assert_eq!(ids(&index, &SearchQuery::text("show")), ["evt_new"]);

    // A failed rebuild leaves the index as it was.
    let broken = vec![event("evt_x", "X Show"), event("", "No Id")];
    assert_eq!(invalid_field(index.rebuild(broken.into_iter())), "event_id");
    index.flush().unwrap();
    assert_eq!(ids(&index, &SearchQuery::text("show")), ["evt_new"]);
}

static SHARED_INDEX: LazyLock<SearchIndex> = LazyLock::new(|| {
    let mut garden = event("evt_garden", "Knicks vs Celtics");
    garden.venue_name = "Madison Square Garden".into();
    let mut eras = event("evt_eras", "The Eras Tour");
    eras.performer_names = vec!["Taylor Swift".into()];
    eras.description = "Ünïcödé — 東京ドーム 🎤 \"quoted\" name:value (a OR b) AND c*".into();
    index_with(&[garden, eras, event("evt_jazz", "Jazz at Midnight")])
});

fn query_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(
            prop_oneof![
                Just("\"".to_string()),
                Just(":".to_string()),
                Just("[".to_string()),
                Just("]".to_string()),
                Just("{".to_string()),
                Just("*".to_string()),
                Just("~2".to_string()),
                Just("^3".to_string()),
                Just(" AND ".to_string()),
                Just(" OR ".to_string()),
                Just(" NOT ".to_string()),
                Just("-".to_string()),
                Just("\\".to_string()),
                Just("tayler".to_string()),
                Just("madison".to_string()),
                Just("東京".to_string()),
                Just("🎤".to_string()),
                Just(" ".to_string()),
                "[a-z]{1,12}",
            ],
            0..60,
        )
        .prop_map(|parts| parts.concat()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_text_never_fails(
        text in query_text(),
        token in proptest::option::of(any::<String>()),
        city in proptest::option::of(any::<String>()),
        sort_by_date in any::<bool>(),
    ) {
        let query = SearchQuery {
            text: text.clone(),
            city,
            sort: if sort_by_date { SortOrder::Date } else { SortOrder::Relevance },
            page_token: token.clone(),
            ..SearchQuery::default()
        };
        match SHARED_INDEX.search(&query) {
            Ok(page) => prop_assert!(page.hits.len() <= 20),
            Err(SearchError::InvalidArgument { field: "query", .. }) => {
                prop_assert!(text.chars().count() > 256)
            }
            Err(SearchError::InvalidArgument { field: "page_token", .. }) => {
                prop_assert!(token.is_some_and(|token| !token.is_empty()))
            }
            Err(SearchError::InvalidArgument { field: "city", .. }) => {
                prop_assert!(query.city.is_some_and(|city| city.chars().count() > 256))
            }
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }
}

/// Events that match every word of a query come before events that miss one, whatever their
/// scores, and paging crosses from the first group into the second without duplicates or gaps.
#[test]
fn full_matches_rank_above_partial_matches() {
    // Two of three words, each in the name (the heaviest field), three times over.
    let strong_partial = event("evt_strong", "Berlin Jazz Berlin Jazz Berlin Jazz");
    // All three words, but only in the description (the lightest field).
    let mut weak_full = event("evt_weak", "An Evening");
    weak_full.description = "berlin jazz orchestra".into();
    let mut other = event("evt_other", "Orchestra Night");
    other.city = "Berlin".into();
    let unrelated = event("evt_unrelated", "Comedy Hour");
    let index = index_with(&[strong_partial, weak_full, other, unrelated]);

    let query = SearchQuery::text("berlin jazz orchestra");
    let first = ids(&index, &query);
    assert_eq!(first[0], "evt_weak", "the only event with every word ranks first: {first:?}");
    assert_eq!(first.len(), 3, "two events miss one word each and still match: {first:?}");
    assert!(!first.contains(&"evt_unrelated".to_string()));

    let paged = collect_all_pages(&index, SearchQuery { page_size: 1, ..query.clone() });
    assert_eq!(paged, first, "page by page gives the same order");
    let by_date = collect_all_pages(&index, SearchQuery { page_size: 1, sort: SortOrder::Date, ..query });
    assert_eq!(by_date[0], "evt_weak", "by date too, full matches come first");
    assert_eq!(by_date.len(), 3);
}

/// Date-ordered search walks the index in start order (it is sorted by start) and stops early.
/// Checked against a brute-force answer over several segments, replaced documents (deleted
/// versions still in their segments) and many equal start times.
#[test]
fn date_order_is_exact_across_segments_and_updates() {
    let base_ms = now_ms() + DAY_MS;
    let index = SearchIndex::in_memory().unwrap();
    let mut current: std::collections::BTreeMap<String, EventDocument> = Default::default();
    // Five commits, so five segments; each moves some earlier events to new dates.
    for round in 0..5u64 {
        for number in 0..60u64 {
            let id = format!("evt_{:03}", (round * 37 + number * 11) % 150);
            let mut show = event(&id, if number % 3 == 0 { "Rock Night" } else { "Jazz Night" });
            // Few distinct starts: ties everywhere.
            show.starts_at_ms = base_ms + ((number * 7 + round * 5) % 12) as i64 * DAY_MS;
            index.upsert(&show).unwrap();
            current.insert(id, show);
        }
        index.flush().unwrap();
    }
    assert_eq!(index.doc_count(), current.len() as u64);

    for (text, after_day, before_day) in
        [("night", 0, 12), ("jazz", 2, 7), ("rock", 3, 4), ("", 5, 12), ("rock", 11, 30)]
    {
        let after = base_ms + after_day * DAY_MS;
        let before = base_ms + before_day * DAY_MS;
        let query = SearchQuery {
            text: text.into(),
            starts_after_ms: Some(after),
            starts_before_ms: Some(before),
            sort: SortOrder::Date,
            page_size: 4,
            ..SearchQuery::default()
        };
        let collected = collect_all_pages(&index, query);
        let expected: HashSet<String> = current
            .values()
            .filter(|show| show.starts_at_ms >= after && show.starts_at_ms < before)
            .filter(|show| text.is_empty() || show.name.to_lowercase().contains(text))
            .map(|show| show.event_id.clone())
            .collect();
        let unique: HashSet<String> = collected.iter().cloned().collect();
        assert_eq!(collected.len(), unique.len(), "{text:?}: duplicates across pages");
        assert_eq!(unique, expected, "{text:?} in days {after_day}..{before_day}");
        let starts: Vec<i64> = collected.iter().map(|id| current[id].starts_at_ms).collect();
        assert!(starts.windows(2).all(|pair| pair[0] <= pair[1]), "{text:?}: not in start order: {starts:?}");
    }
}

/// Closing lets go of the directory at once (another index opens it while the first handle
/// lives), keeps answering searches, and refuses writes; what was written before is kept.
#[test]
fn a_closed_index_frees_its_directory_and_refuses_writes() {
    let directory = tempfile::tempdir().unwrap();
    let first = SearchIndex::open_in_dir(directory.path()).unwrap();
    first.upsert(&event("evt_1", "Closing Night")).unwrap();
    assert!(SearchIndex::open_in_dir(directory.path()).is_err(), "one writer at a time");
    first.close().unwrap();
    let error = first.upsert(&event("evt_2", "Too Late")).unwrap_err();
    assert!(error.to_string().contains("closed"), "{error}");
    let query = SearchQuery { text: "closing".into(), ..SearchQuery::default() };
    assert_eq!(ids(&first, &query), ["evt_1"]);
    let second = SearchIndex::open_in_dir(directory.path()).unwrap();
    assert_eq!(ids(&second, &query), ["evt_1"], "the write before closing was committed");
}
