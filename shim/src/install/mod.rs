//! `containerd-shim-systemd-v1 install` and `uninstall`: the daemon for one containerd as a
//! socket-activated service an operator manages like any other, instead of the transient unit
//! `start` launches on demand. `install` writes the `.socket` and `.service` pair (see `units`
//! for what is in them and why), reloads systemd, enables the socket and starts it; `uninstall`
//! stops and removes them. Both converge: run twice, the second run changes nothing.
//! `--dry-run` prints the files and touches nothing.
//!
//! Files go to `/etc/systemd/system`, or with `--runtime` to `/run/systemd/system` (enabled
//! with `systemctl enable --runtime`: gone at reboot, which is also what tests use). `uninstall`
//! looks in both.
//!
//! A daemon that `start` launched on demand is a transient unit of the same name. `install`
//! refuses to go near it and changes nothing: a unit file written meanwhile is shadowed by the
//! transient unit, systemd's unit cache keeps pointing at the transient one after it is gone
//! (the socket's service is then "not loaded"), starting the socket would take the control
//! socket's path from the running daemon, and stopping the daemon is not ours to decide
//! (containerd treats the tasks of a stopped daemon as dead). Install before the first
//! container, or after a reboot.

pub mod args;
pub mod systemctl;
pub mod units;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::Error;
pub use args::{InstallCommand, UninstallCommand};
pub use units::{render_units, InstallSpec, UnitFile, UnitFiles};

/// Where unit files live, and how they are enabled there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `/etc/systemd/system`: kept across reboots.
    System,
    /// `/run/systemd/system`, enabled with `--runtime`: until reboot.
    Runtime,
}

impl Scope {
    /// Both scopes, the persistent one first.
    pub const ALL: [Scope; 2] = [Scope::System, Scope::Runtime];
}

/// The unit directory of each scope (systemd's, but for tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitDirs {
    /// Of [`Scope::System`].
    pub system: PathBuf,
    /// Of [`Scope::Runtime`].
    pub runtime: PathBuf,
}

impl Default for UnitDirs {
    fn default() -> UnitDirs {
        UnitDirs { system: "/etc/systemd/system".into(), runtime: "/run/systemd/system".into() }
    }
}

impl UnitDirs {
    /// The directory of `scope`.
    pub fn of(&self, scope: Scope) -> &Path {
        match scope {
            Scope::System => &self.system,
            Scope::Runtime => &self.runtime,
        }
    }
}

/// What systemd says of a unit (`systemctl show`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitStatus {
    /// `LoadState`: `loaded`, `not-found`, …
    pub load_state: String,
    /// `ActiveState`: `active`, `inactive`, `failed`, …
    pub active_state: String,
    /// `Transient`: created over D-Bus rather than from a unit file.
    pub transient: bool,
}

impl UnitStatus {
    /// Whether the unit runs or is on its way to (including a pending auto-restart).
    pub fn is_running(&self) -> bool {
        matches!(self.active_state.as_str(), "active" | "activating" | "reloading" | "deactivating")
    }
}

/// The systemd operations `install` and `uninstall` need (`systemctl` in production, a
/// recording fake in tests).
pub trait ServiceManager {
    /// `systemctl daemon-reload`.
    fn daemon_reload(&mut self) -> Result<(), Error>;
    /// `systemctl enable [--runtime] UNIT`.
    fn enable(&mut self, unit: &str, scope: Scope) -> Result<(), Error>;
    /// `systemctl disable [--runtime] UNIT`.
    fn disable(&mut self, unit: &str, scope: Scope) -> Result<(), Error>;
    /// `systemctl start UNIT`.
    fn start(&mut self, unit: &str) -> Result<(), Error>;
    /// `systemctl stop UNIT`.
    fn stop(&mut self, unit: &str) -> Result<(), Error>;
    /// `systemctl reset-failed UNIT`.
    fn reset_failed(&mut self, unit: &str) -> Result<(), Error>;
    /// `systemctl show UNIT`.
    fn status(&mut self, unit: &str) -> Result<UnitStatus, Error>;
    /// The major version of the running systemd (`systemctl --version`).
    fn version(&mut self) -> Result<u32, Error>;
}

