//! The `turnstile` command: `serve` runs a node; `status`, `backup` and `bench` ask a running one;
//! the client commands (`view`, `search`, `hold`, `confirm`, ..., `gateway/src/client/`) call the
//! API as a backend would; `restore` installs a backup offline; `token` mints a development token.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use turnstile::auth::{Authenticator, Role};
use turnstile::client::Identity;
use turnstile::config::Config;
use turnstile::server::Server;
use turnstile_engine::engine::EngineOptions;
use turnstile_engine::Engine;
use turnstile_proto::v1::admin_service_client::AdminServiceClient;

/// A tracing filter from `spec`, refused with the key it came from when a directive names no
/// level: a bare word that is not a level (say "verbose") would be read as a target and turn every
/// other log line off, silently.
fn log_filter(key: &str, spec: &str) -> anyhow::Result<EnvFilter> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    for directive in spec.split(',').map(str::trim).filter(|directive| !directive.is_empty()) {
        let level = directive.rsplit_once('=').map_or(directive, |(_, level)| level);
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            anyhow::bail!(
                "{key}: '{directive}' names no level; use one of {} or target=level (e.g. \"info,turnstile=debug\")",
                LEVELS.join(", ")
            );
        }
    }
    EnvFilter::builder().parse(spec).map_err(|error| anyhow::anyhow!("{key}: '{spec}' is not a log filter: {error}"))
}

/// mimalloc instead of the system allocator: under load, buffers are allocated on the runtime's
/// threads and freed on the log writer's, a pattern glibc's allocator handles poorly (the durable
/// path's profile, docs/PERFORMANCE_HISTORY.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use turnstile_proto::v1::CreateBackupRequest;

#[derive(Parser)]
#[command(name = "turnstile", version, about = "Seat-inventory engine for live-event ticketing")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node.
    Serve {
        /// Configuration file [default: cluster.toml; when that is missing, every default (one
        /// node on 127.0.0.1:50051, data in data/node-1) with the secret from
        /// TURNSTILE_AUTH_SECRET].
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address of the gRPC port (overrides node.listen).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Data directory (overrides node.data_dir); created if missing.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Run as this node of the config's [[nodes]]: its id and its address from that list, its
        /// data directory from its entry's data_dir, else from [node] data_dir if [node] is this
        /// node, else data/ID (--data-dir overrides).
        #[arg(long)]
        node: Option<String>,
        /// Address of the Prometheus endpoint, /healthz and /readyz (overrides metrics.listen).
        #[arg(long)]
        metrics_listen: Option<std::net::SocketAddr>,
        /// Seed a demo venue, performers and events (once: a data directory that has them keeps
        /// what it has).
        #[arg(long)]
        demo: bool,
        /// Join a running cluster as a new node (like etcd's initial-cluster-state=existing): the
        /// node initializes no replication group and waits until an operator adds it with
        /// `turnstile cluster add-node ID ADDRESS`. Its config lists itself in [[nodes]] (and may
        /// list the others).
        #[arg(long)]
        join: bool,
    },
    /// Ask a running node for a consistent online backup, written to PATH on that node.
    Backup {
        /// Backup file on the node, in its backup directory ([storage] backup_dir; a relative
        /// path is resolved there); must not exist yet.
        #[arg(long)]
        to: PathBuf,
        #[command(flatten)]
        connection: turnstile::client::Connection,
    },
    /// Load a running node over gRPC and report throughput and latency percentiles.
    Bench {
        /// Configuration file (for the node's address and the secret to sign tokens); without
        /// it, cluster.toml if there is one, else the defaults and TURNSTILE_AUTH_SECRET.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address of the node (defaults to node.listen of the config).
        #[arg(long)]
        server: Option<std::net::SocketAddr>,
        /// Requests in flight.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// How long the load runs, in seconds.
        #[arg(long, default_value_t = 30)]
        duration_seconds: u64,
        /// Reads (GetEvent, SearchEvents) per write (a hold, then a confirm or release).
        #[arg(long, default_value_t = 100)]
        reads_per_write: u32,
        /// Share of holds that are confirmed; the rest are released.
        #[arg(long, default_value_t = 10)]
        confirm_percent: u32,
        /// Reads are GetEvent only (no SearchEvents).
        #[arg(long)]
        no_search: bool,
        /// Every worker targets the same event.
        #[arg(long)]
        hot_event: bool,
        /// Writes are holds alone, each by its own buyer, left to expire (one durable command per
        /// write; --confirm-percent does not apply).
        #[arg(long)]
        hold_only: bool,
        /// Every call is a gRPC health check (no engine, no disk, no token): what one unary call
        /// through this server and this generator costs here, the ceiling of any request's rate.
        #[arg(long, conflicts_with = "hold_only")]
        health_only: bool,
        /// JSON over HTTP against gRPC, in one run: views only (GetEvent without seats), first over
        /// gRPC, then as `GET /v1/events/{id}` over HTTP/1.1 (one keep-alive connection per
        /// worker), each for --duration-seconds at --concurrency; prints both and their ratio.
        #[arg(long, conflicts_with_all = ["hold_only", "health_only"])]
        http: bool,
        /// Holds, confirmations and releases go through the client crate's booking stream (one
        /// BookingService.Book stream shared by every worker) instead of unary calls.
        #[arg(long, conflicts_with_all = ["health_only", "http"])]
        stream: bool,
        /// Events to spread the load over (without --hot-event).
        #[arg(long, default_value_t = 16)]
        events: usize,
        /// Hold TTL of the events the bench creates, in seconds (0: the server's default of 600;
        /// otherwise within the server's bounds, 30 to 3600). A short TTL keeps the live state of
        /// a long --hold-only storm bounded.
        #[arg(long, default_value_t = 0)]
        hold_ttl_seconds: u32,
        /// gRPC connections the workers share.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Seconds per reporting window (throughput, hold p99, server memory).
        #[arg(long, default_value_t = 10)]
        window_seconds: u64,
        /// Write the summary as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// Seed of the generator's random choices (events, reads or writes, confirm or release).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Leave the events the run creates; by default they are cancelled when it ends (out of
        /// search, holds released).
        #[arg(long)]
        keep_events: bool,
    },
    /// Print a running node's status: events, live holds, log size, last checkpoint.
    Status {
        #[command(flatten)]
        connection: turnstile::client::Connection,
    },
    /// Operate a cluster from the outside.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Install a backup as the database of a data directory. The node must be stopped and the
    /// directory must not have a database yet.
    Restore {
        /// The backup file to install.
        #[arg(long)]
        from: PathBuf,
        /// Configuration file (for node.data_dir).
        #[arg(long, default_value = "cluster.toml")]
        config: PathBuf,
        /// Data directory (overrides node.data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Mint a bearer token for development, signed with the configured secret.
    Token {
        /// The buyer (the token's `sub`).
        #[arg(long)]
        user: String,
        /// Give the token the admin role.
        #[arg(long)]
        admin: bool,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 24 * 60 * 60)]
        ttl_seconds: u64,
        /// Configuration file holding the secret [default: cluster.toml, skipped when missing].
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Client commands: view, search, hold, confirm, release, cancel, bookings, create, queue.
    #[command(flatten)]
    Client(turnstile::client::ClientCommand),
}

