//! `berth fleet summary`: the vendor verifies many reports and counts active
//! installations per month and vessel type. Invalid reports are never counted;
//! an installation is never counted for fewer licenses than its checkpoints
//! prove ([`super::evidence`]), and its vessel type is the registry's or the
//! one its first counted report pinned, never what each report says.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Verified, verify_link};
use crate::crypto::PublicKey;
use crate::ground::Registry;

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Cell {
    pub active_installations: u64,
    pub reporting_installations: u64,
    pub licenses: u64,
    pub active_users: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub file: String,
    pub installation: Option<String>,
    pub problem: String,
}

#[derive(Debug, Default, Serialize)]
pub struct FleetSummary {
    pub files: usize,
    /// Reports whose signer is established and whose link to the previous
    /// report holds: the only ones counted.
    pub counted_reports: usize,
    /// month -> vessel type -> counts.
    pub months: BTreeMap<String, BTreeMap<String, Cell>>,
    /// month -> KID -> the title's counts across the fleet (schema-3 reports).
    pub titles: BTreeMap<String, BTreeMap<String, TitleTotal>>,
    /// Installations with two different reports for one sequence (a cloned
    /// box, or a restored copy that went on): counted once, all listed.
    pub forks: Vec<Fork>,
    /// With `--checkpoints`: stretches an installation served for longer than
    /// the allowed gap without a checkpoint in the given set.
    pub withheld: Vec<Withheld>,
    /// With `--checkpoints`: how many checkpoints the counted reports pass through.
    pub checkpoints_checked: usize,
    /// Each counted installation's vessel type (the registry's or its first report's).
    pub installations: BTreeMap<String, String>,
    pub problems: Vec<Problem>,
}

/// One title across the fleet in a month.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct TitleTotal {
    /// The label most installations give it (one vessel cannot set it for the fleet).
    pub label: String,
    /// Installations per label, for choosing it.
    #[serde(skip)]
    labels: BTreeMap<String, u64>,
    pub licenses: u64,
    /// Summed over installations (a passenger is counted on each vessel).
    pub active_users: u64,
    pub installations: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Fork {
    pub installation: String,
    pub sequence: i64,
    pub month: String,
    /// Every report of that installation and sequence.
    pub reports: Vec<String>,
    /// The one counted (the one with the most licenses).
    pub counted: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Withheld {
    pub installation: String,
    pub file: String,
    pub from: String,
    pub to: String,
    pub hours: u64,
    /// What was found: serving without a checkpoint, licenses outside every
    /// serving run, or licenses with no serving run at all.
    pub what: String,
}

/// What `fleet summary` and `fleet bill` read: report zips (files, or
/// folders of them such as a receiver's store) and what they are checked
/// against.
#[derive(Debug, Clone, Default)]
pub struct SummaryArgs {
    pub inputs: Vec<PathBuf>,
    /// `<installation id>.pem` public keys; reports from other keys are invalid.
    pub pubkeys: Option<PathBuf>,
    /// Signed checkpoints; without, those of a receiver's store among the inputs.
    pub checkpoints: Option<PathBuf>,
    /// The longest an installation may serve without a checkpoint before it is named.
    pub max_checkpoint_gap_hours: u64,
    /// The vendor's registry of installations.
    pub registry: Option<PathBuf>,
}

/// Every `.zip` in the given files and directories (directories recursively,
/// but not through a symbolic link to a directory: two links back to their
/// parent made the walk go on forever; a linked zip file is read, and counted
/// once like any other copy).
///
/// A path named on the command line that does not exist is an error (a typo'd
/// directory would otherwise summarise nothing and look like a quiet month), as
/// is a directory that cannot be read, by name.
pub fn collect(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut stack = vec![input.clone()];
            while let Some(dir) = stack.pop() {
                let listing = |e: std::io::Error| format!("reading {}: {e}", dir.display());
                for entry in std::fs::read_dir(&dir).map_err(listing)? {
                    let entry = entry.map_err(listing)?;
                    let path = entry.path();
                    if entry.file_type().map_err(listing)?.is_dir() {
                        stack.push(path);
                    } else if path.extension().is_some_and(|e| e == "zip") && !path.is_dir() {
                        out.push(path);
                    }
                }
            }
        } else if input.exists() {
            out.push(input.clone());
        } else {
            return Err(format!("{}: no such file or directory", input.display()));
        }
    }
    out.sort();
    Ok(out)
}