/// Writes, enables and starts the units for `spec` in `scope`; says what it did on `out`.
pub fn install(
    spec: &InstallSpec,
    scope: Scope,
    dirs: &UnitDirs,
    dry_run: bool,
    manager: &mut dyn ServiceManager,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let units = render_units(spec, manager.version()?)?;
    let dir = dirs.of(scope);
    if dry_run {
        for unit in units.all() {
            say(out, &format!("# {}\n{}\n", dir.join(&unit.name).display(), unit.contents))?;
        }
        return Ok(());
    }
    let service = manager.status(&units.service.name)?;
    if service.transient {
        return Err(Error::TransientDaemon { unit: units.service.name.clone(), state: service.active_state });
    }
    let mut changed = false;
    for unit in units.all() {
        let path = dir.join(&unit.name);
        if read_if_present(&path)?.as_deref() == Some(unit.contents.as_str()) {
            say(out, &format!("{} is up to date\n", path.display()))?;
        } else {
            write_unit_file(&path, &unit.contents)?;
            say(out, &format!("wrote {}\n", path.display()))?;
            changed = true;
        }
    }
    if changed {
        manager.daemon_reload()?;
    }
    manager.enable(&units.socket.name, scope)?;
    manager.start(&units.socket.name)?;
    say(out, &format!("enabled and started {}\n", units.socket.name))?;
    if changed && service.is_running() {
        let name = &units.service.name;
        say(
            out,
            &format!(
                "{name} still runs with its old settings: `systemctl restart {name}` applies them (tasks and \
                 containerd's connections survive a restart)\n"
            ),
        )?;
    }
    Ok(())
}

/// Stops, disables and removes the units for containerd at `containerd_address`, from every
/// scope that has them; says what it did on `out`.
pub fn uninstall(
    containerd_address: &str,
    dirs: &UnitDirs,
    dry_run: bool,
    manager: &mut dyn ServiceManager,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let identity = crate::paths::DaemonIdentity::for_containerd(containerd_address);
    let names = [identity.socket_unit(), identity.unit.clone()];
    let installed: Vec<(Scope, PathBuf)> = Scope::ALL
        .iter()
        .flat_map(|scope| names.iter().map(move |name| (*scope, dirs.of(*scope).join(name))))
        .filter(|(_, path)| path.exists())
        .collect();
    if installed.is_empty() {
        return say(out, &format!("nothing installed for containerd at {containerd_address}\n"));
    }
    if dry_run {
        for (_, path) in &installed {
            say(out, &format!("would stop and remove {}\n", path.display()))?;
        }
        return Ok(());
    }
    for scope in Scope::ALL {
        if installed.iter().any(|(installed_scope, path)| *installed_scope == scope && path.ends_with(&names[0])) {
            manager.disable(&names[0], scope)?;
        }
    }
    // The socket first, so that no connection activates the service again meanwhile. A
    // transient daemon by the same name is `start`'s, not ours: it stays.
    for name in &names {
        let status = manager.status(name)?;
        if status.is_running() && !status.transient {
            manager.stop(name)?;
            say(out, &format!("stopped {name}\n"))?;
        }
    }
    for (_, path) in &installed {
        remove_unit_file(path)?;
        say(out, &format!("removed {}\n", path.display()))?;
    }
    manager.daemon_reload()?;
    for name in &names {
        if manager.status(name)?.active_state == "failed" {
            manager.reset_failed(name)?;
        }
    }
    Ok(())
}

fn say(out: &mut dyn Write, text: &str) -> Result<(), Error> {
    out.write_all(text.as_bytes()).map_err(|error| Error::io("writing to stdout", error))
}

fn read_if_present(path: &Path) -> Result<Option<String>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(Error::io(format!("reading {}", path.display()), error)),
    }
}

/// Writes a unit file atomically (temporary file, fsync, rename), mode 0644 as unit files have.
fn write_unit_file(path: &Path, contents: &str) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let context = || format!("writing {}", path.display());
    let dir = path.parent().ok_or_else(|| Error::io(context(), std::io::Error::other("no parent directory")))?;
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        std::fs::create_dir_all(dir)?;
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o644).open(&temp)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(|error| Error::io(context(), error))
}

fn remove_unit_file(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(format!("removing {}", path.display()), error))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