/// Runs the command; a failure is one line on stderr (`error: CODE: message` for a gRPC answer,
/// else the causes joined by ": ", no backtrace, no cause said twice) and the exit status of its
/// class (docs/CLI.md).
#[derive(Subcommand)]
enum ClusterCommand {
    /// Ask every node of the config's [[nodes]] for its status: which nodes answer and which peers
    /// each cannot reach, and for every shard and the catalog the leader and its replication lag.
    Status {
        /// Configuration file listing the nodes (and the secret and TLS settings to reach them);
        /// without it, cluster.toml.
        #[arg(long)]
        config: Option<PathBuf>,
        /// How long to wait for each node's answer, in seconds.
        #[arg(long, default_value_t = 3)]
        timeout_seconds: u64,
    },
    /// Add a node to the cluster. Start it first (`turnstile serve --node ID --join`); the
    /// shards then move to it (about 1/N of the replica slots), each by the usual steps: the new
    /// replica joins as a learner, catches up (by snapshot when far behind), becomes a voter, and
    /// the replica it replaces leaves.
    AddNode {
        /// The new node's id.
        id: String,
        /// Its gRPC address, IP:PORT, as the other nodes will call it.
        address: String,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Remove a node from the cluster, running or not; its replicas move to the others.
    RemoveNode {
        /// The node's id.
        id: String,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Replace a node (typically a dead one) by a new one in one change: start the new node
    /// with `serve --join` first.
    ReplaceNode {
        /// The node to remove.
        old_id: String,
        /// The new node's id and gRPC address, IP:PORT.
        new_id: String,
        address: String,
        #[command(flatten)]
        change: ChangeArgs,
    },
}

/// What every membership command takes.
#[derive(clap::Args)]
struct ChangeArgs {
    /// Configuration file listing nodes to send the change to (and the secret and TLS settings
    /// to reach them); without it, cluster.toml.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Return once the change is committed, without waiting for the shards to move.
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for every group to settle on the new membership, in seconds.
    #[arg(long, default_value_t = 600)]
    wait_seconds: u64,
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{}", turnstile::client::describe(&error));
            std::process::ExitCode::from(turnstile::client::exit_code(&error) as u8)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config: config_path, listen, data_dir, node, metrics_listen, demo, join } => {
            let mut config = Config::read_optional(config_path.as_deref())?;
            config.cluster.join = join;
            let mut data_dir_source = if config.node.data_dir_given { "node.data_dir" } else { "the default" };
            if let Some(node) = node {
                data_dir_source = config.select_node(&node, data_dir.is_some())?;
            }
            if let Some(listen) = listen {
                config.node.listen = listen;
            }
            if let Some(data_dir) = data_dir {
                config.node.data_dir = data_dir;
                data_dir_source = "--data-dir";
            }
            if let Some(metrics_listen) = metrics_listen {
                config.metrics.listen = Some(metrics_listen);
            }
            config.validate()?;
            // openraft reports every vote and heartbeat at info, and every failed call to a peer
            // that is down as a warning or an error (hundreds a second while one is down). The
            // node's own log says what an operator acts on: a peer unreachable and back (once
            // per change), shard leadership moving (a line a second at most), a group stopped
            // on a fatal error. A configured filter that names openraft decides for itself.
            let level = if config.log.level.contains("openraft") {
                config.log.level.clone()
            } else {
                format!("{},openraft=off", config.log.level)
            };
            let filter = match std::env::var("RUST_LOG") {
                Ok(from_env) => log_filter("RUST_LOG", &from_env)?,
                Err(_) => log_filter("log.level", &level)?,
            };
            // Colours only for a person at a terminal: files and log collectors get plain text.
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
            tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).init();
            tracing::info!(
                version = env!("CARGO_PKG_VERSION"),
                config = %config_path.as_deref().unwrap_or(std::path::Path::new(turnstile::config::DEFAULT_PATH)).display(),
                data_dir = %config.node.data_dir.display(),
                data_dir_from = data_dir_source,
                "starting"
            );
            if config.auth.secret == turnstile::config::DEVELOPMENT_SECRET {
                tracing::warn!(
                    "auth.secret is the development secret shipped in cluster.toml: anyone can mint tokens \
                     for this node; set TURNSTILE_AUTH_SECRET (or auth.secret) in production"
                );
            }
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve(config, demo))
        }
        Command::Backup { to, connection } => {
            let target = connection.target(Identity::Admin { subject: "turnstile-backup" })?;
            tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async move {
                let mut client = AdminServiceClient::new(target.connect().await?);
                let request = target.request(CreateBackupRequest { path: to.display().to_string() });
                let response = client.create_backup(request).await?.into_inner();
                println!("backup written to {} ({} bytes)", response.path, response.size_bytes);
                Ok(())
            })
        }
        Command::Bench {
            config,
            server,
            concurrency,
            duration_seconds,
            reads_per_write,
            confirm_percent,
            no_search,
            hot_event,
            hold_only,
            health_only,
            http,
            stream,
            events,
            hold_ttl_seconds,
            connections,
            window_seconds,
            json,
            quiet,
            seed,
            keep_events,
        } => {
            let config = Config::read_optional(config.as_deref())?;
            config.validate()?;
            let options = turnstile_tools::loadgen::BenchOptions {
                server: server.unwrap_or(config.node.listen),
                concurrency,
                duration: std::time::Duration::from_secs(duration_seconds),
                reads_per_write,
                confirm_percent: confirm_percent.min(100),
                search: !no_search,
                hot_event,
                hold_only,
                health_only,
                views_only: false,
                view_transport: turnstile_tools::loadgen::ViewTransport::Grpc,
                stream,
                events,
                hold_ttl_seconds,
                connections,
                window: std::time::Duration::from_secs(window_seconds.max(1)),
                progress: !quiet,
                seed,
                keep_events,
            };
            let authenticator = Authenticator::new(config.auth.secret.as_bytes());
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async move {
                if http {
                    let comparison =
                        turnstile_tools::loadgen::compare_http(options, std::sync::Arc::new(authenticator)).await?;
                    print!("{}", turnstile_tools::loadgen::render_comparison(&comparison));
                    if let Some(path) = json {
                        std::fs::write(&path, serde_json::to_string_pretty(&comparison)?)
                            .with_context(|| format!("cannot write {}", path.display()))?;
                    }
                    return Ok(());
                }
                let summary = turnstile_tools::loadgen::run(options, std::sync::Arc::new(authenticator)).await?;
                print!("{}", turnstile_tools::loadgen::render(&summary));
                if let Some(path) = json {
                    std::fs::write(&path, serde_json::to_string_pretty(&summary)?)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                }
                Ok(())
            })
        }
        Command::Status { connection } => {
            let target = connection.target(Identity::Admin { subject: "turnstile-status" })?;
            tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async move {
                let mut client = AdminServiceClient::new(target.connect().await?);
                let request = target.request(turnstile_proto::v1::GetNodeStatusRequest {});
                let status = client.get_node_status(request).await?.into_inner();
                print!("{}", turnstile::status::render(&status, std::time::SystemTime::now()));
                Ok(())
            })
        }
        Command::Restore { from, config, data_dir } => {
            let config = Config::load(&config)?;
            let data_dir = data_dir.unwrap_or(config.node.data_dir);
            turnstile_storage::backup::restore(&from, &data_dir)?;
            println!("restored {} into {}", from.display(), data_dir.display());
            Ok(())
        }
        Command::Token { user, admin, ttl_seconds, config } => {
            let config = Config::read_optional(config.as_deref())?;
            config.validate()?;
            let role = if admin { Role::Admin } else { Role::User };
            println!("{}", Authenticator::new(config.auth.secret.as_bytes()).mint(&user, role, ttl_seconds));
            Ok(())
        }
        Command::Cluster(ClusterCommand::Status { config, timeout_seconds }) => {
            let loaded = Config::read_optional(config.as_deref())?;
            anyhow::ensure!(
                !loaded.nodes.is_empty(),
                "the config lists no [[nodes]]: give the cluster's config with --config"
            );
            let timeout = std::time::Duration::from_secs(timeout_seconds.max(1));
            tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async move {
                let answers = turnstile::client::membership::gather(&config, &loaded, timeout).await;
                print!("{}", turnstile::status::render_cluster(&answers));
                Ok(())
            })
        }
        Command::Cluster(ClusterCommand::AddNode { id, address, change }) => {
            membership_change(change, vec![turnstile_proto::v1::ClusterNode { node_id: id, address }], vec![])
        }
        Command::Cluster(ClusterCommand::RemoveNode { id, change }) => membership_change(change, vec![], vec![id]),
        Command::Cluster(ClusterCommand::ReplaceNode { old_id, new_id, address, change }) => {
            membership_change(change, vec![turnstile_proto::v1::ClusterNode { node_id: new_id, address }], vec![old_id])
        }
        Command::Client(command) => std::process::exit(turnstile::client::run(command)),
    }
}