/// Loads `<installation id>.pem` files from a directory.
pub fn load_pubkeys(dir: &Path) -> Result<HashMap<String, PublicKey>, String> {
    let mut keys = HashMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|e| e == "pem") {
            let id = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let pem = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            let key = PublicKey::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
            keys.insert(id, key);
        }
    }
    Ok(keys)
}

/// What the summary checks reports against, besides their signatures.
pub struct Checks<'a> {
    pub pubkeys: Option<&'a HashMap<String, PublicKey>>,
    pub registry: Option<&'a Registry>,
    pub checkpoints: Option<&'a [super::checkpoint::Signed]>,
    pub max_gap: time::Duration,
    /// The billing clock: months that have not ended by it are not billed
    /// from checkpoints yet.
    pub now: time::OffsetDateTime,
}

impl Default for Checks<'_> {
    fn default() -> Self {
        Checks {
            pubkeys: None,
            registry: None,
            checkpoints: None,
            max_gap: time::Duration::hours(24),
            now: crate::clock::Clock::now(&crate::clock::SystemClock),
        }
    }
}

impl Checks<'_> {
    /// The key an installation's reports must carry, when the vendor named one.
    fn key_of(&self, installation: &str) -> Result<Option<Vec<u8>>, &'static str> {
        if let Some(registry) = self.registry {
            let entry = registry
                .get(installation)
                .ok_or("the installation is not in the --registry")?;
            if let Some(key) = &entry.public_key {
                return Ok(Some(key.clone()));
            }
        }
        match self.pubkeys {
            Some(keys) => keys
                .get(installation)
                .map(|k| Some(k.der()))
                .ok_or("no public key for this installation in --pubkeys"),
            None => Ok(None),
        }
    }
}

pub fn summarize(files: &[PathBuf], checks: &Checks<'_>) -> FleetSummary {
    let mut summary = FleetSummary {
        files: files.len(),
        ..FleetSummary::default()
    };
    // One installation at a time, so that memory is bounded by one
    // installation's reports and not by every byte uploaded: files are grouped
    // by the installation their report.json claims (read, not yet trusted),
    // then each group is verified in full.
    for (claim, group) in group_by_claim(files) {
        // The rows of the installation's checkpoints are read in the same
        // reading of licenses.csv that verifies it.
        let watch: Vec<i64> = checks
            .checkpoints
            .unwrap_or_default()
            .iter()
            .filter(|c| c.checkpoint.installation == claim)
            .map(|c| c.checkpoint.seq)
            .collect();
        let mut by_installation: BTreeMap<String, Vec<(PathBuf, Verified)>> = BTreeMap::new();
        let mut hashes: HashMap<PathBuf, super::RowHashes> = HashMap::new();
        for (path, result) in verify_all(&group, checks, &watch) {
            let result = result.map(|(v, h)| {
                hashes.insert(path.clone(), h);
                v
            });
            match result {
                Ok(v) if v.report.partial => summary.problems.push(Problem {
                    file: path.display().to_string(),
                    installation: Some(v.report.installation.id.clone()),
                    problem: "a partial (preview) report; not counted".into(),
                }),
                Ok(v) => by_installation
                    .entry(v.report.installation.id.clone())
                    .or_default()
                    .push((path, v)),
                Err((installation, problem)) => summary.problems.push(Problem {
                    file: path.display().to_string(),
                    installation,
                    problem,
                }),
            }
        }
        for (installation, reports) in by_installation {
            summary.count_installation(installation, reports, checks, &hashes);
        }
    }
    summary.choose_labels();
    summary
}

/// The files by the installation their report.json claims; those whose claim
/// cannot be read under "" (verifying them names why).
fn group_by_claim(files: &[PathBuf]) -> BTreeMap<String, Vec<PathBuf>> {
    let mut groups: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for path in files {
        let claim = super::read_report_json(path).map_or_else(|_| String::new(), |r| r.installation.id);
        groups.entry(claim).or_default().push(path.clone());
    }
    groups
}

