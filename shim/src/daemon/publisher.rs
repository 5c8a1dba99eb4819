//! Delivers task events to containerd's events service (ttrpc `Events/Forward` on containerd's
//! ttrpc socket). Each task's events reach containerd in the order they were queued, each only
//! once the one before it was delivered or given up; tasks take turns, so an event containerd
//! does not take holds back that task's later events and nobody else's.
//!
//! A forward that fails in a way that may pass (containerd restarting, a broken or wedged
//! connection) drops the connection and is tried again, same event, on a new one, after a
//! growing pause, for at most [`RetryPolicy::give_up_after`]: long enough for containerd to
//! come back, short of holding a task's events forever. An event containerd refuses for good
//! (invalid argument, not found, …) is not tried again. A dropped event is logged once, at
//! error level, naming its topic and task.
//!
//! A `TaskOOM` queued while the task's previous `TaskOOM` is still unsent is merged into it:
//! containerd's `TaskOOM` carries only the container id, so a container in an OOM loop adds
//! one event, not one per kill, in front of its own later events.
//!
//! A flush marker in the queue is answered once everything queued before it was delivered or
//! given up.
//!
//! (containerd-shim's `RemotePublisher` reconnects only on some errors, puts a failed event
//! behind later ones of the same task, and acknowledges an event when it is queued, so a
//! stopping daemon cannot know it was delivered.)

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use containerd_shim_protos::api::ForwardRequest;
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim_async::{Client, EventsClient};
use containerd_shim_protos::topics::TASK_OOM_EVENT_TOPIC;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// How long one forward may take before the connection counts as wedged.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// The task an event is about: one task's events keep their order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventTask {
    /// containerd namespace.
    pub namespace: String,
    /// The container (task) id.
    pub container_id: String,
}

impl fmt::Display for EventTask {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.namespace, self.container_id)
    }
}

/// What the publisher's queue carries.
pub enum Queued {
    /// An event about `task`, ready to forward.
    Event {
        /// Whose event it is.
        task: EventTask,
        /// The event.
        envelope: Envelope,
    },
    /// Answered once every event queued before it has been delivered or given up.
    Flush(oneshot::Sender<()>),
}

/// Why one forward failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// containerd answered and refused this event with a code no retry can change.
    #[error("containerd refused it: {code:?}: {message}")]
    Refused {
        /// The ttrpc status code.
        code: ttrpc::Code,
        /// containerd's message.
        message: String,
    },
    /// No answer, a broken connection or an error that may pass.
    #[error("{reason}")]
    Failed {
        /// What went wrong.
        reason: String,
    },
}

impl From<ttrpc::Error> for ForwardError {
    /// Codes containerd's events service answers for an event it will never take (an envelope
    /// that does not validate, a namespace that does not exist, …) are refusals; anything else,
    /// transport errors included, may pass.
    fn from(error: ttrpc::Error) -> ForwardError {
        use ttrpc::Code;
        match error {
            ttrpc::Error::RpcStatus(status)
                if matches!(
                    status.code(),
                    Code::INVALID_ARGUMENT
                        | Code::NOT_FOUND
                        | Code::ALREADY_EXISTS
                        | Code::PERMISSION_DENIED
                        | Code::FAILED_PRECONDITION
                        | Code::OUT_OF_RANGE
                        | Code::UNIMPLEMENTED
                ) =>
            {
                ForwardError::Refused { code: status.code(), message: status.message.clone() }
            }
            other => ForwardError::Failed { reason: other.to_string() },
        }
    }
}

/// Hands one event to containerd: the seam between the publisher's ordering and retrying and
/// the ttrpc connection ([`TtrpcForwarder`]), so tests can play containerd.
#[async_trait]
pub trait Forward: Send + 'static {
    /// One try at delivering `request`.
    async fn forward(&mut self, request: &ForwardRequest) -> Result<(), ForwardError>;
}

