//! containerd's event stream (`Events.Subscribe`) for the benchmark's namespace, reduced to what
//! the benchmark times: the instant each task's `TaskExit` reached us.
//!
//! containerd's Go gRPC server sends a stream's response headers only with its first message,
//! so `Subscribe` returns only once an event has arrived. The stream is read on a thread of
//! its own, and [`ExitWatch::subscribe`] returns once it provably receives events: it creates and
//! removes marker containers until one of their events comes through.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use containerd_client::events::TaskExit;
use containerd_client::services::v1::events_client::EventsClient;
use containerd_client::services::v1::SubscribeRequest;
use containerd_client::tonic::metadata::AsciiMetadataValue;
use containerd_client::tonic::Request;
use prost::Message;
use tokio::sync::{oneshot, watch};

use super::target::Target;
use super::Error;
use crate::grpc::{Client, ContainerConfig};
use crate::unique_id;

/// The topic containerd publishes `TaskExit` under.
const TASK_EXIT_TOPIC: &str = "/tasks/exit";
/// How long [`ExitWatch::subscribe`] tries to see its marker events.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long it waits for one marker's events before trying another.
const MARKER_WAIT: Duration = Duration::from_secs(1);

/// What the stream has delivered so far.
#[derive(Debug, Default)]
struct Seen {
    /// Envelopes of any topic: the subscription is live once this is non-zero.
    envelopes: u64,
    /// When the first `TaskExit` of each container's init arrived.
    exits: HashMap<String, Instant>,
    /// Why the stream ended, if it did.
    ended: Option<String>,
    /// Whether the reading thread runs at real-time priority.
    realtime: bool,
}

