//! `bench-compare`: the figures (`bench --json`) of passes run with the build before a change
//! and with the build after it, compared row by row (`tests::bench::compare`). `tests/bench
//! --before BINARY` runs the passes and calls it; docs/benchmarks.md explains the method.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tests::bench::compare::{Build, Comparison, Pass, Verdict};
use tests::bench::rows::Figures;

const USAGE: &str = "\
usage: bench-compare (--before FILE | --after FILE)… [--before-label TEXT] [--after-label TEXT]
                     [--out FILE]

  --before FILE, --after FILE
                      a pass's figures (bench --json) with the build before or after the change;
                      give them in the order they ran, at least one of each
  --before-label TEXT, --after-label TEXT
                      what the builds are (path, commit), for the report's head
  --out FILE          also write the comparison there

Prints the comparison as Markdown. Exits 0 whatever the verdicts (the summary names the rows that
got worse), 1 if a file cannot be read, 2 on bad usage.";

struct Invocation {
    passes: Vec<(Build, PathBuf)>,
    labels: (String, String),
    out: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Invocation, String> {
    let mut invocation = Invocation { passes: Vec::new(), labels: ("before".into(), "after".into()), out: None };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--before" => invocation.passes.push((Build::Before, value()?.into())),
            "--after" => invocation.passes.push((Build::After, value()?.into())),
            "--before-label" => invocation.labels.0 = value()?,
            "--after-label" => invocation.labels.1 = value()?,
            "--out" => invocation.out = Some(value()?.into()),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    for build in [Build::Before, Build::After] {
        if !invocation.passes.iter().any(|(pass_build, _)| *pass_build == build) {
            return Err(format!("no {} pass given", if build == Build::Before { "--before" } else { "--after" }));
        }
    }
    Ok(invocation)
}

fn read(path: &Path) -> Result<Figures, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("failed to read {}: {error}", path.display()))?;
    serde_json::from_str(&text).map_err(|error| format!("failed to parse {}: {error}", path.display()))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let invocation = match parse(&args) {
        Ok(invocation) => invocation,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("bench-compare: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut passes = Vec::new();
    for (build, path) in &invocation.passes {
        match read(path) {
            Ok(figures) => passes.push(Pass { build: *build, figures }),
            Err(message) => {
                eprintln!("bench-compare: {message}");
                return ExitCode::FAILURE;
            }
        }
    }
    let comparison = Comparison::new(invocation.labels, passes);
    let markdown = comparison.to_markdown();
    println!("{markdown}");
    if let Some(path) = invocation.out {
        if let Err(error) = std::fs::write(&path, &markdown) {
            eprintln!("bench-compare: failed to write {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
    }
    let worse = comparison.count(Verdict::Worse);
    if worse > 0 {
        eprintln!("bench-compare: {worse} rows worse beyond noise");
    }
    ExitCode::SUCCESS
}
