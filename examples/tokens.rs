//! Signed embed paths for the load benchmark (`bench/run.sh`), many at once:
//! `embedgate sign` spawns a process per token, this signs thousands per
//! second with the same code (`embedgate::sign::sign_url`). Each token has a
//! fresh random `jti`, so each path works exactly once.
//!
//! Paths (`/embed/workbooks/{id}?jwt=…`) are written one per line,
//! round-robin into `--files` files `OUT.0`, `OUT.1`, … (one per wrk thread,
//! so that threads never share a token), or to standard output without
//! `--out`.
//!
//!     cargo run --release --example tokens -- --secret "$SECRET" --client-id bench \
//!         --workbook sales --count 1000 --email-prefix ana- --users 100 --teams "Bench A"
//!
//! `--users N` cycles through N emails (`{prefix}{i % N}@bench.example`):
//! handshakes for users that already exist. Without it every token names a
//! new email (`{prefix}{i}@bench.example`): handshakes that provision.

use std::fs::File;
use std::io::{BufWriter, Write};

use anyhow::Context;
use clap::Parser;
use embedgate::clock::{Clock, SystemClock};
use embedgate::sign::{SignRequest, sign_url};
use embedgate::token::SigningAlgorithm;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long)]
    secret: String,
    #[arg(long)]
    client_id: String,
    #[arg(long)]
    workbook: String,
    #[arg(long)]
    count: usize,
    #[arg(long, default_value = "user-")]
    email_prefix: String,
    /// Cycle through this many emails (existing users); default: one new
    /// email per token.
    #[arg(long)]
    users: Option<usize>,
    /// Comma-separated team names.
    #[arg(long, value_delimiter = ',')]
    teams: Option<Vec<String>>,
    #[arg(long)]
    account_type: Option<String>,
    /// A user attribute, key=value; repeatable.
    #[arg(long = "attr")]
    attrs: Vec<String>,
    #[arg(long, default_value_t = 3600)]
    ttl_secs: i64,
    /// Write to OUT.0 … OUT.{files-1} instead of standard output.
    #[arg(long)]
    out: Option<String>,
    #[arg(long, default_value_t = 1)]
    files: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let attributes = args
        .attrs
        .iter()
        .map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("{a:?} is not key=value"))
        })
        .collect::<anyhow::Result<_>>()?;
    let now = SystemClock.unix();
    let mut request = SignRequest {
        client_id: args.client_id.clone(),
        secret: args.secret.clone(),
        algorithm: SigningAlgorithm::HS256,
        email: String::new(),
        workbook: args.workbook.clone(),
        teams: args.teams.clone(),
        account_type: args.account_type.clone(),
        attributes,
        first_name: None,
        last_name: None,
        ttl_secs: args.ttl_secs,
        tag: None,
        // An empty base gives a path: what wrk requests.
        base_url: String::new(),
        now,
    };
    let mut outputs: Vec<Box<dyn Write>> = match &args.out {
        Some(out) => (0..args.files.max(1))
            .map(|i| {
                let path = format!("{out}.{i}");
                File::create(&path)
                    .with_context(|| format!("creating {path}"))
                    .map(|f| Box::new(BufWriter::new(f)) as Box<dyn Write>)
            })
            .collect::<anyhow::Result<_>>()?,
        None => vec![Box::new(BufWriter::new(std::io::stdout().lock()))],
    };
    let files = outputs.len();
    for i in 0..args.count {
        let n = args.users.map_or(i, |users| i % users.max(1));
        request.email = format!("{}{n}@bench.example", args.email_prefix);
        writeln!(outputs[i % files], "{}", sign_url(&request)?)?;
    }
    for out in &mut outputs {
        out.flush()?;
    }
    Ok(())
}
