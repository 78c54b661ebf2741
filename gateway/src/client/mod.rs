//! The client commands of `turnstile` (view, search, hold, confirm, release, cancel, bookings,
//! create, queue), in the spirit of etcdctl and redis-cli: each makes one or two gRPC calls and
//! prints the answer as aligned text, as JSON with `--json`, or only the id a script needs with
//! `--print-id` / `-q`. Reference: docs/CLI.md.
//!
//! Layout:
//! - [`connection`]: the shared connection options, the config they read, the token they send;
//! - [`output`]: the printed forms of each answer (the `--json` structs and their text);
//! - [`files`]: the JSON files `create` reads.
//!
//! A gRPC error prints `error: CODE: message` on stderr and exits with the code of its class
//! ([`exit_code`]).

pub mod connection;
pub mod files;
pub mod membership;
pub mod output;

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use futures::StreamExt;
use serde::Serialize;
use tonic::Code;
use turnstile_proto::v1 as pb;
use turnstile_proto::v1::admin_service_client::AdminServiceClient;
use turnstile_proto::v1::booking_service_client::BookingServiceClient;
use turnstile_proto::v1::catalog_service_client::CatalogServiceClient;
use turnstile_proto::v1::queue_service_client::QueueServiceClient;

pub use connection::{Connection, Identity, Target};

/// Subject of the admin token minted for `create` and `queue configure` without `--user`.
const ADMIN_SUBJECT: &str = "turnstile-admin";
/// How long `queue join` waits for admission by default.
const QUEUE_WAIT_SECONDS_DEFAULT: u64 = 3_600;

/// How an answer is printed.
#[derive(Args, Clone, Debug, Default)]
pub struct Output {
    /// Print the answer as JSON (the fields are listed in docs/CLI.md).
    #[arg(long)]
    pub json: bool,
}

/// As [`Output`], plus printing only the id for a shell to capture.
#[derive(Args, Clone, Debug, Default)]
pub struct OutputWithId {
    /// Print the answer as JSON (the fields are listed in docs/CLI.md).
    #[arg(long, conflicts_with = "print_id")]
    pub json: bool,
    /// Print only the id (of the hold, booking, created object, ...), for ID=$(turnstile ...).
    #[arg(long, short = 'q')]
    pub print_id: bool,
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// View an event: its details and availability by section, and with --seats every seat.
    View(ViewArgs),
    /// Search events by keywords, dates and filters, a page at a time (no keywords: every event).
    Search(SearchArgs),
    /// Hold seats for the buyer: explicit seat ids, or the best available in a section.
    Hold(HoldArgs),
    /// Confirm a hold into a booking.
    Confirm(ConfirmArgs),
    /// Release a hold before it expires.
    Release(ReleaseArgs),
    /// Cancel a booking.
    Cancel(CancelArgs),
    /// List the buyer's bookings, newest first.
    Bookings(BookingsArgs),
    /// Create a venue, performer or event from a JSON file (admin; examples in docs/examples/).
    #[command(subcommand)]
    Create(CreateCommand),
    /// The waiting room: join an event's line and wait for the admission pass, or (admin) switch
    /// it on or off.
    #[command(subcommand)]
    Queue(QueueCommand),
}

