//! `berth report verify`: everything a vendor checks, naming the first problem.
//! Reads hostile zips safely: exactly the five expected names (no paths), bounded
//! sizes whatever the headers claim, nothing written to disk.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use super::{CSV_HEADER, FILES, Manifest, ReportJson, SCHEMA, SCHEMA_2, Tally};
use crate::chain::{Row, row_hash};
use crate::crypto::{self, PublicKey, sha256_hex};
use crate::ids::{Month, hex};

/// A report zip larger than this is refused unread.
pub const MAX_ZIP: u64 = 4 << 30;
const MAX_SMALL: u64 = 1 << 20;
const MAX_CSV: u64 = 4 << 30;
/// No line of licenses.csv comes near this; a longer one is an attack.
const MAX_LINE: usize = 64 * 1024;
/// The most a row of licenses.csv takes (64 KIDs and every other field at
/// its longest come to under 4 KiB): the file may be no larger than its
/// claimed rows take, so that a small zip cannot inflate to gigabytes of
/// padding that verify.
const MAX_ROW: u64 = 8 * 1024;
/// The most a report zip's central directory takes (five short names).
const MAX_DIRECTORY: u64 = 64 * 1024;

/// Why a report does not verify, by what it means for whoever relies on it;
/// each carries the sentence that names the first problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a report zip to begin with: unreadable, not a zip, other files,
    /// sizes past the limits.
    #[error("{0}")]
    Malformed(String),
    /// The signature does not hold, or is not the expected installation's:
    /// nothing in the report can be trusted, not even whose it claims to be.
    #[error("{0}")]
    Signature(String),
    /// Signed, but what it holds does not agree with itself (hashes, the
    /// chain, the counts).
    #[error("{0}")]
    Contents(String),
    /// The report does not follow on from the previous one.
    #[error("{0}")]
    Link(String),
}

fn malformed<T>(message: impl Into<String>) -> Result<T, VerifyError> {
    Err(VerifyError::Malformed(message.into()))
}

fn signature<T>(message: impl Into<String>) -> Result<T, VerifyError> {
    Err(VerifyError::Signature(message.into()))
}

fn contents<T>(message: impl Into<String>) -> Result<T, VerifyError> {
    Err(VerifyError::Contents(message.into()))
}

fn link<T>(message: impl Into<String>) -> Result<T, VerifyError> {
    Err(VerifyError::Link(message.into()))
}

/// A report that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    pub report: ReportJson,
    pub manifest_sha256: String,
    pub public_key_der: Vec<u8>,
}

fn read_entry<R: Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
    limit: u64,
) -> Result<Vec<u8>, VerifyError> {
    let entry = zip
        .by_name(name)
        .map_err(|e| VerifyError::Malformed(format!("{name} cannot be read from the zip ({e})")))?;
    let mut bytes = Vec::new();
    entry
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| VerifyError::Malformed(format!("{name} cannot be read from the zip ({e})")))?;
    if bytes.len() as u64 > limit {
        return malformed(format!("{name} is larger than {limit} bytes"));
    }
    Ok(bytes)
}

/// Verifies one report zip; with `expected`, also that it was signed by that key.
pub fn verify_file(path: &Path, expected: Option<&PublicKey>) -> Result<Verified, VerifyError> {
    verify_file_watching(path, expected, &[]).map(|(v, _)| v)
}

/// [`verify_file`], also giving the row hashes at the sequence numbers in
/// `watch` that the report holds (a checkpoint's rows), from the one reading
/// of `licenses.csv` that verifying makes.
pub fn verify_file_watching(
    path: &Path,
    expected: Option<&PublicKey>,
    watch: &[i64],
) -> Result<(Verified, RowHashes), VerifyError> {
    let file = File::open(path)
        .map_err(|e| VerifyError::Malformed(format!("cannot open {}: {e}", path.display())))?;
    let meta = file
        .metadata()
        .map_err(|e| VerifyError::Malformed(format!("cannot read {}: {e}", path.display())))?;
    if meta.is_dir() {
        return malformed(format!("{} is a directory, not a report zip", path.display()));
    }
    if meta.len() > MAX_ZIP {
        return malformed(format!("{} is larger than 4 GiB", path.display()));
    }
    verify_watching(BufReader::new(file), expected, watch)
}

