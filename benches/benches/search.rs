//! Event search over a generated catalog: criterion timings per query kind, then p50/p99 latency
//! of the whole query mix one query at a time (hdrhistogram) and throughput with two threads.
//! The result cache is off so every query reaches the index.
//!
//! cargo bench -p turnstile-benches --bench search
//! TURNSTILE_SEARCH_EVENTS=1000000 cargo bench -p turnstile-benches --bench search
//!
//! Events default to 100,000 so a normal run is quick; the figures in docs/SEARCH.md name the
//! size they were taken at. The generator is seeded, so every run indexes the same events.

/// The allocator the server uses (gateway/src/main.rs); `--features system-allocator` compares.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use turnstile_search::{EventDocument, SearchConfig, SearchIndex, SearchQuery, SortOrder};

const SEED: u64 = 0x0005_eed7;
const EVENTS_DEFAULT: usize = 100_000;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// 2026-01-01T00:00:00Z: a fixed origin keeps generated dates, and so results, identical.
const ORIGIN_MS: i64 = 1_767_225_600_000;
const QUERIES_PER_KIND: usize = 64;
/// Rounds of the mix in the latency report; TURNSTILE_SEARCH_ROUNDS overrides it (more rounds
/// give a profiler more queries to sample).
const LATENCY_ROUNDS_DEFAULT: usize = 5;
const THROUGHPUT_THREADS: usize = 2;
const THROUGHPUT_DURATION: Duration = Duration::from_secs(5);

const FIRST_NAMES: &[&str] = &[
    "Taylor", "Olivia", "Marcus", "Aisha", "Liam", "Sofia", "Mateo", "Chloe", "Kenji", "Amara", "Noah", "Isabella",
    "Elijah", "Freya", "Diego", "Hannah", "Yusuf", "Lucia", "Oscar", "Maya", "Gabriel", "Ingrid", "Rafael", "Zara",
    "Henrik", "Priya", "Jonah", "Camille", "Tobias", "Leila", "Santiago", "Ruby", "Felix", "Nadia", "Arjun", "Clara",
    "Malik", "Elena", "Victor", "Sienna",
];
const LAST_NAMES: &[&str] = &[
    "Swift",
    "Rodrigo",
    "Bennett",
    "Okafor",
    "Hartley",
    "Moreno",
    "Lindqvist",
    "Nakamura",
    "Dubois",
    "Kowalski",
    "Fitzgerald",
    "Abernathy",
    "Castellanos",
    "Oyelaran",
    "Whitmore",
    "Brennan",
    "Takahashi",
    "Valencia",
    "Holloway",
    "Petrov",
    "Gallagher",
    "Montgomery",
    "Adeyemi",
    "Sorensen",
    "Delacroix",
    "Harrington",
    "Rasmussen",
    "Villanueva",
    "Kensington",
    "Mbeki",
    "Fairweather",
    "Lombardi",
    "Ashworth",
    "Christensen",
    "Okonkwo",
    "Bellamy",
    "Thornton",
    "Iglesias",
    "Novak",
];
const CITIES: &[&str] = &[
    "New York",
    "Los Angeles",
    "Chicago",
    "London",
    "Paris",
    "Berlin",
    "Madrid",
    "Toronto",
    "Sydney",
    "Tokyo",
    "Amsterdam",
    "Dublin",
    "Lisbon",
    "Mexico City",
    "São Paulo",
    "Seoul",
    "Stockholm",
    "Vienna",
    "Austin",
    "Nashville",
];
const VENUE_FIRST: &[&str] = &[
    "Madison",
    "Royal",
    "Grand",
    "Crystal",
    "Liberty",
    "Harbor",
    "Empire",
    "Golden",
    "Union",
    "Riverside",
    "Summit",
    "Majestic",
];
const VENUE_SECOND: &[&str] = &[
    "Square Garden",
    "Albert Hall",
    "Arena",
    "Palace",
    "Amphitheatre",
    "Ballroom",
    "Stadium",
    "Opera House",
    "Music Hall",
    "Pavilion",
];
const CATEGORIES: &[&str] = &["Concert", "Theatre", "Comedy", "Sports", "Festival", "Opera", "Dance", "Family"];
const TOUR_WORDS: &[&str] = &[
    "Eras",
    "Midnight",
    "Homecoming",
    "Electric",
    "Northern Lights",
    "Wildflower",
    "Afterglow",
    "Renaissance",
    "Horizons",
    "Velvet",
];
const DESCRIPTION_WORDS: &[&str] = &[
    "an",
    "unforgettable",
    "night",
    "of",
    "live",
    "music",
    "with",
    "special",
    "guests",
    "acoustic",
    "set",
    "full",
    "band",
    "orchestra",
    "greatest",
    "hits",
    "new",
    "album",
    "tour",
    "family",
    "friendly",
    "doors",
    "open",
    "early",
    "limited",
    "seating",
    "standing",
    "floor",
    "encore",
];

