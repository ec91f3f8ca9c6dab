//! Assembles a running berth from a config: opens and migrates the store, loads
//! the keys, starts the log writer, the key refresher and the listeners, and
//! stops them in order (listeners drain, then the log is flushed).
//!
//! Architecture Invariant: takes already-bound listeners, so tests use port 0;
//! never reads the environment or signals (the CLI does).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;

use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::MasterKey;
use crate::http::{LicenseApi, license_server};
use crate::ids::{Month, format_instant};
use crate::license::{KeyRing, LicenseService};
use crate::store::{Db, LogWriter, WriterConfig};

/// A running berth.
pub struct Server {
    license_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    admin: Option<actix_web::dev::ServerHandle>,
    handle: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    writer: LogWriter,
    service: Arc<LicenseService>,
    refresher: KeyRefresher,
    /// Tasks that live as long as the server (reports, status, watchdog); they
    /// hold handles to the log, so they end before the log is flushed.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _lock: std::fs::File,
}

/// Everything `start` needs besides the config.
pub struct Startup {
    pub master: Arc<MasterKey>,
    pub clock: Arc<dyn Clock>,
    pub license_listener: TcpListener,
    /// The crew network's listener for the admin UI, if it is to run.
    pub admin_listener: Option<TcpListener>,
    /// HTTP worker threads; `None` means one per CPU.
    pub workers: Option<usize>,
}

/// Loads every key from the store into the ring.
fn load_keys(db: &Db, ring: &KeyRing) -> anyhow::Result<()> {
    let generation = db.key_generation()?;
    let content = db.content_keys().context("loading content keys")?;
    let com = db.com_keys().context("loading communication keys")?;
    ring.replace(generation, content, com);
    Ok(())
}

/// A listener's TLS settings from its `tls_cert` and `tls_key`, when set, and
/// when its certificate expires; a file that cannot be read, or a key that
/// does not match, names the section.
fn tls_acceptor(
    files: Option<(&Path, &Path)>,
    section: &str,
) -> anyhow::Result<Option<(crate::crypto::TlsAcceptor, time::OffsetDateTime)>> {
    files
        .map(|(cert, key)| {
            let acceptor = crate::crypto::tls_acceptor(cert, key)?;
            Ok::<_, crate::crypto::CryptoError>((acceptor, crate::crypto::certificate_expiry(cert)?))
        })
        .transpose()
        .with_context(|| format!("{section}.tls_cert / {section}.tls_key"))
}

