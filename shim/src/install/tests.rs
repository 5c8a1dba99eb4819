//! `install` and `uninstall` against a fake systemd that records what it was asked, with unit
//! directories in a scratch directory.

use std::collections::HashMap;
use std::path::PathBuf;

use super::*;
use crate::install::units::DEFAULT_PATH_ENV;
use unit_gen::daemon_unit::DEFAULT_FD_STORE_MAX;

/// Records every call; starting and stopping change the unit's state, as systemd would.
#[derive(Default)]
struct FakeSystemd {
    calls: Vec<String>,
    units: HashMap<String, UnitStatus>,
}

impl FakeSystemd {
    fn set(&mut self, unit: &str, active_state: &str, transient: bool) {
        let status = UnitStatus { load_state: "loaded".into(), active_state: active_state.into(), transient };
        self.units.insert(unit.to_string(), status);
    }

    fn take_calls(&mut self) -> Vec<String> {
        std::mem::take(&mut self.calls)
    }
}

impl ServiceManager for FakeSystemd {
    fn daemon_reload(&mut self) -> Result<(), Error> {
        self.calls.push("daemon-reload".into());
        Ok(())
    }
    fn enable(&mut self, unit: &str, scope: Scope) -> Result<(), Error> {
        self.calls.push(format!("enable {unit} {scope:?}"));
        Ok(())
    }
    fn disable(&mut self, unit: &str, scope: Scope) -> Result<(), Error> {
        self.calls.push(format!("disable {unit} {scope:?}"));
        Ok(())
    }
    fn start(&mut self, unit: &str) -> Result<(), Error> {
        self.calls.push(format!("start {unit}"));
        self.set(unit, "active", false);
        Ok(())
    }
    fn stop(&mut self, unit: &str) -> Result<(), Error> {
        self.calls.push(format!("stop {unit}"));
        self.set(unit, "inactive", false);
        Ok(())
    }
    fn reset_failed(&mut self, unit: &str) -> Result<(), Error> {
        self.calls.push(format!("reset-failed {unit}"));
        self.set(unit, "inactive", false);
        Ok(())
    }
    fn version(&mut self) -> Result<u32, Error> {
        Ok(252)
    }
    fn status(&mut self, unit: &str) -> Result<UnitStatus, Error> {
        Ok(self.units.get(unit).cloned().unwrap_or_else(|| UnitStatus {
            load_state: "not-found".into(),
            active_state: "inactive".into(),
            transient: false,
        }))
    }
}

/// Unit directories under a scratch directory, removed on drop.
struct Dirs {
    root: PathBuf,
    dirs: UnitDirs,
}