struct Catalog {
    events: Vec<EventDocument>,
    performers: Vec<String>,
    venues: Vec<(String, String)>,
}

fn generate(events_count: usize, rng: &mut StdRng) -> Catalog {
    let performers: Vec<String> = (0..events_count.div_ceil(20).max(200))
        .map(|_| format!("{} {}", FIRST_NAMES.choose(rng).unwrap(), LAST_NAMES.choose(rng).unwrap()))
        .collect();
    let venues: Vec<(String, String)> = (0..500)
        .map(|_| {
            (
                format!("{} {}", VENUE_FIRST.choose(rng).unwrap(), VENUE_SECOND.choose(rng).unwrap()),
                CITIES.choose(rng).unwrap().to_string(),
            )
        })
        .collect();
    let events = (0..events_count)
        .map(|number| {
            let venue_index = rng.random_range(0..venues.len());
            let (venue_name, city) = venues[venue_index].clone();
            let category = CATEGORIES.choose(rng).unwrap().to_string();
            let headliner_index = rng.random_range(0..performers.len());
            let mut performer_indexes = vec![headliner_index];
            if rng.random_bool(0.3) {
                performer_indexes.push(rng.random_range(0..performers.len()));
            }
            let headliner = &performers[headliner_index];
            let name = match rng.random_range(0..3) {
                0 => format!("{headliner} Live"),
                1 => format!("{headliner}: {} Tour", TOUR_WORDS.choose(rng).unwrap()),
                _ => format!("{city} {category} Night"),
            };
            let description_words = rng.random_range(8..30);
            let description =
                (0..description_words).map(|_| *DESCRIPTION_WORDS.choose(rng).unwrap()).collect::<Vec<_>>().join(" ");
            EventDocument {
                event_id: format!("evt_{number:016x}"),
                name,
                description,
                category,
                venue_id: format!("ven_{venue_index:04}"),
                venue_name,
                city,
                performer_ids: performer_indexes.iter().map(|index| format!("prf_{index:06}")).collect(),
                performer_names: performer_indexes.iter().map(|index| performers[*index].clone()).collect(),
                starts_at_ms: ORIGIN_MS + rng.random_range(0..730 * DAY_MS),
            }
        })
        .collect();
    Catalog { events, performers, venues }
}

/// One typo: a swapped pair, a replaced letter or a dropped letter, away from the ends.
fn misspell(word: &str, rng: &mut StdRng) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    if chars.len() < 4 {
        return word.to_string();
    }
    let position = rng.random_range(1..chars.len() - 2);
    match rng.random_range(0..3) {
        0 => chars.swap(position, position + 1),
        1 => chars[position] = if chars[position] == 'e' { 'a' } else { 'e' },
        _ => {
            chars.remove(position);
        }
    }
    chars.into_iter().collect()
}

#[derive(Clone, Copy, Debug)]
enum QueryKind {
    Exact,
    MultiWord,
    Typo,
    Prefix,
    DateBounded,
}

const QUERY_KINDS: [QueryKind; 5] =
    [QueryKind::Exact, QueryKind::MultiWord, QueryKind::Typo, QueryKind::Prefix, QueryKind::DateBounded];

