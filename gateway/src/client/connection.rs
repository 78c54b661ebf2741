//! Where a client command connects and who it says it is: the connection options every client
//! command shares (`--server`, `--node`, `--config`, `--ca`, `--tls-domain`, `--token`, `--user`),
//! resolved into a [`Target`] (an endpoint and a bearer token) before any network work starts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::auth::{Authenticator, Role};
use crate::config::{Config, AUTH_SECRET_ENV};

/// Environment variables the connection options read (documented in docs/CLI.md).
pub const SERVER_ENV: &str = "TURNSTILE_SERVER";
pub const TOKEN_ENV: &str = "TURNSTILE_TOKEN";
pub const USER_ENV: &str = "TURNSTILE_USER";
/// How long a connection attempt may take before the command gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Lifetime of a token minted for one command: long enough for a slow call, short enough that a
/// token copied out of a process list is soon useless.
const MINTED_TOKEN_TTL_SECONDS: u64 = 300;

/// Connection options shared by every client command.
#[derive(Args, Clone, Debug, Default)]
pub struct Connection {
    /// Node address, HOST:PORT (e.g. localhost:50051); default: node.listen of the config.
    #[arg(long, env = SERVER_ENV, value_name = "HOST:PORT")]
    pub server: Option<String>,
    /// Connect to this node of the config's [[nodes]] (its address from that list).
    #[arg(long, value_name = "ID")]
    pub node: Option<String>,
    /// Configuration file [default: cluster.toml, skipped when missing].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// PEM file of the CA that signed the node's certificate: connect over TLS (default: the
    /// config's tls.ca_file when its [tls] is on).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Name to verify the node's certificate against (default: the host of the address).
    #[arg(long, value_name = "NAME", requires = "ca")]
    pub tls_domain: Option<String>,
    /// Bearer token to send as is; otherwise one is minted from auth.secret.
    #[arg(long, env = TOKEN_ENV, value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Buyer to mint a token for (the token's `sub`) when no --token is given.
    #[arg(long, env = USER_ENV, value_name = "NAME")]
    pub user: Option<String>,
}

/// Whose token a command needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    /// A buyer: `--token`, or a token minted for `--user`.
    Buyer,
    /// An admin: `--token`, or an admin token minted for `--user` (or `subject` without one).
    Admin { subject: &'static str },
    /// Catalog reads: a token when one can be had, none otherwise (the node decides whether it
    /// answers anonymous reads, `auth.anonymous_catalog_reads`).
    Optional,
}

/// A resolved connection: where to connect, how, and the token to send.
#[derive(Clone, Debug)]
pub struct Target {
    /// The URI connected to, `http://` or `https://`.
    pub uri: String,
    /// TLS settings when `--ca` was given.
    tls: Option<ClientTlsConfig>,
    pub token: Option<String>,
}

impl Connection {
    /// The config: `--config` (which must exist), else `cluster.toml` if present, else the
    /// defaults; the environment (TURNSTILE_AUTH_SECRET) applies to each.
    pub fn config(&self) -> anyhow::Result<Config> {
        Ok(Config::read_optional(self.config.as_deref())?)
    }

    /// Resolves the address, TLS settings and token. No network work happens here.
    pub fn target(&self, identity: Identity) -> anyhow::Result<Target> {
        let config = self.config()?;
        let address = match (&self.node, &self.server) {
            (Some(node), _) => {
                let entry = config.nodes.iter().find(|entry| &entry.id == node).ok_or_else(|| {
                    let known: Vec<&str> = config.nodes.iter().map(|entry| entry.id.as_str()).collect();
                    anyhow::anyhow!(
                        "--node: '{node}' is not one of the [[nodes]] of {} (known: {})",
                        self.config_name(),
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    )
                })?;
                entry.address.to_string()
            }
            (None, Some(server)) => server.trim().to_string(),
            (None, None) => config.node.listen.to_string(),
        };
        // Without --ca, a config whose nodes speak TLS names the CA to check them with.
        let ca = self.ca.clone().or_else(|| config.tls.ca_file.clone().filter(|_| config.tls.is_on()));
        let (uri, host) = uri_and_host(&address, ca.is_some())?;
        let tls = match &ca {
            Some(ca) => {
                let pem = std::fs::read(ca).with_context(|| format!("CA file: cannot read {}", ca.display()))?;
                let domain = self.tls_domain.clone().unwrap_or(host);
                Some(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)).domain_name(domain))
            }
            None => None,
        };
        let token = self.token_for(&config, identity)?;
        Ok(Target { uri, tls, token })
    }

    fn config_name(&self) -> String {
        self.config.as_deref().unwrap_or(Path::new(crate::config::DEFAULT_PATH)).display().to_string()
    }

    fn token_for(&self, config: &Config, identity: Identity) -> anyhow::Result<Option<String>> {
        if let Some(token) = self.token.as_deref().map(str::trim).filter(|token| !token.is_empty()) {
            return Ok(Some(token.to_string()));
        }
        let secret = config.auth.secret.as_bytes();
        let (subject, role) = match (identity, self.user.as_deref()) {
            (Identity::Buyer, Some(user)) => (user, Role::User),
            (Identity::Buyer, None) => anyhow::bail!(
                "no token: pass --token TOKEN (or set {TOKEN_ENV}), or --user NAME (or set {USER_ENV}) to mint \
                 a buyer token from the auth secret"
            ),
            (Identity::Admin { subject }, user) => (user.unwrap_or(subject), Role::Admin),
            (Identity::Optional, user) => (user.unwrap_or("turnstile-cli"), Role::User),
        };
        if secret.is_empty() {
            if identity == Identity::Optional {
                return Ok(None);
            }
            anyhow::bail!(
                "no token and no secret to mint one: pass --token TOKEN (or set {TOKEN_ENV}), or give the node's \
                 secret as auth.secret in --config FILE (now: {}) or in {AUTH_SECRET_ENV}",
                self.config_name()
            );
        }
        Ok(Some(Authenticator::new(secret).mint(subject, role, MINTED_TOKEN_TTL_SECONDS)))
    }
}

