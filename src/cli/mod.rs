//! The command line (SPEC section 7): one function per subcommand. Only `serve`
//! starts HTTP. Output for people goes to stdout; `--json` prints one object.
//!
//! Architecture Invariant: the CLI reads the environment and signals; the
//! library below it takes everything as parameters.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::bail;
use serde_json::json;

use crate::accounts::{self, new_uuid};
use crate::clock::{Clock, SystemClock};
use crate::config::{self, Config};
use crate::crypto;
use crate::ids::Month;
use crate::installation::{self, open_db};
use crate::server;

/// `println!` for the commands' output. When the reader of stdout has gone
/// (`berth fleet summary reports/ | head`) the process ends quietly with 0, as
/// the default SIGPIPE would end it; when stdout cannot be written (a full
/// disk) it ends with 1 and one line on stderr. `println!` panics in both.
macro_rules! outln {
    ($($arg:tt)*) => {
        write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

fn write_stdout(text: std::fmt::Arguments<'_>) {
    if let Err(e) = std::io::stdout().lock().write_fmt(text) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("berth: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

mod args;

pub use args::*;

/// The `berth` binary: parse the command line, set up the service log
/// (`BERTH_LOG`, default `info`), run the command, turn an error into an exit
/// code (0 success, 1 failure with one line on stderr, 2 usage error).
pub fn main() -> std::process::ExitCode {
    use clap::Parser as _;
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Log lines (one per license) are written by a thread of their own, so
    // request handlers never wait on a write(2) to stderr; nothing is dropped,
    // and the guard writes what is left when the process ends.
    let (writer, flush_on_exit) = match crate::logline::Lines::start(std::io::stderr()) {
        Ok(started) => started,
        Err(e) => {
            eprintln!("berth: starting the service log's thread: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::logline::OneLinePerEvent(writer))
        .fmt_fields(crate::logline::LineFields)
        .with_ansi(false);
    if crate::systemd::stderr_is_journal() {
        // journald records when each line arrived; a second timestamp in the
        // text is noise (and formatting it is a cost on every license).
        subscriber.without_time().init();
    } else {
        subscriber.with_timer(crate::logline::LineTime).init();
    }
    let result = run(cli);
    // What the service log still holds goes out first, so that an error line comes last.
    drop(flush_on_exit);
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {}", format!("{e:#}").replace('\n', " "));
            std::process::ExitCode::from(1)
        }
    }
}

/// Loads the config with the global flags applied.
fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let (path, explicit) = match &cli.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(config::DEFAULT_CONFIG_PATH), false),
    };
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("BERTH_") && k != "BERTH_DATA_DIR")
        .collect();
    let (mut config, _) = config::load(&path, explicit, &env)?;
    if let Some(dir) = &cli.data_dir {
        config.data_dir = dir.clone();
    }
    Ok(config)
}

fn print_json(value: &serde_json::Value) {
    outln!("{}", serde_json::to_string_pretty(value).expect("JSON prints"));
}

/// A command's result: with `--json` as one object, else as its text.
fn show<T: serde::Serialize + std::fmt::Display>(cli: &Cli, done: &T) {
    if cli.json {
        print_json(&serde_json::to_value(done).expect("a result serialises"));
    } else {
        write_stdout(format_args!("{done}"));
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match &cli.command {
        Command::Config(ConfigCommand::Example) => {
            write_stdout(format_args!("{}", config::EXAMPLE));
            Ok(())
        }
        Command::Config(ConfigCommand::Show) => {
            let config = load_config(&cli)?;
            write_stdout(format_args!("{}", config.to_toml()));
            Ok(())
        }
        Command::Init(args) => init(&cli, &load_config(&cli)?, args, clock.as_ref()),
        Command::Serve(args) => serve(load_config(&cli)?, args, clock),
        Command::Migrate => migrate(&cli),
        Command::Keys(command) => keys(&cli, command, clock.as_ref()),
        Command::Comkey(command) => comkey(&cli, command, clock.as_ref()),
        Command::Fairplay(FairplayCommand::Credentials(command)) => fairplay(&cli, command, clock.as_ref()),
        Command::Token(TokenCommand::Mint(args)) => mint(&cli, args, clock.as_ref()),
        Command::Stats { month } => stats(&cli, *month, clock.as_ref()),
        Command::Log(LogCommand::Verify) => log_verify(&cli),
        Command::Log(LogCommand::Checkpoint { out }) => checkpoint(&cli, out.as_deref(), clock.as_ref()),
        Command::Log(LogCommand::Prune { before }) => log_prune(&cli, *before, clock.as_ref()),
        Command::Report(command) => report(&cli, command, clock.as_ref()),
        Command::Fleet(FleetCommand::Summary(args)) => fleet_summary(&cli, args),
        Command::Fleet(FleetCommand::Bill(args)) => fleet_bill(&cli, args),
        Command::User(command) => user(&cli, command, clock.as_ref()),
        Command::Healthcheck { addr } => healthcheck(&cli, *addr),
        Command::Backup { out } => {
            show(&cli, &installation::backup(&open_db(&load_config(&cli)?)?, out)?);
            Ok(())
        }
        Command::Restore { file, force } => {
            show(&cli, &installation::restore(&load_config(&cli)?, file, *force)?);
            Ok(())
        }
        Command::Ground(GroundCommand::Serve(args)) => crate::ground::serve(&args.options()),
    }
}

/// `berth migrate`: applies pending migrations, saying first when a long one is coming.
fn migrate(cli: &Cli) -> anyhow::Result<()> {
    let config = load_config(cli)?;
    if let Some(pending) = installation::pending_migrations(&config)?.filter(|_| !cli.json) {
        eprintln!("applying {pending}");
    }
    show(cli, &installation::migrate(&config)?);
    Ok(())
}

fn init(cli: &Cli, config: &Config, args: &InitArgs, clock: &dyn Clock) -> anyhow::Result<()> {
    let given = (
        args.installation_id.as_deref(),
        args.vessel_type,
        args.vessel_name.as_deref(),
    );
    let new = installation::NewInstallation::from_given(config, given, &args.admin_user);
    show(
        cli,
        &installation::init(config, new, args.secrets_file.as_deref(), clock)?,
    );
    Ok(())
}

fn serve(mut config: Config, args: &ServeArgs, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    config.license.listen = args.license_listen.unwrap_or(config.license.listen);
    config.admin.listen = args.admin_listen.unwrap_or(config.admin.listen);
    config.validate()?;
    server::serve_until_stopped(config, clock, |started| {
        // A closed stdout must not take the service down.
        let mut stdout = std::io::stdout();
        let _ = writeln!(
            stdout,
            "license API listening on {}\nadmin UI listening on {}",
            started.license_url, started.admin_url
        );
        let _ = stdout.flush();
        if cfg!(debug_assertions) {
            stall_writer_for_tests(started.server);
        }
    })
}

/// Debug builds only: the log writer stalls while the file
/// `BERTH_TEST_STALL_WRITER_FILE` names exists, as a hung disk would, so
/// tests can see the watchdog stop berth.
fn stall_writer_for_tests(server: &server::Server) {
    let Some(path) = std::env::var_os("BERTH_TEST_STALL_WRITER_FILE").map(PathBuf::from) else {
        return;
    };
    let health = Arc::clone(server.service().writer_health());
    std::thread::spawn(move || {
        loop {
            health.stall_for_test(path.exists());
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    });
}

fn keys(cli: &Cli, command: &KeysCommand, clock: &dyn Clock) -> anyhow::Result<()> {
    let mut db = open_db(&load_config(cli)?)?;
    match command {
        KeysCommand::Import { file } => {
            let signers = &load_config(cli)?.keys.cpix_signers;
            let imported = crate::provisioning::import_file(&mut db, file, signers, clock.now())?;
            for warning in &imported.warnings {
                eprintln!("berth: warning: {warning}");
            }
            show(cli, &imported);
        }
        KeysCommand::List => show(cli, &crate::provisioning::list(&db)?),
        KeysCommand::DeliveryCert { out } => {
            let certificate = crate::provisioning::delivery_certificate(&mut db, clock.now())?;
            match out {
                Some(path) => std::fs::write(path, &certificate.pem)?,
                None => show(cli, &certificate),
            }
        }
        KeysCommand::DeliveryKey(DeliveryKeyCommand::Import { file, password_file }) => {
            let password = accounts::read_secret(password_file.as_deref(), "the PKCS#12 password")?;
            show(
                cli,
                &crate::provisioning::import_delivery_key(&mut db, file, &password, clock.now())?,
            );
        }
        KeysCommand::Remove { kid } => {
            if !db.remove_key(kid)? {
                bail!("no content key {kid}");
            }
            outln!("removed key {kid}");
        }
    }
    Ok(())
}

fn fairplay(cli: &Cli, command: &FairplayCredentialsCommand, clock: &dyn Clock) -> anyhow::Result<()> {
    let mut db = open_db(&load_config(cli)?)?;
    match command {
        FairplayCredentialsCommand::Import {
            certificate,
            private_key,
            ask_file,
        } => {
            let files = crate::provisioning::FairPlayFiles {
                certificate,
                private_key,
                ask: ask_file.as_deref(),
            };
            show(
                cli,
                &crate::provisioning::import_fairplay_credentials(&mut db, files, clock.now())?,
            );
        }
        FairplayCredentialsCommand::Show => match crate::provisioning::fairplay_certificate(&db)? {
            Some(certificate) => show(cli, &certificate),
            None => bail!("no FairPlay credentials are imported: see `berth fairplay credentials import`"),
        },
    }
    Ok(())
}

fn comkey(cli: &Cli, command: &ComkeyCommand, clock: &dyn Clock) -> anyhow::Result<()> {
    let mut db = open_db(&load_config(cli)?)?;
    match command {
        ComkeyCommand::Add {
            id,
            secret_file,
            secret,
        } => {
            if secret.is_some() {
                bail!(
                    "--secret is not accepted: a secret on the command line shows in `ps` and the shell's history; give it with --secret-file FILE or on standard input"
                );
            }
            let text = accounts::read_secret(secret_file.as_deref(), "the communication secret")?;
            accounts::add_com_key(&mut db, id, &text, clock.now())?;
            outln!("added communication key {id}");
        }
        ComkeyCommand::Generate => show(cli, &accounts::generate_com_key(&mut db, clock.now())?),
        ComkeyCommand::List => show(cli, &accounts::com_keys(&db)?),
        ComkeyCommand::Remove { id } => {
            if !db.remove_com_key(id)? {
                bail!("no communication key {id}");
            }
            outln!("removed communication key {id}");
        }
    }
    Ok(())
}

fn mint(cli: &Cli, args: &MintArgs, clock: &dyn Clock) -> anyhow::Result<()> {
    let db = open_db(&load_config(cli)?)?;
    let stored = if args.inline_keys {
        db.content_keys()?
    } else {
        Vec::new()
    };
    let minting = crate::token::Minting {
        kids: &args.kid,
        user_id: args.user_id.as_deref(),
        valid_for: time::Duration::try_from(args.valid_for)?,
        allow_persistence: args.allow_persistence,
        single_use: args.single_use,
        inline_keys: args.inline_keys.then_some(stored.as_slice()),
        token_id: new_uuid().to_string(),
    };
    let minted = crate::token::mint(&accounts::com_key(&db, args.com_key_id)?, &minting, clock.now())?;
    // A commissioning token for a key berth does not have would be refused with
    // key_unknown; say so now rather than at the player.
    for kid in crate::provisioning::unknown(&db, &args.kid)? {
        eprintln!(
            "berth: warning: key {kid} is not in the key store; a license for it is refused (key_unknown) until it is imported"
        );
    }
    show(cli, &minted);
    Ok(())
}

fn stats(cli: &Cli, month: Option<Month>, clock: &dyn Clock) -> anyhow::Result<()> {
    let month = month.unwrap_or_else(|| Month::of(clock.now()));
    show(
        cli,
        &crate::report::text::Stats::of(&open_db(&load_config(cli)?)?, month)?,
    );
    Ok(())
}

fn log_verify(cli: &Cli) -> anyhow::Result<()> {
    let config = load_config(cli)?;
    match crate::report::verify_log(&open_db(&config)?, &config.data_dir)? {
        Ok(chain) => show(cli, &crate::report::text::LogIntact::new(&chain)),
        Err(problem) if cli.json => {
            print_json(&json!({ "ok": false, "seq": problem.seq, "problem": problem.what }));
            bail!("license log broken at {problem}")
        }
        Err(problem) => bail!("license log broken at {problem}"),
    }
    Ok(())
}

fn checkpoint(cli: &Cli, out: Option<&Path>, clock: &dyn Clock) -> anyhow::Result<()> {
    let config = load_config(cli)?;
    let made = crate::report::checkpoint::make(&open_db(&config)?, clock.now(), &config.data_dir, out)?;
    show(cli, &made);
    Ok(())
}

fn log_prune(cli: &Cli, before: Month, clock: &dyn Clock) -> anyhow::Result<()> {
    let config = load_config(cli)?;
    let mut db = open_db(&config)?;
    let dir = config.data_dir.join("reports");
    let pruned = crate::report::prune(&mut db, before, &dir, !config.upload.url.is_empty(), clock.now())?;
    show(cli, &crate::report::text::LogPruned::new(&pruned, before, &dir));
    Ok(())
}

fn user(cli: &Cli, command: &UserCommand, clock: &dyn Clock) -> anyhow::Result<()> {
    let mut db = open_db(&load_config(cli)?)?;
    match command {
        UserCommand::Add { name, role } => show(
            cli,
            &accounts::add_user(&mut db, name, role.parse()?, clock.now())?,
        ),
        UserCommand::Passwd { name } => show(cli, &accounts::new_password_for(&mut db, name)?),
        UserCommand::Remove { name } => {
            if !db.remove_user(name)? {
                bail!("no crew user {name:?}");
            }
            outln!("removed crew user {name}");
        }
        UserCommand::List => show(cli, &accounts::users(&db)?),
    }
    Ok(())
}

fn healthcheck(cli: &Cli, addr: Option<SocketAddr>) -> anyhow::Result<()> {
    let config = load_config(cli)?;
    let (addr, tls) = (
        addr.unwrap_or(config.license.listen),
        config.license.tls().is_some(),
    );
    let (healthy, body) = actix_web::rt::System::new().block_on(crate::http::probe_healthz(addr, tls))?;
    outln!(
        "{}",
        if cli.json {
            body.as_str()
        } else if healthy {
            "healthy"
        } else {
            "unhealthy"
        }
    );
    if !healthy {
        bail!("berth at {addr} is not healthy: {body}");
    }
    Ok(())
}

fn report(cli: &Cli, command: &ReportCommand, clock: &dyn Clock) -> anyhow::Result<()> {
    match command {
        ReportCommand::Export {
            month,
            due,
            out,
            partial,
        } => {
            let config = load_config(cli)?;
            let (dir, now) = (config.data_dir.join("reports"), clock.now());
            let exports = crate::report::Exports::run(
                &mut open_db(&config)?,
                (*month, *due),
                now,
                *partial,
                &dir,
                out.as_deref(),
            )?;
            show(cli, &exports);
        }
        ReportCommand::Verify {
            file,
            pubkey,
            previous,
            checkpoints,
        } => {
            let expected = pubkey.as_deref().map(crypto::PublicKey::load).transpose()?;
            let against = (previous.as_deref(), checkpoints.as_deref());
            let verified = crate::report::verify_with_previous(file, against, expected.as_ref())?;
            show(cli, &crate::report::text::Verified::new(file, verified.report));
        }
        ReportCommand::Upload { file } => {
            let pass = crate::report::upload_now(&load_config(cli)?, file.as_deref(), clock.now())?;
            show(cli, &pass);
            if let Some((name, why)) = pass.failed.first() {
                bail!("uploading {name} failed: {why}; it stays pending");
            }
        }
        ReportCommand::List => {
            let config = load_config(cli)?;
            let reports = open_db(&config)?.reports()?;
            show(cli, &crate::report::text::List::new(reports, &config));
        }
    }
    Ok(())
}

/// `fleet summary` and `fleet bill` print everything, then exit non-zero
/// when anything is not counted or billed as reported: a monthly job cannot
/// take a bill with problems for a clean one.
fn fleet_problems(problems: &[crate::report::Problem], what: &str) -> anyhow::Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    bail!(
        "{} problems: not everything is {what} as reported (listed in the output)",
        problems.len()
    )
}

fn fleet_summary(cli: &Cli, args: &SummaryArgs) -> anyhow::Result<()> {
    let summary = crate::report::summarize_paths(&args.library())?;
    if args.csv && !cli.json {
        // The CSV goes to a billing system (problems in their own rows); the
        // problems also go to whoever runs it.
        for p in &summary.problems {
            eprintln!("berth: {}", crate::report::text::problem(p));
        }
        write_stdout(format_args!("{}", summary.csv()));
    } else {
        show(cli, &summary);
    }
    fleet_problems(&summary.problems, "counted")
}

fn fleet_bill(cli: &Cli, args: &BillArgs) -> anyhow::Result<()> {
    let bill = crate::report::bill::run(&args.prices, &args.library(), args.month)?;
    if args.csv && !cli.json {
        for p in &bill.not_billed {
            eprintln!("berth: not billed: {}", crate::report::text::problem(p));
        }
        write_stdout(format_args!("{}", bill.csv()));
    } else {
        show(cli, &bill);
    }
    fleet_problems(&bill.not_billed, "billed")
}