/// Row hashes by sequence number.
pub type RowHashes = std::collections::HashMap<i64, String>;

fn open_zip(path: &Path) -> Result<zip::ZipArchive<BufReader<File>>, VerifyError> {
    let file = File::open(path)
        .map_err(|e| VerifyError::Malformed(format!("cannot open {}: {e}", path.display())))?;
    let mut reader = BufReader::new(file);
    check_directory(&mut reader)?;
    zip::ZipArchive::new(reader).map_err(|e| VerifyError::Malformed(format!("not a zip file ({e})")))
}

/// The `report.json` of a report zip, read and not verified: a claim (which
/// installation a file says it is), or a report verified before.
pub fn read_report_json(path: &Path) -> Result<ReportJson, VerifyError> {
    let bytes = read_entry(&mut open_zip(path)?, "report.json", MAX_SMALL)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| VerifyError::Contents(format!("report.json is not a valid report ({e})")))
}

/// What [`verify_link`] needs of a report that was verified in full when it
/// was stored (a receiver's stored report): its `report.json`, its manifest's
/// hash and its signer, read without reading `licenses.csv` again.
pub fn read_verified(path: &Path) -> Result<Verified, VerifyError> {
    let mut zip = open_zip(path)?;
    let manifest = read_entry(&mut zip, "manifest.json", MAX_SMALL)?;
    let signer = read_entry(&mut zip, "signer.pem", 16 * 1024)?;
    let report = read_entry(&mut zip, "report.json", MAX_SMALL)?;
    Ok(Verified {
        report: serde_json::from_slice(&report)
            .map_err(|e| VerifyError::Contents(format!("report.json is not a valid report ({e})")))?,
        manifest_sha256: sha256_hex(&manifest),
        public_key_der: PublicKey::from_pem(&signer)
            .map_err(|e| VerifyError::Signature(format!("signer.pem is not an Ed25519 public key ({e})")))?
            .der(),
    })
}

/// [`verify_file`] over any seekable bytes (an upload held in memory, a fuzzer's input).
pub fn verify_reader<R: Read + std::io::Seek>(
    reader: R,
    expected: Option<&PublicKey>,
) -> Result<Verified, VerifyError> {
    verify_watching(reader, expected, &[]).map(|(v, _)| v)
}

/// [`verify_reader`] with the row hashes at `watch` (see [`verify_file_watching`]).
pub fn verify_watching<R: Read + std::io::Seek>(
    mut reader: R,
    expected: Option<&PublicKey>,
    watch: &[i64],
) -> Result<(Verified, RowHashes), VerifyError> {
    check_directory(&mut reader)?;
    let mut zip =
        zip::ZipArchive::new(reader).map_err(|e| VerifyError::Malformed(format!("not a zip file ({e})")))?;
    check_file_names(&zip)?;
    let (manifest, manifest_bytes, public_key_der) = check_signature(&mut zip, expected)?;
    let report = read_report(&mut zip, &manifest, &public_key_der)?;
    let (tally, head, next_seq, watched) = check_licenses_csv(&mut zip, &manifest, &report, watch)?;
    let log = &report.log;
    if next_seq.checked_sub(1) != Some(log.last_seq) || head != log.last_row_hash {
        return contents(
            "licenses.csv does not end where report.json log.last_seq / last_row_hash say (rows missing at the end)",
        );
    }
    check_counts(tally, &report)?;
    let verified = Verified {
        report,
        manifest_sha256: sha256_hex(&manifest_bytes),
        public_key_der,
    };
    Ok((verified, watched))
}