/// How failed forwards are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The pause before the first retry; it doubles up to `max_pause`.
    pub first_pause: Duration,
    /// The longest pause between two tries.
    pub max_pause: Duration,
    /// How long after its first failure an event is given up and dropped.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    /// Retries for five minutes: longer than containerd takes to restart.
    fn default() -> RetryPolicy {
        RetryPolicy {
            first_pause: Duration::from_millis(50),
            max_pause: Duration::from_secs(2),
            give_up_after: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The pause before retry number `attempt` (1 for the first retry).
    fn pause_before(&self, attempt: u32) -> Duration {
        self.first_pause.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(self.max_pause)
    }
}

/// Forwards everything queued through `forwarder` until the queue closes and every event was
/// delivered or given up.
pub async fn publish_all(forwarder: impl Forward, mut queue: mpsc::UnboundedReceiver<Queued>, policy: RetryPolicy) {
    let mut publisher = Publisher {
        forwarder,
        policy,
        lanes: HashMap::new(),
        turns: VecDeque::new(),
        flushes: Vec::new(),
        next_sequence: 0,
    };
    let mut open = true;
    loop {
        while let Ok(queued) = queue.try_recv() {
            publisher.take(queued);
        }
        publisher.answer_flushes();
        if let Some(task) = publisher.next_due(Instant::now()) {
            publisher.attempt(task).await;
            continue;
        }
        if !open && publisher.lanes.is_empty() {
            return;
        }
        let wake = publisher.earliest_retry();
        let retry_due = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            queued = queue.recv(), if open => match queued {
                Some(queued) => publisher.take(queued),
                None => open = false,
            },
            () = retry_due => {}
        }
    }
}

/// The events not yet delivered, one lane per task, and whose turn it is.
struct Publisher<F> {
    forwarder: F,
    policy: RetryPolicy,
    /// Only tasks with events waiting have a lane.
    lanes: HashMap<EventTask, Lane>,
    /// Each task with a lane, once; the front one goes next if its event is due.
    turns: VecDeque<EventTask>,
    /// Flush markers, each with the sequence number of the first event queued after it.
    flushes: Vec<(u64, oneshot::Sender<()>)>,
    next_sequence: u64,
}

/// One task's events, oldest first.
#[derive(Default)]
struct Lane {
    events: VecDeque<Pending>,
    /// When the front event, which failed, may be tried again.
    retry_at: Option<Instant>,
}

/// An event waiting to be delivered.
struct Pending {
    /// The order it was queued in, among all tasks' events (for flush markers).
    sequence: u64,
    topic: String,
    request: ForwardRequest,
    /// Failed tries so far.
    failures: u32,
    /// When the first try failed.
    failing_since: Option<Instant>,
    /// Later `TaskOOM`s merged into this one.
    merged: u64,
}

impl<F: Forward> Publisher<F> {
    fn take(&mut self, queued: Queued) {
        match queued {
            Queued::Event { task, envelope } => self.enqueue(task, envelope),
            Queued::Flush(flushed) => self.flushes.push((self.next_sequence, flushed)),
        }
    }