/// A live subscription to the namespace's events, read on a thread of its own.
pub struct ExitWatch {
    seen: watch::Receiver<Seen>,
    stop: Option<oneshot::Sender<()>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ExitWatch {
    /// Subscribes to every event of the target's namespace (`client` is connected to it) and returns once the subscription
    /// delivers them. Marker containers are made with `runtime` (no task is created).
    ///
    /// The stream is read by a real-time thread (see [`super::realtime`]) with a runtime and a
    /// connection of its own, so an arrival is stamped the moment it is read off the socket.
    pub async fn subscribe(target: &Target, client: &Client, runtime: &str) -> Result<ExitWatch, Error> {
        let namespace = client.namespace().to_string();
        let header = namespace
            .parse::<AsciiMetadataValue>()
            .map_err(|_| Error::Events { reason: format!("namespace {namespace:?} is not a header value") })?;
        let socket = target.sandbox.host_path(&target.address);
        let (sender, seen) = watch::channel(Seen::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let filter = format!("namespace=={namespace:?}");
        let reader = std::thread::Builder::new()
            .name("bench-events".into())
            .spawn(move || {
                let realtime = super::realtime::raise_current_thread();
                sender.send_modify(|seen| seen.realtime = realtime);
                let ended = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime.block_on(async {
                        tokio::select! {
                            ended = subscribe_and_read(&socket, header, filter, &sender) => ended,
                            _ = stopped => "the benchmark stopped reading".into(),
                        }
                    }),
                    Err(error) => format!("no runtime for the event reader: {error}"),
                };
                sender.send_modify(|seen| seen.ended = Some(ended));
            })
            .map_err(|source| Error::Spawn { what: "the event reader thread", source })?;
        let watch = ExitWatch { seen, stop: Some(stop), reader: Some(reader) };
        watch.wait_until_live(client, runtime).await?;
        Ok(watch)
    }

    /// Whether arrivals are stamped by a real-time thread.
    pub fn realtime(&self) -> bool {
        self.seen.borrow().realtime
    }

    async fn wait_until_live(&self, client: &Client, runtime: &str) -> Result<(), Error> {
        let deadline = Instant::now() + SUBSCRIBE_TIMEOUT;
        while Instant::now() < deadline {
            let marker = unique_id("bench-events-marker");
            let container = client.create_container(&ContainerConfig::busybox(&marker, runtime, &["true"])).await?;
            container.cleanup().await?;
            let mut seen = self.seen.clone();
            let live = seen.wait_for(|seen| seen.envelopes > 0 || seen.ended.is_some());
            if tokio::time::timeout(MARKER_WAIT, live).await.is_ok() {
                let seen = self.seen.borrow();
                return match &seen.ended {
                    Some(reason) if seen.envelopes == 0 => Err(Error::Events { reason: reason.clone() }),
                    _ => Ok(()),
                };
            }
        }
        Err(Error::Events { reason: format!("no event arrived within {SUBSCRIBE_TIMEOUT:?} of subscribing") })
    }

    /// When container `id`'s `TaskExit` arrived, if it has.
    pub fn exit_of(&self, id: &str) -> Option<Instant> {
        self.seen.borrow().exits.get(id).copied()
    }

    /// Waits until the `TaskExit` of every container in `ids` has arrived; returns the arrival
    /// instants in the order of `ids`.
    pub async fn wait_for_exits(&self, ids: &[String], timeout: Duration) -> Result<Vec<Instant>, Error> {
        let mut seen = self.seen.clone();
        let all_arrived = |seen: &Seen| seen.ended.is_some() || ids.iter().all(|id| seen.exits.contains_key(id));
        // Timing out is not an error of its own: what is missing is reported below.
        let _ = tokio::time::timeout(timeout, seen.wait_for(all_arrived)).await;
        let seen = self.seen.borrow();
        let missing: Vec<String> = ids.iter().filter(|id| !seen.exits.contains_key(*id)).cloned().collect();
        if missing.is_empty() {
            return Ok(ids.iter().map(|id| seen.exits[id]).collect());
        }
        match &seen.ended {
            Some(reason) => Err(Error::Events { reason: reason.clone() }),
            None => Err(Error::ExitsMissing { missing, timeout }),
        }
    }
}

impl Drop for ExitWatch {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// Subscribes with `filter` and records every envelope until the stream ends; returns why it
/// ended.
async fn subscribe_and_read(
    socket: &std::path::Path,
    namespace: AsciiMetadataValue,
    filter: String,
    sender: &watch::Sender<Seen>,
) -> String {
    let channel = match containerd_client::connect(socket).await {
        Ok(channel) => channel,
        Err(error) => return format!("connecting to {}: {error}", socket.display()),
    };
    let mut request = Request::new(SubscribeRequest { filters: vec![filter] });
    request.metadata_mut().insert("containerd-namespace", namespace);
    match EventsClient::new(channel).subscribe(request).await {
        Ok(response) => read_stream(response.into_inner(), sender).await,
        Err(status) => format!("Events.Subscribe failed: {status}"),
    }
}

/// Records every envelope until the stream ends; returns why it ended.
async fn read_stream(
    mut stream: containerd_client::tonic::Streaming<containerd_client::types::Envelope>,
    sender: &watch::Sender<Seen>,
) -> String {
    loop {
        match stream.message().await {
            Ok(Some(envelope)) => {
                let arrived = Instant::now();
                let exit = (envelope.topic == TASK_EXIT_TOPIC)
                    .then(|| envelope.event.as_ref().and_then(|any| TaskExit::decode(any.value.as_slice()).ok()))
                    .flatten()
                    // The init's exit; an exec's carries the exec id.
                    .filter(|exit| exit.id.is_empty() || exit.id == exit.container_id);
                sender.send_modify(|seen| {
                    seen.envelopes += 1;
                    if let Some(exit) = exit {
                        seen.exits.entry(exit.container_id).or_insert(arrived);
                    }
                });
            }
            Ok(None) => return "containerd closed the event stream".into(),
            Err(status) => return format!("the event stream failed: {status}"),
        }
    }
}
