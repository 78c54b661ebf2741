//! `cluster.toml`: the operator's configuration. Strict: unknown keys are errors, every field has a
//! default, and `validate` names the key that is wrong.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The configuration file every command reads unless told otherwise (a missing one means the
/// defaults: see `Config::read_optional`).
pub const DEFAULT_PATH: &str = "cluster.toml";
/// Environment variable that overrides `auth.secret`.
pub const AUTH_SECRET_ENV: &str = "TURNSTILE_AUTH_SECRET";
/// Environment variable that overrides `cluster.secret`.
pub const CLUSTER_SECRET_ENV: &str = "TURNSTILE_CLUSTER_SECRET";
/// The secret the committed cluster.toml ships with, for development: a node using it warns.
pub const DEVELOPMENT_SECRET: &str = "turnstile-development-secret-change-me";
/// Shortest accepted HS256 secret, in bytes.
const AUTH_SECRET_BYTES_MIN: usize = 16;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub node: NodeConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub metrics: MetricsConfig,
    pub http: HttpConfig,
    pub tls: TlsConfig,
    pub log: LogConfig,
    pub cluster: ClusterConfig,
    pub storage: StorageConfig,
    /// Every node of the cluster. A single-node deployment lists itself.
    pub nodes: Vec<NodeEntry>,
}

/// The command log.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Commands an event applies at least between automatic checkpoints of its state. Fewer make
    /// recovery shorter. An event also waits until its log since the last checkpoint holds an
    /// eighth of that checkpoint's bytes, so a large state is not rewritten every few thousand
    /// commands (`turnstile_engine::actor::CHECKPOINT_BYTES_PER_LOG_BYTE`).
    pub checkpoint_commands: u64,
    /// Seconds between checkpoint sweeps: a sweep checkpoints every event that changed since it
    /// was loaded and has no checkpoint yet, or whose last one is five minutes old.
    pub checkpoint_sweep_seconds: u64,
    /// Where `CreateBackup` (and `turnstile backup`) writes: a relative path in a request is
    /// resolved here, and no backup lands outside it. Unset: `backups` beside the data directory.
    pub backup_dir: Option<std::path::PathBuf>,
}

impl StorageConfig {
    /// The backup directory for a node whose data directory is `data_dir`.
    pub fn backup_dir_for(&self, data_dir: &std::path::Path) -> std::path::PathBuf {
        match &self.backup_dir {
            Some(dir) => dir.clone(),
            None => data_dir.parent().unwrap_or(std::path::Path::new(".")).join("backups"),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self { checkpoint_commands: 10_000, checkpoint_sweep_seconds: 30, backup_dir: None }
    }
}

/// Sharding and replication, used when `[[nodes]]` lists more than one node.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Logical shards events are spread over; fixed for the life of a cluster.
    pub shards: u32,
    /// Replicas of each shard (capped at the number of nodes).
    pub replicas: u32,
    /// Replication log entries a group applies between snapshots; the log behind a snapshot is
    /// purged. An entry carries a batch of commands.
    pub snapshot_interval_entries: u64,
    /// What the nodes of a cluster prove to each other with (replication calls, forwarded calls):
    /// the same on every node, never the buyers' `auth.secret`, so that whoever mints buyer tokens
    /// cannot pass for a node. Required in a cluster.
    pub secret: String,
    /// `serve --join`: this node joins a running cluster (an operator adds it with `turnstile
    /// cluster add-node`); it initializes no group, whatever its configuration lists.
    #[serde(skip)]
    pub join: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self { shards: 64, replicas: 3, snapshot_interval_entries: 5_000, secret: String::new(), join: false }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    pub id: String,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Whether the file set `data_dir` (rather than the default).
    #[serde(skip)]
    pub data_dir_given: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HS256 secret shared with the backends that mint buyer tokens.
    pub secret: String,
    /// Whether GetEvent and SearchEvents answer callers without a token.
    pub anonymous_catalog_reads: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request message the server decodes, in bytes.
    pub request_bytes_max: usize,
    /// Requests one buyer may make per second, sustained (0 turns the limit off).
    pub buyer_requests_per_second: u32,
    /// Requests one buyer may make at once after being idle.
    pub buyer_requests_burst: u32,
    /// Requests one client address may make per second, sustained (0 turns the limit off).
    /// Backends call on behalf of many buyers, so this is much higher than the buyer limit.
    pub address_requests_per_second: u32,
    pub address_requests_burst: u32,
    /// Concurrent HTTP/2 streams per client connection.
    pub streams_per_connection_max: u32,
    /// Requests of one `BookingService.Book` stream in flight at once; more are answered
    /// RESOURCE_EXHAUSTED.
    pub stream_requests_in_flight_max: u32,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the Prometheus endpoint (`GET /metrics`); absent turns it off.
    pub listen: Option<SocketAddr>,
}

