//! The command line's arguments, as clap parses them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::ids::{ComKeyId, Kid, Month};
use crate::store::VesselType;

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about = "Offline DRM license server for vessels",
    max_term_width = 100
)]
pub struct Cli {
    /// Config file (TOML). A missing default file means built-in defaults.
    #[arg(long, global = true, env = "BERTH_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Data directory; overrides the config's data_dir.
    #[arg(long, global = true, env = "BERTH_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new installation: database, master key, signing key, first
    /// communication key and crew admin.
    Init(InitArgs),
    /// Run the license API until SIGTERM or SIGINT.
    Serve(ServeArgs),
    /// Apply pending database migrations.
    Migrate,
    /// Content keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Communication keys shared with the onboard portal.
    #[command(subcommand)]
    Comkey(ComkeyCommand),
    /// FairPlay Streaming (Apple devices).
    #[command(subcommand)]
    Fairplay(FairplayCommand),
    /// License tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// This month's (or another month's) license counts.
    Stats {
        /// YYYY-MM (UTC); default: the current month.
        #[arg(long)]
        month: Option<Month>,
    },
    /// The license log.
    #[command(subcommand)]
    Log(LogCommand),
    /// Monthly usage reports.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Vendor side: verify many reports and count active installations.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Vendor side: the receiver for vessels' uploads.
    #[command(subcommand)]
    Ground(GroundCommand),
    /// Crew accounts for the admin UI.
    #[command(subcommand)]
    User(UserCommand),
    /// The configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Write a consistent copy of the database while berth serves (the master key
    /// is not in it: back that up separately).
    Backup {
        #[arg(long)]
        out: PathBuf,
    },
    /// Replace the database with a backup; berth must be stopped. Refuses a
    /// backup that holds fewer licenses than the current log, or to replace a
    /// database that cannot be read (kept beside as berth.db.unreadable-<time>),
    /// unless --force.
    Restore {
        file: PathBuf,
        #[arg(long)]
        force: bool,
    },
    /// Probe the running service's /healthz; exit 0 when healthy.
    Healthcheck {
        /// Address of the license listener; default: from the config.
        #[arg(long)]
        addr: Option<SocketAddr>,
    },
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Default: the config's installation.id.
    #[arg(long)]
    pub installation_id: Option<String>,
    /// Default: the config's installation.vessel_type.
    #[arg(long)]
    pub vessel_type: Option<VesselType>,
    /// Default: the config's installation.vessel_name.
    #[arg(long)]
    pub vessel_name: Option<String>,
    /// Name of the first crew admin.
    #[arg(long, default_value = "admin")]
    pub admin_user: String,
    /// Write the communication secret and the crew password to this new file
    /// (mode 0600) instead of printing them (for provisioning: nothing secret
    /// reaches a terminal log).
    #[arg(long)]
    pub secrets_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address for the license API (passenger network).
    #[arg(long)]
    pub license_listen: Option<SocketAddr>,
    /// Address for the crew admin UI (crew network).
    #[arg(long)]
    pub admin_listen: Option<SocketAddr>,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Import keys from berth JSON or DASH-IF CPIX (clear, or encrypted for this vessel), all or nothing.
    Import { file: PathBuf },
    /// Print this vessel's delivery certificate (PEM), which key providers encrypt CPIX for.
    DeliveryCert {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The delivery key pair.
    #[command(subcommand)]
    DeliveryKey(DeliveryKeyCommand),
    /// List KIDs, labels and when they were added; never the keys.
    List,
    /// Remove a content key.
    Remove { kid: Kid },
}

#[derive(Subcommand, Debug)]
pub enum ComkeyCommand {
    /// Add a communication key the portal already has.
    Add {
        #[arg(long)]
        id: ComKeyId,
        /// A file holding the 32-byte secret, base64 (a trailing newline is
        /// ignored). Without it, the secret is read from standard input.
        #[arg(long)]
        secret_file: Option<PathBuf>,
        /// Refused: a secret on the command line shows in `ps` and the shell's history.
        #[arg(long, hide = true)]
        secret: Option<String>,
    },
    /// Make a new communication key and print its secret once.
    Generate,
    /// List communication key ids.
    List,
    /// Remove a communication key; tokens signed with it stop working.
    Remove { id: ComKeyId },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Print a signed license token (for commissioning and tests).
    Mint(MintArgs),
}

#[derive(Args, Debug)]
pub struct MintArgs {
    /// KIDs the token entitles (repeat); none means every KID the player asks for.
    #[arg(long)]
    pub kid: Vec<Kid>,
    #[arg(long)]
    pub user_id: Option<String>,
    /// How long the token is valid: 90s, 30m, 12h, 7d.
    #[arg(long, default_value = "1h", value_parser = crate::token::parse_validity)]
    pub valid_for: Duration,
    /// Communication key to sign with; default: the oldest.
    #[arg(long)]
    pub com_key_id: Option<ComKeyId>,
    /// Allow persistent licenses.
    #[arg(long)]
    pub allow_persistence: bool,
    /// Good for one license only.
    #[arg(long)]
    pub single_use: bool,
    /// Carry the content keys in the token (encrypted with the communication key).
    #[arg(long)]
    pub inline_keys: bool,
}

#[derive(Subcommand, Debug)]
pub enum LogCommand {
    /// Check the whole hash chain.
    Verify,
    /// Make a signed checkpoint of the log's head now (in <data_dir>/checkpoints,
    /// and copied into --out).
    Checkpoint {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Remove the licenses of the months before --before whose signed reports are
    /// on the box (and uploaded, when an upload address is configured).
    Prune {
        /// YYYY-MM: the first month whose licenses stay in the log.
        #[arg(long)]
        before: Month,
    },
}

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Export a month's signed usage report (a zip) into <data_dir>/reports.
    Export {
        /// The month to export, YYYY-MM.
        #[arg(long, required_unless_present = "due", conflicts_with = "due")]
        month: Option<Month>,
        /// Export every month that has ended without a report, in order (none
        /// is not an error): what the monthly timer runs.
        #[arg(long, conflicts_with = "partial")]
        due: bool,
        /// Also copy the zip into this directory.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Export a month that has not ended yet, as a preview (not recorded, not uploaded).
        #[arg(long)]
        partial: bool,
    },
    /// Verify a report zip; exit 1 naming the first problem.
    Verify {
        file: PathBuf,
        /// The expected installation's public key (PEM).
        #[arg(long)]
        pubkey: Option<PathBuf>,
        /// The previous report of the same installation, to check the link.
        #[arg(long)]
        previous: Option<PathBuf>,
        /// A directory of the installation's signed checkpoints: the report must
        /// pass through every one in its range.
        #[arg(long)]
        checkpoints: Option<PathBuf>,
    },
    /// Exported reports and their upload state.
    List,
    /// Upload now, ignoring the backoff, every pending checkpoint and report,
    /// in order. With FILE, first check that it is one of this installation's
    /// exported reports: it goes with the ones before it (the receiver takes
    /// reports in order).
    Upload { file: Option<String> },
}

#[derive(Subcommand, Debug)]
pub enum FleetCommand {
    /// Verify report zips (files or directories) and count active installations
    /// per month and vessel type.
    Summary(SummaryArgs),
    /// The monthly bill from the reports `summary` counts, priced by a price file.
    Bill(BillArgs),
}

/// What `fleet summary` and `fleet bill` read.
#[derive(Args, Debug, Clone)]
pub struct FleetInputs {
    /// Report zips, or folders of them (a receiver's store, read with its checkpoints).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Directory of <installation id>.pem public keys; reports from other keys are invalid.
    #[arg(long)]
    pub pubkeys: Option<PathBuf>,
    /// The vendor's registry of installations (TOML, as `ground serve` takes
    /// it): vessel types and keys come from it, not from the reports.
    #[arg(long)]
    pub registry: Option<PathBuf>,
    /// Signed checkpoints (folders searched within); default: those of a
    /// receiver's store among the inputs. A report must pass through its
    /// installation's, and no installation is counted below what they prove.
    #[arg(long)]
    pub checkpoints: Option<PathBuf>,
}

impl FleetInputs {
    fn summary_args(&self, max_checkpoint_gap_hours: u64) -> crate::report::SummaryArgs {
        crate::report::SummaryArgs {
            inputs: self.inputs.clone(),
            pubkeys: self.pubkeys.clone(),
            checkpoints: self.checkpoints.clone(),
            max_checkpoint_gap_hours,
            registry: self.registry.clone(),
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct SummaryArgs {
    #[command(flatten)]
    pub read: FleetInputs,
    /// Print CSV rows instead of a table (problems in their own rows, and on stderr).
    #[arg(long)]
    pub csv: bool,
    /// The longest an installation may serve without a checkpoint before it is named.
    #[arg(long, default_value_t = 24)]
    pub max_checkpoint_gap_hours: u64,
}

impl SummaryArgs {
    pub fn library(&self) -> crate::report::SummaryArgs {
        self.read.summary_args(self.max_checkpoint_gap_hours)
    }
}

#[derive(Args, Debug, Clone)]
pub struct BillArgs {
    /// The price file (TOML): currency, basis and tiers per vessel type.
    #[arg(long)]
    pub prices: PathBuf,
    #[command(flatten)]
    pub read: FleetInputs,
    /// Only this month (YYYY-MM); default: every month the reports cover.
    #[arg(long)]
    pub month: Option<Month>,
    /// CSV rows instead of a table (what is not billed in its own rows, and on stderr).
    #[arg(long)]
    pub csv: bool,
}

impl BillArgs {
    pub fn library(&self) -> crate::report::SummaryArgs {
        self.read.summary_args(24)
    }
}

#[derive(Subcommand, Debug)]
pub enum GroundCommand {
    /// Receive vessels' report uploads over mutual TLS, verify and store them.
    Serve(GroundServeArgs),
}

#[derive(Args, Debug, Clone)]
pub struct GroundServeArgs {
    /// Address to listen on (HTTPS only).
    #[arg(long)]
    pub listen: SocketAddr,
    /// Folder the verified reports are kept in, one folder per installation.
    #[arg(long)]
    pub store: PathBuf,
    /// The receiver's certificate chain (PEM).
    #[arg(long)]
    pub tls_cert: PathBuf,
    /// The receiver's private key (PEM).
    #[arg(long)]
    pub tls_key: PathBuf,
    /// The CA (PEM) that issues the vessels' client certificates; the
    /// certificate's common name or a SAN is the installation id.
    #[arg(long)]
    pub client_ca: PathBuf,
    /// Folder of <installation id>.pem report keys. Without it, an
    /// installation's first report pins the key all its later ones must carry.
    #[arg(long)]
    pub pubkeys: Option<PathBuf>,
    /// The vendor's registry of installations (TOML): vessel type, optional
    /// key, optional first sequence. Installations not in it are refused.
    #[arg(long)]
    pub registry: Option<PathBuf>,
    /// Free space (MB) the store's disk keeps: an upload that would leave
    /// less is refused with 507 before its body is read.
    #[arg(long, default_value_t = 1024)]
    pub min_free_mb: u64,
    /// The longest one upload may take to arrive, in seconds.
    #[arg(long, default_value_t = 600)]
    pub upload_timeout_secs: u64,
    /// The longest an upload may send nothing, in seconds.
    #[arg(long, default_value_t = 20)]
    pub body_idle_secs: u64,
}

impl GroundServeArgs {
    pub fn options(&self) -> crate::ground::ServeOptions {
        crate::ground::ServeOptions {
            listen: self.listen,
            store: self.store.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            client_ca: self.client_ca.clone(),
            pubkeys: self.pubkeys.clone(),
            registry: self.registry.clone(),
            min_free_mb: self.min_free_mb,
            upload_timeout_secs: self.upload_timeout_secs,
            body_idle_secs: self.body_idle_secs,
        }
    }
}

/// `berth keys delivery-key ...`.
#[derive(Subcommand, Debug)]
pub enum DeliveryKeyCommand {
    /// Replace the delivery key pair with one the vendor issued (PKCS#12). The
    /// password comes from --password-file or standard input, never the command line.
    Import {
        file: PathBuf,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
}

/// `berth fairplay ...`.
#[derive(Subcommand, Debug)]
pub enum FairplayCommand {
    /// The content provider's FPS deployment credentials.
    #[command(subcommand)]
    Credentials(FairplayCredentialsCommand),
}

/// `berth fairplay credentials ...`.
#[derive(Subcommand, Debug)]
pub enum FairplayCredentialsCommand {
    /// Import the FPS certificate, its private key and the ASk (each from a
    /// file, never the command line), sealed under the master key; they
    /// replace any others.
    Import {
        /// The FPS certificate Apple issued (DER or PEM).
        #[arg(long)]
        certificate: PathBuf,
        /// Its RSA private key (unencrypted PEM or DER).
        #[arg(long)]
        private_key: PathBuf,
        /// A file holding the ASk (32 hex digits).
        #[arg(long)]
        ask_file: Option<PathBuf>,
    },
    /// The imported certificate's subject, SHA-256 fingerprint, key size and expiry.
    Show,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a crew account; prints a generated password once.
    Add {
        name: String,
        #[arg(long, default_value = "viewer", value_parser = ["admin", "viewer"])]
        role: String,
    },
    /// Set a new generated password; prints it once.
    Passwd { name: String },
    /// Remove a crew account.
    Remove { name: String },
    /// List crew accounts.
    List,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the documented example config.
    Example,
    /// Print the effective config (defaults, file, environment, flags).
    Show,
}
