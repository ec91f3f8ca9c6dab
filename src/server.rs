//! Assembles a running berth from a config: opens and migrates the store, loads
//! the keys, starts the log writer, the key refresher and the listeners, and
//! stops them in order (listeners drain, then the log is flushed).
//!
//! Architecture Invariant: takes already-bound listeners, so tests use port 0;
//! never reads the environment or signals (the CLI does).

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::Context as _;

use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::MasterKey;
use crate::http::{LicenseApi, license_server};
use crate::ids::format_instant;
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
    refresher: crate::store::KeyRefresher,
    /// Tasks that live as long as the server (reports, status, watchdog); they
    /// hold handles to the log, so they end before the log is flushed.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Where and with what to make the checkpoint at shutdown (none when off).
    checkpoints: Option<(std::path::PathBuf, Arc<MasterKey>)>,
    /// This run, as the monthly report's coverage shows it.
    serving: Serving,
    _lock: std::fs::File,
}

/// One run of `berth serve` in the database (`serving_periods`): its start,
/// a sign of life every minute, its clean stop. A failure to write is
/// logged: coverage is a record, not a reason to stop serving.
#[derive(Clone)]
struct Serving {
    data_dir: std::path::PathBuf,
    master: Arc<MasterKey>,
    started: String,
}

impl Serving {
    /// Records the start now, and a sign of life every minute from a task.
    async fn start(
        config: &Config,
        master: &Arc<MasterKey>,
        clock: &Arc<dyn Clock>,
        tasks: &mut Vec<tokio::task::JoinHandle<()>>,
    ) -> Serving {
        let serving = Serving {
            data_dir: config.data_dir.clone(),
            master: Arc::clone(master),
            started: crate::ids::format_instant(clock.now()),
        };
        serving.record(None).await;
        tasks.push(actix_web::rt::spawn(serving.clone().heartbeat(Arc::clone(clock))));
        serving
    }

    /// Records the start (`at` none), a sign of life, or the stop.
    async fn record(&self, at: Option<(time::OffsetDateTime, bool)>) {
        let this = self.clone();
        let done = actix_web::rt::task::spawn_blocking(move || -> anyhow::Result<()> {
            let db = Db::open(&this.data_dir, this.master)?;
            match at {
                None => db.serving_started(&this.started)?,
                Some((at, stopped)) => {
                    db.serving_seen(&this.started, &crate::ids::format_instant(at), stopped)?
                }
            }
            Ok(())
        })
        .await;
        if let Ok(Err(e)) = done {
            tracing::warn!(error = %format!("{e:#}"), "recording when berth serves failed");
        }
    }

