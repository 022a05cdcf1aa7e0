//! Entry point: parse the command line, load settings, start telemetry, dispatch.

use clap::Parser;
use show_service::cli::{self, Cli, Command, TableAction};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match cli::settings(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("show-service: {e}");
            return ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    // Held to the end of main: dropping it writes out the buffered log lines.
    let _log = matches!(
        command,
        Command::Serve | Command::Import { .. } | Command::Table { .. }
    )
    .then(|| show_service::telemetry::init(&settings.log));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("show-service: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Serve => cli::serve(settings).await,
            Command::Import { file, chunk } => cli::import(settings, file, chunk as usize).await,
            Command::Table {
                action: TableAction::Create,
            } => cli::table_create(settings).await,
            Command::Token { scope, client_id } => cli::token(settings, client_id, scope).await,
            Command::Healthcheck { timeout_ms } => {
                cli::healthcheck(settings, Duration::from_millis(timeout_ms)).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "failed");
            eprintln!("show-service: {e:#}");
            ExitCode::FAILURE
        }
    }
}