pub async fn start(config: &Config, startup: Startup) -> anyhow::Result<Server> {
    let Startup {
        master,
        clock,
        license_listener,
        admin_listener,
        workers,
    } = startup;
    let data_dir = &config.data_dir;
    if !data_dir.join(crate::store::DB_FILE).exists() {
        anyhow::bail!(
            "no installation in {}: run `berth init` first",
            data_dir.display()
        );
    }
    // Certificates first: a file berth cannot use stops the start before
    // anything else is opened.
    let license_tls = tls_acceptor(config.license.tls(), "license")?;
    let admin_tls = match admin_listener {
        Some(_) => tls_acceptor(config.admin.tls(), "admin")?,
        None => None,
    };
    let certificates: Vec<crate::admin::Certificate> =
        [("License API", &license_tls), ("Admin UI", &admin_tls)]
            .into_iter()
            .filter_map(|(listener, tls)| {
                let expires = tls.as_ref()?.1;
                Some(crate::admin::Certificate { listener, expires })
            })
            .collect();
    for certificate in &certificates {
        if certificate.expires_soon(clock.now()) {
            tracing::warn!(
                listener = certificate.listener,
                expires = %format_instant(certificate.expires),
                "the certificate expires within 30 days: browsers refuse an expired one"
            );
        }
    }
    let lock = lock_data_dir(data_dir, "another berth serve holds it")?;
    let pending = Db::pending_migrations(data_dir)
        .with_context(|| format!("opening the database in {}", data_dir.display()))?;
    let db = if pending.is_empty() {
        Db::open(data_dir, Arc::clone(&master))
    } else {
        let names = pending.join(", ");
        tracing::info!(migrations = %names, "applying database migrations before serving; on a long license log this takes a while");
        let steps = Arc::new(AtomicU64::new(0));
        crate::systemd::extend_start_while(&format!("applying database migrations: {names}"), &steps, || {
            Db::open_counting(data_dir, Arc::clone(&master), Some(Arc::clone(&steps)))
        })
    }
    .with_context(|| format!("opening the database in {}", data_dir.display()))?;
    let installation = db.installation()?;
    let pepper = db.pepper().context("opening the user-id pepper")?;
    let ring = Arc::new(KeyRing::default());
    load_keys(&db, &ring)?;
    let newest = db.newest_issued_at()?;

    let writer_config = WriterConfig {
        queue_capacity: config.log.queue_capacity,
        max_batch: config.log.max_batch,
        busy_timeout: Duration::from_millis(config.log.busy_timeout_ms),
    };
    let (writer, log) = LogWriter::start(db.path(), writer_config, Arc::clone(&clock))?;
    // The license listener's workers are answered through their mailboxes.
    let log = log.with_courier(crate::http::Mailbox::current);
    let master_for_reports = Arc::clone(&master);
    let writer_health = Arc::clone(log.health());
    let limits = crate::license::Limits {
        tolerance: time::Duration::seconds(config.license.clock_tolerance_secs as i64),
        append_timeout: Duration::from_millis(config.log.append_timeout_ms),
        repeat_window: time::Duration::seconds(config.license.hls_repeat_window_secs as i64),
    };
    let service = Arc::new(LicenseService::new(
        Arc::clone(&ring),
        Arc::new(log),
        writer_health,
        clock,
        &pepper,
        limits,
        newest,
    ));
    let refresher = KeyRefresher::start(db, ring)?;

    license_listener.set_nonblocking(true)?;
    let license_addr = license_listener.local_addr()?;
    let workers = workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let outcomes = Arc::new(crate::http::Outcomes::default());
    let api = LicenseApi::new(Arc::clone(&service), Arc::clone(&outcomes), &config.license);
    let server = license_server(license_listener, api, workers, license_tls.map(|(tls, _)| tls))
        .with_context(|| format!("starting the license listener on {license_addr}"))?;
    let handle = server.handle();
    let task = actix_web::rt::spawn(server);
    let mut tasks = Vec::new();
    let mut admin = None;
    let mut admin_addr = None;
    if let Some(listener) = admin_listener {
        listener.set_nonblocking(true)?;
        admin_addr = Some(listener.local_addr()?);
        let state = crate::admin::AdminState::new(
            Arc::clone(&service),
            Arc::clone(&outcomes),
            config,
            Arc::clone(&master_for_reports),
            certificates,
        )?;
        let server = crate::admin::admin_server(listener, state, admin_tls.map(|(tls, _)| tls))
            .context("starting the admin listener")?;
        admin = Some(server.handle());
        tasks.push(actix_web::rt::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(error = %e, "the admin listener failed");
            }
        }));
    }
    if config.reports.auto_export || !config.upload.url.is_empty() || config.log.keep_months > 0 {
        let clock = Arc::clone(service.clock());
        tasks.push(actix_web::rt::spawn(report_task(
            config.clone(),
            master_for_reports,
            clock,
        )));
    }
    tracing::info!(
        installation = %installation.id,
        vessel_type = installation.vessel_type.as_str(),
        %license_addr,
        content_keys = service.keys().content_key_count(),
        "berth is serving"
    );
    Ok(Server {
        license_addr,
        admin_addr,
        admin,
        handle,
        task,
        writer,
        service,
        refresher,
        tasks,
        _lock: lock,
    })
}