    fn enqueue(&mut self, task: EventTask, envelope: Envelope) {
        let lane = match self.lanes.get_mut(&task) {
            Some(lane) => lane,
            None => {
                self.turns.push_back(task.clone());
                self.lanes.entry(task).or_default()
            }
        };
        if envelope.topic == TASK_OOM_EVENT_TOPIC {
            if let Some(unsent_oom) = lane.events.back_mut().filter(|last| last.topic == TASK_OOM_EVENT_TOPIC) {
                unsent_oom.merged += 1;
                return;
            }
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let topic = envelope.topic.clone();
        let request = ForwardRequest { envelope: Some(envelope).into(), ..Default::default() };
        lane.events.push_back(Pending { sequence, topic, request, failures: 0, failing_since: None, merged: 0 });
    }

    /// The next task in turn whose front event may be tried now; it goes to the back of the turns.
    fn next_due(&mut self, now: Instant) -> Option<EventTask> {
        for _ in 0..self.turns.len() {
            let task = self.turns.pop_front()?;
            self.turns.push_back(task.clone());
            let due = self.lanes.get(&task).is_some_and(|lane| lane.retry_at.is_none_or(|at| at <= now));
            if due {
                return Some(task);
            }
        }
        None
    }

    fn earliest_retry(&self) -> Option<Instant> {
        self.lanes.values().filter_map(|lane| lane.retry_at).min()
    }

    /// Tries `task`'s front event once: delivered or given up, it leaves the lane; otherwise
    /// the lane waits for its next try.
    async fn attempt(&mut self, task: EventTask) {
        let Some(pending) = self.lanes.get(&task).and_then(|lane| lane.events.front()) else {
            self.close_lane(&task);
            return;
        };
        let forwarded = self.forwarder.forward(&pending.request).await;
        let now = Instant::now();
        let policy = self.policy;
        let Some(lane) = self.lanes.get_mut(&task) else { return };
        let Some(pending) = lane.events.front_mut() else { return };
        let topic = &pending.topic;
        let done = match forwarded {
            Ok(()) => {
                if pending.failures > 0 {
                    tracing::info!("published {topic} of {task} after {} retries", pending.failures);
                }
                if pending.merged > 0 {
                    tracing::debug!("published {topic} of {task} for {} more OOM kills", pending.merged);
                }
                true
            }
            Err(error @ ForwardError::Refused { .. }) => {
                tracing::error!("dropping the {topic} event of task {task}: {error}");
                true
            }
            Err(error) => {
                pending.failures += 1;
                let failing_since = *pending.failing_since.get_or_insert(now);
                if now.saturating_duration_since(failing_since) >= policy.give_up_after {
                    tracing::error!(
                        "dropping the {topic} event of task {task}: not taken by containerd in {:?} ({} tries): {error}",
                        policy.give_up_after,
                        pending.failures,
                    );
                    true
                } else {
                    // Once per event at warning level, not once per retry.
                    if pending.failures == 1 {
                        tracing::warn!("publishing {topic} of task {task} to containerd: {error}; retrying");
                    } else {
                        tracing::debug!("publishing {topic} of task {task}, retry {}: {error}", pending.failures);
                    }
                    lane.retry_at = Some(now + policy.pause_before(pending.failures));
                    false
                }
            }
        };
        if done {
            lane.events.pop_front();
            lane.retry_at = None;
            if lane.events.is_empty() {
                self.close_lane(&task);
            }
        }
    }

    fn close_lane(&mut self, task: &EventTask) {
        self.lanes.remove(task);
        self.turns.retain(|turn| turn != task);
    }

    /// Answers the flush markers with no event left before them.
    fn answer_flushes(&mut self) {
        if self.flushes.is_empty() {
            return;
        }
        let oldest_waiting = self
            .lanes
            .values()
            .filter_map(|lane| lane.events.front().map(|pending| pending.sequence))
            .min()
            .unwrap_or(self.next_sequence);
        let (answered, waiting) =
            std::mem::take(&mut self.flushes).into_iter().partition(|(before, _)| *before <= oldest_waiting);
        self.flushes = waiting;
        for (_, flushed) in answered {
            let _: Result<(), ()> = flushed.send(());
        }
    }
}

/// containerd gives its ttrpc socket as a path; ttrpc wants a scheme.
fn ttrpc_address(address: &str) -> String {
    if address.contains("://") {
        address.to_string()
    } else {
        format!("unix://{address}")
    }
}

/// One connection to containerd's events service, made when needed.
pub struct TtrpcForwarder {
    address: String,
    client: Option<EventsClient>,
}

impl TtrpcForwarder {
    /// A forwarder to containerd's ttrpc socket at `address`; it connects on the first forward.
    pub fn new(address: &str) -> TtrpcForwarder {
        TtrpcForwarder { address: ttrpc_address(address), client: None }
    }
}

#[async_trait]
impl Forward for TtrpcForwarder {
    /// One try; a failure drops the connection, so the next try makes a new one.
    async fn forward(&mut self, request: &ForwardRequest) -> Result<(), ForwardError> {
        let client = match self.client.take() {
            Some(client) => client,
            None => EventsClient::new(Client::connect(&self.address).await.map_err(|error| ForwardError::Failed {
                reason: format!("connecting to containerd at {}: {error}", self.address),
            })?),
        };
        let context = ttrpc::context::with_duration(FORWARD_TIMEOUT);
        let forwarded = tokio::time::timeout(FORWARD_TIMEOUT, client.forward(context, request)).await;
        match forwarded {
            Ok(Ok(_)) => {
                self.client = Some(client);
                Ok(())
            }
            Ok(Err(error)) => Err(ForwardError::from(error)),
            Err(_) => Err(ForwardError::Failed { reason: format!("no answer within {FORWARD_TIMEOUT:?}") }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use containerd_shim_protos::api::Empty;
    use containerd_shim_protos::shim_async::{create_events, Events};
    use ttrpc::r#async::{Server, TtrpcContext};

    use super::*;

    #[test]
    fn pauses_grow_and_level_off() {
        let policy = RetryPolicy::default();
        let pauses: Vec<u64> = (1..=8).map(|attempt| policy.pause_before(attempt).as_millis() as u64).collect();
        assert_eq!(pauses, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(policy.pause_before(u32::MAX), policy.max_pause);
    }

    #[test]
    fn a_bare_path_gets_the_unix_scheme() {
        assert_eq!(
            ttrpc_address("/run/containerd/containerd.sock.ttrpc"),
            "unix:///run/containerd/containerd.sock.ttrpc"
        );
        assert_eq!(ttrpc_address("unix:///x"), "unix:///x");
    }

    /// containerd's events service, recording the topics it was given.
    #[derive(Clone, Default)]
    struct Recorder {
        topics: Arc<Mutex<Vec<String>>>,
    }

    #[async_trait]
    impl Events for Recorder {
        async fn forward(&self, _context: &TtrpcContext, request: ForwardRequest) -> ttrpc::Result<Empty> {
            self.topics.lock().unwrap().push(request.envelope.topic.clone());
            Ok(Empty::default())
        }
    }

    async fn serve(socket: &std::path::Path, recorder: &Recorder) -> Server {
        let _ = std::fs::remove_file(socket);
        let mut server = Server::new()
            .bind(&format!("unix://{}", socket.display()))
            .unwrap()
            .register_service(create_events(Arc::new(recorder.clone())));
        server.start().await.unwrap();
        server
    }

    fn event(topic: &str) -> Queued {
        task_event("c", topic)
    }

    /// An event of container `container_id` in namespace `ns`.
    fn task_event(container_id: &str, topic: &str) -> Queued {
        let task = EventTask { namespace: "ns".into(), container_id: container_id.into() };
        // The fake containerd below tells tasks apart by the envelope alone.
        let envelope = Envelope { topic: topic.into(), namespace: container_id.into(), ..Default::default() };
        Queued::Event { task, envelope }
    }

    async fn flushed(queue: &mpsc::UnboundedSender<Queued>) {
        let (flushed, done) = oneshot::channel();
        queue.send(Queued::Flush(flushed)).unwrap();
        tokio::time::timeout(Duration::from_secs(20), done).await.expect("delivered in time").unwrap();
    }

    /// containerd as the publisher sees it: records every try as (container, topic), refuses
    /// one event for good and never takes another.
    struct FakeContainerd {
        tries: mpsc::UnboundedSender<(String, String)>,
        refused: (&'static str, &'static str),
        stuck: (&'static str, &'static str),
    }

    #[async_trait]
    impl Forward for FakeContainerd {
        async fn forward(&mut self, request: &ForwardRequest) -> Result<(), ForwardError> {
            let tried = (request.envelope.namespace.clone(), request.envelope.topic.clone());
            let outcome = if tried == (self.refused.0.to_string(), self.refused.1.to_string()) {
                Err(ForwardError::Refused { code: ttrpc::Code::INVALID_ARGUMENT, message: "bad event".into() })
            } else if tried == (self.stuck.0.to_string(), self.stuck.1.to_string()) {
                Err(ForwardError::Failed { reason: "no answer".into() })
            } else {
                Ok(())
            };
            let _ = self.tries.send(tried);
            outcome
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_oom_looping_task_and_its_stuck_and_refused_events_do_not_hold_back_another_tasks_exit() {
        let (tries, mut tried) = mpsc::unbounded_channel();
        let containerd = FakeContainerd { tries, refused: ("a", "/tasks/exec-added"), stuck: ("a", "/tasks/paused") };
        let (queue, receiver) = mpsc::unbounded_channel();
        let publisher = tokio::spawn(publish_all(containerd, receiver, RetryPolicy::default()));

        let a_topics = ["/tasks/create", "/tasks/paused", "/tasks/exec-added"];
        for topic in a_topics {
            queue.send(task_event("a", topic)).unwrap();
        }
        for _ in 0..10_000 {
            queue.send(task_event("a", TASK_OOM_EVENT_TOPIC)).unwrap();
        }
        queue.send(task_event("a", "/tasks/exit")).unwrap();
        queue.send(task_event("b", "/tasks/exit")).unwrap();

        let mut steps = Vec::new();
        let b_exit = ("b".to_string(), "/tasks/exit".to_string());
        let deadline = Instant::now() + Duration::from_secs(10);
        while steps.last() != Some(&b_exit) {
            let step = tokio::time::timeout_at(deadline, tried.recv())
                .await
                .unwrap_or_else(|_| panic!("b's exit not tried within 10 s; {} tries of a before", steps.len()))
                .unwrap();
            steps.push(step);
        }
        assert!(steps.len() <= 3, "b's exit waited behind {:?}", &steps[..steps.len() - 1]);

        // a's events still go in order: the stuck one until it is given up, the refused one
        // once, the OOM loop as one TaskOOM, then a's exit.
        let (flushed, done) = oneshot::channel();
        queue.send(Queued::Flush(flushed)).unwrap();
        drop(queue);
        tokio::time::timeout(RetryPolicy::default().give_up_after * 2, done).await.expect("flushed").unwrap();
        publisher.await.unwrap();
        while let Ok(step) = tried.try_recv() {
            steps.push(step);
        }
        let a_steps: Vec<&str> =
            steps.iter().filter(|(task, _)| task == "a").map(|(_, topic)| topic.as_str()).collect();
        let mut distinct = a_steps.clone();
        distinct.dedup();
        assert_eq!(
            distinct,
            ["/tasks/create", "/tasks/paused", "/tasks/exec-added", TASK_OOM_EVENT_TOPIC, "/tasks/exit"]
        );
        assert_eq!(
            a_steps.iter().filter(|topic| **topic == "/tasks/exec-added").count(),
            1,
            "a refusal is not retried"
        );
        assert_eq!(a_steps.iter().filter(|topic| **topic == TASK_OOM_EVENT_TOPIC).count(), 1, "OOMs merged");
        let stuck_tries = a_steps.iter().filter(|topic| **topic == "/tasks/paused").count();
        assert!((2..1000).contains(&stuck_tries), "the stuck event was tried {stuck_tries} times");
    }

    #[tokio::test]
    async fn a_task_oom_is_merged_only_into_an_unsent_task_oom_right_before_it() {
        let (tries, _tried) = mpsc::unbounded_channel();
        let containerd = FakeContainerd { tries, refused: ("", ""), stuck: ("", "") };
        let mut publisher = Publisher {
            forwarder: containerd,
            policy: RetryPolicy::default(),
            lanes: HashMap::new(),
            turns: VecDeque::new(),
            flushes: Vec::new(),
            next_sequence: 0,
        };
        for topic in [TASK_OOM_EVENT_TOPIC, TASK_OOM_EVENT_TOPIC, "/tasks/exit", TASK_OOM_EVENT_TOPIC] {
            publisher.take(task_event("a", topic));
        }
        publisher.take(task_event("b", TASK_OOM_EVENT_TOPIC));
        let topics = |task: &str| -> Vec<String> {
            let task = EventTask { namespace: "ns".into(), container_id: task.into() };
            publisher.lanes[&task].events.iter().map(|pending| pending.topic.clone()).collect()
        };
        assert_eq!(topics("a"), [TASK_OOM_EVENT_TOPIC, "/tasks/exit", TASK_OOM_EVENT_TOPIC]);
        assert_eq!(topics("b"), [TASK_OOM_EVENT_TOPIC], "another task's OOM is its own");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_reach_a_restarted_containerd_in_order_and_flush_waits_for_delivery() {
        let dir = std::env::temp_dir().join(format!("publisher-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("containerd.sock.ttrpc");
        let first = Recorder::default();
        let mut server = serve(&socket, &first).await;
        let (queue, receiver) = mpsc::unbounded_channel();
        tokio::spawn(publish_all(TtrpcForwarder::new(&socket.display().to_string()), receiver, RetryPolicy::default()));
        queue.send(event("/tasks/create")).unwrap();
        flushed(&queue).await;
        assert_eq!(*first.topics.lock().unwrap(), ["/tasks/create"]);

        // containerd restarts: its old connection is dead, and for a while nobody listens.
        server.shutdown().await.unwrap();
        drop(server);
        queue.send(event("/tasks/start")).unwrap();
        queue.send(event("/tasks/exit")).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let second = Recorder::default();
        let _server = serve(&socket, &second).await;
        queue.send(event("/tasks/delete")).unwrap();
        flushed(&queue).await;
        assert_eq!(*second.topics.lock().unwrap(), ["/tasks/start", "/tasks/exit", "/tasks/delete"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