#[derive(Args, Debug)]
pub struct ViewArgs {
    /// The event, e.g. evt_00000000000000e1.
    pub event_id: String,
    /// Also list every reserved seat's status (a seat map in text; `seats` in JSON).
    #[arg(long)]
    pub seats: bool,
    #[command(flatten)]
    pub output: Output,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum SortOrder {
    /// Best match first.
    #[default]
    Relevance,
    /// Soonest first.
    Date,
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Keywords (typos tolerated); none lists every event.
    pub keywords: Vec<String>,
    /// Events starting at or after this time: 2030-06-01 or 2030-06-01T20:00:00Z (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub from: Option<prost_types::Timestamp>,
    /// Events starting before this time (same forms as --from).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub to: Option<prost_types::Timestamp>,
    /// Only events in this city.
    #[arg(long)]
    pub city: Option<String>,
    /// Only events of this category (e.g. concert).
    #[arg(long)]
    pub category: Option<String>,
    /// Only events at this venue (id).
    #[arg(long, value_name = "ID")]
    pub venue: Option<String>,
    /// Only events with this performer (id).
    #[arg(long, value_name = "ID")]
    pub performer: Option<String>,
    /// Order of the results.
    #[arg(long, value_enum, default_value_t = SortOrder::Relevance)]
    pub sort: SortOrder,
    /// Events per page (0: the server's default).
    #[arg(long, default_value_t = 0)]
    pub page_size: u32,
    /// Page token printed by the previous page ("more: --page TOKEN").
    #[arg(long, value_name = "TOKEN")]
    pub page: Option<String>,
    /// Print only the event ids, one per line.
    #[arg(long, short = 'q', conflicts_with = "json")]
    pub print_id: bool,
    #[command(flatten)]
    pub output: Output,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("selection").required(true).args(["seat_ids", "section"]))]
pub struct HoldArgs {
    /// The event.
    pub event_id: String,
    /// Seats to hold, all or none: SECTION:ROW:SEAT, e.g. 105:A:1 105:A:2.
    #[arg(value_name = "SEAT_ID")]
    pub seat_ids: Vec<String>,
    /// Best available in this section: adjacent seats in one row nearest the stage (or places in
    /// a standing section). Needs --quantity.
    #[arg(long, requires = "quantity")]
    pub section: Option<String>,
    /// How many places to hold with --section.
    #[arg(long, short = 'n', requires = "section")]
    pub quantity: Option<i32>,
    /// Idempotency key: sending the same hold again with it returns the first result. Generated
    /// (and printed) if absent.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// Admission pass from `turnstile queue join`, required while the event's waiting room is on.
    #[arg(long, value_name = "PASS")]
    pub pass: Option<String>,
    #[command(flatten)]
    pub output: OutputWithId,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Args, Debug)]
pub struct ConfirmArgs {
    /// The hold, as printed by `turnstile hold`.
    pub hold_id: String,
    /// Reference of the captured payment, from the payment provider.
    #[arg(long, value_name = "REFERENCE")]
    pub payment: String,
    /// Idempotency key: confirming again with it returns the first booking. Generated (and
    /// printed) if absent.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    #[command(flatten)]
    pub output: OutputWithId,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Args, Debug)]
pub struct ReleaseArgs {
    /// The hold.
    pub hold_id: String,
    #[command(flatten)]
    pub output: Output,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Args, Debug)]
pub struct CancelArgs {
    /// The booking.
    pub booking_id: String,
    #[command(flatten)]
    pub output: Output,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Args, Debug)]
pub struct BookingsArgs {
    /// Bookings per page (0: the server's default).
    #[arg(long, default_value_t = 0)]
    pub page_size: u32,
    /// Page token printed by the previous page ("more: --page TOKEN").
    #[arg(long, value_name = "TOKEN")]
    pub page: Option<String>,
    #[command(flatten)]
    pub output: OutputWithId,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Subcommand, Debug)]
pub enum CreateCommand {
    /// Create a venue from a JSON CreateVenueRequest (docs/examples/venue.json).
    Venue(CreateArgs),
    /// Create a performer from a JSON CreatePerformerRequest (docs/examples/performer.json).
    Performer(CreateArgs),
    /// Create an event from a JSON CreateEventRequest (docs/examples/event.json).
    Event(CreateEventArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The JSON file.
    pub file: PathBuf,
    #[command(flatten)]
    pub output: OutputWithId,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Args, Debug)]
pub struct CreateEventArgs {
    /// The JSON file.
    pub file: PathBuf,
    /// Venue id, replacing the file's venue_id.
    #[arg(long, value_name = "ID")]
    pub venue: Option<String>,
    /// Performer id, replacing the file's performer_ids (repeat for several).
    #[arg(long = "performer", value_name = "ID")]
    pub performers: Vec<String>,
    #[command(flatten)]
    pub output: OutputWithId,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Subcommand, Debug)]
