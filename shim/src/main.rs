//! Command line of containerd-shim-systemd-v1: the shim v2 subcommands containerd runs
//! (`start`, `delete`, `-info`, `-v`), the daemon (`daemon`), the helper that runs inside
//! container units (`helper create|exec|exited FILE`), and the operator's `install` and
//! `uninstall`. Shim flags follow containerd's Go-style single-dash convention.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use shim::config::{Config, ConfigSource};
use shim::daemon::DaemonConfig;
use shim::delete_command::DeleteCommand;
use shim::install::systemctl::Systemctl;
use shim::install::{InstallCommand, UninstallCommand, UnitDirs};
use shim::logging::LogTarget;
use shim::start::StartRequest;
use shim::telemetry::Export;

const USAGE: &str = "usage: containerd-shim-systemd-v1 [-namespace NS -id ID -address ADDR -publish-binary BIN -bundle DIR -socket ADDR -debug] start|delete|daemon
       containerd-shim-systemd-v1 helper create|exec|exited FILE
       containerd-shim-systemd-v1 install [--dry-run] [--runtime] [--address ADDR] [--binary PATH] [--publish-binary PATH]
       containerd-shim-systemd-v1 uninstall [--dry-run] [--address ADDR]
       containerd-shim-systemd-v1 -info < OPTIONS
       containerd-shim-systemd-v1 -v";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("helper") => return run_helper(&args[1..]),
        Some("install") => return run_install(&args[1..]),
        Some("uninstall") => return run_uninstall(&args[1..]),
        _ => {}
    }
    // containerd-shim's parser (go-flag): Go's flag syntax as containerd writes it, and one of
    // the two things we take from that crate (docs/dependencies.md, "containerd-shim").
    let flags = match containerd_shim::parse(&args) {
        Ok(flags) => flags,
        Err(error) => return fail(&format!("{error}\n{USAGE}")),
    };
    if flags.version {
        print!("{}", shim::version::version_text());
        return ExitCode::SUCCESS;
    }
    if flags.action != "daemon" {
        // The daemon installs its subscriber, with export, once its runtime runs.
        let _no_export = shim::telemetry::init(LogTarget::ContainerdCommand, flags.debug, Export::Off);
    }
    if flags.info {
        return run_short(|| async { run_info().await });
    }
    match flags.action.as_str() {
        "start" => run_short(|| async { shim::start::start(&start_request(&flags)?).await }),
        "delete" => run_short(|| async { shim::delete_command::delete(&delete_command(&flags)?).await }),
        "daemon" => run_daemon(&flags),
        other => fail(&format!("unknown action {other:?}\n{USAGE}")),
    }
}

fn run_helper(args: &[String]) -> ExitCode {
    let _telemetry = shim::telemetry::init(LogTarget::Service, false, Export::Off);
    let code = match (args.first().map(String::as_str), args.get(1)) {
        (Some("create"), Some(file)) => runc_wrap::helper::run_create(&PathBuf::from(file)),
        (Some("exec"), Some(file)) => runc_wrap::helper::run_exec(&PathBuf::from(file)),
        (Some("exited"), Some(file)) => runc_wrap::helper::run_exited(&PathBuf::from(file)),
        _ => return fail(USAGE),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn run_install(args: &[String]) -> ExitCode {
    let result = InstallCommand::parse(args).and_then(|command| {
        // The daemon would refuse a bad configuration file at its first start: refuse it now.
        let config = config_source();
        let settings = Config::load(&config)?;
        let path_env = std::env::var("PATH").unwrap_or_default();
        let spec = command.spec(&current_exe()?, &path_env, &config, &settings.daemon)?;
        let mut stdout = std::io::stdout().lock();
        shim::install::install(&spec, command.scope, &UnitDirs::default(), command.dry_run, &mut Systemctl, &mut stdout)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error.to_string()),
    }
}

fn run_uninstall(args: &[String]) -> ExitCode {
    let result = UninstallCommand::parse(args).and_then(|command| {
        let mut stdout = std::io::stdout().lock();
        shim::install::uninstall(&command.address, &UnitDirs::default(), command.dry_run, &mut Systemctl, &mut stdout)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error.to_string()),
    }
}

/// Runs a short-lived subcommand on a single-threaded runtime and prints its output.
fn run_short<F, Fut>(body: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<u8>, shim::Error>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("starting the async runtime: {error}")),
    };
    match runtime.block_on(body()) {
        Ok(output) => {
            let mut stdout = std::io::stdout().lock();
            if stdout.write_all(&output).and_then(|()| stdout.flush()).is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(error) => fail(&error.to_string()),
    }
}

fn run_daemon(flags: &containerd_shim::Flags) -> ExitCode {
    // Before any thread exists: the descriptors systemd kept for us, and out of the environment.
    let restored = shim::fdstore::take_listen_fds();
    let config = match daemon_config(flags, restored) {
        Ok(config) => config,
        Err(error) => return fail(&error.to_string()),
    };
    let runtime = match shim::daemon::prepare_process() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("starting the async runtime: {error}")),
    };
    // After the fds are taken (the exporter, when configured, starts a thread) and with the
    // runtime its requests run on.
    let configured_endpoint = config.config.tracing.otlp_endpoint.clone();
    let export = Export::Otlp { runtime: runtime.handle().clone(), configured_endpoint };
    let telemetry = shim::telemetry::init(LogTarget::Service, flags.debug, export);
    runtime.block_on(async {
        let code = match shim::daemon::run(config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!("daemon failed: {error}");
                fail(&error.to_string())
            }
        };
        // The last export requests are tasks of this runtime, which runs only while it is
        // blocked on: wait for the flush on a blocking thread meanwhile.
        if tokio::task::spawn_blocking(move || telemetry.shutdown()).await.is_err() {
            tracing::warn!("exporting the last spans: the flush panicked");
        }
        code
    })
}

