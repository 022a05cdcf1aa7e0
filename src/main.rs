//! Entry point: parse the command line, load settings, start telemetry, dispatch.
//!
//! Warnings about the settings and a failure are each reported once, through
//! [`cli::Report`]: a plain line on a terminal, a log line when the log is JSON.

use clap::Parser;
use show_service::cli::{self, Cli, Command, Report, TableAction};
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
    let logging = matches!(
        command,
        Command::Serve | Command::Import { .. } | Command::Table { .. }
    );
    let mut log = settings.log.clone();
    if matches!(command, Command::Table { .. }) {
        // `table create` reports a missing credential or region itself, in one line; the
        // SDK's chain would first log a warning per provider tried, on every retry.
        log.level = format!("{},aws_config=error", log.level);
    }
    // Held to the end of main: dropping it writes out the buffered log lines.
    let _log = logging.then(|| show_service::telemetry::init(&log));
    let report = Report::choose(logging, &settings.log);
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    for unknown in show_service::config::unknown_variables(&env) {
        report.warning(&unknown.to_string());
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            report.failure(&anyhow::Error::new(e).context("cannot start the runtime"));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Serve => cli::serve(settings).await,
            Command::Import { file, chunk, owner } => {
                cli::import(settings, file, chunk as usize, owner).await
            }
            Command::Table {
                action: TableAction::Create { wait_seconds },
            } => cli::table_create(settings, Duration::from_secs(wait_seconds)).await,
            Command::Token { scope, client_id } => cli::token(settings, client_id, scope).await,
            Command::Healthcheck { timeout_ms } => {
                cli::healthcheck(settings, Duration::from_millis(timeout_ms)).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report.failure(&e);
            ExitCode::FAILURE
        }
    }
}