impl FleetSummary {
    /// Counts one installation's verified reports (see [`summarize`]).
    fn count_installation(
        &mut self,
        installation: String,
        reports: Reports,
        checks: &Checks<'_>,
        hashes: &HashMap<PathBuf, super::RowHashes>,
    ) {
        let keys_given = checks.pubkeys.is_some() || checks.registry.is_some();
        // The key its checkpoints must carry: the vendor's, or the one its
        // reports all carry.
        let key = checks.key_of(&installation).ok().flatten().or_else(|| {
            let keys: std::collections::BTreeSet<&Vec<u8>> =
                reports.iter().map(|(_, v)| &v.public_key_der).collect();
            (keys.len() == 1)
                .then(|| keys.into_iter().next().cloned())
                .flatten()
        });
        // A report that contradicts a checkpoint is out before forks are
        // resolved: of a genuine report and a rolled-back copy, the genuine
        // one is counted, whichever has more licenses.
        let (reports, mut refused) = match checks.checkpoints {
            Some(set) => self.through_checkpoints(reports, set, hashes),
            None => (reports, Vec::new()),
        };
        let (kept, unlinked, forks) = trusted_reports(reports, keys_given);
        refused.extend(unlinked);
        self.forks.extend(forks);
        if let Some(set) = checks.checkpoints {
            for (path, v) in &kept {
                self.withheld.extend(withheld(path, v, set, checks.max_gap));
            }
        }
        let vessel_type = self.vessel_type(&installation, &kept, checks.registry, &mut refused);
        self.problems
            .extend(refused.into_iter().map(|(path, problem)| Problem {
                file: path.display().to_string(),
                installation: Some(installation.clone()),
                problem,
            }));
        let ours: Vec<&super::checkpoint::Signed> = checks
            .checkpoints
            .unwrap_or_default()
            .iter()
            .filter(|c| c.checkpoint.installation == installation)
            .filter(|c| key.as_deref().is_some_and(|k| c.signed_by(k)))
            .collect();
        let counted: Vec<&Verified> = kept.iter().map(|(_, v)| v).collect();
        let paths: Vec<&Path> = kept.iter().map(|(p, _)| p.as_path()).collect();
        let proven = super::evidence::months(&counted, &paths, &ours, checks.now);
        self.problems
            .extend(proven.problems.into_iter().map(|problem| Problem {
                file: "(evidence)".into(),
                installation: Some(installation.clone()),
                problem,
            }));
        let Some(vessel_type) = vessel_type else {
            return;
        };
        self.installations
            .insert(installation.clone(), vessel_type.clone());
        for month in &proven.months {
            self.count(&vessel_type, month, month.report.map(|i| &counted[i].report));
        }
    }
}

/// Verifies every file, on up to 16 threads. A report that fails verification
/// names no installation (its claim is not to be trusted); one refused by
/// `--pubkeys` names the one it claims to be.
/// A report that checks out, or the installation it names (when that can be
/// trusted) and why it is refused.
type Checked = Result<(Verified, super::RowHashes), (Option<String>, String)>;