/// `turnstile cluster add-node | remove-node | replace-node`.
fn membership_change(
    change: ChangeArgs,
    add: Vec<turnstile_proto::v1::ClusterNode>,
    remove: Vec<String>,
) -> anyhow::Result<()> {
    let loaded = Config::read_optional(change.config.as_deref())?;
    anyhow::ensure!(!loaded.nodes.is_empty(), "the config lists no [[nodes]]: give the cluster's config with --config");
    let wait = (!change.no_wait).then(|| std::time::Duration::from_secs(change.wait_seconds));
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(turnstile::client::membership::change(
        change.config,
        &loaded,
        add,
        remove,
        wait,
    ))
}

fn engine_options(config: &Config) -> EngineOptions {
    EngineOptions {
        checkpoint_commands: config.storage.checkpoint_commands,
        checkpoint_interval: std::time::Duration::from_secs(config.storage.checkpoint_sweep_seconds),
        ..EngineOptions::default()
    }
}

async fn serve(mut config: Config, demo: bool) -> anyhow::Result<()> {
    // Ports first: a port in use is reported before anything is created on disk.
    let listener = grpc_listener(&mut config).await?;
    let readiness = turnstile::metrics::Readiness::default();
    if let Some(listen) = config.metrics.listen {
        let metrics_listener = turnstile::metrics::bind(listen).await?;
        config.metrics.listen = Some(metrics_listener.local_addr()?);
        turnstile::metrics::serve(metrics_listener, readiness.clone())?;
    }
    let started = std::time::Instant::now();
    if config.is_cluster() {
        return serve_cluster(config, demo, started, listener, readiness).await;
    }
    let engine = Engine::open(&config.node.data_dir, engine_options(&config))
        .await
        .with_context(|| format!("cannot open the data directory {}", config.node.data_dir.display()))?;
    tracing::info!(
        data_dir = %config.node.data_dir.display(),
        events = engine.catalog().events().len(),
        recovery_ms = started.elapsed().as_millis() as u64,
        "data directory opened"
    );
    if demo {
        match turnstile_tools::demo::seed(&engine).await? {
            turnstile_tools::demo::Seeded::Created(event_ids) => {
                tracing::info!(events = ?event_ids, "demo data seeded")
            }
            turnstile_tools::demo::Seeded::AlreadyThere => {
                tracing::info!("demo data already in this data directory from an earlier run: nothing seeded")
            }
        }
    }
    let server = Server::start(&config, engine, listener).await?;
    readiness.set(true);
    if let Some(server) = serve_until_interrupted(server).await? {
        readiness.set(false);
        // Stops accepting, lets calls in flight finish (within a bound), then stops the event
        // actors and flushes and closes the log.
        server.shutdown().await?;
        tracing::info!("stopped");
    }
    Ok(())
}