    async fn heartbeat(self, clock: Arc<dyn Clock>) {
        loop {
            actix_web::rt::time::sleep(Duration::from_secs(60)).await;
            self.record(Some((clock.now(), false))).await;
        }
    }
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

/// Starts berth on already-bound listeners (tests bind port 0).
///
/// Its steps are named (certificates, the database, the license path); what is
/// left here is the wiring of the listeners and tasks, in the order a failure
/// must stop the start.
pub async fn start(config: &Config, startup: Startup) -> anyhow::Result<Server> {
    let Startup {
        master,
        clock,
        license_listener,
        admin_listener,
        workers,
    } = startup;
    let data_dir = &config.data_dir;
    installed(data_dir)?;
    // Certificates first: a file berth cannot use stops the start before
    // anything else is opened.
    let license_tls = tls_acceptor(config.license.tls(), "license")?;
    let admin_tls = match admin_listener {
        Some(_) => tls_acceptor(config.admin.tls(), "admin")?,
        None => None,
    };
    let certificates = certificates_to_watch(&license_tls, &admin_tls, clock.now());
    let lock = crate::installation::lock_data_dir(data_dir, "another berth serve holds it")?;
    let db = open_migrated(data_dir, &master)?;
    let installation = db.installation()?;
    let (service, writer, refresher) = license_service(config, db, clock)?;

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
    let (mut admin, mut admin_addr) = (None, None);
    if let Some(listener) = admin_listener {
        listener.set_nonblocking(true)?;
        admin_addr = Some(listener.local_addr()?);
        let state = crate::admin::AdminState::new(
            Arc::clone(&service),
            outcomes,
            config,
            Arc::clone(&master),
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
    let serving = Serving::start(config, &master, service.clock(), &mut tasks).await;
    let checkpoints = background_tasks(config, service.clock(), master, &mut tasks);
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
        checkpoints,
        serving,
        _lock: lock,
    })
}

fn installed(data_dir: &std::path::Path) -> anyhow::Result<()> {
    if !data_dir.join(crate::store::DB_FILE).exists() {
        anyhow::bail!(
            "no installation in {}: run `berth init` first",
            data_dir.display()
        );
    }
    Ok(())
}

/// The tasks that live as long as the server: checkpoints, and reports when
/// they are exported, uploaded or pruned by themselves. Returns where the
/// checkpoint at shutdown goes, when checkpoints are on.
fn background_tasks(
    config: &Config,
    clock: &Arc<dyn Clock>,
    master: Arc<MasterKey>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Option<(std::path::PathBuf, Arc<MasterKey>)> {
    let checkpoints =
        (config.log.checkpoint_interval_secs > 0).then(|| (config.data_dir.clone(), Arc::clone(&master)));
    if let Some((dir, key)) = &checkpoints {
        let every = Duration::from_secs(config.log.checkpoint_interval_secs);
        tasks.push(actix_web::rt::spawn(checkpoint_every(
            every,
            dir.clone(),
            Arc::clone(key),
            Arc::clone(clock),
        )));
    }
    if config.reports.auto_export || !config.upload.url.is_empty() || config.log.keep_months > 0 {
        tasks.push(actix_web::rt::spawn(crate::report::report_task(
            config.clone(),
            master,
            Arc::clone(clock),
        )));
    }
    checkpoints
}

/// `log.checkpoint_interval_secs`: a checkpoint every `period`, for as long as
/// the server runs.
async fn checkpoint_every(
    period: Duration,
    dir: std::path::PathBuf,
    master: Arc<MasterKey>,
    clock: Arc<dyn Clock>,
) {
    loop {
        actix_web::rt::time::sleep(period).await;
        checkpoint(dir.clone(), Arc::clone(&master), clock.now()).await;
    }
}

/// Makes a signed checkpoint of the log's head; a failure (a full disk) is
/// logged, never fatal: the next one tries again.
async fn checkpoint(data_dir: std::path::PathBuf, master: Arc<MasterKey>, now: time::OffsetDateTime) {
    let made = actix_web::rt::task::spawn_blocking(move || {
        let db = Db::open(&data_dir, master)?;
        crate::report::checkpoint::make(&db, now, &data_dir, None)
    })
    .await;
    match made {
        Ok(Ok(made)) => tracing::info!(seq = made.seq, file = %made.file.display(), "checkpoint made"),
        Ok(Err(e)) => tracing::error!(error = %format!("{e:#}"), "making a checkpoint failed"),
        Err(e) => tracing::error!(error = %e, "making a checkpoint failed"),
    }
}

/// The listeners' certificates, for the dashboard; one that expires within
/// 30 days is warned about now.
fn certificates_to_watch(
    license: &Option<(crate::crypto::TlsAcceptor, time::OffsetDateTime)>,
    admin: &Option<(crate::crypto::TlsAcceptor, time::OffsetDateTime)>,
    now: time::OffsetDateTime,
) -> Vec<crate::admin::Certificate> {
    let certificates: Vec<crate::admin::Certificate> = [("License API", license), ("Admin UI", admin)]
        .into_iter()
        .filter_map(|(listener, tls)| {
            let expires = tls.as_ref()?.1;
            Some(crate::admin::Certificate { listener, expires })
        })
        .collect();
    for certificate in certificates.iter().filter(|c| c.expires_soon(now)) {
        tracing::warn!(
            listener = certificate.listener,
            expires = %format_instant(certificate.expires),
            "the certificate expires within 30 days: browsers refuse an expired one"
        );
    }
    certificates
}

/// The database, with pending migrations applied; while a long one runs,
/// systemd is told so and asked for more time.
fn open_migrated(data_dir: &Path, master: &Arc<MasterKey>) -> anyhow::Result<Db> {
    let pending = Db::pending_migrations(data_dir)
        .with_context(|| format!("opening the database in {}", data_dir.display()))?;
    if pending.is_empty() {
        return Db::open(data_dir, Arc::clone(master))
            .with_context(|| format!("opening the database in {}", data_dir.display()));
    }
    let names = pending.join(", ");
    tracing::info!(migrations = %names, "applying database migrations before serving; on a long license log this takes a while");
    let steps = Arc::new(AtomicU64::new(0));
    crate::systemd::extend_start_while(&format!("applying database migrations: {names}"), &steps, || {
        Db::open_counting(data_dir, Arc::clone(master), Some(Arc::clone(&steps)))
    })
    .with_context(|| format!("opening the database in {}", data_dir.display()))
}

/// The license path: the key ring loaded and kept in step with the store, the
/// log writer, and the service that joins them.
fn license_service(
    config: &Config,
    db: Db,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(Arc<LicenseService>, LogWriter, crate::store::KeyRefresher)> {
    let pepper = db.pepper().context("opening the user-id pepper")?;
    let link = crate::store::RefresherLink::default();
    let ring = Arc::new(KeyRing::new(link.store_check()));
    crate::store::load_keys(&db, &ring)?;
    let newest = db.newest_issued_at()?;
    let writer_config = WriterConfig {
        queue_capacity: config.log.queue_capacity,
        max_batch: config.log.max_batch,
        busy_timeout: Duration::from_millis(config.log.busy_timeout_ms),
    };
    let (writer, log) = LogWriter::start(db.path(), writer_config, Arc::clone(&clock))?;
    // The license listener's workers are answered through their mailboxes.
    let log = log.with_courier(crate::http::Mailbox::current);
    let writer_health = Arc::clone(log.health());
    let limits = crate::license::Limits {
        tolerance: time::Duration::seconds(config.license.clock_tolerance_secs as i64),
        append_timeout: Duration::from_millis(config.log.append_timeout_ms),
        repeat_window: time::Duration::seconds(config.license.hls_repeat_window_secs as i64),
    };
    let service = Arc::new(LicenseService::new(crate::license::ServiceParts {
        keys: Arc::clone(&ring),
        log: Arc::new(log),
        writer: writer_health,
        clock,
        pepper: &pepper,
        limits,
        last_issued_at: newest,
    }));
    let refresher = crate::store::KeyRefresher::start(db, ring, link)?;
    Ok((service, writer, refresher))
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
        let clock = Arc::clone(self.service.clock());
        // The last handles to the log go with the service; then the writer drains.
        drop(self.service);
        let writer = self.writer;
        let _ = actix_web::rt::task::spawn_blocking(move || writer.join()).await;
        // The head as it stands once every license is flushed.
        if let Some((data_dir, master)) = self.checkpoints {
            checkpoint(data_dir, master, clock.now()).await;
        }
        self.serving.record(Some((clock.now(), true))).await;
        tracing::info!("berth stopped; the license log is flushed");
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

/// A berth that answers: the license API's and the admin UI's URLs, and the
/// server, for whatever the caller starts beside it.
pub struct Started<'a> {
    pub license_url: String,
    pub admin_url: String,
    pub server: &'a Server,
}

/// Runs berth until SIGTERM or SIGINT (SIGHUP reloads keys): binds the
/// listeners and starts it on them, waits until the license API answers its own health
/// check, hands `on_started` where it answers (the CLI prints it), tells
/// systemd it is ready, and on a signal drains requests and flushes the log.
pub fn serve_until_stopped(
    config: Config,
    clock: Arc<dyn Clock>,
    on_started: impl FnOnce(Started<'_>),
) -> anyhow::Result<()> {
    // Each connection is an open file; a limit below a few thousand turns
    // players away in a boarding rush.
    match raise_open_files_limit() {
        Ok((_, limit)) if limit < 4096 => tracing::warn!(
            limit,
            "the open files limit leaves room for fewer than 4,096 connections; raise LimitNOFILE="
        ),
        Ok((from, to)) if from != to => tracing::info!(from, to, "raised the open files limit"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not raise the open files limit"),
    }
    let master = crate::installation::load_master_key(&crate::installation::master_key_path(&config))?;
    let license_listener = TcpListener::bind(config.license.listen)
        .with_context(|| format!("binding the license listener to {}", config.license.listen))?;
    let admin_listener = TcpListener::bind(config.admin.listen)
        .with_context(|| format!("binding the admin listener to {}", config.admin.listen))?;
    actix_web::rt::System::new().block_on(async move {
        let mut signals = Signals::install()?;
        let startup = Startup {
            master: Arc::clone(&master),
            clock,
            license_listener,
            admin_listener: Some(admin_listener),
            workers: None,
        };
        let mut server = start(&config, startup).await?;
        let tls = config.license.tls().is_some();
        answers_its_health_check(server.license_addr(), tls).await?;
        let scheme = |tls: bool| if tls { "https" } else { "http" };
        on_started(Started {
            license_url: format!("{}://{}", scheme(tls), server.license_addr()),
            admin_url: server
                .admin_addr()
                .map(|a| format!("{}://{a}", scheme(config.admin.tls().is_some())))
                .unwrap_or_default(),
            server: &server,
        });
        crate::systemd::ready();
        if let Some(period) = crate::systemd::watchdog_interval() {
            let service = Arc::clone(server.service());
            server.spawn(crate::systemd::watchdog(service, period));
        }
        let service = Arc::clone(server.service());
        server.spawn(crate::systemd::status_updates(
            config.data_dir.clone(),
            master,
            service,
        ));
        wait_for_shutdown(&server, &mut signals).await;
        crate::systemd::stopping();
        server.stop().await;
        Ok(())
    })
}

/// READY=1 only once the license API really answers.
async fn answers_its_health_check(addr: SocketAddr, tls: bool) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match crate::http::probe_healthz(addr, tls).await {
            Ok(_) => return Ok(()),
            Err(e) if std::time::Instant::now() > deadline => {
                return Err(anyhow::Error::new(e)
                    .context("the license listener does not answer its own health check"));
            }
            Err(_) => actix_web::rt::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The signals `serve` answers to, installed before berth announces itself, so
/// a SIGTERM right after `READY=1` still drains and flushes.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

async fn wait_for_shutdown(server: &Server, signals: &mut Signals) {
    loop {
        tokio::select! {
            _ = signals.term.recv() => break,
            _ = signals.int.recv() => break,
            _ = signals.hup.recv() => {
                tracing::info!("SIGHUP: reloading keys");
                crate::systemd::reloading();
                server.reload_keys();
                crate::systemd::ready();
            }
        }
    }
    tracing::info!("stopping: draining requests and flushing the license log");
}