pub enum QueueCommand {
    /// Join an event's line (or find one's place again) and print the standing until admitted,
    /// then the admission pass for `turnstile hold --pass`.
    Join(QueueJoinArgs),
    /// Switch an event's waiting room on (or off with --off) and set how it admits (admin).
    Configure(QueueConfigureArgs),
}

#[derive(Args, Debug)]
pub struct QueueJoinArgs {
    /// The event.
    pub event_id: String,
    /// Give up waiting after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = QUEUE_WAIT_SECONDS_DEFAULT)]
    pub timeout_seconds: u64,
    /// Print only the admission pass on stdout (the standing lines go to stderr).
    #[arg(long, short = 'q', conflicts_with = "json")]
    pub print_pass: bool,
    /// Print each standing as a line of JSON (JSON Lines); the last one carries the pass.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Args, Debug)]
pub struct QueueConfigureArgs {
    /// The event.
    pub event_id: String,
    /// Switch the waiting room off (buyers then hold directly).
    #[arg(long)]
    pub off: bool,
    /// Buyers admitted per second; 0 admits as many as the available seats can serve.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub rate: u32,
    /// Buyers who join before this time are put in random order at it (RFC 3339 or a date);
    /// unset: first in, first out from now.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub opens_at: Option<prost_types::Timestamp>,
    /// Seconds an admitted buyer has to hold (0: the server's default, 120).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub pass_ttl_seconds: u32,
    /// Seats one admission pass allows (0: the event's per-buyer limit).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seats_per_pass: u32,
    #[command(flatten)]
    pub output: Output,
    #[command(flatten)]
    pub connection: Connection,
}

/// RFC 3339 (`2030-06-01T20:00:00Z`) or a date (`2030-06-01`, midnight UTC).
fn parse_time(text: &str) -> Result<prost_types::Timestamp, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a date (2030-06-01) or an RFC 3339 time (2030-06-01T20:00:00Z)"))
}

/// Runs a client command and returns the process exit code, having printed any error on stderr.
pub fn run(command: ClientCommand) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return EXIT_LOCAL;
        }
    };
    match runtime.block_on(execute(command)) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("{}", describe(&error));
            exit_code(&error)
        }
    }
}

/// A local failure: bad input, unreadable file, no token, or a gRPC code without a class below.
pub const EXIT_LOCAL: i32 = 1;
// 2 is clap's, for a command line it cannot parse.
/// INVALID_ARGUMENT, OUT_OF_RANGE: the request is wrong; fix it.
pub const EXIT_INVALID: i32 = 3;
/// NOT_FOUND.
pub const EXIT_NOT_FOUND: i32 = 4;
/// FAILED_PRECONDITION, ALREADY_EXISTS, ABORTED: the state does not allow it (seat taken, hold
/// expired, key reused), or the waiting room ended without a pass.
pub const EXIT_CONFLICT: i32 = 5;
/// UNAUTHENTICATED, PERMISSION_DENIED.
pub const EXIT_DENIED: i32 = 6;
/// RESOURCE_EXHAUSTED: a limit (rate, seats per buyer); may pass later.
pub const EXIT_LIMITED: i32 = 7;
/// UNAVAILABLE, DEADLINE_EXCEEDED, or the node could not be reached: retry.
pub const EXIT_UNAVAILABLE: i32 = 8;

/// The exit code of an error's class.
pub fn exit_code(error: &anyhow::Error) -> i32 {
    if error.downcast_ref::<connection::Unreachable>().is_some() {
        return EXIT_UNAVAILABLE;
    }
    if error.downcast_ref::<QueueEnded>().is_some() {
        return EXIT_CONFLICT;
    }
    let Some(status) = error.downcast_ref::<tonic::Status>() else {
        return EXIT_LOCAL;
    };
    match status.code() {
        Code::InvalidArgument | Code::OutOfRange => EXIT_INVALID,
        Code::NotFound => EXIT_NOT_FOUND,
        Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => EXIT_CONFLICT,
        Code::Unauthenticated | Code::PermissionDenied => EXIT_DENIED,
        Code::ResourceExhausted => EXIT_LIMITED,
        Code::Unavailable | Code::DeadlineExceeded => EXIT_UNAVAILABLE,
        _ => EXIT_LOCAL,
    }
}

