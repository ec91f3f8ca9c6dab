//! The architecture invariants that `src/lib.rs` and the README's code map
//! state, checked by reading the source, as rust-analyzer's tidy tests check
//! theirs. An invariant that cannot be checked here is not stated there.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `src/`, relative to `src/`, with its code: comment
/// lines (`//`, `//!`, `///`) left out, so that prose may name anything.
fn sources() -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut dirs = vec![root().join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let code: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .map(|l| format!("{l}\n"))
                .collect();
            let relative = path.strip_prefix(root().join("src")).unwrap();
            (relative.to_string_lossy().into_owned(), code)
        })
        .collect()
}

/// The files under `src/` that name any of `needles`, outside those `allowed`
/// (a module folder `store/`, a file `crypto.rs`, or one file `crypto/xmldsig.rs`).
fn offenders(needles: &[&str], allowed: &[&str]) -> Vec<String> {
    sources()
        .into_iter()
        .filter(|(file, _)| {
            !allowed
                .iter()
                .any(|a| file == a || (a.ends_with('/') && file.starts_with(a)))
        })
        .filter(|(_, code)| needles.iter().any(|n| code.contains(n)))
        .map(|(file, _)| file)
        .collect()
}

#[test]
fn each_outside_system_is_named_in_one_place() {
    let rules: &[(&str, &[&str], &[&str])] = &[
        ("SQLite", &["rusqlite"], &["store/"]),
        (
            "openssl",
            &["openssl::", "use openssl"],
            &["crypto.rs", "crypto/"],
        ),
        (
            "libxml2 and libxmlsec1",
            &["xmlsec::", "libxml::"],
            &["crypto/xmldsig.rs"],
        ),
        ("clap", &["clap::", "#[arg(", "#[command("], &["cli/"]),
        (
            "the environment",
            &["std::env", "env::var"],
            &["cli/", "config.rs", "systemd.rs"],
        ),
        (
            "actix-web's server",
            &["HttpServer", "actix_web::App"],
            &["http/", "admin/", "ground/", "server.rs"],
        ),
        (
            "the wall clock",
            &["now_utc()", "SystemTime::now", "OffsetDateTime::now"],
            &["clock.rs"],
        ),
        (
            "the service log's subscriber",
            &["tracing_subscriber::fmt()"],
            &["cli/", "logline.rs"],
        ),
    ];
    for (system, needles, allowed) in rules {
        // The scanner does find each system where it is allowed.
        assert!(
            !offenders(needles, &[]).is_empty(),
            "{system}: {needles:?} is named nowhere"
        );
        let found = offenders(needles, allowed);
        assert!(
            found.is_empty(),
            "{system} is named outside {allowed:?}: {found:?}"
        );
    }
}

#[test]
fn what_a_strangers_bytes_reach_first_does_no_io() {
    let io = [
        "std::fs",
        "std::net::Tcp",
        "UdpSocket",
        "std::process",
        "std::io::stdin",
        "rusqlite",
        "actix",
        "tokio",
        "crate::store",
        "crate::http",
        "crate::server",
    ];
    let pure = [
        "token/",
        "clearkey.rs",
        "keyfile/",
        "fairplay/",
        "chain.rs",
        "ids.rs",
    ];
    for (file, code) in sources() {
        if pure
            .iter()
            .any(|p| file == *p || (p.ends_with('/') && file.starts_with(p)))
        {
            for needle in io {
                assert!(!code.contains(needle), "{file} names {needle}");
            }
        }
    }
}

/// The domain is at the centre: the modules that say what a license, a key,
/// a log entry and a token are depend on no module that stores, serves or
/// reports them (those depend on the domain).
#[test]
fn the_domain_depends_on_no_outer_layer() {
    let domain = [
        "ids.rs",
        "token/",
        "chain.rs",
        "clearkey.rs",
        "keyfile/",
        "fairplay/",
        "license/",
    ];
    let outer = [
        "crate::store",
        "crate::http",
        "crate::admin",
        "crate::report",
        "crate::ground",
        "crate::server",
        "crate::cli",
    ];
    for (file, code) in sources() {
        if domain
            .iter()
            .any(|d| file == *d || (d.ends_with('/') && file.starts_with(d)))
        {
            for layer in outer {
                assert!(!code.contains(layer), "{file} names {layer}");
            }
        }
    }
}

#[test]
fn the_module_map_in_lib_rs_lists_every_module() {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let declared: BTreeSet<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';'))
        .collect();
    let mapped: BTreeSet<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//! - [`"))
        .filter_map(|l| l.split('`').next())
        .collect();
    assert_eq!(declared, mapped, "src/lib.rs's map and its modules");
}

