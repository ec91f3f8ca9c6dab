//! The `berth` binary: parse the command line, run it, turn an error into an exit
//! code (0 success, 1 failure with one line on stderr, 2 usage error).

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = berth::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    match berth::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {}", format!("{e:#}").replace('\n', " "));
            std::process::ExitCode::from(1)
        }
    }
}
