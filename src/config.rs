//! Configuration: defaults, then a TOML file, then `EMBEDGATE__SECTION__KEY`
//! environment variables. Unknown keys are an error at start that names the
//! key; values are checked once here so the rest of the code can trust them.
//!
//! Configuration is what an operator sets before start. What admins change
//! while the gateway runs (auto-provisioning, company separation) are
//! *settings*, stored in the database (see `policy::Settings`).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub const DEFAULT_CONFIG_FILE: &str = "embedgate.toml";
pub const ENV_PREFIX: &str = "EMBEDGATE__";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub embed: EmbedConfig,
    pub keys: KeysConfig,
    pub content: ContentConfig,
    pub limits: LimitsConfig,
    pub audit: AuditConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port.
    pub bind: String,
    /// The URL browsers use to reach the gateway: cookies, assertions, demo.
    pub public_url: String,
    /// PEM certificate chain; with `tls_key`, the gateway serves HTTPS.
    pub tls_cert: String,
    pub tls_key: String,
    /// Worker threads; 0 means one per CPU.
    pub workers: usize,
    /// How long SIGTERM waits for in-flight requests.
    pub shutdown_timeout_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            public_url: "http://127.0.0.1:8080".into(),
            tls_cert: String::new(),
            tls_key: String::new(),
            workers: 0,
            shutdown_timeout_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/file.db` or `postgres://user@host/db`.
    pub url: DatabaseUrl,
    pub max_connections: u32,
    /// SQLite: how many consumed `jti`s the instance remembers (room for
    /// all of them is taken at the first handshake: 66 MiB at the default;
    /// at most `store::JTI_MEMORY_LIMIT`); beyond them, and at 0, new ids go
    /// to the table's unique index (see `store::jti`). Ignored on PostgreSQL.
    pub jti_memory_max: usize,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: DatabaseUrl("sqlite://data/embedgate.db".into()),
            max_connections: 8,
            jti_memory_max: crate::store::JTI_MEMORY_MAX,
        }
    }
}

/// A database URL; its password never prints.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct DatabaseUrl(pub String);

