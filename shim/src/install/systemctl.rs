//! [`ServiceManager`] through `systemctl`: enabling a unit is `systemctl`'s own logic (the
//! `[Install]` section, `--runtime`), and an operator reading what `install` did recognizes
//! every step.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Scope, ServiceManager, UnitStatus};
use crate::error::Error;

/// How long one `systemctl` may take (its start and stop jobs included).
const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `systemctl` against the system manager.
#[derive(Debug, Default)]
pub struct Systemctl;

impl Systemctl {
    fn run(&self, args: &[&str]) -> Result<String, Error> {
        let command = args.join(" ");
        let failed = |status: String, message: String| Error::Systemctl { command: command.clone(), status, message };
        let mut child = Command::new("systemctl")
            .arg("--no-ask-password")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| failed("not run".into(), error.to_string()))?;
        let deadline = Instant::now() + SYSTEMCTL_TIMEOUT;
        // Its output is a few lines: it fits the pipes while we poll.
        while child.try_wait().map_err(|error| failed("not waited for".into(), error.to_string()))?.is_none() {
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!("killed after {SYSTEMCTL_TIMEOUT:?}"), String::new()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = child.wait_with_output().map_err(|error| failed("not waited for".into(), error.to_string()))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let message = stderr.lines().rev().map(str::trim).find(|line| !line.is_empty()).unwrap_or("no message");
            return Err(failed(output.status.to_string(), message.to_string()));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

fn scope_flag(scope: Scope) -> Option<&'static str> {
    match scope {
        Scope::System => None,
        Scope::Runtime => Some("--runtime"),
    }
}

/// The major version in `systemctl --version`'s first line (`systemd 257 (257.13-1)`).
fn major_version(output: &str) -> Option<u32> {
    output.lines().next()?.strip_prefix("systemd ")?.split_whitespace().next()?.parse().ok()
}

impl ServiceManager for Systemctl {
    fn version(&mut self) -> Result<u32, Error> {
        let output = self.run(&["--version"])?;
        major_version(&output).ok_or_else(|| Error::Systemctl {
            command: "--version".into(),
            status: "exit status: 0".into(),
            message: format!("no version in {:?}", output.lines().next().unwrap_or_default()),
        })
    }

    fn daemon_reload(&mut self) -> Result<(), Error> {
        self.run(&["daemon-reload"]).map(drop)
    }

    fn enable(&mut self, unit: &str, scope: Scope) -> Result<(), Error> {
        let mut args = vec!["enable", "--quiet"];
        args.extend(scope_flag(scope));
        args.push(unit);
        self.run(&args).map(drop)
    }

    fn disable(&mut self, unit: &str, scope: Scope) -> Result<(), Error> {
        let mut args = vec!["disable", "--quiet"];
        args.extend(scope_flag(scope));
        args.push(unit);
        self.run(&args).map(drop)
    }

    fn start(&mut self, unit: &str) -> Result<(), Error> {
        self.run(&["start", unit]).map(drop)
    }

    fn stop(&mut self, unit: &str) -> Result<(), Error> {
        self.run(&["stop", unit]).map(drop)
    }

    fn reset_failed(&mut self, unit: &str) -> Result<(), Error> {
        self.run(&["reset-failed", unit]).map(drop)
    }

    fn status(&mut self, unit: &str) -> Result<UnitStatus, Error> {
        let output = self.run(&["show", "--property=LoadState,ActiveState,Transient", unit])?;
        Ok(parse_show(&output))
    }
}

/// Reads `systemctl show`'s `Name=value` lines.
fn parse_show(output: &str) -> UnitStatus {
    let mut status = UnitStatus::default();
    for (name, value) in output.lines().filter_map(|line| line.split_once('=')) {
        match name {
            "LoadState" => status.load_state = value.to_string(),
            "ActiveState" => status.active_state = value.to_string(),
            "Transient" => status.transient = value == "yes",
            _ => {}
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_output_is_parsed() {
        let status = parse_show("LoadState=loaded\nActiveState=active\nTransient=yes\n");
        assert_eq!(status, UnitStatus { load_state: "loaded".into(), active_state: "active".into(), transient: true });
        let missing = parse_show("LoadState=not-found\nActiveState=inactive\nTransient=no\n");
        assert!(!missing.is_running() && !missing.transient && missing.load_state == "not-found");
    }
}