/// The zip's end-of-central-directory record, read before the zip library
/// reads anything: a few entries (a report has five; a few more are named by
/// the check of the names), and a small central directory. A directory claiming millions of entries would
/// otherwise be read into memory whole before any name is checked.
fn check_directory<R: Read + std::io::Seek>(reader: &mut R) -> Result<(), VerifyError> {
    use std::io::SeekFrom;
    let io = |e: std::io::Error| VerifyError::Malformed(format!("the zip cannot be read ({e})"));
    let len = reader.seek(SeekFrom::End(0)).map_err(io)?;
    let tail_len = len.min(22 + 65_535);
    reader.seek(SeekFrom::Start(len - tail_len)).map_err(io)?;
    let mut tail = vec![0; tail_len as usize];
    reader.read_exact(&mut tail).map_err(io)?;
    reader.seek(SeekFrom::Start(0)).map_err(io)?;
    let at = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| tail[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])
        .ok_or_else(|| VerifyError::Malformed("not a zip file (no end of central directory)".into()))?;
    let u16_at = |i: usize| u64::from(u16::from_le_bytes([tail[at + i], tail[at + i + 1]]));
    let u32_at = |i: usize| {
        u64::from(u32::from_le_bytes(
            tail[at + i..at + i + 4].try_into().expect("4 bytes"),
        ))
    };
    let (entries, size) = (u16_at(10), u32_at(12));
    if entries == 0xFFFF || size == 0xFFFF_FFFF {
        return malformed("the zip is in the ZIP64 form, which a report never needs for its directory");
    }
    if entries > 16 {
        return malformed(format!(
            "the zip's directory lists {entries} files; a report holds {}",
            FILES.len()
        ));
    }
    if size > MAX_DIRECTORY {
        return malformed(format!("the zip's central directory takes {size} bytes"));
    }
    Ok(())
}

/// Exactly the expected files, each once.
fn check_file_names<R: Read + std::io::Seek>(zip: &zip::ZipArchive<R>) -> Result<(), VerifyError> {
    let names: BTreeSet<String> = zip
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| VerifyError::Malformed(format!("the zip's file names cannot be read ({e})")))?;
    if zip.len() != names.len() {
        return malformed("the zip holds the same file name twice");
    }
    if let Some(name) = names.iter().find(|name| !FILES.contains(&name.as_str())) {
        return malformed(format!(
            "unexpected file {:?} in the zip",
            name.chars().take(80).collect::<String>()
        ));
    }
    match FILES.iter().find(|name| !names.contains(**name)) {
        Some(name) => malformed(format!("{name} is missing from the zip")),
        None => Ok(()),
    }
}

/// The signature over the manifest, by the expected key when one is given;
/// the manifest, its bytes, and the signer's key (DER).
fn check_signature<R: Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    expected: Option<&PublicKey>,
) -> Result<(Manifest, Vec<u8>, Vec<u8>), VerifyError> {
    let manifest_bytes = read_entry(zip, "manifest.json", MAX_SMALL)?;
    let signed = read_entry(zip, "manifest.sig", 64)?;
    let signer_pem = read_entry(zip, "signer.pem", 16 * 1024)?;
    let signer = PublicKey::from_pem(&signer_pem)
        .map_err(|e| VerifyError::Signature(format!("signer.pem is not an Ed25519 public key ({e})")))?;
    let public_key_der = signer.der();
    if let Some(expected) = expected
        && !crypto::ct_eq(&expected.der(), &public_key_der)
    {
        return signature("the report is signed by another key than the expected installation's");
    }
    if signed.len() != 64 || !signer.verify(&manifest_bytes, &signed) {
        return signature(
            "manifest.sig is not a valid signature of manifest.json by signer.pem (manifest edited or signed by another key)",
        );
    }
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| VerifyError::Contents(format!("manifest.json is not valid ({e})")))?;
    let listed: BTreeSet<&str> = manifest.files.keys().map(String::as_str).collect();
    if listed != BTreeSet::from(["licenses.csv", "report.json"]) {
        return contents("manifest.json must list exactly report.json and licenses.csv");
    }
    Ok((manifest, manifest_bytes, public_key_der))
}