impl DatabaseUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_postgres(&self) -> bool {
        self.0.starts_with("postgres://") || self.0.starts_with("postgresql://")
    }

    pub fn is_sqlite(&self) -> bool {
        self.0.starts_with("sqlite:")
    }

    /// The URL with any password replaced, for logs and errors.
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("***"));
                u.to_string()
            }
            _ => self.0.clone(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbedConfig {
    pub max_token_lifetime_secs: i64,
    pub clock_skew_secs: i64,
    pub session_ttl_secs: i64,
    /// When set, every token must carry this `aud`.
    pub audience: String,
}

impl Default for EmbedConfig {
    fn default() -> Self {
        Self {
            max_token_lifetime_secs: 2_592_000,
            clock_skew_secs: 60,
            session_ttl_secs: 3600,
            audience: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    pub dir: PathBuf,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("keys"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContentConfig {
    pub templates_dir: PathBuf,
    pub data_dir: PathBuf,
    pub upstream_timeout_secs: u64,
    pub upstream_connect_timeout_secs: u64,
    /// Largest request body proxied to an upstream.
    pub max_request_body_bytes: u64,
}

impl Default for ContentConfig {
    fn default() -> Self {
        Self {
            templates_dir: PathBuf::from("templates"),
            data_dir: PathBuf::from("data"),
            upstream_timeout_secs: 30,
            upstream_connect_timeout_secs: 5,
            max_request_body_bytes: 10 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Failed handshakes per client address per minute before `429`.
    pub failed_handshakes_per_minute: u32,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            failed_handshakes_per_minute: 20,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Audit entries older than this are pruned; 0 keeps them forever.
    pub retention_days: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { retention_days: 90 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Figment(#[from] Box<figment::Error>),
    #[error("invalid configuration: {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Config {
    /// Loads defaults, then `file` (or `embedgate.toml` when it exists), then
    /// the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path.into())),
            Some(path) => figment = figment.merge(Toml::file(path)),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                figment = figment.merge(Toml::file(DEFAULT_CONFIG_FILE))
            }
            None => {}
        }
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__"));
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the values that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        if let Err(e) = self.server.bind.parse::<SocketAddr>() {
            return invalid(
                "server.bind",
                format!("{:?} is not host:port ({e})", self.server.bind),
            );
        }
        match url::Url::parse(&self.server.public_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return invalid(
                    "server.public_url",
                    format!("{:?} is not an http(s) URL", self.server.public_url),
                );
            }
        }
        if self.server.tls_cert.is_empty() != self.server.tls_key.is_empty() {
            return invalid(
                "server.tls_cert",
                "set both tls_cert and tls_key, or neither".into(),
            );
        }
        if !self.database.url.is_sqlite() && !self.database.url.is_postgres() {
            return invalid(
                "database.url",
                format!(
                    "{} must start with sqlite:// or postgres://",
                    self.database.url.redacted()
                ),
            );
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections", "must be at least 1".into());
        }
        if self.database.jti_memory_max > crate::store::JTI_MEMORY_LIMIT {
            return invalid(
                "database.jti_memory_max",
                format!(
                    "{} is above {}: the memory's room is taken at once",
                    self.database.jti_memory_max,
                    crate::store::JTI_MEMORY_LIMIT
                ),
            );
        }
        let positive = [
            (
                "embed.max_token_lifetime_secs",
                self.embed.max_token_lifetime_secs,
            ),
            ("embed.session_ttl_secs", self.embed.session_ttl_secs),
        ];
        for (key, value) in positive {
            if value <= 0 {
                return invalid(key, format!("must be positive, not {value}"));
            }
        }
        if self.embed.clock_skew_secs < 0 {
            return invalid("embed.clock_skew_secs", "may not be negative".into());
        }
        if self.content.upstream_timeout_secs == 0 {
            return invalid("content.upstream_timeout_secs", "must be positive".into());
        }
        Ok(())
    }

    pub fn bind_addr(&self) -> SocketAddr {
        self.server
            .bind
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8080)))
    }

    /// `public_url` without a trailing slash.
    pub fn public_url(&self) -> &str {
        self.server.public_url.trim_end_matches('/')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_toml(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("embedgate.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(Some(&path))
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::default();
        assert_eq!(c.server.bind, "127.0.0.1:8080");
        assert_eq!(c.embed.max_token_lifetime_secs, 2_592_000);
        assert_eq!(c.embed.clock_skew_secs, 60);
        assert_eq!(c.embed.session_ttl_secs, 3600);
        assert_eq!(c.limits.failed_handshakes_per_minute, 20);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn unknown_keys_are_named_in_the_error() {
        let err = load_toml("[server]\nbindd = \"127.0.0.1:1\"\n").unwrap_err();
        assert!(err.to_string().contains("bindd"), "{err}");
        let err = load_toml("[nonsense]\nx = 1\n").unwrap_err();
        assert!(err.to_string().contains("nonsense"), "{err}");
    }

    #[test]
    fn values_are_checked() {
        let err = load_toml("[server]\nbind = \"nowhere\"\n").unwrap_err();
        assert!(err.to_string().contains("server.bind"), "{err}");
        let err = load_toml("[database]\nurl = \"mysql://x\"\n").unwrap_err();
        assert!(err.to_string().contains("database.url"), "{err}");
        let err = load_toml("[server]\ntls_cert = \"a.pem\"\n").unwrap_err();
        assert!(err.to_string().contains("tls"), "{err}");
    }

    /// The `jti` memory takes its room at the first handshake: a max past
    /// the limit is refused at start, not allocated (or aborted on) then.
    #[test]
    fn the_jti_memory_max_is_bounded() {
        let max = crate::store::JTI_MEMORY_LIMIT;
        let ok = load_toml(&format!("[database]\njti_memory_max = {max}\n")).unwrap();
        assert_eq!(ok.database.jti_memory_max, max);
        let err = load_toml(&format!("[database]\njti_memory_max = {}\n", max + 1)).unwrap_err();
        assert!(err.to_string().contains("database.jti_memory_max"), "{err}");
        let err = load_toml("[database]\njti_memory_max = 1000000000000\n").unwrap_err();
        assert!(err.to_string().contains("database.jti_memory_max"), "{err}");
    }

    #[test]
    fn a_missing_explicit_file_is_an_error() {
        let err = Config::load(Some(Path::new("/nonexistent/embedgate.toml"))).unwrap_err();
        assert!(matches!(err, ConfigError::MissingFile(_)));
    }

    #[test]
    fn database_passwords_never_print() {
        let url = DatabaseUrl("postgres://app:hunter2@db/embedgate".into());
        assert!(!format!("{url:?}").contains("hunter2"));
    }
}