impl Server {
    pub fn license_addr(&self) -> SocketAddr {
        self.license_addr
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    pub fn service(&self) -> &Arc<LicenseService> {
        &self.service
    }

    /// Reloads keys from the store now (SIGHUP).
    pub fn reload_keys(&self) {
        self.refresher.reload();
    }

    /// Stops accepting, lets in-flight requests finish, then flushes the log.
    /// Runs `task` for as long as the server runs.
    pub fn spawn(&mut self, task: impl std::future::Future<Output = ()> + 'static) {
        self.tasks.push(actix_web::rt::spawn(task));
    }

    pub async fn stop(self) {
        if let Some(admin) = &self.admin {
            admin.stop(true).await;
        }
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
        self.handle.stop(true).await;
        if let Ok(Err(e)) = self.task.await {
            tracing::error!(error = %e, "the license listener failed while stopping");
        }
        self.refresher.stop();
        // The last handles to the log go with the service; then the writer drains.
        drop(self.service);
        let writer = self.writer;
        let _ = actix_web::rt::task::spawn_blocking(move || writer.join()).await;
        tracing::info!("berth stopped; the license log is flushed");
    }
}

/// Exports closed months, uploads pending reports and prunes the log
/// (`log.keep_months`), every `reports.check_interval_secs`, for as long as
/// the server runs.
async fn report_task(config: Config, master: Arc<MasterKey>, clock: Arc<dyn Clock>) {
    let mut prune_waits = String::new();
    let uploader = if config.upload.url.is_empty() {
        None
    } else {
        match crate::http::Uploader::new(&config.upload) {
            Ok(u) => Some(u),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "report uploads are off: the upload settings do not work");
                None
            }
        }
    };
    let interval = Duration::from_secs(config.reports.check_interval_secs);
    loop {
        if config.reports.auto_export {
            let (data_dir, master, now) = (config.data_dir.clone(), Arc::clone(&master), clock.now());
            let exported = actix_web::rt::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
                let mut db = Db::open(&data_dir, master)?;
                let done = crate::report::export_due(&mut db, now, &data_dir.join("reports"))?;
                Ok(done
                    .into_iter()
                    .filter(|e| e.new)
                    .map(|e| e.report.period.month)
                    .collect())
            })
            .await;
            match exported {
                Ok(Ok(months)) if !months.is_empty() => tracing::info!(?months, "exported monthly reports"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %format!("{e:#}"), "automatic report export failed; will retry")
                }
                Err(e) => tracing::error!(error = %e, "automatic report export failed; will retry"),
            }
        }
        if let Some(uploader) = &uploader
            && let Err(e) = uploader.upload_pending(&config, clock.now(), false).await
        {
            tracing::error!(error = %format!("{e:#}"), "report upload pass failed");
        }
        if config.log.keep_months > 0 {
            prune_old_months(&config, &master, clock.now(), &mut prune_waits).await;
        }
        // Wake at the turn of the month too, so that a month is exported in the
        // first second after it ends rather than up to an interval later.
        let now = clock.now();
        let to_month_end = (Month::of(now).end() - now).unsigned_abs() + Duration::from_secs(1);
        actix_web::rt::time::sleep(interval.min(to_month_end)).await;
    }
}

/// `log.keep_months`: prunes the months before the kept ones. Why it cannot yet
/// (a report not exported or not uploaded) is logged when it changes, not at
/// every pass.
async fn prune_old_months(
    config: &Config,
    master: &Arc<MasterKey>,
    now: time::OffsetDateTime,
    waits: &mut String,
) {
    let before = (0..config.log.keep_months).fold(Month::of(now), |m, _| m.previous());
    let (data_dir, master) = (config.data_dir.clone(), Arc::clone(master));
    let uploads = !config.upload.url.is_empty();
    let pruned = actix_web::rt::task::spawn_blocking(move || {
        let mut db = Db::open(&data_dir, master)?;
        crate::report::prune(&mut db, before, &data_dir.join("reports"), uploads, now)
            .map_err(anyhow::Error::from)
    })
    .await;
    match pruned {
        Ok(Ok(p)) => {
            waits.clear();
            if let Some(mark) = p.mark.filter(|_| p.removed > 0) {
                tracing::info!(
                    removed = p.removed,
                    first_seq = mark.first_seq,
                    through = %mark.through_month,
                    "pruned the license log: the months through {} are in their signed reports",
                    mark.through_month
                );
            }
        }
        Ok(Err(e)) => {
            let why = format!("{e:#}");
            if *waits != why {
                tracing::info!(reason = %why, "the license log keeps months older than log.keep_months for now");
                *waits = why;
            }
        }
        Err(e) => tracing::error!(error = %e, "pruning the license log failed; will retry"),
    }
}

