//! Starts the gRPC server: the three Turnstile services, standard health checking and server
//! reflection, on a listener the caller binds (tests bind 127.0.0.1:0).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use turnstile_engine::Engine;
use turnstile_proto::v1::admin_service_server::AdminServiceServer;
use turnstile_proto::v1::booking_service_server::BookingServiceServer;
use turnstile_proto::v1::catalog_service_server::CatalogServiceServer;
use turnstile_proto::v1::queue_service_server::QueueServiceServer;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::state::Gateway;

type ReplicationServer = turnstile_cluster::network::proto::raft_server::RaftServer<turnstile_cluster::RaftService>;

/// How long a shutdown waits for calls in flight before it cuts them off: well inside the 30 s
/// that Kubernetes and systemd wait after SIGTERM before they kill.
pub const IN_FLIGHT_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// A running server. Dropping it does not stop the server; call `shutdown`.
pub struct Server {
    pub local_addr: SocketAddr,
    pub engine: Engine,
    shutdown: oneshot::Sender<()>,
    /// Tells long-lived streams to end.
    stopping: tokio::sync::watch::Sender<bool>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
    indexer: JoinHandle<()>,
    /// Closed when the server stops, so its directory is free at once.
    search: Arc<turnstile_search::SearchIndex>,
}

impl Server {
    /// Serves until `shutdown` is called.
    pub async fn start(config: &Config, engine: Engine, listener: TcpListener) -> anyhow::Result<Self> {
        Self::start_inner(config, engine, listener, None, None).await
    }

    /// A node of a cluster: routes each event's calls to its shard leader and serves the
    /// replication service on the same port.
    pub async fn start_clustered(
        config: &Config,
        engine: Engine,
        listener: TcpListener,
        cluster: Arc<crate::cluster::Cluster>,
    ) -> anyhow::Result<Self> {
        let replication = cluster.service();
        Self::start_inner(config, engine, listener, Some(cluster), Some(replication)).await
    }

    /// Like `start`, with the router that says which node serves each event (a cluster node).
    pub async fn start_with_router(
        config: &Config,
        engine: Engine,
        listener: TcpListener,
        router: Option<Arc<dyn crate::routing::EventRouter>>,
    ) -> anyhow::Result<Self> {
        Self::start_inner(config, engine, listener, router, None).await
    }