/// JSON over HTTP, server-sent events, grpc-web and the seat-map page, on the gRPC port.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Serve them at all (gRPC is served either way).
    pub enabled: bool,
    /// Origins whose browser pages may call the API (CORS), such as "https://tickets.example.com";
    /// "*" allows every origin. Empty: same-origin only (the node's own page).
    pub cors_allowed_origins: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { enabled: true, cors_allowed_origins: Vec::new() }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain and private key; with both set the gRPC port speaks TLS only.
    pub certificate_file: Option<PathBuf>,
    pub private_key_file: Option<PathBuf>,
    /// PEM certificate of the CA that signed the other nodes' certificates: in a cluster with TLS
    /// on, nodes call each other (replication, forwarded calls) over TLS and check the peer's
    /// certificate against it, for the host of its `[[nodes]]` address (a name or an IP address
    /// the certificate lists). Required then.
    pub ca_file: Option<PathBuf>,
}

impl TlsConfig {
    /// Whether the gRPC port speaks TLS.
    pub fn is_on(&self) -> bool {
        self.certificate_file.is_some()
    }

    /// How this node calls other nodes when TLS is on (`None`: plaintext).
    pub fn peer_client(&self) -> anyhow::Result<Option<tonic::transport::ClientTlsConfig>> {
        if !self.is_on() {
            return Ok(None);
        }
        let Some(ca_file) = &self.ca_file else { return Ok(None) };
        let pem = std::fs::read(ca_file)
            .map_err(|error| anyhow::anyhow!("tls.ca_file: cannot read {}: {error}", ca_file.display()))?;
        Ok(Some(tonic::transport::ClientTlsConfig::new().ca_certificate(tonic::transport::Certificate::from_pem(pem))))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter such as "info" or "turnstile=debug"; `RUST_LOG` overrides it.
    pub level: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    pub id: String,
    pub address: SocketAddr,
    /// The node's data directory, used by `serve --node ID` (one config file for every node).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            id: "node-1".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir: PathBuf::from("data/node-1"),
            data_dir_given: false,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { secret: String::new(), anonymous_catalog_reads: true }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            request_bytes_max: 4 * 1024 * 1024,
            buyer_requests_per_second: 20,
            buyer_requests_burst: 40,
            address_requests_per_second: 0,
            address_requests_burst: 10_000,
            streams_per_connection_max: 1_024,
            stream_requests_in_flight_max: 1_024,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The causes are part of the message, not sources: printed with its chain, an error would
    // say them twice.
    #[error("cannot read {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{path}: {error}")]
    Parse { path: PathBuf, error: Box<toml::de::Error> },
    #[error("{key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

impl Config {
    /// A cluster of several nodes (otherwise a single node serves everything itself).
    pub fn is_cluster(&self) -> bool {
        self.nodes.len() > 1 || self.cluster.join
    }

    /// Reads and validates a config file, then applies the environment override of the secret.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let config = Self::read(path)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads a config file and applies the environment, without validating: for a caller that
    /// changes it first (`serve --node`) and validates after.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read { path: path.into(), error })?;
        let mut config: Config =
            toml::from_str(&text).map_err(|error| ConfigError::Parse { path: path.into(), error: Box::new(error) })?;
        config.node.data_dir_given = toml::from_str::<toml::Table>(&text)
            .ok()
            .and_then(|table| table.get("node").and_then(|node| node.get("data_dir")).cloned())
            .is_some();
        config.apply_environment();
        Ok(config)
    }

    /// Like `read`, but a missing file at the default path gives the defaults (every key is
    /// optional): client commands work outside a directory holding cluster.toml.
    pub fn read_or_default(path: &Path, is_default_path: bool) -> Result<Self, ConfigError> {
        if is_default_path && !path.exists() {
            let mut config = Config::default();
            config.apply_environment();
            return Ok(config);
        }
        Self::read(path)
    }

    /// `path` if given (it must exist), else `cluster.toml` if there is one, else the defaults;
    /// with the environment applied, not validated: what every command reads.
    pub fn read_optional(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            Some(path) => Self::read(path),
            None => Self::read_or_default(Path::new(DEFAULT_PATH), true),
        }
    }