/// `report.json`, as the manifest hashed it, of this schema and this signer.
fn read_report<R: Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    manifest: &Manifest,
    public_key_der: &[u8],
) -> Result<ReportJson, VerifyError> {
    let report_bytes = read_entry(zip, "report.json", MAX_SMALL)?;
    if sha256_hex(&report_bytes) != manifest.files["report.json"] {
        return contents("report.json does not match its hash in manifest.json (report.json edited)");
    }
    let report: ReportJson = serde_json::from_slice(&report_bytes)
        .map_err(|e| VerifyError::Contents(format!("report.json is not a valid report ({e})")))?;
    if report.schema != SCHEMA && report.schema != SCHEMA_2 {
        return contents(format!(
            "report.json has schema {:?}, expected {SCHEMA} (or {SCHEMA_2})",
            report.schema
        ));
    }
    let has_3 = [
        report.titles.is_some(),
        report.checkpoints.is_some(),
        report.coverage.is_some(),
    ];
    if has_3 != [report.schema == SCHEMA; 3] {
        return contents(format!(
            "report.json of schema {} must have titles, checkpoints and coverage exactly when it is {SCHEMA}",
            report.schema
        ));
    }
    if report.installation.public_key_sha256 != sha256_hex(public_key_der) {
        return contents("report.json names another signing key than signer.pem");
    }
    if report.period.month.parse::<Month>().is_err() {
        return contents("report.json period.month is not YYYY-MM");
    }
    Ok(report)
}

/// `licenses.csv`: streamed, hashed, recounted, chain-checked. Returns the
/// tally, the last row's hash and the sequence number after the last row.
fn check_licenses_csv<R: Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    manifest: &Manifest,
    report: &ReportJson,
    watch: &[i64],
) -> Result<(Tally, String, i64, RowHashes), VerifyError> {
    let entry = zip
        .by_name("licenses.csv")
        .map_err(|e| VerifyError::Malformed(format!("licenses.csv cannot be read ({e})")))?;
    // No larger than the rows report.json claims can take.
    let rows = report
        .log
        .last_seq
        .checked_sub(report.log.first_seq)
        .and_then(|n| u64::try_from(n).ok())
        .map_or(0, |n| n.saturating_add(1));
    let limit = MAX_CSV.min(MAX_ROW.saturating_mul(rows.saturating_add(1)));
    if entry.size() > limit {
        return malformed(format!(
            "licenses.csv would inflate to {} bytes, more than its {rows} rows can take",
            entry.size()
        ));
    }
    let mut hashing = HashingReader {
        inner: entry.take(limit + 1),
        hash: crypto::Sha256::new(),
        read: 0,
        line: 0,
    };
    let month: Month = report.period.month.parse().expect("checked in read_report");
    let mut chain = ChainCheck {
        tally: Tally::new(month, None),
        head: report.log.first_prev_hash.clone(),
        next_seq: report.log.first_seq,
        problem: None,
        watched: report
            .checkpoints
            .iter()
            .flatten()
            .map(|c| c.seq)
            .chain(watch.iter().copied())
            .map(|seq| (seq, None))
            .collect(),
    };
    read_rows(&mut hashing, &mut chain)?;
    // Read to the end so the hash covers the whole entry.
    std::io::copy(&mut hashing, &mut std::io::sink())
        .map_err(|e| VerifyError::Malformed(format!("licenses.csv cannot be read ({e})")))?;
    if hashing.read > limit {
        return malformed(format!(
            "licenses.csv is larger than its {rows} rows can take ({limit} bytes)"
        ));
    }
    if let Some(problem) = chain.problem {
        return contents(problem);
    }
    if hex(&hashing.hash.finish()) != manifest.files["licenses.csv"] {
        return contents("licenses.csv does not match its hash in manifest.json (licenses.csv edited)");
    }
    check_listed_checkpoints(report, &chain.watched)?;
    let watched = chain
        .watched
        .into_iter()
        .filter_map(|(seq, hash)| Some((seq, hash?)))
        .collect();
    Ok((chain.tally, chain.head, chain.next_seq, watched))
}

