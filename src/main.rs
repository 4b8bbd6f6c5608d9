use std::io::{IsTerminal, Write};

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Everything the service creates is its owner's alone, whatever the umask.
    bulkexport::private_files::restrict_umask();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        // A log line that cannot be written (a closed pipe) is dropped: the
        // fallback of reporting it on stderr would panic the logging task.
        .log_internal_errors(false)
        .init();
    match bulkexport::cli::run(bulkexport::cli::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "error: {}",
                bulkexport::cli::describe(&e)
            );
            std::process::ExitCode::FAILURE
        }
    }
}