    /// Makes this config that of node `id` of its `[[nodes]]` (`serve --node ID`): its id, its
    /// address, and its data directory, from the node's entry (`data_dir`), else from `[node]`
    /// when that section is this node's, else `data/ID`. Returns where the directory came from.
    /// With `data_dir_given` (`--data-dir`), the directory is the caller's and is left alone.
    pub fn select_node(&mut self, id: &str, data_dir_given: bool) -> Result<&'static str, ConfigError> {
        let entry = self.nodes.iter().find(|entry| entry.id == id).ok_or_else(|| ConfigError::Invalid {
            key: "--node",
            reason: format!("'{id}' is not one of the [[nodes]] of the config"),
        })?;
        let (data_dir, source) = match &entry.data_dir {
            _ if data_dir_given => (self.node.data_dir.clone(), "--data-dir"),
            Some(dir) => (dir.clone(), "[[nodes]] data_dir"),
            None if self.node.data_dir_given && self.node.id == id => (self.node.data_dir.clone(), "node.data_dir"),
            None if self.node.data_dir_given => {
                return Err(ConfigError::Invalid {
                    key: "node.data_dir",
                    reason: format!(
                        "'{}' is set for node '{}', not '{id}': give each node its own with `data_dir` in its \
                         [[nodes]] entry, or pass --data-dir",
                        self.node.data_dir.display(),
                        self.node.id
                    ),
                });
            }
            None => (PathBuf::from("data").join(id), "the default, data/ID"),
        };
        self.node.listen = entry.address;
        self.node.data_dir = data_dir;
        self.node.id = id.to_string();
        Ok(source)
    }

    pub fn apply_environment(&mut self) {
        if let Ok(secret) = std::env::var(AUTH_SECRET_ENV) {
            if !secret.is_empty() {
                self.auth.secret = secret;
            }
        }
        if let Ok(secret) = std::env::var(CLUSTER_SECRET_ENV) {
            if !secret.is_empty() {
                self.cluster.secret = secret;
            }
        }
    }

    /// The secret forwarded calls are marked with: `cluster.secret`, if set. Without one, a node
    /// accepts no forwarded mark.
    pub fn forwarding_secret(&self) -> Option<&[u8]> {
        (!self.cluster.secret.is_empty()).then_some(self.cluster.secret.as_bytes())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node.id.trim().is_empty() {
            return Err(ConfigError::Invalid { key: "node.id", reason: "must not be empty".into() });
        }
        if self.auth.secret.len() < AUTH_SECRET_BYTES_MIN {
            return Err(ConfigError::Invalid {
                key: "auth.secret",
                reason: format!(
                    "must be at least {AUTH_SECRET_BYTES_MIN} bytes (set it in the file or in {AUTH_SECRET_ENV})"
                ),
            });
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.limits.request_bytes_max) {
            return Err(ConfigError::Invalid {
                key: "limits.request_bytes_max",
                reason: "must be between 1 KiB and 64 MiB".into(),
            });
        }
        for origin in &self.http.cors_allowed_origins {
            let valid = origin == "*"
                || ((origin.starts_with("http://") || origin.starts_with("https://"))
                    && !origin.ends_with('/')
                    && http::HeaderValue::from_str(origin).is_ok());
            if !valid {
                return Err(ConfigError::Invalid {
                    key: "http.cors_allowed_origins",
                    reason: format!("{origin:?} is not an origin such as \"https://tickets.example.com\" (or \"*\")"),
                });
            }
        }
        if self.tls.certificate_file.is_some() != self.tls.private_key_file.is_some() {
            return Err(ConfigError::Invalid {
                key: "tls",
                reason: "set both certificate_file and private_key_file, or neither".into(),
            });
        }
        if self.is_cluster() && self.tls.is_on() && self.tls.ca_file.is_none() {
            return Err(ConfigError::Invalid {
                key: "tls.ca_file",
                reason: "required in a cluster with TLS on: the CA that signed the nodes' certificates, which \
                         nodes check each other's against"
                    .into(),
            });
        }
        if !(1..=65_536).contains(&self.limits.stream_requests_in_flight_max) {
            return Err(ConfigError::Invalid {
                key: "limits.stream_requests_in_flight_max",
                reason: "must be between 1 and 65536".into(),
            });
        }
        if !(1..=100_000).contains(&self.limits.streams_per_connection_max) {
            return Err(ConfigError::Invalid {
                key: "limits.streams_per_connection_max",
                reason: "must be between 1 and 100000".into(),
            });
        }
        let mut ids = std::collections::HashSet::new();
        for node in &self.nodes {
            if !ids.insert(node.id.as_str()) {
                return Err(ConfigError::Invalid {
                    key: "nodes.id",
                    reason: format!("node '{}' is listed twice", node.id),
                });
            }
        }
        if !(1..=4_096).contains(&self.cluster.shards) {
            return Err(ConfigError::Invalid { key: "cluster.shards", reason: "must be between 1 and 4096".into() });
        }
        if !(100..=1_000_000_000).contains(&self.storage.checkpoint_commands) {
            return Err(ConfigError::Invalid {
                key: "storage.checkpoint_commands",
                reason: "must be between 100 and 1000000000".into(),
            });
        }
        if !(1..=86_400).contains(&self.storage.checkpoint_sweep_seconds) {
            return Err(ConfigError::Invalid {
                key: "storage.checkpoint_sweep_seconds",
                reason: "must be between 1 and 86400".into(),
            });
        }
        if !(1..=7).contains(&self.cluster.replicas) {
            return Err(ConfigError::Invalid { key: "cluster.replicas", reason: "must be between 1 and 7".into() });
        }
        if !(10..=10_000_000).contains(&self.cluster.snapshot_interval_entries) {
            return Err(ConfigError::Invalid {
                key: "cluster.snapshot_interval_entries",
                reason: "must be between 10 and 10000000".into(),
            });
        }
        if (self.is_cluster() || !self.cluster.secret.is_empty()) && self.cluster.secret.len() < AUTH_SECRET_BYTES_MIN {
            return Err(ConfigError::Invalid {
                key: "cluster.secret",
                reason: format!(
                    "a cluster needs a secret of at least {AUTH_SECRET_BYTES_MIN} bytes, the same on every node \
                     (set it in the file or in {CLUSTER_SECRET_ENV})"
                ),
            });
        }
        if !self.cluster.secret.is_empty() && self.cluster.secret == self.auth.secret {
            return Err(ConfigError::Invalid {
                key: "cluster.secret",
                reason: "must differ from auth.secret: whoever mints buyer tokens must not pass for a node".into(),
            });
        }
        if !self.nodes.is_empty() && !ids.contains(self.node.id.as_str()) {
            return Err(ConfigError::Invalid {
                key: "node.id",
                reason: format!("'{}' is not one of the [[nodes]]", self.node.id),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_cluster_toml_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let config: Config = toml::from_str(&text).unwrap();
        config.validate().unwrap();
        assert_eq!(config.nodes.len(), 1);
    }

    fn written(text: &str) -> (tempfile::TempDir, PathBuf) {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("nodes.toml");
        std::fs::write(&path, text).unwrap();
        (directory, path)
    }

    const THREE_NODES: &str = "[[nodes]]\nid = \"a\"\naddress = \"127.0.0.1:7001\"\ndata_dir = \"/srv/a\"\n\
        [[nodes]]\nid = \"b\"\naddress = \"127.0.0.1:7002\"\n[[nodes]]\nid = \"c\"\naddress = \"127.0.0.1:7003\"\n";

    /// `serve --node ID` takes the node's data directory from its [[nodes]] entry, else from
    /// [node] when that section is the node's own, else data/ID; a [node] data_dir set for
    /// another node is refused rather than shared.
    #[test]
    fn selecting_a_node_honours_the_configured_data_directory() {
        let (_directory, path) = written(THREE_NODES);
        let mut config = Config::read(&path).unwrap();
        assert_eq!(config.select_node("a", false).unwrap(), "[[nodes]] data_dir");
        assert_eq!((config.node.data_dir.to_str().unwrap(), config.node.listen.port()), ("/srv/a", 7001));
        let mut config = Config::read(&path).unwrap();
        assert_eq!(config.select_node("b", false).unwrap(), "the default, data/ID");
        assert_eq!((config.node.id.as_str(), config.node.data_dir.to_str().unwrap()), ("b", "data/b"));
        assert!(Config::read(&path).unwrap().select_node("z", false).unwrap_err().to_string().contains("'z'"));

        let (_directory, path) = written(&format!("[node]\nid = \"b\"\ndata_dir = \"/var/lib/b\"\n{THREE_NODES}"));
        let mut config = Config::read(&path).unwrap();
        assert_eq!(config.select_node("b", false).unwrap(), "node.data_dir");
        assert_eq!(config.node.data_dir.to_str().unwrap(), "/var/lib/b");
        let error = Config::read(&path).unwrap().select_node("c", false).unwrap_err().to_string();
        assert!(error.starts_with("node.data_dir") && error.contains("/var/lib/b") && error.contains("'b'"), "{error}");
        // With --data-dir the directory is the command line's: nothing to refuse.
        let mut config = Config::read(&path).unwrap();
        assert_eq!(config.select_node("c", true).unwrap(), "--data-dir");
        assert_eq!(config.node.listen.port(), 7003);
    }

    /// A cluster needs its own secret for what nodes send each other, apart from the buyers'.
    #[test]
    fn a_cluster_needs_a_secret_of_its_own() {
        let auth = "[auth]\nsecret = \"a-secret-of-enough-bytes\"\n[node]\nid = \"a\"\n";
        let config: Config = toml::from_str(&format!("{auth}{THREE_NODES}")).unwrap();
        let error = config.validate().unwrap_err().to_string();
        assert!(error.starts_with("cluster.secret") && error.contains(CLUSTER_SECRET_ENV), "{error}");
        let same = format!("{auth}[cluster]\nsecret = \"a-secret-of-enough-bytes\"\n{THREE_NODES}");
        let error = toml::from_str::<Config>(&same).unwrap().validate().unwrap_err().to_string();
        assert!(error.starts_with("cluster.secret") && error.contains("differ from auth.secret"), "{error}");
        let own = format!("{auth}[cluster]\nsecret = \"the-nodes-own-secret-0123\"\n{THREE_NODES}");
        let config = toml::from_str::<Config>(&own).unwrap();
        config.validate().unwrap();
        assert_eq!(config.forwarding_secret(), Some(&b"the-nodes-own-secret-0123"[..]));
        assert_eq!(Config::default().forwarding_secret(), None, "a single node accepts no forwarded mark");
    }

    #[test]
    fn a_cluster_with_tls_needs_the_ca_of_its_nodes() {
        let base = "[auth]\nsecret = \"a-secret-of-enough-bytes\"\n[node]\nid = \"a\"\n[cluster]\nsecret = \"the-nodes-own-secret-0123\"\n";
        let tls = "[tls]\ncertificate_file = \"n.crt\"\nprivate_key_file = \"n.key\"\n";
        let config: Config = toml::from_str(&format!("{base}{tls}{THREE_NODES}")).unwrap();
        let error = config.validate().unwrap_err().to_string();
        assert!(error.starts_with("tls.ca_file"), "{error}");
        let with_ca: Config = toml::from_str(&format!("{base}{tls}ca_file = \"ca.crt\"\n{THREE_NODES}")).unwrap();
        with_ca.validate().unwrap();
        let error = with_ca.tls.peer_client().unwrap_err().to_string();
        assert!(error.starts_with("tls.ca_file: cannot read ca.crt"), "{error}");
        assert!(Config::default().tls.peer_client().unwrap().is_none(), "plaintext without TLS");
    }

    #[test]
    fn a_missing_default_config_means_the_defaults_and_a_missing_named_one_is_an_error() {
        let directory = tempfile::tempdir().unwrap();
        let missing = directory.path().join("cluster.toml");
        let config = Config::read_or_default(&missing, true).unwrap();
        assert_eq!(config.node.listen, NodeConfig::default().listen);
        let error = Config::read_or_default(&missing, false).unwrap_err().to_string();
        assert!(error.starts_with("cannot read") && error.contains("cluster.toml"), "{error}");
    }

    #[test]
    fn the_development_secret_is_the_one_cluster_toml_ships() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster.toml");
        let config: Config = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(config.auth.secret, DEVELOPMENT_SECRET);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let error = toml::from_str::<Config>("[node]\nlisten_addr = \"x\"\n").unwrap_err();
        assert!(error.to_string().contains("listen_addr"), "{error}");
        let config: Config = toml::from_str("[auth]\nsecret = \"short\"\n").unwrap();
        let error = config.validate().unwrap_err();
        assert!(error.to_string().starts_with("auth.secret"), "{error}");
        let secret = "[auth]\nsecret = \"a-secret-of-enough-bytes\"\n";
        let config: Config = toml::from_str(&format!("{secret}[storage]\ncheckpoint_commands = 5\n")).unwrap();
        let error = config.validate().unwrap_err();
        assert!(error.to_string().starts_with("storage.checkpoint_commands"), "{error}");
        let config: Config = toml::from_str(&format!("{secret}[storage]\ncheckpoint_sweep_seconds = 0\n")).unwrap();
        let error = config.validate().unwrap_err();
        assert!(error.to_string().starts_with("storage.checkpoint_sweep_seconds"), "{error}");
        let config: Config = toml::from_str(&format!("{secret}[cluster]\nreplicas = 9\n")).unwrap();
        let error = config.validate().unwrap_err();
        assert!(error.to_string().starts_with("cluster.replicas"), "{error}");
    }
}