impl Dirs {
    fn new(name: &str) -> Dirs {
        let root = std::env::temp_dir().join(format!("shim-install-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dirs = UnitDirs { system: root.join("etc"), runtime: root.join("run") };
        Dirs { root, dirs }
    }

    fn files(&self, scope: Scope) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dirs.of(scope))
            .map(|entries| entries.flatten().map(|entry| entry.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

const ADDRESS: &str = "/run/containerd/containerd.sock";

fn spec() -> InstallSpec {
    InstallSpec {
        containerd_address: ADDRESS.into(),
        binary: "/usr/local/bin/containerd-shim-systemd-v1".into(),
        publish_binary: "/usr/bin/containerd".into(),
        ttrpc_address: format!("{ADDRESS}.ttrpc"),
        path_env: DEFAULT_PATH_ENV.into(),
        config: None,
        fd_store_max: DEFAULT_FD_STORE_MAX,
    }
}

fn names() -> (String, String) {
    let units = render_units(&spec(), 252).unwrap();
    (units.socket.name, units.service.name)
}

fn run_install(dirs: &Dirs, scope: Scope, dry_run: bool, systemd: &mut FakeSystemd) -> String {
    let mut out = Vec::new();
    install(&spec(), scope, &dirs.dirs, dry_run, systemd, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn run_uninstall(dirs: &Dirs, dry_run: bool, systemd: &mut FakeSystemd) -> String {
    let mut out = Vec::new();
    uninstall(ADDRESS, &dirs.dirs, dry_run, systemd, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn dry_run_prints_both_units_and_changes_nothing() {
    let dirs = Dirs::new("dry-run");
    let mut systemd = FakeSystemd::default();
    let printed = run_install(&dirs, Scope::System, true, &mut systemd);
    let units = render_units(&spec(), 252).unwrap();
    let expected = format!(
        "# {}\n{}\n# {}\n{}\n",
        dirs.dirs.system.join(&units.socket.name).display(),
        units.socket.contents,
        dirs.dirs.system.join(&units.service.name).display(),
        units.service.contents
    );
    assert_eq!(printed, expected);
    assert_eq!(systemd.take_calls(), Vec::<String>::new());
    assert!(!dirs.root.exists(), "nothing written");
}

#[test]
fn install_writes_enables_and_starts_the_socket_then_converges() {
    let dirs = Dirs::new("install");
    let (socket, service) = names();
    let mut systemd = FakeSystemd::default();
    run_install(&dirs, Scope::System, false, &mut systemd);
    assert_eq!(dirs.files(Scope::System), vec![service.clone(), socket.clone()]);
    assert_eq!(
        systemd.take_calls(),
        vec!["daemon-reload".to_string(), format!("enable {socket} System"), format!("start {socket}")]
    );
    let written = std::fs::read_to_string(dirs.dirs.system.join(&socket)).unwrap();
    assert_eq!(written, render_units(&spec(), 252).unwrap().socket.contents);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dirs.dirs.system.join(&service)).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);

    // Again: nothing to write, no reload; enabling and starting are no-ops to systemd.
    let said = run_install(&dirs, Scope::System, false, &mut systemd);
    assert!(said.contains("is up to date"), "{said}");
    assert_eq!(systemd.take_calls(), vec![format!("enable {socket} System"), format!("start {socket}")]);
}

#[test]
fn install_refuses_while_a_transient_daemon_holds_the_name_and_changes_nothing() {
    let dirs = Dirs::new("transient");
    let (socket, service) = names();
    let mut systemd = FakeSystemd::default();
    for state in ["active", "inactive"] {
        systemd.set(&service, state, true);
        let mut out = Vec::new();
        let error = install(&spec(), Scope::System, &dirs.dirs, false, &mut systemd, &mut out).unwrap_err();
        assert!(
            matches!(&error, Error::TransientDaemon { unit, state: found } if *unit == service && found == state),
            "{error:?}"
        );
        assert_eq!(systemd.take_calls(), Vec::<String>::new());
        assert!(!dirs.root.exists(), "nothing written");
    }

    // Once systemd has let go of it, install goes ahead.
    systemd.units.remove(&service);
    run_install(&dirs, Scope::System, false, &mut systemd);
    assert_eq!(
        systemd.take_calls(),
        vec!["daemon-reload".to_string(), format!("enable {socket} System"), format!("start {socket}")]
    );
}

#[test]
fn install_over_changed_files_of_a_running_daemon_says_how_to_apply_them() {
    let dirs = Dirs::new("changed");
    let (socket, service) = names();
    let mut systemd = FakeSystemd::default();
    std::fs::create_dir_all(&dirs.dirs.system).unwrap();
    std::fs::write(dirs.dirs.system.join(&service), "# an older version\n").unwrap();
    systemd.set(&service, "active", false);
    let said = run_install(&dirs, Scope::System, false, &mut systemd);
    assert_eq!(
        systemd.take_calls(),
        vec!["daemon-reload".to_string(), format!("enable {socket} System"), format!("start {socket}")]
    );
    assert!(said.contains(&format!("systemctl restart {service}")), "{said}");
    assert_eq!(
        std::fs::read_to_string(dirs.dirs.system.join(&service)).unwrap(),
        render_units(&spec(), 252).unwrap().service.contents
    );
}

#[test]
fn runtime_units_go_to_the_runtime_directory_and_uninstall_finds_them() {
    let dirs = Dirs::new("runtime");
    let (socket, service) = names();
    let mut systemd = FakeSystemd::default();
    run_install(&dirs, Scope::Runtime, false, &mut systemd);
    assert_eq!(dirs.files(Scope::Runtime), vec![service.clone(), socket.clone()]);
    assert_eq!(dirs.files(Scope::System), Vec::<String>::new());
    assert!(systemd.take_calls().contains(&format!("enable {socket} Runtime")));

    systemd.set(&service, "active", false);
    run_uninstall(&dirs, false, &mut systemd);
    assert_eq!(
        systemd.take_calls(),
        vec![
            format!("disable {socket} Runtime"),
            format!("stop {socket}"),
            format!("stop {service}"),
            "daemon-reload".to_string()
        ]
    );
    assert_eq!(dirs.files(Scope::Runtime), Vec::<String>::new());
}

#[test]
fn uninstall_twice_is_fine_and_dry_run_removes_nothing() {
    let dirs = Dirs::new("uninstall");
    let (socket, service) = names();
    let mut systemd = FakeSystemd::default();
    run_install(&dirs, Scope::System, false, &mut systemd);
    systemd.take_calls();

    let said = run_uninstall(&dirs, true, &mut systemd);
    assert!(said.contains(&format!("would stop and remove {}", dirs.dirs.system.join(&socket).display())), "{said}");
    assert_eq!(dirs.files(Scope::System).len(), 2, "dry run removed nothing");
    assert_eq!(systemd.take_calls(), Vec::<String>::new());

    systemd.set(&service, "failed", false);
    run_uninstall(&dirs, false, &mut systemd);
    assert_eq!(
        systemd.take_calls(),
        vec![
            format!("disable {socket} System"),
            format!("stop {socket}"),
            "daemon-reload".to_string(),
            format!("reset-failed {service}")
        ]
    );
    assert_eq!(dirs.files(Scope::System), Vec::<String>::new());

    let said = run_uninstall(&dirs, false, &mut systemd);
    assert!(said.contains("nothing installed"), "{said}");
    assert_eq!(systemd.take_calls(), Vec::<String>::new());
}

#[test]
fn uninstall_leaves_a_transient_daemon_of_the_same_name_running() {
    let dirs = Dirs::new("uninstall-transient");
    let (socket, service) = names();
    let mut systemd = FakeSystemd::default();
    run_install(&dirs, Scope::System, false, &mut systemd);
    systemd.take_calls();
    systemd.set(&service, "active", true);
    run_uninstall(&dirs, false, &mut systemd);
    assert_eq!(
        systemd.take_calls(),
        vec![format!("disable {socket} System"), format!("stop {socket}"), "daemon-reload".to_string()]
    );
}
