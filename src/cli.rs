//! The command line (SPEC §1, §9).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "embedgate",
    version,
    about = "A secure-embed gateway for JWT-signed iframe embeds"
)]
pub struct Cli {
    /// Configuration file (default: embedgate.toml when it exists).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the gateway (production mode).
    Serve,
    /// Runs the gateway with a seeded demo organisation and a demo host page.
    Demo(DemoArgs),
    /// Prints a signed embed URL.
    Sign(Box<SignArgs>),
    /// Manages admin API tokens.
    #[command(subcommand)]
    AdminToken(AdminTokenCommand),
    /// Applies database migrations.
    Migrate,
    /// Manages the gateway's own keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Retires the identity-assertion signing key and creates a new one;
    /// restart every instance afterwards. The old public key stays in
    /// /.well-known/jwks.json for an hour.
    RotateAssertion,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address to listen on; the demo's public_url follows it.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Folder for the demo's database and keys (created when missing,
    /// reused when present). Default: a fresh temporary folder.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    #[arg(long)]
    pub client_id: String,
    /// The client's secret (or set EMBEDGATE_CLIENT_SECRET).
    #[arg(long, env = "EMBEDGATE_CLIENT_SECRET", hide_env_values = true)]
    pub secret: String,
    #[arg(long)]
    pub email: String,
    #[arg(long)]
    pub workbook: String,
    /// Comma-separated team names.
    #[arg(long, value_delimiter = ',')]
    pub teams: Option<Vec<String>>,
    #[arg(long)]
    pub account_type: Option<String>,
    /// A user attribute, key=value; repeatable.
    #[arg(long = "attr", value_parser = parse_attr)]
    pub attrs: Vec<(String, String)>,
    #[arg(long, default_value_t = 300)]
    pub ttl_secs: i64,
    #[arg(long)]
    pub tag: Option<String>,
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub base_url: String,
    #[arg(long, default_value = "HS256")]
    pub algorithm: String,
    #[arg(long)]
    pub first_name: Option<String>,
    #[arg(long)]
    pub last_name: Option<String>,
}

fn parse_attr(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not key=value"))
}

#[derive(Debug, Subcommand)]
pub enum AdminTokenCommand {
    /// Creates an admin API token and prints it once, on the last line.
    Create {
        #[arg(long)]
        name: String,
    },
}
