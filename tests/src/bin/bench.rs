//! `bench`: our runtime against `io.containerd.runc.v2` on the sandbox's containerd.
//! Parses flags, runs `tests::bench`, prints the Markdown report and writes it to `--out`, and
//! its figures as JSON to `--json` (for `bench-compare`).

use std::process::ExitCode;

use tests::bench::{self, Config};

const USAGE: &str = "\
usage: bench [--smoke] [--out FILE] [--json FILE] [--runs N] [--parallel N] [--curve N,N,…] [--loaded-runs N]
             [--exit-samples N] [--only sequential,parallel,exit] [--namespace bench-…]
             [--address SOCKET] [--ours RUNTIME] [--baseline RUNTIME]

Runs in the sandbox that tests/run (or tests/bench) describes in SHIM_TEST_* variables.
  --smoke           a few of everything (CI); the other flags then adjust the smoke sizes
  --out FILE        also write the report there
  --json FILE       write every figure of the report there as JSON (ours, baseline, unit), for
                    bench-compare
  --runs N          sequential `ctr run --rm … true` per runtime (default 30)
  --parallel N      tasks started at once for the start, kill and memory figures (default 50)
  --curve LIST      further task counts for the cost curve (default 10,50,100; `none` for none)
  --loaded-runs N   `ctr run`s timed while each round's tasks run (default 10)
  --exit-samples N  exit → TaskExit samples per runtime (default 20)
  --only LIST       run only these items: sequential, parallel (items 2, 3, 5), exit
  --namespace NS    containerd namespace, must start with bench- (default bench-harness)
  --address SOCKET  containerd's socket as the sandbox sees it (default $CONTAINERD_ADDRESS,
                    else /run/containerd/containerd.sock)
  --ours, --baseline RUNTIME
                    the runtimes compared (default io.containerd.systemd.v1, io.containerd.runc.v2)";

/// The sandbox variables the harness reads.
const SANDBOX_VARIABLES: &[&str] =
    &["SHIM_TEST_SANDBOX_PID", "SHIM_TEST_CTR", "SHIM_TEST_CONTAINERD", "SHIM_TEST_SHIM", "SHIM_TEST_ROOT"];

struct Invocation {
    config: Config,
    out: Option<std::path::PathBuf>,
    json: Option<std::path::PathBuf>,
}

fn parse(args: &[String]) -> Result<Invocation, String> {
    let mut config = if args.iter().any(|arg| arg == "--smoke") { Config::smoke() } else { Config::full() };
    if let Ok(address) = std::env::var("CONTAINERD_ADDRESS") {
        config.address = address;
    }
    let mut out = None;
    let mut json = None;
    let mut only: Option<Vec<String>> = None;
    let mut args = args.iter();
    let number = |flag: &str, value: Option<&String>| -> Result<usize, String> {
        value.ok_or(format!("{flag} needs a value"))?.parse().map_err(|_| format!("{flag} takes a number"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--smoke" => {}
            "--out" => out = Some(args.next().ok_or("--out needs a file")?.into()),
            "--json" => json = Some(args.next().ok_or("--json needs a file")?.into()),
            "--runs" => config.sequential_runs = number(arg, args.next())?,
            "--parallel" => config.parallel_tasks = number(arg, args.next())?,
            "--loaded-runs" => config.loaded_runs = number(arg, args.next())?,
            "--exit-samples" => config.exit_samples = number(arg, args.next())?,
            "--curve" => {
                let list = args.next().ok_or("--curve needs a list")?;
                config.curve = if list == "none" {
                    Vec::new()
                } else {
                    list.split(',')
                        .map(|n| n.parse().map_err(|_| format!("bad --curve entry {n:?}")))
                        .collect::<Result<_, _>>()?
                };
            }
            "--only" => only = Some(args.next().ok_or("--only needs a list")?.split(',').map(str::to_string).collect()),
            "--namespace" => config.namespace = args.next().ok_or("--namespace needs a name")?.clone(),
            "--address" => config.address = args.next().ok_or("--address needs a socket path")?.clone(),
            "--ours" => config.ours.name = args.next().ok_or("--ours needs a runtime name")?.clone(),
            "--baseline" => config.baseline.name = args.next().ok_or("--baseline needs a runtime name")?.clone(),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if let Some(only) = only {
        for item in &only {
            if !["sequential", "parallel", "exit"].contains(&item.as_str()) {
                return Err(format!("unknown item {item:?} in --only"));
            }
        }
        let wanted = |item: &str| only.iter().any(|name| name == item);
        if !wanted("sequential") {
            config.sequential_runs = 0;
        }
        if !wanted("parallel") {
            config.parallel_tasks = 0;
        }
        if !wanted("exit") {
            config.exit_samples = 0;
        }
    }
    if !config.namespace.starts_with("bench-") {
        return Err(format!("namespace {:?} must start with bench-", config.namespace));
    }
    Ok(Invocation { config, out, json })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let invocation = match parse(&args) {
        Ok(invocation) => invocation,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("bench: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let missing: Vec<&str> =
        SANDBOX_VARIABLES.iter().copied().filter(|name| std::env::var_os(name).is_none()).collect();
    if !missing.is_empty() {
        eprintln!(
            "bench: {} not set: run it through tests/bench or tests/run, which boot the sandbox",
            missing.join(", ")
        );
        return ExitCode::from(2);
    }
    let results = match bench::run(&invocation.config).await {
        Ok(results) => results,
        Err(error) => {
            eprintln!("bench: {}", error_chain(&error));
            return ExitCode::FAILURE;
        }
    };
    let markdown = results.to_markdown();
    println!("{markdown}");
    if let Some(path) = invocation.out {
        if let Err(source) = std::fs::write(&path, &markdown) {
            eprintln!("bench: {}", error_chain(&bench::Error::Write { path, source }));
            return ExitCode::FAILURE;
        }
    }
    if let Some(path) = invocation.json {
        let text = match serde_json::to_string_pretty(&results.figures()) {
            Ok(text) => text,
            Err(error) => {
                eprintln!("bench: failed to serialise the figures: {error}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(source) = std::fs::write(&path, text + "\n") {
            eprintln!("bench: {}", error_chain(&bench::Error::Write { path, source }));
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// The error with its sources, `: `-separated.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