/// `error: CODE: message` for a gRPC status, `error: ...` for anything else.
pub fn describe(error: &anyhow::Error) -> String {
    match error.downcast_ref::<tonic::Status>() {
        Some(status) => format!("error: {}: {}", code_name(status.code()), status.message()),
        None => format!("error: {error:#}"),
    }
}

/// The code's name as gRPC spells it (`NOT_FOUND`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The waiting room ended the wait without a pass (sold out, or the pass expired).
#[derive(Debug, thiserror::Error)]
#[error("queue: {0}")]
pub struct QueueEnded(String);

/// Writes to stdout; a closed pipe (`| head -n1`) is not an error.
fn print(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(()),
    }
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    print(&format!("{}\n", serde_json::to_string_pretty(value)?))
}

/// Prints `value` as JSON, as its id alone, or as text.
fn print_answer<T: Serialize>(
    output: &OutputWithId,
    value: &T,
    id: &str,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    if output.json {
        print_json(value)
    } else if output.print_id {
        print(&format!("{id}\n"))
    } else {
        print(&text())
    }
}

fn print_plain<T: Serialize>(output: &Output, value: &T, text: impl FnOnce() -> String) -> anyhow::Result<()> {
    if output.json {
        print_json(value)
    } else {
        print(&text())
    }
}

fn missing(what: &str) -> anyhow::Error {
    anyhow::anyhow!("the node's answer has no {what}")
}

async fn execute(command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::View(args) => view(args).await,
        ClientCommand::Search(args) => search(args).await,
        ClientCommand::Hold(args) => hold(args).await,
        ClientCommand::Confirm(args) => confirm(args).await,
        ClientCommand::Release(args) => release(args).await,
        ClientCommand::Cancel(args) => cancel(args).await,
        ClientCommand::Bookings(args) => bookings(args).await,
        ClientCommand::Create(command) => create(command).await,
        ClientCommand::Queue(QueueCommand::Join(args)) => queue_join(args).await,
        ClientCommand::Queue(QueueCommand::Configure(args)) => queue_configure(args).await,
    }
}

async fn view(args: ViewArgs) -> anyhow::Result<()> {
    let target = args.connection.target(Identity::Optional)?;
    let mut client = CatalogServiceClient::new(target.connect().await?);
    let request =
        pb::GetEventRequest { event_id: args.event_id, include_seats: args.seats, include_layout: args.seats };
    let response = client.get_event(target.request(request)).await?.into_inner();
    let view = output::EventView::from_pb(response, args.seats);
    print_plain(&args.output, &view, || view.text())
}

async fn search(args: SearchArgs) -> anyhow::Result<()> {
    let target = args.connection.target(Identity::Optional)?;
    let mut client = CatalogServiceClient::new(target.connect().await?);
    let request = pb::SearchEventsRequest {
        query: args.keywords.join(" "),
        starts_after: args.from,
        starts_before: args.to,
        venue_id: args.venue.unwrap_or_default(),
        performer_id: args.performer.unwrap_or_default(),
        city: args.city.unwrap_or_default(),
        category: args.category.unwrap_or_default(),
        page_size: args.page_size,
        page_token: args.page.unwrap_or_default(),
        sort: match args.sort {
            SortOrder::Relevance => pb::search_events_request::Sort::Relevance,
            SortOrder::Date => pb::search_events_request::Sort::Date,
        } as i32,
    };
    let response = client.search_events(target.request(request)).await?.into_inner();
    let page = output::SearchPage::from_pb(response);
    if args.print_id {
        return print(&page.ids());
    }
    print_plain(&args.output, &page, || page.text())
}

