//! The `berth` binary: parse the command line, run it, turn an error into an exit
//! code (0 success, 1 failure with one line on stderr, 2 usage error).

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = berth::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Log lines (one per license) are written by a background thread, so request
    // handlers never wait on a write(2) to stderr; nothing is dropped, and the
    // guard flushes what is left when the process ends. The thread flushes
    // whenever it has written every line waiting, so the buffer only gathers
    // the lines of a burst into one write(2) instead of one each.
    let (writer, _flush_on_exit) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr()));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(berth::logline::OneLinePerEvent(writer))
        .with_ansi(false);
    if berth::systemd::stderr_is_journal() {
        // journald records when each line arrived; a second timestamp in the
        // text is noise (and formatting it is a cost on every license).
        subscriber.without_time().init();
    } else {
        subscriber.init();
    }
    match berth::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {}", format!("{e:#}").replace('\n', " "));
            std::process::ExitCode::from(1)
        }
    }
}