/// The gRPC port: the listening socket a service manager handed over (systemd-style socket
/// activation: LISTEN_FDS, the first descriptor), else a new one bound to node.listen. A node
/// handed its socket serves on it whatever node.listen says; its address is logged and reported.
async fn grpc_listener(config: &mut Config) -> anyhow::Result<tokio::net::TcpListener> {
    let handed = listenfd::ListenFd::from_env()
        .take_tcp_listener(0)
        .context("LISTEN_FDS names a descriptor that is not a listening TCP socket")?;
    let Some(handed) = handed else {
        return tokio::net::TcpListener::bind(config.node.listen)
            .await
            .with_context(|| format!("cannot listen on {} (node.listen or --listen)", config.node.listen));
    };
    handed.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(handed)?;
    let address = listener.local_addr()?;
    if address != config.node.listen {
        tracing::info!(
            handed = %address,
            configured = %config.node.listen,
            "serving on the socket handed over (LISTEN_FDS), not on the configured address"
        );
    }
    config.node.listen = address;
    Ok(listener)
}

/// One node of a cluster: the node's store, its shard groups, the engine on top, and the gRPC
/// port serving both the API and replication.
async fn serve_cluster(
    config: Config,
    demo: bool,
    started: std::time::Instant,
    listener: tokio::net::TcpListener,
    readiness: turnstile::metrics::Readiness,
) -> anyhow::Result<()> {
    use std::sync::Arc;
    use turnstile::cluster::{Cluster, ReplicatedJournal};
    std::fs::create_dir_all(&config.node.data_dir)
        .with_context(|| format!("cannot create the data directory {}", config.node.data_dir.display()))?;
    let store = Arc::new(
        turnstile_storage::Store::open(&config.node.data_dir)
            .with_context(|| format!("cannot open the data directory {}", config.node.data_dir.display()))?,
    );
    let cluster = Cluster::open(&config, store.clone())?;
    let engine = Engine::open_clustered(
        store,
        Arc::new(ReplicatedJournal(cluster.clone())),
        cluster.clone(),
        engine_options(&config),
    )
    .await
    .context("cannot start the engine")?;
    let server = Server::start_clustered(&config, engine.clone(), listener, cluster.clone()).await?;
    cluster.start(engine.downgrade()).await?;
    readiness.set(true);
    tracing::info!(
        node = %config.node.id,
        data_dir = %config.node.data_dir.display(),
        events = engine.catalog().events().len(),
        startup_ms = started.elapsed().as_millis() as u64,
        "cluster node started"
    );
    if demo {
        tracing::warn!("--demo is ignored in a cluster: create the catalog through the admin API");
    }
    if let Some(server) = serve_until_interrupted(server).await? {
        readiness.set(false);
        // Stops accepting and lets calls in flight finish (within a bound); the engine's store
        // is the cluster's too, so the cluster stops the engine, its groups and the store.
        server.stop_serving().await?;
    }
    cluster.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Serves until Ctrl-C or SIGTERM (then hands the server back for the caller to stop what it
/// started) or until the server fails.
async fn serve_until_interrupted(mut server: Server) -> anyhow::Result<Option<Server>> {
    // systemd, containers and Kubernetes stop a service with SIGTERM; without a handler it kills
    // the process at once, cutting off calls in flight.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let signal = tokio::select! {
        result = tokio::signal::ctrl_c() => {
            result?;
            "SIGINT"
        }
        _ = terminate.recv() => "SIGTERM",
        result = server.wait_failure() => return result.map(|()| None),
    };
    tracing::info!(signal, "shutting down");
    Ok(Some(server))
}