async fn hold(args: HoldArgs) -> anyhow::Result<()> {
    let target = args.connection.target(Identity::Buyer)?;
    let selection = match (args.section, args.quantity) {
        (Some(section_id), Some(quantity)) => {
            if !args.seat_ids.is_empty() {
                anyhow::bail!("give seat ids or --section with --quantity, not both");
            }
            pb::hold_seats_request::Selection::BestAvailable(pb::BestAvailable { section_id, quantity })
        }
        _ => pb::hold_seats_request::Selection::Seats(pb::SeatList { seat_ids: args.seat_ids }),
    };
    let idempotency_key = args.key.unwrap_or_else(|| format!("cli-{}", uuid::Uuid::new_v4()));
    let request = pb::HoldSeatsRequest {
        event_id: args.event_id,
        idempotency_key: idempotency_key.clone(),
        selection: Some(selection),
        admission_pass: args.pass.unwrap_or_default(),
    };
    let seat_ids = match &request.selection {
        Some(pb::hold_seats_request::Selection::Seats(list)) => list.seat_ids.clone(),
        _ => Vec::new(),
    };
    let mut client = BookingServiceClient::new(target.connect().await?);
    let hold = client
        .hold_seats(target.request(request))
        .await
        .map_err(|status| name_seat(status, &seat_ids))?
        .into_inner()
        .hold
        .ok_or_else(|| missing("hold"))?;
    let view = output::HoldView::from_pb(hold, Some(idempotency_key));
    print_answer(&args.output, &view, &view.hold_id, || view.text())
}

/// The node names a bad seat by its place in the request (`seats.seat_ids[1]: no row 'Z' in
/// section '101'`); the person at the shell typed the seat, so the message also gives it.
fn name_seat(status: tonic::Status, seat_ids: &[String]) -> tonic::Status {
    let index = status
        .message()
        .strip_prefix("seats.seat_ids[")
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(index, _)| index.parse::<usize>().ok());
    match index.and_then(|index| seat_ids.get(index)) {
        Some(seat_id) if !status.message().contains(seat_id.as_str()) => {
            tonic::Status::new(status.code(), format!("{} (seat {seat_id})", status.message()))
        }
        _ => status,
    }
}

async fn confirm(args: ConfirmArgs) -> anyhow::Result<()> {
    let target = args.connection.target(Identity::Buyer)?;
    let idempotency_key = args.key.unwrap_or_else(|| format!("cli-{}", uuid::Uuid::new_v4()));
    let request = pb::ConfirmHoldRequest {
        hold_id: args.hold_id,
        payment_reference: args.payment,
        idempotency_key: idempotency_key.clone(),
    };
    let mut client = BookingServiceClient::new(target.connect().await?);
    let booking =
        client.confirm_hold(target.request(request)).await?.into_inner().booking.ok_or_else(|| missing("booking"))?;
    let view = output::BookingView::from_pb(booking, Some(idempotency_key));
    print_answer(&args.output, &view, &view.booking_id, || view.text())
}

async fn release(args: ReleaseArgs) -> anyhow::Result<()> {
    let target = args.connection.target(Identity::Buyer)?;
    let mut client = BookingServiceClient::new(target.connect().await?);
    let request = pb::ReleaseHoldRequest { hold_id: args.hold_id };
    let hold = client.release_hold(target.request(request)).await?.into_inner().hold.ok_or_else(|| missing("hold"))?;
    let view = output::HoldView::from_pb(hold, None);
    print_plain(&args.output, &view, || view.text())
}

async fn cancel(args: CancelArgs) -> anyhow::Result<()> {
    let target = args.connection.target(Identity::Buyer)?;
    let mut client = BookingServiceClient::new(target.connect().await?);
    let request = pb::CancelBookingRequest { booking_id: args.booking_id };
    let booking =
        client.cancel_booking(target.request(request)).await?.into_inner().booking.ok_or_else(|| missing("booking"))?;
    let view = output::BookingView::from_pb(booking, None);
    print_plain(&args.output, &view, || view.text())
}

