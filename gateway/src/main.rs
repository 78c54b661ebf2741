//! The `turnstile` command: `serve` runs a node, `token` mints a development token.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use turnstile::auth::{Authenticator, Role};
use turnstile::config::Config;
use turnstile::server::Server;
use turnstile_engine::Engine;

#[derive(Parser)]
#[command(
    name = "turnstile",
    version,
    about = "Seat-inventory engine for live-event ticketing"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node.
    Serve {
        /// Configuration file.
        #[arg(long, default_value = "cluster.toml")]
        config: PathBuf,
        /// Address to listen on (overrides node.listen).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Data directory (overrides node.data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Seed a demo venue, performers and events.
        #[arg(long)]
        demo: bool,
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
        /// Configuration file holding the secret.
        #[arg(long, default_value = "cluster.toml")]
        config: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            listen,
            data_dir,
            demo,
        } => {
            let mut config = Config::load(&config)?;
            if let Some(listen) = listen {
                config.node.listen = listen;
            }
            if let Some(data_dir) = data_dir {
                config.node.data_dir = data_dir;
            }
            let filter = EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new(&config.log.level));
            tracing_subscriber::fmt().with_env_filter(filter).init();
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(serve(config, demo))
        }
        Command::Token {
            user,
            admin,
            ttl_seconds,
            config,
        } => {
            let config = Config::load(&config)?;
            let role = if admin { Role::Admin } else { Role::User };
            println!(
                "{}",
                Authenticator::new(config.auth.secret.as_bytes()).mint(&user, role, ttl_seconds)
            );
            Ok(())
        }
    }
}

async fn serve(config: Config, demo: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.node.data_dir).with_context(|| {
        format!(
            "cannot create data directory {}",
            config.node.data_dir.display()
        )
    })?;
    let engine = Engine::new();
    if demo {
        let event_ids = turnstile::demo::seed(&engine)?;
        tracing::info!(events = ?event_ids, "demo data seeded");
    }
    let listener = tokio::net::TcpListener::bind(config.node.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.node.listen))?;
    let server = Server::start(&config, engine, listener).await?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => {
            result?;
            tracing::info!("shutting down");
        }
        result = server.wait() => return result,
    }
    Ok(())
}
