//! The containerd under test and the benchmark's namespace in it: `ctr` and gRPC pointed at
//! its address (the sandbox can run more than one containerd), the image imported into the
//! namespace, and the namespace removed again.

use std::process::{Command, Output};

use super::Error;
use crate::grpc::Client;
use crate::{Sandbox, IMAGE};

/// containerd's default address, which `tests/containerd-in-sandbox` uses.
pub const DEFAULT_ADDRESS: &str = "/run/containerd/containerd.sock";

/// A containerd of the sandbox and a namespace of the benchmark's in it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The sandbox.
    pub sandbox: &'static Sandbox,
    /// containerd's gRPC socket, as the sandbox sees it.
    pub address: String,
    /// The benchmark's namespace.
    pub namespace: String,
}

impl Target {
    /// `ctr -a ADDRESS -n NAMESPACE args…` in the sandbox (through `nsenter` and `timeout`, see
    /// [`Sandbox::command`]).
    pub fn ctr_command(&self, args: &[&str]) -> Command {
        let mut all = vec![self.sandbox.ctr.as_str(), "-a", &self.address, "-n", &self.namespace];
        all.extend_from_slice(args);
        self.sandbox.command(&all)
    }

    /// Runs `ctr … args…`; fails unless it succeeds.
    pub fn ctr(&self, args: &[&str]) -> Result<Output, Error> {
        let output = self.ctr_command(args).output().map_err(|source| Error::Spawn { what: "ctr", source })?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(Error::Ctr {
                what: format!("ctr -n {} {}", self.namespace, args.join(" ")),
                code: output.status.code(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            })
        }
    }

    /// A gRPC connection to the containerd, from the host through the sandbox's root.
    pub async fn client(&self) -> Result<Client, Error> {
        Ok(Client::connect_to(self.sandbox.host_path(&self.address), &self.namespace).await?)
    }

    /// Imports the test image (images are per namespace).
    pub fn import_image(&self) -> Result<(), Error> {
        let archive = self.sandbox.root.join("busybox-oci.tar");
        self.ctr(&["images", "import", archive.to_str().unwrap_or_default()]).map(drop)
    }

    /// containerd's version, as its server reports it.
    pub fn containerd_version(&self) -> String {
        let Ok(output) = self.ctr(&["version"]) else { return "unknown".into() };
        let stdout = String::from_utf8_lossy(&output.stdout);
        let server = stdout.split("Server:").nth(1).unwrap_or("");
        server
            .lines()
            .find_map(|line| line.trim().strip_prefix("Version:").map(str::trim).map(str::to_string))
            .unwrap_or_else(|| "unknown".into())
    }

    /// Removes the image and the namespace; reports, without failing, what could not be removed.
    pub fn remove_namespace(&self) {
        if let Err(error) = self.ctr(&["images", "rm", "--sync", IMAGE]) {
            eprintln!("bench: could not remove {IMAGE} from {}: {error}", self.namespace);
        }
        if let Err(error) = self.ctr(&["namespaces", "rm", &self.namespace]) {
            eprintln!("bench: could not remove namespace {}: {error}", self.namespace);
        }
    }
}