async fn bookings(args: BookingsArgs) -> anyhow::Result<()> {
    let target = args.connection.target(Identity::Buyer)?;
    let mut client = BookingServiceClient::new(target.connect().await?);
    let request = pb::ListBookingsRequest { page_size: args.page_size, page_token: args.page.unwrap_or_default() };
    let page = output::BookingsPage::from_pb(client.list_bookings(target.request(request)).await?.into_inner());
    if args.output.print_id {
        return print(&page.ids());
    }
    print_answer(&args.output, &page, "", || page.text())
}

async fn create(command: CreateCommand) -> anyhow::Result<()> {
    let (connection, output) = match &command {
        CreateCommand::Venue(args) | CreateCommand::Performer(args) => (&args.connection, &args.output),
        CreateCommand::Event(args) => (&args.connection, &args.output),
    };
    let target = connection.target(Identity::Admin { subject: ADMIN_SUBJECT })?;
    let created = match &command {
        CreateCommand::Venue(args) => {
            let request: pb::CreateVenueRequest = files::read::<files::VenueFile>(&args.file)?.into();
            let mut client = AdminServiceClient::new(target.connect().await?);
            let venue = client
                .create_venue(target.request(request))
                .await?
                .into_inner()
                .venue
                .ok_or_else(|| missing("venue"))?;
            output::Created { kind: "venue", id: venue.venue_id, name: venue.name }
        }
        CreateCommand::Performer(args) => {
            let request: pb::CreatePerformerRequest = files::read::<files::PerformerFile>(&args.file)?.into();
            let mut client = AdminServiceClient::new(target.connect().await?);
            let performer = client
                .create_performer(target.request(request))
                .await?
                .into_inner()
                .performer
                .ok_or_else(|| missing("performer"))?;
            output::Created { kind: "performer", id: performer.performer_id, name: performer.name }
        }
        CreateCommand::Event(args) => {
            let mut request: pb::CreateEventRequest = files::read::<files::EventFile>(&args.file)?.into();
            if let Some(venue) = &args.venue {
                request.venue_id = venue.clone();
            }
            if !args.performers.is_empty() {
                request.performer_ids = args.performers.clone();
            }
            let mut client = AdminServiceClient::new(target.connect().await?);
            let event = client
                .create_event(target.request(request))
                .await?
                .into_inner()
                .event
                .ok_or_else(|| missing("event"))?;
            output::Created { kind: "event", id: event.event_id, name: event.name }
        }
    };
    print_answer(output, &created, &created.id, || created.text())
}

async fn queue_configure(args: QueueConfigureArgs) -> anyhow::Result<()> {
    let target = args.connection.target(Identity::Admin { subject: ADMIN_SUBJECT })?;
    let mut client = AdminServiceClient::new(target.connect().await?);
    let request = pb::ConfigureQueueRequest {
        event_id: args.event_id,
        enabled: !args.off,
        admission_rate_per_second: args.rate,
        opens_at: args.opens_at,
        pass_ttl_seconds: args.pass_ttl_seconds,
        seats_per_pass: args.seats_per_pass,
    };
    let settings = output::QueueSettings::from_pb(client.configure_queue(target.request(request)).await?.into_inner());
    print_plain(&args.output, &settings, || settings.text())
}

/// Joins, then follows the standing until the stream ends (admitted, or the wait ended another
/// way) or the timeout passes.
async fn queue_join(args: QueueJoinArgs) -> anyhow::Result<()> {
    let target = args.connection.target(Identity::Buyer)?;
    let channel = target.connect().await?;
    let mut client = QueueServiceClient::new(channel);
    let wait = async {
        let joined = client
            .join_queue(target.request(pb::JoinQueueRequest { event_id: args.event_id.clone() }))
            .await?
            .into_inner();
        let mut last = joined.standing.map(output::Standing::from_pb);
        if let Some(standing) = &last {
            report_standing(&args, standing)?;
        }
        let request = pb::WatchQueueRequest { event_id: args.event_id.clone(), queue_token: joined.queue_token };
        let mut stream = client.watch_queue(target.request(request)).await?.into_inner();
        while let Some(message) = stream.next().await {
            let standing = output::Standing::from_pb(message?);
            report_standing(&args, &standing)?;
            let done = standing.state != "waiting" && standing.state != "not_open";
            last = Some(standing);
            if done {
                break;
            }
        }
        anyhow::Ok(last)
    };
    let last = tokio::time::timeout(Duration::from_secs(args.timeout_seconds), wait)
        .await
        .map_err(|_| QueueEnded(format!("not admitted within {} s (--timeout-seconds)", args.timeout_seconds)))??;
    let Some(last) = last else {
        return Err(QueueEnded("the node sent no standing".into()).into());
    };
    match last.state.as_str() {
        "admitted" => {
            let pass = last.admission_pass.as_deref().context("admitted, but the answer carries no pass")?;
            if args.print_pass {
                print(&format!("{pass}\n"))
            } else if args.json {
                Ok(())
            } else {
                print(&format!("pass: {pass}\n"))
            }
        }
        // No waiting room: a hold needs no pass. `-q` prints an empty line, which `hold --pass`
        // takes as no pass.
        "closed" if args.print_pass => print("\n"),
        "closed" => Ok(()),
        _ => Err(QueueEnded(last.line()).into()),
    }
}

