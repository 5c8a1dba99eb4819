//! Publishing task events to containerd (`TaskCreate`, `TaskStart`, `TaskExit`, `TaskDelete`,
//! `TaskExecAdded`, `TaskExecStarted`, `TaskPaused`, `TaskResumed`, `TaskOOM`, `TaskCheckpointed`).
//! Events go through one unbounded queue to one publisher task, which keeps each task's events
//! in the order they were enqueued, so per task they reach containerd in lifecycle order
//! (see [`super::publisher`]). Enqueueing never blocks, which is why it may happen under a
//! task's lock (that lock is what orders them).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use containerd_shim_protos::events::task::{
    TaskCheckpointed, TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::MessageDyn;
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::topics;
use tokio::sync::{mpsc, oneshot};

use super::exec_process::ExecProcess;
use super::publisher::{publish_all, EventTask, Forward, Queued, RetryPolicy, TtrpcForwarder};
use super::task::{Exit, Task};

/// The sending side of the event queue.
#[derive(Clone)]
pub struct EventSender {
    sender: mpsc::UnboundedSender<Queued>,
}

impl EventSender {
    /// Starts the publisher for containerd's ttrpc address and returns its queue.
    pub fn spawn(ttrpc_address: String) -> EventSender {
        EventSender::spawn_forwarding(TtrpcForwarder::new(&ttrpc_address))
    }

    /// Starts the publisher handing events to `forwarder` (containerd's events service in
    /// production; a recorder in the daemon's unit tests) and returns its queue.
    pub fn spawn_forwarding(forwarder: impl Forward) -> EventSender {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(publish_all(forwarder, receiver, RetryPolicy::default()));
        EventSender { sender }
    }

    fn send(&self, task: &Task, topic: &'static str, message: Box<dyn MessageDyn + Send>) {
        let message: &dyn MessageDyn = &*message;
        let mut body = Vec::new();
        if let Err(error) = message.write_to_vec_dyn(&mut body) {
            tracing::error!("encoding the {topic} event: {error}; dropping it");
            return;
        }
        let event =
            Any { type_url: message.descriptor_dyn().full_name().to_string(), value: body, ..Default::default() };
        let envelope = Envelope {
            timestamp: Some(timestamp(SystemTime::now())).into(),
            namespace: task.key.namespace.clone(),
            topic: topic.to_string(),
            event: Some(event).into(),
            ..Default::default()
        };
        let task = EventTask { namespace: task.key.namespace.clone(), container_id: task.key.id.clone() };
        if self.sender.send(Queued::Event { task, envelope }).is_err() {
            tracing::error!("event publisher is gone; dropping {topic} event");
        }
    }

    /// Waits (at most `timeout`) until containerd has taken every event queued so far;
    /// a stopping daemon must not take events with it.
    pub async fn flush(&self, timeout: Duration) {
        let (flushed, done) = oneshot::channel();
        if self.sender.send(Queued::Flush(flushed)).is_err() {
            return;
        }
        if tokio::time::timeout(timeout, done).await.is_err() {
            tracing::warn!("events still unpublished after {timeout:?}");
        }
    }

    /// `TaskCreate` for a task whose init has `pid`.
    pub fn task_created(&self, task: &Task, pid: u32, rootfs: Vec<containerd_shim_protos::api::Mount>) {
        let io = TaskIO {
            stdin: path_string(&task.stdio.stdin),
            stdout: path_string(&task.stdio.stdout),
            stderr: path_string(&task.stdio.stderr),
            terminal: task.terminal,
            ..Default::default()
        };
        let event = TaskCreate {
            container_id: task.key.id.clone(),
            bundle: task.bundle.display().to_string(),
            rootfs,
            io: Some(io).into(),
            pid,
            ..Default::default()
        };
        self.send(task, topics::TASK_CREATE_EVENT_TOPIC, Box::new(event));
    }