    async fn start_inner(
        config: &Config,
        engine: Engine,
        listener: TcpListener,
        router: Option<Arc<dyn crate::routing::EventRouter>>,
        replication: Option<ReplicationServer>,
    ) -> anyhow::Result<Self> {
        let local_addr = listener.local_addr()?;
        // The index lives beside the log when the engine is durable, in memory otherwise.
        let search_path =
            engine.store().map(|store| store.path().parent().unwrap_or(std::path::Path::new(".")).join("search"));
        let (search, indexer) = crate::search::start(&engine, search_path).await?;
        let search_index = search.clone();
        let (stopping, stopping_receiver) = tokio::sync::watch::channel(false);
        let gateway = Gateway {
            stopping: stopping_receiver,
            engine: engine.clone(),
            search,
            rate_limits: crate::rate::RateLimits::new(&config.limits),
            node_id: config.node.id.clone(),
            node_info: Arc::new(crate::state::NodeInfo {
                started_at: std::time::SystemTime::now(),
                listen_address: local_addr,
                metrics_address: config.metrics.listen,
                data_directory: {
                    let data_dir = engine
                        .store()
                        .and_then(|store| store.path().parent().map(std::path::Path::to_path_buf))
                        .unwrap_or_else(|| config.node.data_dir.clone());
                    std::fs::canonicalize(&data_dir).unwrap_or(data_dir)
                },
            }),
            authenticator: Arc::new(Authenticator::new(config.auth.secret.as_bytes())),
            admission: Arc::new(crate::admission::AdmissionTokens::new(config.auth.secret.as_bytes())),
            anonymous_catalog_reads: config.auth.anonymous_catalog_reads,
            router,
            forwarding: crate::forward::Forwarding::with_tls(
                &config.node.id,
                config.forwarding_secret(),
                config.tls.peer_client()?,
            ),
            // Beside the data directory the engine really uses (the store's), unless configured.
            stream_requests_in_flight_max: config.limits.stream_requests_in_flight_max as usize,
            backup_dir: config.storage.backup_dir_for(
                engine.store().and_then(|store| store.path().parent()).unwrap_or(&config.node.data_dir),
            ),
        };
        let request_bytes_max = config.limits.request_bytes_max;

        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter.set_serving::<CatalogServiceServer<Gateway>>().await;
        health_reporter.set_serving::<BookingServiceServer<Gateway>>().await;
        health_reporter.set_serving::<AdminServiceServer<Gateway>>().await;
        health_reporter.set_serving::<QueueServiceServer<Gateway>>().await;

        // Health checking is served too, so reflection lists it (grpcurl finds it by name).
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(turnstile_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(turnstile_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        // JSON over HTTP, server-sent events and the page share the port with gRPC: HTTP/1.1 is
        // accepted beside HTTP/2, and grpc-web is translated for browser gRPC clients.
        let http = config.http.enabled.then(|| crate::http::router(gateway.clone(), config));
        let mut builder = tonic::transport::Server::builder()
            .max_concurrent_streams(Some(config.limits.streams_per_connection_max))
            .accept_http1(http.is_some());
        if let (Some(certificate_file), Some(private_key_file)) =
            (&config.tls.certificate_file, &config.tls.private_key_file)
        {
            let read = |path: &std::path::Path| {
                std::fs::read(path).map_err(|error| anyhow::anyhow!("tls: cannot read {}: {error}", path.display()))
            };
            let identity = tonic::transport::Identity::from_pem(read(certificate_file)?, read(private_key_file)?);
            builder = builder.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
            tracing::info!(certificate = %certificate_file.display(), "gRPC port speaks TLS");
        }
        let mut routes = tonic::service::Routes::new(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(CatalogServiceServer::new(gateway.clone()).max_decoding_message_size(request_bytes_max))
            .add_service(BookingServiceServer::new(gateway.clone()).max_decoding_message_size(request_bytes_max))
            .add_service(QueueServiceServer::new(gateway.clone()).max_decoding_message_size(request_bytes_max))
            .add_service(AdminServiceServer::new(gateway).max_decoding_message_size(request_bytes_max));
        if let Some(replication) = replication {
            routes = routes.add_service(replication);
        }
        if let Some(http) = http {
            // grpc-web for the gRPC services only: tonic-web refuses any other HTTP/1.1 request.
            let grpc = routes.into_axum_router().layer(tonic_web::GrpcWebLayer::new());
            routes = tonic::service::Routes::from(grpc.merge(http));
        }
        let router = builder
            .layer(tower::util::option_layer(crate::http::cors(config)))
            .layer(crate::metrics::RpcMetricsLayer)
            .layer(crate::error::StatusCodeLayer)
            .add_routes(routes.prepare());

        let (shutdown, shutdown_signal) = oneshot::channel::<()>();
        // No Nagle: small responses must not wait for the client's delayed ACK (a 40 ms stall).
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let task = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
            let _ = shutdown_signal.await;
        }));
        tracing::info!(%local_addr, node = %config.node.id, http = config.http.enabled, "serving gRPC");
        Ok(Self { local_addr, engine, shutdown, stopping, task, indexer, search: search_index })
    }

    /// Stops accepting calls, lets the calls in flight finish for up to `IN_FLIGHT_WAIT_MAX`, then
    /// stops the engine (its actors and its log writer, which flushes).
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let engine = self.engine.clone();
        self.stop_serving().await?;
        // Returns once the database is closed: whoever opens the directory next (a restart in
        // the same process) finds it free, without retrying.
        engine.close().await?;
        Ok(())
    }

    /// Stops accepting calls and lets the calls in flight finish for up to `IN_FLIGHT_WAIT_MAX`,
    /// leaving the engine running: a cluster node stops its engine with the cluster, after this.
    pub async fn stop_serving(mut self) -> anyhow::Result<()> {
        // Streams first: a graceful shutdown waits for every open stream to end.
        let _ = self.stopping.send(true);
        let _ = self.shutdown.send(());
        match tokio::time::timeout(IN_FLIGHT_WAIT_MAX, &mut self.task).await {
            Ok(result) => result??,
            Err(_) => {
                tracing::warn!(
                    waited_ms = IN_FLIGHT_WAIT_MAX.as_millis() as u64,
                    "calls still in flight; cutting them off"
                );
                self.task.abort();
                let _ = (&mut self.task).await;
            }
        }
        self.indexer.abort();
        let _ = self.indexer.await;
        // Its lock is let go now, not when the last call's handle on it goes.
        let search = self.search;
        tokio::task::spawn_blocking(move || search.close()).await??;
        Ok(())
    }

    /// Waits until the server fails (it never stops by itself otherwise); the server stays usable
    /// for `shutdown` while this waits.
    pub async fn wait_failure(&mut self) -> anyhow::Result<()> {
        (&mut self.task).await??;
        Ok(())
    }
}
