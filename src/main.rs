use std::io::Write;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Everything the service creates is its owner's alone, whatever the umask.
    bulkexport::private_files::restrict_umask();
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