    /// `TaskStart`.
    pub fn task_started(&self, task: &Task, pid: u32) {
        let event = TaskStart { container_id: task.key.id.clone(), pid, ..Default::default() };
        self.send(task, topics::TASK_START_EVENT_TOPIC, Box::new(event));
    }

    /// `TaskExit` of the init process (whose id is the task's).
    pub fn task_exited(&self, task: &Task, pid: u32, exit: Exit) {
        self.exited(task, &task.key.id, pid, exit);
    }

    /// `TaskExit` of process `id` of `task`.
    fn exited(&self, task: &Task, id: &str, pid: u32, exit: Exit) {
        let event = TaskExit {
            container_id: task.key.id.clone(),
            id: id.to_string(),
            pid,
            exit_status: exit.status,
            exited_at: Some(timestamp(exit.at)).into(),
            ..Default::default()
        };
        self.send(task, topics::TASK_EXIT_EVENT_TOPIC, Box::new(event));
    }

    /// `TaskExecAdded`.
    pub fn exec_added(&self, task: &Task, exec: &ExecProcess) {
        let event =
            TaskExecAdded { container_id: task.key.id.clone(), exec_id: exec.exec_id.clone(), ..Default::default() };
        self.send(task, topics::TASK_EXEC_ADDED_EVENT_TOPIC, Box::new(event));
    }

    /// `TaskExecStarted`.
    pub fn exec_started(&self, task: &Task, exec: &ExecProcess, pid: u32) {
        let event = TaskExecStarted {
            container_id: task.key.id.clone(),
            exec_id: exec.exec_id.clone(),
            pid,
            ..Default::default()
        };
        self.send(task, topics::TASK_EXEC_STARTED_EVENT_TOPIC, Box::new(event));
    }

    /// `TaskExit` of an exec process (its id is the exec id).
    pub fn exec_exited(&self, task: &Task, exec: &ExecProcess, pid: u32, exit: Exit) {
        self.exited(task, &exec.exec_id, pid, exit);
    }

    /// `TaskPaused`.
    pub fn task_paused(&self, task: &Task) {
        let event = TaskPaused { container_id: task.key.id.clone(), ..Default::default() };
        self.send(task, topics::TASK_PAUSED_EVENT_TOPIC, Box::new(event));
    }

    /// `TaskResumed`.
    pub fn task_resumed(&self, task: &Task) {
        let event = TaskResumed { container_id: task.key.id.clone(), ..Default::default() };
        self.send(task, topics::TASK_RESUMED_EVENT_TOPIC, Box::new(event));
    }

    /// `TaskOOM`.
    pub fn task_oom(&self, task: &Task) {
        let event = TaskOOM { container_id: task.key.id.clone(), ..Default::default() };
        self.send(task, topics::TASK_OOM_EVENT_TOPIC, Box::new(event));
    }

    /// `TaskCheckpointed`.
    pub fn task_checkpointed(&self, task: &Task, checkpoint: &str) {
        let event = TaskCheckpointed {
            container_id: task.key.id.clone(),
            checkpoint: checkpoint.to_string(),
            ..Default::default()
        };
        self.send(task, topics::TASK_CHECKPOINTED_EVENT_TOPIC, Box::new(event));
    }

    /// `TaskDelete`.
    pub fn task_deleted(&self, task: &Task, pid: u32, exit: Exit) {
        let event = TaskDelete {
            container_id: task.key.id.clone(),
            id: task.key.id.clone(),
            pid,
            exit_status: exit.status,
            exited_at: Some(timestamp(exit.at)).into(),
            ..Default::default()
        };
        self.send(task, topics::TASK_DELETE_EVENT_TOPIC, Box::new(event));
    }
}

/// A protobuf timestamp for `time`.
pub fn timestamp(time: SystemTime) -> Timestamp {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    Timestamp {
        seconds: i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since_epoch.subsec_nanos()).unwrap_or(0),
        ..Default::default()
    }
}

fn path_string(path: &Option<std::path::PathBuf>) -> String {
    path.as_ref().map(|path| path.display().to_string()).unwrap_or_default()
}