/// A checkpoint the report lists that falls in its rows must name the row
/// there; one just before them, the report's `first_prev_hash`.
fn check_listed_checkpoints(
    report: &ReportJson,
    rows: &std::collections::HashMap<i64, Option<String>>,
) -> Result<(), VerifyError> {
    for c in report.checkpoints.iter().flatten() {
        let at = if c.seq == report.log.first_seq - 1 {
            Some(&report.log.first_prev_hash)
        } else {
            rows.get(&c.seq).and_then(Option::as_ref)
        };
        if at.is_some_and(|hash| *hash != c.row_hash) {
            return contents(format!(
                "report.json lists a checkpoint of row {} that licenses.csv contradicts",
                c.seq
            ));
        }
    }
    Ok(())
}

/// The walk over `licenses.csv`'s rows: the counts so far, where the chain
/// stands, and the first place it broke.
struct ChainCheck {
    tally: Tally,
    head: String,
    next_seq: i64,
    problem: Option<String>,
    /// The row hashes at the sequence numbers of the checkpoints the report lists.
    watched: std::collections::HashMap<i64, Option<String>>,
}

impl ChainCheck {
    fn row(&mut self, record: &csv::StringRecord) -> Result<(), VerifyError> {
        let seq: i64 = record[0].parse().map_err(|_| {
            VerifyError::Contents(format!(
                "licenses.csv has a seq that is not a number: {:?}",
                &record[0].chars().take(20).collect::<String>()
            ))
        })?;
        let row = Row {
            seq,
            issued_at: &record[1],
            key_system: &record[2],
            kids: &record[3],
            license_type: &record[4],
            user_hash: &record[5],
            token_id: &record[6],
            com_key_id: &record[7],
        };
        if self.problem.is_none() {
            self.problem = if seq != self.next_seq {
                Some(format!(
                    "licenses.csv row seq {seq} where {} was expected (a row was deleted or inserted)",
                    self.next_seq
                ))
            } else if record[8] != *self.head {
                Some(format!(
                    "licenses.csv row {seq}: prev_hash does not continue the chain (a row was deleted, inserted or edited)"
                ))
            } else if row_hash(&record[8], &row) != record[9] {
                Some(format!(
                    "licenses.csv row {seq}: row_hash does not match the row (the row was edited)"
                ))
            } else {
                None
            };
        }
        let counted = self
            .tally
            .add(seq, row.issued_at, row.key_system, row.kids, row.user_hash);
        if let Err(e) = counted {
            self.problem
                .get_or_insert_with(|| format!("licenses.csv row {seq}: issued_at is {e}"));
        }
        if let Some(hash) = self.watched.get_mut(&seq) {
            *hash = Some(record[9].to_owned());
        }
        self.head.clear();
        self.head.push_str(&record[9]);
        self.next_seq = seq.checked_add(1).ok_or_else(|| {
            VerifyError::Contents(format!("licenses.csv has a seq too large to follow: {seq}"))
        })?;
        Ok(())
    }
}

fn read_rows<R: Read>(input: &mut R, chain: &mut ChainCheck) -> Result<(), VerifyError> {
    let mut csv = csv::ReaderBuilder::new().has_headers(true).from_reader(input);
    let header = csv
        .headers()
        .map_err(|e| VerifyError::Malformed(format!("licenses.csv is not valid CSV ({e})")))?;
    if header.iter().ne(CSV_HEADER) {
        return contents("licenses.csv does not start with the expected header");
    }
    let mut record = csv::StringRecord::new();
    loop {
        match csv.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(e) => return malformed(format!("licenses.csv is not valid CSV ({e})")),
        }
        if record.len() != CSV_HEADER.len() {
            return contents(format!(
                "licenses.csv line {} has {} fields",
                tally_line(&chain.tally),
                record.len()
            ));
        }
        chain.row(&record)?;
    }
}