/// `HOST:PORT` (or a full `http://` / `https://` URI) as a URI, and the host for TLS name checks.
/// `https` is used when `tls` is set, whatever scheme was given.
fn uri_and_host(address: &str, tls: bool) -> anyhow::Result<(String, String)> {
    let without_scheme = address
        .strip_prefix("http://")
        .or_else(|| address.strip_prefix("https://"))
        .unwrap_or(address)
        .trim_end_matches('/');
    let scheme = if tls { "https" } else { "http" };
    let uri = format!("{scheme}://{without_scheme}");
    let parsed: http::Uri = uri.parse().with_context(|| format!("--server: '{address}' is not HOST:PORT"))?;
    let authority = parsed.authority().filter(|_| parsed.path() == "/" || parsed.path().is_empty());
    let Some(authority) = authority else {
        anyhow::bail!("--server: '{address}' is not HOST:PORT");
    };
    if authority.port_u16().is_none() {
        anyhow::bail!("--server: '{address}' has no port (HOST:PORT, e.g. localhost:50051)");
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
    Ok((uri, host))
}

impl Target {
    /// Connects (bounded by a timeout); the error names the address.
    pub async fn connect(&self) -> anyhow::Result<Channel> {
        let mut endpoint = Endpoint::from_shared(self.uri.clone())?.connect_timeout(CONNECT_TIMEOUT);
        if let Some(tls) = &self.tls {
            endpoint = endpoint.tls_config(tls.clone()).context("TLS settings")?;
        }
        endpoint
            .connect()
            .await
            .map_err(|error| anyhow::Error::new(Unreachable { uri: self.uri.clone(), reason: error_chain(&error) }))
    }

    /// `message` with the bearer token attached, if there is one.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = &self.token {
            match format!("Bearer {token}").parse::<MetadataValue<_>>() {
                Ok(value) => {
                    request.metadata_mut().insert("authorization", value);
                }
                // Sent without: the node answers UNAUTHENTICATED, which says more than a local
                // error would.
                Err(_) => tracing::warn!("the token is not printable ASCII; sending none"),
            }
        }
        request
    }
}

/// The node could not be reached at all (no gRPC status to report).
#[derive(Debug, thiserror::Error)]
#[error("cannot reach the node at {uri}: {reason}")]
pub struct Unreachable {
    pub uri: String,
    pub reason: String,
}

/// An error with its sources, "outer: inner: innermost" (tonic's transport errors say little at
/// the top level).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_take_host_names_and_schemes() {
        assert_eq!(
            uri_and_host("localhost:50051", false).unwrap(),
            ("http://localhost:50051".into(), "localhost".into())
        );
        assert_eq!(uri_and_host("127.0.0.1:7", true).unwrap(), ("https://127.0.0.1:7".into(), "127.0.0.1".into()));
        assert_eq!(uri_and_host("http://[::1]:9/", false).unwrap(), ("http://[::1]:9".into(), "::1".into()));
        assert!(uri_and_host("localhost", false).unwrap_err().to_string().contains("no port"));
        assert!(uri_and_host("a b:1", false).is_err());
        assert!(uri_and_host("host:1/path", false).is_err());
    }

    #[test]
    fn tokens_are_given_minted_or_refused_with_the_way_to_provide_one() {
        let mut config = Config::default();
        let connection = Connection::default();
        let error = connection.token_for(&config, Identity::Admin { subject: "ops" }).unwrap_err().to_string();
        assert!(error.contains("--token") && error.contains(AUTH_SECRET_ENV), "{error}");
        assert_eq!(connection.token_for(&config, Identity::Optional).unwrap(), None);
        config.auth.secret = "a-secret-of-enough-bytes".into();
        let error = connection.token_for(&config, Identity::Buyer).unwrap_err().to_string();
        assert!(error.contains("--user"), "{error}");
        let buyer = Connection { user: Some("ann".into()), ..Connection::default() };
        let token = buyer.token_for(&config, Identity::Buyer).unwrap().unwrap();
        let mut metadata = tonic::metadata::MetadataMap::new();
        metadata.insert("authorization", format!("Bearer {token}").parse().unwrap());
        let caller = Authenticator::new(config.auth.secret.as_bytes()).require_caller(&metadata).unwrap();
        assert_eq!((caller.buyer.as_str(), caller.admin), ("ann", false));
        let given = Connection { token: Some("given".into()), ..Connection::default() };
        assert_eq!(given.token_for(&Config::default(), Identity::Buyer).unwrap().as_deref(), Some("given"));
    }
}