fn report_standing(args: &QueueJoinArgs, standing: &output::Standing) -> anyhow::Result<()> {
    if args.json {
        return print(&format!("{}\n", serde_json::to_string(standing)?));
    }
    let line = standing.line();
    if args.print_pass {
        eprintln!("{line}");
        Ok(())
    } else {
        print(&format!("{line}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: ClientCommand,
    }

    #[test]
    fn every_argument_has_help() {
        use clap::CommandFactory;
        fn check(command: &clap::Command, path: &str) {
            for argument in command.get_arguments() {
                let id = argument.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(argument.get_help().is_some(), "{path} {id} has no help line");
            }
            for subcommand in command.get_subcommands() {
                assert!(subcommand.get_about().is_some(), "{path} {} has no help line", subcommand.get_name());
                check(subcommand, &format!("{path} {}", subcommand.get_name()));
            }
        }
        Cli::command().debug_assert();
        check(&Cli::command(), "turnstile");
    }

    #[test]
    fn a_hold_takes_seats_or_a_section_with_a_quantity() {
        let parse = |line: &str| Cli::try_parse_from(line.split_whitespace());
        assert!(parse("x hold evt 101:A:1 101:A:2").is_ok());
        assert!(parse("x hold evt --section 101 -n 2").is_ok());
        assert!(parse("x hold evt").is_err(), "a selection is required");
        assert!(parse("x hold evt --section 101").is_err(), "a section needs a quantity");
        assert!(parse("x hold evt 101:A:1 --section 101 -n 2").is_err(), "seats or a section, not both");
        assert!(parse("x search --from 2030-06-01 --to 2030-07-01T00:00:00Z").is_ok());
        assert!(parse("x search --from tomorrow").is_err());
    }

    #[test]
    fn errors_print_the_grpc_code_and_exit_by_class() {
        let error = anyhow::Error::new(tonic::Status::not_found("seat '101:Z:99' not found"));
        assert_eq!(describe(&error), "error: NOT_FOUND: seat '101:Z:99' not found");
        assert_eq!(exit_code(&error), EXIT_NOT_FOUND);
        let error = anyhow::Error::new(tonic::Status::failed_precondition("taken"));
        assert_eq!(exit_code(&error), EXIT_CONFLICT);
        assert_eq!(exit_code(&anyhow::anyhow!("no token")), EXIT_LOCAL);
    }

    #[test]
    fn a_bad_seat_is_named_as_typed() {
        let seats = ["101:A:1".to_string(), "101:Z:99".to_string()];
        let status =
            name_seat(tonic::Status::invalid_argument("seats.seat_ids[1]: no row 'Z' in section '101'"), &seats);
        assert_eq!(status.message(), "seats.seat_ids[1]: no row 'Z' in section '101' (seat 101:Z:99)");
        assert_eq!(status.code(), Code::InvalidArgument);
        let untouched = name_seat(tonic::Status::failed_precondition("seats not available: 101:A:1"), &seats);
        assert_eq!(untouched.message(), "seats not available: 101:A:1");
    }
}
