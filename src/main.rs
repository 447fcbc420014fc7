//! The `embedgate` binary: parses the command line and runs one command.

use clap::Parser;

use embedgate::cli::{AdminTokenCommand, Cli, Command, KeysCommand};
use embedgate::config::Config;
use embedgate::{commands, telemetry};

/// mimalloc instead of glibc's allocator: every request allocates and frees
/// small buffers on one worker thread while the batch writers free on
/// another, and glibc's `malloc_consolidate`/`unlink_chunk` took 4–9 % of a
/// request's samples (bench/README.md has the figures).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One thread for the runtime of `main`: actix-web serves requests on
/// worker threads of its own, so this runtime only runs the background
/// tasks (the `jti` ledger, the audit and user writers, maintenance), which
/// take turns anyway. With the default two workers, each hand-off from a
/// request to the ledger could wake both: 0.65 voluntary context switches
/// per handshake on this runtime's threads against 0.3 with one
/// (bench/README.md).
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Flushes the queued log lines when `main` returns.
    let _logs = telemetry::init(cli.log_format);
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Sign(args) = cli.command {
        return commands::sign(*args);
    }
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => commands::serve(config).await,
        Command::Demo(args) => commands::demo(config, args).await,
        Command::AdminToken(AdminTokenCommand::Create { name }) => {
            commands::admin_token(config, &name).await
        }
        Command::Migrate => commands::migrate(config).await,
        Command::Keys(KeysCommand::RotateAssertion) => commands::rotate_assertion_key(&config),
        Command::Sign(_) => Ok(()),
    }
}
