//! Pids: every process in the container (`runc ps`), with `ProcessDetails` naming the exec id
//! of exec processes, as runc-v2 reports them.

use containerd_shim_protos::api::ProcessInfo;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::ProcessDetails;

use super::manager::TaskManager;
use super::task::TaskKey;
use crate::error::Error;

/// The type URL containerd decodes `ProcessInfo.info` with.
const PROCESS_DETAILS_TYPE_URL: &str = "containerd.runc.v1.ProcessDetails";

impl TaskManager {
    /// The processes of task `key`.
    pub async fn pids(&self, key: &TaskKey) -> Result<Vec<ProcessInfo>, Error> {
        let task = self.task(key)?;
        let pids = task.runc.ps(&key.id).await.map_err(Error::Runc)?;
        let exec_pids: Vec<(u32, String)> = task
            .exec_list()
            .iter()
            .map(|exec| (exec.lifecycle().pid(), exec.exec_id.clone()))
            .filter(|(pid, _)| *pid != 0)
            .collect();
        pids.into_iter()
            .map(|pid| {
                let mut info = ProcessInfo { pid, ..Default::default() };
                if let Some((_, exec_id)) = exec_pids.iter().find(|(exec_pid, _)| *exec_pid == pid) {
                    let details = ProcessDetails { exec_id: exec_id.clone(), ..Default::default() };
                    let value = details
                        .write_to_bytes()
                        .map_err(|error| Error::io("encoding process details", std::io::Error::other(error)))?;
                    info.info =
                        Some(Any { type_url: PROCESS_DETAILS_TYPE_URL.into(), value, ..Default::default() }).into();
                }
                Ok(info)
            })
            .collect()
    }
}
