//! The command line (SPEC section 7): one function per subcommand. Only `serve`
//! starts HTTP. Output for people goes to stdout; `--json` prints one object.
//!
//! Architecture Invariant: the CLI reads the environment and signals; the
//! library below it takes everything as parameters.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use serde_json::json;

use crate::accounts::{self, new_uuid};
use crate::clock::{Clock, SystemClock};
use crate::config::{self, Config};
use crate::crypto;
use crate::ids::{Month, counted, format_instant};
use crate::installation::{self, open_db};
use crate::server;
use crate::store::Db;
use crate::token::ComKey;

/// `println!` for the commands' output. When the reader of stdout has gone
/// (`berth fleet summary reports/ | head`) the process ends quietly with 0, as
/// the default SIGPIPE would end it; when stdout cannot be written (a full
/// disk) it ends with 1 and one line on stderr. `println!` panics in both.
macro_rules! outln {
    ($($arg:tt)*) => {
        write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for the commands' output; see [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {
        write_stdout(format_args!($($arg)*))
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
        out!("{done}");
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match &cli.command {
        Command::Config(ConfigCommand::Example) => {
            out!("{}", config::EXAMPLE);
            Ok(())
        }
        Command::Config(ConfigCommand::Show) => {
            let config = load_config(&cli)?;
            out!("{}", config.to_toml());
            Ok(())
        }
        Command::Init(args) => init(&cli, &load_config(&cli)?, args, clock.as_ref()),
        Command::Serve(args) => serve(load_config(&cli)?, args, clock),
        Command::Migrate => migrate(&cli),
        Command::Keys(command) => keys(&cli, command, clock.as_ref()),
        Command::Comkey(command) => comkey(&cli, command, clock.as_ref()),
        Command::Token(TokenCommand::Mint(args)) => mint(&cli, args, clock.as_ref()),
        Command::Stats { month } => stats(&cli, *month, clock.as_ref()),
        Command::Log(LogCommand::Verify) => log_verify(&cli),
        Command::Log(LogCommand::Prune { before }) => log_prune(&cli, *before, clock.as_ref()),
        Command::Report(command) => report(&cli, command, clock.as_ref()),
        Command::Fleet(FleetCommand::Summary { inputs, pubkeys, csv }) => {
            fleet_summary(&cli, inputs, pubkeys.as_deref(), *csv)
        }
        Command::User(command) => user(&cli, command, clock.as_ref()),
        Command::Healthcheck { addr } => healthcheck(&cli, *addr),
        Command::Backup { out } => {
            let (id, rows) = installation::backup(&open_db(&load_config(&cli)?)?, out)?;
            outln!(
                "backed up installation {id} ({}) to {}; back up the master key separately",
                counted(rows, "license"),
                out.display()
            );
            Ok(())
        }
        Command::Restore { file, force } => {
            let restored = installation::restore(&load_config(&cli)?, file, *force)?;
            if cli.json {
                print_json(
                    &json!({ "restored": file, "installation_id": restored.installation_id, "licenses": restored.licenses, "kept_unreadable": restored.kept_unreadable }),
                );
            } else {
                let kept = restored
                    .kept_unreadable
                    .map(|k| format!("; the unreadable database is kept as {k}"));
                outln!(
                    "restored installation {} ({}) from {}{}",
                    restored.installation_id,
                    counted(restored.licenses, "license"),
                    file.display(),
                    kept.unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}

/// Copies an exported report into `out`, if given; the path to show.
fn copy_report(path: &Path, out: Option<&Path>) -> anyhow::Result<PathBuf> {
    let Some(out) = out else {
        return Ok(path.to_owned());
    };
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let target = out.join(path.file_name().expect("a report has a file name"));
    std::fs::copy(path, &target).with_context(|| format!("copying the report to {}", target.display()))?;
    Ok(target)
}

/// `berth migrate`: applies pending migrations, saying first when a long one is coming.
fn migrate(cli: &Cli) -> anyhow::Result<()> {
    let config = load_config(cli)?;
    let pending = Db::pending_migrations(&config.data_dir)?;
    if !pending.is_empty() && !cli.json {
        let slow = pending.iter().any(|name| crate::store::reads_the_log(name));
        eprintln!(
            "applying {}{}",
            pending.join(", "),
            if slow {
                " (on a long license log this takes a while: about a second per million licenses)"
            } else {
                ""
            }
        );
    }
    let applied = Db::migrate_only(&config.data_dir)?;
    if cli.json {
        print_json(&json!({ "applied": applied, "schema_version": crate::store::SCHEMA_VERSION }));
    } else if applied.is_empty() {
        outln!(
            "the database is up to date (schema version {})",
            crate::store::SCHEMA_VERSION
        );
    } else {
        outln!("applied {}", applied.join(", "));
    }
    Ok(())
}

fn init(cli: &Cli, config: &Config, args: &InitArgs, clock: &dyn Clock) -> anyhow::Result<()> {
    // Opened before the installation exists, so that secrets shown nowhere
    // else are never made without a place to keep them.
    let secrets = match &args.secrets_file {
        Some(path) => Some((path, installation::create_private_file(path)?)),
        None => None,
    };
    let new = installation::NewInstallation::from_given(
        config,
        args.installation_id.as_deref(),
        args.vessel_type,
        args.vessel_name.as_deref(),
        &args.admin_user,
    );
    let done = match new.and_then(|new| installation::create(config, &new, clock)) {
        Ok(done) => done,
        Err(e) => {
            if let Some((path, _)) = &secrets {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    };
    let secrets_file = match secrets {
        Some((path, mut file)) => {
            installation::write_secrets(&mut file, path, &done)?;
            Some(path.as_path())
        }
        None => None,
    };
    if cli.json {
        print_json(&done.json(secrets_file));
    } else {
        out!("{}", done.text(secrets_file));
    }
    Ok(())
}

fn serve(mut config: Config, args: &ServeArgs, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    if let Some(addr) = args.license_listen {
        config.license.listen = addr;
    }
    if let Some(addr) = args.admin_listen {
        config.admin.listen = addr;
    }
    config.validate()?;
    let listener = TcpListener::bind(config.license.listen)
        .with_context(|| format!("binding the license listener to {}", config.license.listen))?;
    let admin_listener = TcpListener::bind(config.admin.listen)
        .with_context(|| format!("binding the admin listener to {}", config.admin.listen))?;
    // Debug builds only: the writer stalls while this file exists, so tests
    // can see the watchdog stop.
    let stall_file = cfg!(debug_assertions)
        .then(|| std::env::var_os("BERTH_TEST_STALL_WRITER_FILE").map(PathBuf::from))
        .flatten();
    server::serve_until_stopped(
        config,
        (listener, admin_listener),
        clock,
        stall_file,
        |license, admin| {
            // A closed stdout must not take the service down.
            let mut stdout = std::io::stdout();
            let _ = writeln!(stdout, "license API listening on {license}");
            let _ = writeln!(stdout, "admin UI listening on {admin}");
            let _ = stdout.flush();
        },
    )
}

fn read_limited(path: &Path, limit: usize) -> anyhow::Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() > limit {
        bail!("{} is larger than {} MiB", path.display(), limit / (1024 * 1024));
    }
    Ok(bytes)
}

fn keys(cli: &Cli, command: &KeysCommand, clock: &dyn Clock) -> anyhow::Result<()> {
    let mut db = open_db(&load_config(cli)?)?;
    match command {
        KeysCommand::Import { file } => {
            let bytes = read_limited(file, crate::keyfile::MAX_KEY_FILE)?;
            let imported = crate::keys::import(&mut db, &bytes, clock.now())
                .with_context(|| format!("reading keys from {}", file.display()))?;
            for warning in &imported.warnings {
                eprintln!("berth: warning: {warning}");
            }
            show(cli, &imported);
        }
        KeysCommand::List => show(cli, &crate::keys::list(&db)?),
        KeysCommand::Remove { kid } => {
            if !db.remove_key(kid)? {
                bail!("no content key {kid}");
            }
            outln!("removed key {kid}");
        }
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
    let com_keys = db.com_keys()?;
    let (id, secret) = match args.com_key_id {
        Some(wanted) => com_keys.into_iter().find(|(id, _)| *id == wanted),
        None => com_keys.into_iter().next(),
    }
    .ok_or_else(|| match args.com_key_id {
        Some(wanted) => anyhow!("no communication key {wanted}"),
        None => anyhow!("there is no communication key: run `berth comkey generate`"),
    })?;
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
    let (token, expires_at) = crate::token::mint(&ComKey::new(id, secret), &minting, clock.now())?;
    // A commissioning token for a key berth does not have would be refused with
    // key_unknown; say so now rather than at the player.
    let known = db.list_keys()?;
    for kid in args
        .kid
        .iter()
        .filter(|kid| !known.iter().any(|k| k.kid == **kid))
    {
        eprintln!(
            "berth: warning: key {kid} is not in the key store; a license for it is refused (key_unknown) until it is imported"
        );
    }
    if cli.json {
        print_json(&json!({ "token": token, "expires_at": expires_at }));
    } else {
        outln!("{token}");
    }
    Ok(())
}

fn stats(cli: &Cli, month: Option<Month>, clock: &dyn Clock) -> anyhow::Result<()> {
    let config = load_config(cli)?;
    let db = open_db(&config)?;
    let month = month.unwrap_or_else(|| Month::of(clock.now()));
    let counts = db.counts(month)?;
    if cli.json {
        print_json(&json!({ "month": month.to_string(), "counts": counts }));
    } else {
        out!("{}", crate::report::text::stats(month, &counts));
    }
    Ok(())
}

fn log_verify(cli: &Cli) -> anyhow::Result<()> {
    let config = load_config(cli)?;
    let db = open_db(&config)?;
    let reports = config.data_dir.join("reports");
    let verified = match db.verify_log()? {
        Ok(chain) => crate::report::check_log_against_reports(&db, &reports, chain.last_seq)?.map(|()| chain),
        Err(problem) => Err(problem),
    };
    match verified {
        Ok(chain) => {
            if cli.json {
                print_json(&json!({
                    "ok": true,
                    "rows": chain.rows,
                    "first_seq": chain.first_seq,
                    "last_seq": chain.last_seq,
                    "pruned_through": chain.pruned.as_ref().map(|m| &m.through_month),
                }));
            } else {
                outln!("license log intact: {}", counted(chain.rows, "row"));
                if let Some(mark) = &chain.pruned {
                    outln!(
                        "(rows before {} were pruned on {}: the months through {}, kept in their signed reports)",
                        mark.first_seq,
                        mark.day(),
                        mark.through_month
                    );
                }
            }
            Ok(())
        }
        Err(problem) => {
            if cli.json {
                print_json(&json!({ "ok": false, "seq": problem.seq, "problem": problem.what }));
            }
            bail!("license log broken at {problem}")
        }
    }
}

fn log_prune(cli: &Cli, before: Month, clock: &dyn Clock) -> anyhow::Result<()> {
    let config = load_config(cli)?;
    let mut db = open_db(&config)?;
    let dir = config.data_dir.join("reports");
    let pruned = crate::report::prune(&mut db, before, &dir, !config.upload.url.is_empty(), clock.now())?;
    if cli.json {
        print_json(&json!({
            "removed": pruned.removed,
            "first_seq": pruned.mark.as_ref().map(|m| m.first_seq),
            "pruned_through": pruned.mark.as_ref().map(|m| &m.through_month),
        }));
        return Ok(());
    }
    match &pruned.mark {
        Some(mark) => outln!(
            "removed {}; the log now begins at row {} (the months through {} are in the signed reports in {})",
            counted(pruned.removed, "license"),
            mark.first_seq,
            mark.through_month,
            dir.display()
        ),
        None => outln!("nothing to prune before {before}"),
    }
    Ok(())
}

fn user(cli: &Cli, command: &UserCommand, clock: &dyn Clock) -> anyhow::Result<()> {
    let mut db = open_db(&load_config(cli)?)?;
    match command {
        UserCommand::Add { name, role } => show(cli, &accounts::add_user(&mut db, name, role, clock.now())?),
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
    let mut addr = addr.unwrap_or(config.license.listen);
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let tls = config.license.tls().is_some();
    let (healthy, body) = actix_web::rt::System::new().block_on(crate::http::probe_healthz(addr, tls))?;
    if cli.json {
        outln!("{body}");
    } else {
        outln!("{}", if healthy { "healthy" } else { "unhealthy" });
    }
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
        } => report_export(cli, *month, *due, out.as_deref(), *partial, clock),
        ReportCommand::Verify {
            file,
            pubkey,
            previous,
        } => {
            let expected = match pubkey {
                Some(p) => Some(
                    crypto::PublicKey::from_pem(&read_limited(p, 64 * 1024)?)
                        .with_context(|| format!("reading {}", p.display()))?,
                ),
                None => None,
            };
            let verified = crate::report::verify_file(file, expected.as_ref())
                .map_err(|e| anyhow!("{}: {e}", file.display()))?;
            if let Some(previous) = previous {
                let before = crate::report::verify_file(previous, expected.as_ref())
                    .map_err(|e| anyhow!("previous report {}: {e}", previous.display()))?;
                crate::report::verify_link(&before, &verified)
                    .map_err(|e| anyhow!("{}: {e}", file.display()))?;
            }
            if cli.json {
                print_json(&json!({ "ok": true, "file": file, "report": verified.report }));
            } else {
                outln!("{}", crate::report::text::verified(file, &verified.report));
            }
            Ok(())
        }
        ReportCommand::Upload { file } => report_upload(cli, file.as_deref(), clock),
        ReportCommand::List => {
            let config = load_config(cli)?;
            let reports = open_db(&config)?.reports()?;
            if cli.json {
                let list: Vec<_> = reports.iter().map(crate::report::text::listed).collect();
                print_json(&json!({ "reports": list }));
            } else {
                let dir = config.data_dir.join("reports");
                out!(
                    "{}",
                    crate::report::text::list(&reports, config.upload.url.is_empty(), &dir)
                );
            }
            Ok(())
        }
    }
}

/// `report export`: one month, or with `--due` every month that has ended.
fn report_export(
    cli: &Cli,
    month: Option<Month>,
    due: bool,
    out: Option<&Path>,
    partial: bool,
    clock: &dyn Clock,
) -> anyhow::Result<()> {
    let config = load_config(cli)?;
    let mut db = open_db(&config)?;
    let dir = config.data_dir.join("reports");
    let now = clock.now();
    let months = match month {
        Some(month) => vec![month],
        None => crate::report::due_months(&db, now)?,
    };
    let mut listed = Vec::new();
    for month in &months {
        let exported = crate::report::export(&mut db, *month, now, partial, &dir)?;
        let path = copy_report(&exported.path, out)?;
        if cli.json {
            listed.push(json!({ "file": path, "new": exported.new, "report": exported.report }));
        } else {
            outln!(
                "{}",
                crate::report::text::exported(&path, exported.new, &exported.report)
            );
        }
    }
    if !due {
        if let Some(one) = listed.pop() {
            print_json(&one);
        }
        return Ok(());
    }
    let next = crate::report::next_month(&db)?;
    if cli.json {
        print_json(&json!({ "exported": listed, "next": next.to_string() }));
    } else if months.is_empty() {
        outln!(
            "nothing to export: the next report, for {next}, can be exported once that month ends ({})",
            format_instant(next.end())
        );
    }
    Ok(())
}

/// `report upload`: a pass over the outbox now, ignoring the backoff.
fn report_upload(cli: &Cli, file: Option<&str>, clock: &dyn Clock) -> anyhow::Result<()> {
    let config = load_config(cli)?;
    if config.upload.url.is_empty() {
        bail!(
            "no upload.url is configured; reports are in {}",
            config.data_dir.join("reports").display()
        );
    }
    if let Some(name) = file {
        let name = Path::new(name)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !open_db(&config)?.reports()?.iter().any(|r| r.file_name == name) {
            bail!("{name} is not an exported report of this installation (see `berth report list`)");
        }
    }
    let now = clock.now();
    let pass = actix_web::rt::System::new().block_on(async {
        let uploader = crate::report::Uploader::new(&config.upload)?;
        uploader.upload_pending(&config, now, true).await
    })?;
    if cli.json {
        let failed: Vec<_> = pass
            .failed
            .iter()
            .map(|(name, why)| (name, why.to_string()))
            .collect();
        print_json(&json!({ "uploaded": pass.uploaded, "failed": failed }));
    } else {
        for name in &pass.uploaded {
            outln!("uploaded {name}");
        }
        if pass.uploaded.is_empty() && pass.failed.is_empty() {
            outln!("nothing to upload");
        }
    }
    match pass.failed.first() {
        Some((name, why)) => bail!("uploading {name} failed: {why}; it stays pending"),
        None => Ok(()),
    }
}

fn fleet_summary(cli: &Cli, inputs: &[PathBuf], pubkeys: Option<&Path>, csv: bool) -> anyhow::Result<()> {
    let files = crate::report::collect(inputs).map_err(|e| anyhow!(e))?;
    if files.is_empty() {
        bail!("no report zips found in the given paths");
    }
    let keys = match pubkeys {
        Some(dir) => Some(crate::report::load_pubkeys(dir).map_err(|e| anyhow!(e))?),
        None => None,
    };
    let summary = crate::report::summarize(&files, keys.as_ref());
    if cli.json {
        print_json(&serde_json::to_value(&summary)?);
    } else if csv {
        // The CSV goes to a billing system; the problems go to whoever runs it.
        for p in &summary.problems {
            eprintln!("berth: {}", crate::report::text::problem(p));
        }
        out!("{}", summary.csv());
    } else {
        out!("{}", summary.text());
    }
    Ok(())
}