#[test]
fn every_path_the_readme_code_map_names_exists() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let map = readme
        .split("## Code map")
        .nth(1)
        .and_then(|s| s.split("```\n").nth(1))
        .expect("the README has a code map block");
    let mut named = Vec::new();
    for line in map.lines() {
        let Some(path) = line.split_whitespace().next() else {
            continue;
        };
        let path: PathBuf = root().join(path);
        assert!(
            path.exists(),
            "the README's code map names {}, which does not exist",
            path.display()
        );
        named.push(line.split_whitespace().next().unwrap().to_owned());
    }
    // Every module of the library is on the map (as its folder or its file).
    for (file, _) in sources() {
        let top = file.split('/').next().unwrap().trim_end_matches(".rs");
        let entries = [format!("src/{top}/"), format!("src/{top}.rs")];
        assert!(
            entries.iter().any(|e| named.contains(e)),
            "the README's code map does not name src/{top}"
        );
    }
}

/// Every command the CLI has, with every flag it takes, is in the reference's
/// CLI table (section 7), in the row that starts with its command.
#[test]
fn the_reference_lists_every_command_and_flag() {
    use clap::CommandFactory as _;
    let spec = std::fs::read_to_string(root().join("packaging/doc/SPEC.md")).unwrap();
    let rows: Vec<&str> = spec
        .lines()
        .filter(|l| l.starts_with("| `berth "))
        .map(|l| l.split(" | ").next().unwrap())
        .collect();
    let global = ["config", "data-dir", "json", "help", "version"];
    let mut missing = Vec::new();
    fn leaves(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<(Vec<String>, Vec<String>)>) {
        let subs: Vec<_> = cmd.get_subcommands().filter(|c| c.get_name() != "help").collect();
        if subs.is_empty() {
            let flags = cmd
                .get_arguments()
                .filter_map(|a| a.get_long())
                .map(str::to_owned)
                .collect();
            out.push((path, flags));
            return;
        }
        for sub in subs {
            let mut p = path.clone();
            p.push(sub.get_name().to_owned());
            leaves(sub, p, out);
        }
    }
    let mut all = Vec::new();
    leaves(&berth::cli::Cli::command(), Vec::new(), &mut all);
    for (path, flags) in all {
        let first = format!("`berth {}", path[0]);
        let last = path.last().unwrap();
        let row = rows.iter().find(|r| {
            r.contains(&first)
                && (r.contains(&format!("berth {}", path.join(" "))) || r.contains(&format!("`{last}")))
        });
        match row {
            None => missing.push(format!("berth {}", path.join(" "))),
            Some(row) => {
                for flag in flags.iter().filter(|f| !global.contains(&f.as_str())) {
                    if !row.contains(&format!("--{flag}")) {
                        missing.push(format!("berth {} --{flag}", path.join(" ")));
                    }
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the reference's CLI table lacks: {missing:#?}"
    );
}

/// Every configuration key berth has is in the reference's section 10 and in
/// the documented example, `packaging/berth.toml`.
#[test]
fn the_reference_and_the_example_list_every_configuration_key() {
    let spec = std::fs::read_to_string(root().join("packaging/doc/SPEC.md")).unwrap();
    let section = spec
        .split("## 10. Configuration")
        .nth(1)
        .expect("the reference has section 10");
    let example: toml::Table = std::fs::read_to_string(root().join("packaging/berth.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let config: toml::Table = berth::config::Config::default().to_toml().parse().unwrap();
    let mut missing = Vec::new();
    for (key, value) in &config {
        let keys: Vec<String> = match value.as_table() {
            Some(section) => section.keys().map(|k| format!("{key}.{k}")).collect(),
            None => vec![key.clone()],
        };
        for dotted in keys {
            if !section.contains(&format!("`{dotted}`")) {
                missing.push(format!("the reference lacks {dotted}"));
            }
            let in_example = match dotted.split_once('.') {
                Some((s, k)) => example.get(s).and_then(|t| t.get(k)).is_some(),
                None => example.contains_key(&dotted),
            };
            if !in_example {
                missing.push(format!("packaging/berth.toml lacks {dotted}"));
            }
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
}

/// Every code the license API answers with is in the reference's table of
/// errors (section 4), in a row of its status, and in the manual's list.
#[test]
fn the_reference_and_the_manual_list_every_license_api_code() {
    use berth::http::Outcome;
    let spec = std::fs::read_to_string(root().join("packaging/doc/SPEC.md")).unwrap();
    let manual = std::fs::read_to_string(root().join("packaging/doc/manual.md")).unwrap();
    let mut missing = Vec::new();
    for outcome in Outcome::ALL.into_iter().filter(|o| *o != Outcome::Ok) {
        let (code, status) = (outcome.code(), outcome.status());
        // A row's first cell holds its statuses: `| 404, 405 | ...`.
        let in_its_row = spec
            .lines()
            .filter(|l| l.contains(&format!("`{code}`")))
            .filter_map(|l| l.strip_prefix("| ")?.split(" | ").next())
            .any(|statuses| statuses.split(", ").any(|s| s == status.to_string()));
        if !in_its_row {
            missing.push(format!("the reference: {status} {code}"));
        }
        // The manual names 404 and 405 by status alone.
        if !manual.contains(code) && status != 404 && status != 405 {
            missing.push(format!("the manual: {status} {code}"));
        }
    }
    assert!(missing.is_empty(), "codes not documented: {missing:#?}");
}