/// `-info`: the runtime options on stdin, runc as the configuration file and the options say.
async fn run_info() -> Result<Vec<u8>, shim::Error> {
    let stdin = read_stdin()?;
    let config = Config::load(&config_source())?;
    shim::info::info(&stdin, &config.task_defaults, &std::env::var("PATH").unwrap_or_default()).await
}

/// What containerd wrote on stdin (at most 10 MiB; nothing when stdin is a terminal).
fn read_stdin() -> Result<Vec<u8>, shim::Error> {
    let mut stdin = Vec::new();
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        std::io::stdin()
            .take(10 << 20)
            .read_to_end(&mut stdin)
            .map_err(|error| shim::Error::io("reading stdin", error))?;
    }
    Ok(stdin)
}

fn start_request(flags: &containerd_shim::Flags) -> Result<StartRequest, shim::Error> {
    let stdin = read_stdin()?;
    Ok(StartRequest {
        namespace: flags.namespace.clone(),
        id: flags.id.clone(),
        containerd_address: flags.address.clone(),
        publish_binary: flags.publish_binary.clone(),
        ttrpc_address: std::env::var("TTRPC_ADDRESS").unwrap_or_default(),
        debug: flags.debug,
        bundle: std::env::current_dir().map_err(|error| shim::Error::io("reading the working directory", error))?,
        stdin,
        exe: current_exe()?,
        path_env: std::env::var("PATH").unwrap_or_default(),
        config: config_source(),
        telemetry_env: shim::telemetry::otlp::daemon_environment(|name| std::env::var(name).ok()),
    })
}

fn delete_command(flags: &containerd_shim::Flags) -> Result<DeleteCommand, shim::Error> {
    let bundle = if flags.bundle.is_empty() {
        std::env::current_dir().map_err(|error| shim::Error::io("reading the working directory", error))?
    } else {
        PathBuf::from(&flags.bundle)
    };
    Ok(DeleteCommand {
        namespace: flags.namespace.clone(),
        id: flags.id.clone(),
        bundle,
        containerd_address: flags.address.clone(),
    })
}

fn daemon_config(
    flags: &containerd_shim::Flags,
    restored: Vec<(shim::fdstore::StoredFd, std::os::fd::OwnedFd)>,
) -> Result<DaemonConfig, shim::Error> {
    if flags.socket.is_empty() {
        return Err(shim::Error::InvalidRequest("the daemon needs -socket".into()));
    }
    if flags.address.is_empty() {
        return Err(shim::Error::InvalidRequest("the daemon needs -address (containerd's socket)".into()));
    }
    let identity = shim::paths::DaemonIdentity::for_containerd(&flags.address);
    if shim::paths::socket_path_of(&flags.socket) != identity.control_socket {
        return Err(shim::Error::InvalidRequest(format!(
            "-socket {} is not the control socket for containerd at {} ({})",
            flags.socket,
            flags.address,
            identity.control_socket.display()
        )));
    }
    let config = Config::load(&config_source())?;
    Ok(DaemonConfig {
        identity,
        ttrpc_address: std::env::var("TTRPC_ADDRESS")
            .map_err(|_| shim::Error::InvalidRequest("TTRPC_ADDRESS is not set in the environment".into()))?,
        exe: current_exe()?,
        path_env: std::env::var("PATH").unwrap_or_default(),
        restored,
        notify_socket: runc_wrap::notify::NotifySocket::from_env(),
        config,
    })
}

/// The configuration file `$CONTAINERD_SHIM_SYSTEMD_CONFIG` names, or the default one.
fn config_source() -> ConfigSource {
    ConfigSource::from_env_value(std::env::var(shim::config::PATH_ENV).ok().as_deref())
}

fn current_exe() -> Result<PathBuf, shim::Error> {
    std::env::current_exe().map_err(|error| shim::Error::io("locating this binary", error))
}

fn fail(message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "containerd-shim-systemd-v1: {message}");
    ExitCode::FAILURE
}