fn verify_all(files: &[PathBuf], checks: &Checks<'_>, watch: &[i64]) -> Vec<(PathBuf, Checked)> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(16);
    let chunk = files.len().div_ceil(threads).max(1);
    let check = |path: &PathBuf| -> Checked {
        let (v, hashes) =
            super::verify_file_watching(path, None, watch).map_err(|e| (None, e.to_string()))?;
        let refused = |why: &str| Err((Some(v.report.installation.id.clone()), why.to_owned()));
        match checks.key_of(&v.report.installation.id) {
            Err(why) => refused(why),
            Ok(Some(k)) if k != v.public_key_der => {
                refused("signed by another key than the installation's registered one")
            }
            Ok(_) => Ok((v, hashes)),
        }
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                scope.spawn(|| {
                    part.iter()
                        .map(|path| (path.clone(), check(path)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a verifier thread panicked"))
            .collect()
    })
}

impl FleetSummary {
    /// Counts one month of an installation under its vessel type: the
    /// licenses billed (at least what its checkpoints prove), and its report's
    /// users and titles when it has one.
    fn count(
        &mut self,
        vessel_type: &str,
        month: &super::evidence::MonthRows,
        report: Option<&super::ReportJson>,
    ) {
        let cell = self
            .months
            .entry(month.month.to_string())
            .or_default()
            .entry(vessel_type.to_owned())
            .or_default();
        cell.licenses += month.billed;
        if report.is_some_and(|r| r.active) || month.billed > 0 {
            cell.active_installations += 1;
        }
        let Some(report) = report else {
            return;
        };
        self.counted_reports += 1;
        cell.reporting_installations += 1;
        cell.active_users += report.counts.active_users;
        let titles = self.titles.entry(report.period.month.clone()).or_default();
        for (kid, t) in report.titles.iter().flatten() {
            let total = titles.entry(kid.clone()).or_default();
            *total.labels.entry(t.label.clone()).or_default() += 1;
            total.licenses += t.licenses;
            total.active_users += t.active_users;
            total.installations += 1;
        }
    }

    /// Each title's label: the one most installations give it (the first in
    /// order among equals), so that one vessel cannot name a title fleet-wide.
    fn choose_labels(&mut self) {
        for total in self.titles.values_mut().flat_map(|t| t.values_mut()) {
            let most = total.labels.values().copied().max().unwrap_or(0);
            if let Some((label, _)) = total.labels.iter().find(|(_, n)| **n == most) {
                total.label.clone_from(label);
            }
        }
    }

    /// The installation's vessel type: the registry's, else the one its first
    /// counted report says. A counted report that says another is named (it is
    /// counted under the installation's type). None (nothing counted, named)
    /// when the type is not one berth knows.
    fn vessel_type(
        &mut self,
        installation: &str,
        kept: &Reports,
        registry: Option<&Registry>,
        refused: &mut Vec<(PathBuf, String)>,
    ) -> Option<String> {
        let registered = registry
            .and_then(|r| r.get(installation))
            .map(|e| e.vessel_type.as_str().to_owned());
        let first = kept
            .first()
            .map(|(_, v)| v.report.installation.vessel_type.clone());
        let vessel_type = registered.or(first)?;
        for (path, v) in kept {
            let said = &v.report.installation.vessel_type;
            if *said != vessel_type {
                refused.push((
                    path.clone(),
                    format!(
                        "the report says vessel type {said:?}, but the installation is a {vessel_type:?}; counted as a {vessel_type:?}"
                    ),
                ));
            }
        }
        if vessel_type.parse::<crate::store::VesselType>().is_err() {
            self.problems.push(Problem {
                file: "(evidence)".into(),
                installation: Some(installation.to_owned()),
                problem: format!("vessel type {vessel_type:?} is not one berth knows; not counted"),
            });
            return None;
        }
        Some(vessel_type)
    }

    /// Splits reports into those that pass through every checkpoint of their
    /// installation in the set and those that do not (with the reason). A
    /// later report that continues a failed one is then not counted either:
    /// its predecessor is missing from the counted ones.
    fn through_checkpoints(
        &mut self,
        reports: Reports,
        set: &[super::checkpoint::Signed],
        hashes: &HashMap<PathBuf, super::RowHashes>,
    ) -> (Reports, Vec<(PathBuf, String)>) {
        let mut passed = Vec::new();
        let mut failed = Vec::new();
        let none = super::RowHashes::new();
        for (path, v) in reports {
            match super::checkpoint::check_hashes(&v, hashes.get(&path).unwrap_or(&none), set) {
                Ok(n) => {
                    self.checkpoints_checked += n;
                    passed.push((path, v));
                }
                Err(e) => failed.push((path, format!("{e:#}; not counted"))),
            }
        }
        (passed, failed)
    }
}

/// What a report's coverage leaves unvouched: serving for longer than
/// `max_gap` in all (across runs, however short each) with no checkpoint of
/// its installation, signed by its key, in the set; licenses on days no
/// serving run touches; licenses with no serving run at all.
fn withheld(
    path: &Path,
    v: &Verified,
    set: &[super::checkpoint::Signed],
    max_gap: time::Duration,
) -> Vec<Withheld> {
    use crate::ids::{format_instant, parse_instant};
    let r = &v.report;
    let mut made: Vec<time::OffsetDateTime> = set
        .iter()
        .filter(|c| c.checkpoint.installation == r.installation.id && c.signed_by(&v.public_key_der))
        .filter_map(|c| parse_instant(&c.checkpoint.made_at).ok())
        .collect();
    made.sort();
    let mut runs: Vec<(time::OffsetDateTime, time::OffsetDateTime)> = r
        .coverage
        .iter()
        .flat_map(|c| &c.serving)
        .filter_map(|i| Some((parse_instant(&i.start).ok()?, parse_instant(&i.end).ok()?)))
        .filter(|(start, end)| end >= start)
        .collect();
    runs.sort();
    let found = |from, to, hours, what: &str| Withheld {
        installation: r.installation.id.clone(),
        file: path.display().to_string(),
        from: format_instant(from),
        to: format_instant(to),
        hours,
        what: what.to_owned(),
    };
    let mut out: Vec<Withheld> = unvouched(&runs, &made, max_gap)
        .into_iter()
        .map(|(from, to, served)| {
            found(
                from,
                to,
                served.whole_hours() as u64,
                "served without a checkpoint",
            )
        })
        .collect();
    if r.counts.licenses > 0 && r.coverage.is_some() && runs.is_empty() {
        let month: Option<crate::ids::Month> = r.period.month.parse().ok();
        if let Some(m) = month {
            out.push(found(
                m.start(),
                m.end(),
                0,
                "licenses with no serving run recorded",
            ));
        }
    }
    for (day, n) in r.counts.by_day.iter().filter(|(_, n)| **n > 0) {
        let Ok(start) = parse_instant(&format!("{day}T00:00:00Z")) else {
            continue;
        };
        let end = start + time::Duration::days(1);
        if !runs.is_empty() && !runs.iter().any(|(s, e)| *s < end && *e >= start) {
            out.push(found(
                start,
                end,
                0,
                &format!("{n} licenses outside every serving run"),
            ));
        }
    }
    out
}

/// The stretches of serving runs (sorted) longer than `max_gap` in all since
/// the last checkpoint made (sorted), however short each run: each one's
/// start, where it passed the gap (a checkpoint or a run's end), and the time
/// served.
fn unvouched(
    runs: &[(time::OffsetDateTime, time::OffsetDateTime)],
    made: &[time::OffsetDateTime],
    max_gap: time::Duration,
) -> Vec<(time::OffsetDateTime, time::OffsetDateTime, time::Duration)> {
    let mut out = Vec::new();
    let mut since: Option<time::OffsetDateTime> = None;
    let mut served = time::Duration::ZERO;
    let mut flagged = false;
    for &(start, end) in runs {
        let mut from = start;
        for &at in made.iter().filter(|t| **t > start && **t < end) {
            served += at - from;
            if served > max_gap && !flagged {
                out.push((since.unwrap_or(start), at, served));
            }
            (since, served, flagged, from) = (Some(at), time::Duration::ZERO, false, at);
        }
        since.get_or_insert(from);
        served += end - from;
        if served > max_gap && !flagged {
            out.push((since.unwrap_or(from), end, served));
            flagged = true;
        }
    }
    out
}

/// One installation's verified reports, reduced to those that can be counted:
/// the signer is established (with `--pubkeys` already checked; without, the
/// installation's reports must all carry one key), each report's previous one
/// is present, counted and linked to it, and of two different reports with
/// one sequence (a fork: a cloned box, or a restored copy that went on) one
/// is counted, the one with more licenses. Returns the counted reports in
/// sequence order and the rest with the reason each is not counted.
/// Verified reports with their files.
type Reports = Vec<(PathBuf, Verified)>;

fn trusted_reports(mut reports: Reports, keys_given: bool) -> (Reports, Vec<(PathBuf, String)>, Vec<Fork>) {
    let mut refused = Vec::new();
    let signers: std::collections::BTreeSet<&[u8]> =
        reports.iter().map(|(_, v)| v.public_key_der.as_slice()).collect();
    if !keys_given && signers.len() > 1 {
        let why = format!(
            "this installation's reports are signed by {} different keys, so none is counted: pass --pubkeys with the installation's registered key",
            signers.len()
        );
        return (
            Vec::new(),
            reports.into_iter().map(|(path, _)| (path, why.clone())).collect(),
            Vec::new(),
        );
    }
    // By sequence, and within one sequence the report with most licenses first.
    reports.sort_by(|(_, a), (_, b)| {
        a.report
            .report
            .sequence
            .cmp(&b.report.report.sequence)
            .then(b.report.counts.licenses.cmp(&a.report.counts.licenses))
    });
    let mut kept: Reports = Vec::new();
    let mut forks: Vec<Fork> = Vec::new();
    for (path, v) in reports {
        let sequence = v.report.report.sequence;
        let last = kept.last().map(|(_, prev)| prev);
        if let Some(prev) = last.filter(|prev| prev.report.report.sequence == sequence) {
            let why = if prev.manifest_sha256 == v.manifest_sha256 {
                "duplicate of another file (counted once)".to_owned()
            } else {
                let counted = kept
                    .last()
                    .map(|(p, _)| p.display().to_string())
                    .unwrap_or_default();
                match forks
                    .last_mut()
                    .filter(|f| f.sequence == sequence && f.counted == counted)
                {
                    Some(fork) => fork.reports.push(path.display().to_string()),
                    None => forks.push(Fork {
                        installation: v.report.installation.id.clone(),
                        sequence,
                        month: v.report.period.month.clone(),
                        reports: vec![counted.clone(), path.display().to_string()],
                        counted,
                    }),
                }
                format!(
                    "a fork: a second, different report with sequence {sequence} for {} (a cloned box, or a restored copy that went on); the installation is counted once, from the report with more licenses",
                    v.report.period.month
                )
            };
            refused.push((path, why));
            continue;
        }
        let link = match last {
            None if sequence == 1 => Ok(()),
            Some(prev) if prev.report.report.sequence + 1 == sequence => verify_link(prev, &v)
                .map_err(|e| format!("its link to report {}: {e}; not counted", sequence - 1)),
            _ => Err(format!(
                "report {} (the one before) is not among the counted files, so its link cannot be checked; not counted",
                sequence - 1
            )),
        };
        match link {
            Ok(()) => kept.push((path, v)),
            Err(why) => refused.push((path, why)),
        }
    }
    (kept, refused, forks)
}

/// The checkpoints a receiver's store keeps beside the reports it is given
/// (`<store>/<installation>/checkpoints/`): a store is always read with its
/// checkpoints, so that what they prove cannot be left out by forgetting
/// `--checkpoints`. None when the inputs hold none.
fn store_checkpoints(inputs: &[PathBuf]) -> anyhow::Result<Option<Vec<super::checkpoint::Signed>>> {
    let mut found = Vec::new();
    for input in inputs.iter().filter(|i| i.is_dir()) {
        let entries =
            std::fs::read_dir(input).map_err(|e| anyhow::anyhow!("reading {}: {e}", input.display()))?;
        for entry in entries {
            let dir = entry?.path().join("checkpoints");
            if dir.is_dir() {
                found.extend(super::checkpoint::load(&dir)?);
            }
        }
    }
    found.sort_by_key(|c| c.checkpoint.seq);
    Ok((!found.is_empty()).then_some(found))
}

/// `fleet summary`: every report zip under `inputs`, counted with the keys in
/// `pubkeys` and through the checkpoints given, or those of a receiver's store.
pub fn summarize_paths(args: &SummaryArgs) -> anyhow::Result<FleetSummary> {
    let files = collect(&args.inputs).map_err(|e| anyhow::anyhow!(e))?;
    if files.is_empty() {
        anyhow::bail!("no report zips found in the given paths");
    }
    let keys = args
        .pubkeys
        .as_deref()
        .map(load_pubkeys)
        .transpose()
        .map_err(|e| anyhow::anyhow!(e))?;
    let checkpoints = match args.checkpoints.as_deref() {
        Some(dir) => Some(super::checkpoint::load(dir)?),
        None => store_checkpoints(&args.inputs)?,
    };
    let registry = args.registry.as_deref().map(Registry::load).transpose()?;
    let checks = Checks {
        pubkeys: keys.as_ref(),
        registry: registry.as_ref(),
        checkpoints: checkpoints.as_deref(),
        max_gap: time::Duration::hours(args.max_checkpoint_gap_hours.min(24 * 366) as i64),
        now: crate::clock::Clock::now(&crate::clock::SystemClock),
    };
    Ok(summarize(&files, &checks))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A verified report of November 2026 with these serving runs and
    /// licenses per day.
    fn report(runs: &[(&str, &str)], by_day: &[(&str, u64)]) -> Verified {
        let serving: Vec<serde_json::Value> = runs
            .iter()
            .map(|(s, e)| serde_json::json!({ "start": s, "end": e, "clean_stop": true }))
            .collect();
        let licenses: u64 = by_day.iter().map(|(_, n)| n).sum();
        let report = serde_json::json!({
            "schema": super::super::SCHEMA,
            "installation": { "id": "v", "vessel_type": "bus", "vessel_name": "V", "public_key_sha256": "" },
            "period": { "month": "2026-11", "start": "2026-11-01T00:00:00.000Z", "end": "2026-12-01T00:00:00.000Z" },
            "partial": false, "active": licenses > 0,
            "counts": { "licenses": licenses, "active_users": 1, "licenses_without_user": 0, "by_key_system": {},
                        "by_day": by_day.iter().map(|(d, n)| (d.to_string(), *n)).collect::<BTreeMap<_, _>>() },
            "repeat_fetches": 0,
            "clock_anomalies": { "count": 0, "first_seqs": [], "outside_month": 0 },
            "log": { "first_seq": 1, "last_seq": licenses, "first_prev_hash": "", "last_row_hash": "" },
            "report": { "sequence": 1, "generated_at": "2026-12-01T00:00:00.000Z", "previous_report_sha256": null },
            "software": { "name": "berth", "version": "0" },
            "titles": {}, "checkpoints": [],
            "coverage": { "serving": serving, "log_unavailable": [], "clock_set_back": [] },
        });
        Verified {
            report: serde_json::from_value(report).unwrap(),
            manifest_sha256: String::new(),
            public_key_der: Vec::new(),
        }
    }

    fn found(v: &Verified) -> Vec<String> {
        withheld(Path::new("r.zip"), v, &[], time::Duration::hours(24))
            .into_iter()
            .map(|w| format!("{} {} {}", w.what, w.from, w.hours))
            .collect()
    }

    #[test]
    fn serving_is_added_up_across_runs_and_licenses_outside_runs_are_named() {
        // One run of 72 hours.
        let long = report(
            &[("2026-11-02T00:00:00.000Z", "2026-11-05T00:00:00.000Z")],
            &[("2026-11-03", 1)],
        );
        assert_eq!(
            found(&long),
            ["served without a checkpoint 2026-11-02T00:00:00.000Z 72"]
        );
        // Three runs of 20 hours: 60 hours without a checkpoint, named once.
        let short = report(
            &[
                ("2026-11-02T00:00:00.000Z", "2026-11-02T20:00:00.000Z"),
                ("2026-11-03T00:00:00.000Z", "2026-11-03T20:00:00.000Z"),
                ("2026-11-04T00:00:00.000Z", "2026-11-04T20:00:00.000Z"),
            ],
            &[("2026-11-02", 1)],
        );
        assert_eq!(
            found(&short),
            ["served without a checkpoint 2026-11-02T00:00:00.000Z 40"]
        );
        // Licenses on a day no run touches, and licenses with no run at all.
        let outside = report(
            &[("2026-11-02T00:00:00.000Z", "2026-11-02T10:00:00.000Z")],
            &[("2026-11-20", 4)],
        );
        assert_eq!(
            found(&outside),
            ["4 licenses outside every serving run 2026-11-20T00:00:00.000Z 0"]
        );
        let none = report(&[], &[("2026-11-20", 4)]);
        assert_eq!(
            found(&none),
            ["licenses with no serving run recorded 2026-11-01T00:00:00.000Z 0"]
        );
    }
}