fn queries(kind: QueryKind, catalog: &Catalog, rng: &mut StdRng) -> Vec<SearchQuery> {
    (0..QUERIES_PER_KIND)
        .map(|_| {
            let performer = catalog.performers.choose(rng).unwrap();
            let (venue_name, city) = catalog.venues.choose(rng).unwrap();
            match kind {
                // A performer's full name, as typed.
                QueryKind::Exact => SearchQuery::text(performer.clone()),
                // Surname plus city and category: words spread over several fields.
                QueryKind::MultiWord => SearchQuery::text(format!(
                    "{} {} {}",
                    performer.split(' ').nth(1).unwrap(),
                    city,
                    CATEGORIES.choose(rng).unwrap()
                )),
                QueryKind::Typo => SearchQuery::text(
                    performer.split(' ').map(|word| misspell(word, rng)).collect::<Vec<_>>().join(" "),
                ),
                // The venue's first word and the start of the next, as while typing.
                QueryKind::Prefix => {
                    let mut words = venue_name.split(' ');
                    let first = words.next().unwrap();
                    let next: String = words.next().unwrap().chars().take(2).collect();
                    SearchQuery::text(format!("{first} {next}"))
                }
                // A category in one city over a 30-day window, by date.
                QueryKind::DateBounded => {
                    let starts_after_ms = ORIGIN_MS + rng.random_range(0..700) * DAY_MS;
                    SearchQuery {
                        text: format!("{} {}", CATEGORIES.choose(rng).unwrap(), city),
                        starts_after_ms: Some(starts_after_ms),
                        starts_before_ms: Some(starts_after_ms + 30 * DAY_MS),
                        sort: SortOrder::Date,
                        ..SearchQuery::default()
                    }
                }
            }
        })
        .collect()
}

fn events_count() -> usize {
    match std::env::var("TURNSTILE_SEARCH_EVENTS") {
        Ok(value) => value.replace('_', "").parse().expect("TURNSTILE_SEARCH_EVENTS must be a number"),
        Err(_) => EVENTS_DEFAULT,
    }
}

#[repr(C)]
struct Timespec {
    seconds: i64,
    nanoseconds: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, time: *mut Timespec) -> i32;
}

/// CPU time of the calling thread, in µs (Linux `CLOCK_THREAD_CPUTIME_ID`). A query runs on the
/// calling thread, so this is its latency minus the time it waited for a core: on a shared
/// machine (other builds running) it shows the cost of the query itself, where wall time also
/// shows the neighbours.
fn thread_cpu_us() -> u64 {
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut time = Timespec { seconds: 0, nanoseconds: 0 };
    // SAFETY: `time` is a valid, writable timespec for the duration of the call.
    let status = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut time) };
    assert_eq!(status, 0, "clock_gettime failed");
    (time.seconds as u64) * 1_000_000 + (time.nanoseconds as u64) / 1_000
}

fn latency_rounds() -> usize {
    match std::env::var("TURNSTILE_SEARCH_ROUNDS") {
        Ok(value) => value.parse().expect("TURNSTILE_SEARCH_ROUNDS must be a number"),
        Err(_) => LATENCY_ROUNDS_DEFAULT,
    }
}

fn report_latency(index: &SearchIndex, mix: &[(QueryKind, Vec<SearchQuery>)]) {
    let rounds = latency_rounds();
    let mut overall = Histogram::<u64>::new(3).unwrap();
    let mut overall_cpu = Histogram::<u64>::new(3).unwrap();
    println!("latency, one query at a time, {rounds} rounds of the mix (µs; wall clock, then thread CPU time):");
    for (kind, queries) in mix {
        let mut per_kind = Histogram::<u64>::new(3).unwrap();
        let mut per_kind_cpu = Histogram::<u64>::new(3).unwrap();
        let mut hits_total = 0usize;
        for _ in 0..rounds {
            for query in queries {
                let cpu_started = thread_cpu_us();
                let started = Instant::now();
                let page = index.search(query).unwrap();
                let elapsed_us = started.elapsed().as_micros() as u64;
                let cpu_us = thread_cpu_us() - cpu_started;
                hits_total += page.hits.len();
                per_kind.record(elapsed_us.max(1)).unwrap();
                overall.record(elapsed_us.max(1)).unwrap();
                per_kind_cpu.record(cpu_us.max(1)).unwrap();
                overall_cpu.record(cpu_us.max(1)).unwrap();
            }
        }
        println!(
            "  {:<12} p50 {:>7}  p99 {:>7}  max {:>7}  | cpu p50 {:>7}  p99 {:>7}  max {:>7}  | mean hits/page {:.1}",
            format!("{kind:?}"),
            per_kind.value_at_quantile(0.50),
            per_kind.value_at_quantile(0.99),
            per_kind.max(),
            per_kind_cpu.value_at_quantile(0.50),
            per_kind_cpu.value_at_quantile(0.99),
            per_kind_cpu.max(),
            hits_total as f64 / (rounds * queries.len()) as f64
        );
    }
    println!(
        "  {:<12} p50 {:>7}  p99 {:>7}  max {:>7}  | cpu p50 {:>7}  p99 {:>7}  max {:>7}  | {} queries",
        "all",
        overall.value_at_quantile(0.50),
        overall.value_at_quantile(0.99),
        overall.max(),
        overall_cpu.value_at_quantile(0.50),
        overall_cpu.value_at_quantile(0.99),
        overall_cpu.max(),
        overall.len()
    );
}