enum RefreshCommand {
    Reload,
    /// Reload only if the store changed, then answer.
    Check(tokio::sync::oneshot::Sender<()>),
    Stop,
}

/// Notices keys changed by the CLI (or the admin UI) and swaps them into the
/// ring within 250 ms.
struct KeyRefresher {
    tx: Sender<RefreshCommand>,
    thread: JoinHandle<()>,
}

impl KeyRefresher {
    fn start(db: Db, ring: Arc<KeyRing>) -> anyhow::Result<KeyRefresher> {
        let (tx, rx) = channel();
        let checks = tx.clone();
        ring.set_store_check(Box::new(move |answer| {
            let _ = checks.send(RefreshCommand::Check(answer));
        }));
        let thread = std::thread::Builder::new()
            .name("berth-key-refresh".into())
            .spawn(move || loop {
                let mut answer = None;
                let forced = match rx.recv_timeout(Duration::from_millis(250)) {
                    Ok(RefreshCommand::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                    Ok(RefreshCommand::Reload) => true,
                    Ok(RefreshCommand::Check(reply)) => {
                        answer = Some(reply);
                        false
                    }
                    Err(RecvTimeoutError::Timeout) => false,
                };
                let changed = match db.key_generation() {
                    Ok(generation) => generation != ring.generation(),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not check for key changes");
                        false
                    }
                };
                if forced || changed {
                    match load_keys(&db, &ring) {
                        Ok(()) => tracing::info!(
                            content_keys = ring.content_key_count(),
                            communication_keys = ring.com_key_count(),
                            "keys reloaded"
                        ),
                        Err(e) => tracing::error!(error = %format!("{e:#}"), "reloading keys failed; keeping the old ones"),
                    }
                }
                if let Some(answer) = answer {
                    let _ = answer.send(());
                }
            })
            .context("starting the key refresher")?;
        Ok(KeyRefresher { tx, thread })
    }

    fn reload(&self) {
        let _ = self.tx.send(RefreshCommand::Reload);
    }

    fn stop(self) {
        let _ = self.tx.send(RefreshCommand::Stop);
        let _ = self.thread.join();
    }
}

/// Raises this process's soft limit on open files to its hard limit. Every
/// player's connection is a file, and the soft limit systemd gives a service
/// (1,024) would stop berth accepting connections at about a thousand players,
/// where a ship boards three thousand; the hard limit (systemd's default
/// 524,288) still bounds it. Returns the limit before and after.
pub fn raise_open_files_limit() -> std::io::Result<(u64, u64)> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    // The kernel's own ceiling (`fs.nr_open`) by default, for a hard limit of
    // "unlimited", which a soft limit on files may not be.
    const CEILING: u64 = 1 << 20;
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current.unwrap_or(u64::MAX);
    let wanted = limit.maximum.unwrap_or(CEILING).min(CEILING);
    if current >= wanted {
        return Ok((current, current));
    }
    let raised = Rlimit {
        current: Some(wanted),
        maximum: limit.maximum,
    };
    setrlimit(Resource::Nofile, raised)?;
    Ok((current, wanted))
}

/// Holds `<data_dir>/berth.lock` for as long as the process runs: one `serve`
/// per data dir, and `restore` only while none runs.
pub fn lock_data_dir(data_dir: &Path, what: &str) -> anyhow::Result<std::fs::File> {
    let path = data_dir.join("berth.lock");
    let file = std::fs::File::create(&path).with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "berth is running on {} ({what}); stop it first",
            data_dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

/// The master key path for a config, honouring a systemd credential.
pub fn master_key_path(config: &Config) -> PathBuf {
    config.master_key_path(crate::systemd::credentials_directory().as_deref())
}

pub fn load_master_key(path: &Path) -> anyhow::Result<Arc<MasterKey>> {
    Ok(Arc::new(MasterKey::load(path)?))
}