/// Every count in `report.json` against the recount.
fn check_counts(tally: Tally, report: &ReportJson) -> Result<(), VerifyError> {
    let (counts, anomalies, titles) = tally.finish();
    if let Some(claimed) = &report.titles {
        let same = claimed.len() == titles.len()
            && claimed.iter().all(|(kid, c)| {
                titles
                    .get(kid)
                    .is_some_and(|t| (t.licenses, t.active_users) == (c.licenses, c.active_users))
            });
        if !same {
            return contents("report.json titles (per-KID counts) do not match licenses.csv");
        }
    }
    for (what, got, claimed) in [
        ("licenses", counts.licenses, report.counts.licenses),
        ("active_users", counts.active_users, report.counts.active_users),
        (
            "licenses_without_user",
            counts.licenses_without_user,
            report.counts.licenses_without_user,
        ),
        (
            "clock_anomalies.count",
            anomalies.count,
            report.clock_anomalies.count,
        ),
        (
            "clock_anomalies.outside_month",
            anomalies.outside_month,
            report.clock_anomalies.outside_month,
        ),
    ] {
        if got != claimed {
            return contents(format!(
                "report.json counts.{what} is {claimed}, but licenses.csv has {got}"
            ));
        }
    }
    if counts.by_key_system != report.counts.by_key_system {
        return contents("report.json counts.by_key_system does not match licenses.csv");
    }
    if counts.by_day != report.counts.by_day {
        return contents("report.json counts.by_day does not match licenses.csv");
    }
    if report.active != (counts.licenses > 0) {
        return contents("report.json active does not match licenses.csv");
    }
    Ok(())
}

fn tally_line(tally: &Tally) -> u64 {
    tally.counts.licenses + 2
}

/// Hashes what is read and refuses absurdly long lines, so that a hostile CSV
/// cannot make the parser buffer gigabytes for one record.
struct HashingReader<R: Read> {
    inner: R,
    hash: crypto::Sha256,
    read: u64,
    line: usize,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let chunk = &buf[..n];
        self.hash.update(chunk);
        self.read += n as u64;
        match chunk.iter().rposition(|b| *b == b'\n') {
            Some(i) => self.line = n - i - 1,
            None => self.line += n,
        }
        if self.line > MAX_LINE {
            return Err(std::io::Error::other(
                "a line of licenses.csv is longer than 64 KiB",
            ));
        }
        Ok(n)
    }
}

/// Checks that `next` directly follows `previous` from the same installation.
pub fn verify_link(previous: &Verified, next: &Verified) -> Result<(), VerifyError> {
    let (p, n) = (&previous.report, &next.report);
    if p.installation.id != n.installation.id || previous.public_key_der != next.public_key_der {
        return link("the previous report is from another installation");
    }
    if n.report.sequence <= p.report.sequence {
        return link(format!(
            "report sequence {} does not follow {} (an older report presented as newer, or a replay)",
            n.report.sequence, p.report.sequence
        ));
    }
    if n.report.sequence != p.report.sequence + 1 {
        return link(format!(
            "reports {} to {} are missing between the previous report ({}) and this one ({})",
            p.report.sequence + 1,
            n.report.sequence - 1,
            p.report.sequence,
            n.report.sequence
        ));
    }
    if n.report.previous_report_sha256.as_deref() != Some(previous.manifest_sha256.as_str()) {
        return link("previous_report_sha256 does not match the previous report's manifest.json");
    }
    if n.log.first_prev_hash != p.log.last_row_hash || p.log.last_seq.checked_add(1) != Some(n.log.first_seq)
    {
        return link(
            "the license log does not continue from the previous report (rows missing or rewritten between them)",
        );
    }
    Ok(())
}