fn report_throughput(index: &Arc<SearchIndex>, mix: &[(QueryKind, Vec<SearchQuery>)]) {
    let all_queries: Arc<Vec<SearchQuery>> =
        Arc::new(mix.iter().flat_map(|(_, queries)| queries.iter().cloned()).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let completed = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..THROUGHPUT_THREADS)
        .map(|worker| {
            let (index, queries, stop, completed) =
                (index.clone(), all_queries.clone(), stop.clone(), completed.clone());
            std::thread::spawn(move || {
                let mut position = worker * 7;
                while !stop.load(Ordering::Relaxed) {
                    index.search(&queries[position % queries.len()]).unwrap();
                    completed.fetch_add(1, Ordering::Relaxed);
                    position += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(THROUGHPUT_DURATION);
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    let queries_done = completed.load(Ordering::Relaxed);
    println!(
        "throughput, {THROUGHPUT_THREADS} threads, query mix, {:?}: {queries_done} queries, {:.0} queries/s",
        THROUGHPUT_DURATION,
        queries_done as f64 / THROUGHPUT_DURATION.as_secs_f64()
    );
}

fn main() {
    let events_count = events_count();
    let mut rng = StdRng::seed_from_u64(SEED);
    let generate_started = Instant::now();
    let catalog = generate(events_count, &mut rng);
    println!(
        "generated {events_count} events, {} performers, {} venues in {:.1?}",
        catalog.performers.len(),
        catalog.venues.len(),
        generate_started.elapsed()
    );

    let directory = tempfile::tempdir().unwrap();
    let config = SearchConfig {
        writer_heap_bytes: 500 * 1024 * 1024,
        writer_threads: 2,
        query_cache_entries: 0,
        ..SearchConfig::default()
    };
    let index = Arc::new(SearchIndex::open_in_dir_with_config(directory.path(), config).unwrap());
    let build_started = Instant::now();
    index.rebuild(catalog.events.iter().cloned()).unwrap();
    assert_eq!(index.doc_count(), events_count as u64);
    println!(
        "indexed {events_count} events in {:.1?} (on disk, writer heap 500 MB, 2 threads)",
        build_started.elapsed()
    );

    // Every kind's queries are generated (so the random sequence is the same), then the mix is cut
    // to the kinds named in TURNSTILE_SEARCH_KINDS (comma-separated, e.g. "Prefix,Exact"), if set:
    // for profiling one kind.
    let kinds_wanted = std::env::var("TURNSTILE_SEARCH_KINDS").ok();
    let mix: Vec<(QueryKind, Vec<SearchQuery>)> = QUERY_KINDS
        .iter()
        .map(|kind| (*kind, queries(*kind, &catalog, &mut rng)))
        .filter(|(kind, _)| {
            kinds_wanted
                .as_deref()
                .is_none_or(|wanted| wanted.split(',').any(|name| name.trim() == format!("{kind:?}")))
        })
        .collect();
    // Touch every query once so the first measured ones do not pay for cold pages.
    for (_, queries) in &mix {
        for query in queries {
            index.search(query).unwrap();
        }
    }
    report_latency(&index, &mix);
    report_throughput(&index, &mix);

    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let mut group = criterion.benchmark_group(format!("search_{events_count}"));
    for (kind, queries) in &mix {
        let mut position = 0usize;
        group.bench_function(format!("{kind:?}"), |bencher| {
            bencher.iter(|| {
                position = (position + 1) % queries.len();
                index.search(&queries[position]).unwrap()
            })
        });
    }
    group.finish();
    criterion.final_summary();
}
