//! Delivers task events to containerd's events service (ttrpc `Events/Forward` on containerd's
//! ttrpc socket), one at a time, in the order they were queued, each until containerd has taken
//! it. A forward that fails (containerd restarting, a broken or wedged connection) drops the
//! connection and is tried again, same event, on a new one, after a growing pause: events are
//! never reordered and never dropped while the daemon runs, and containerd gets them once it is
//! back. A flush marker in the queue is answered once everything before it was delivered.
//!
//! (containerd-shim's `RemotePublisher` does none of this: it reconnects only on some errors,
//! puts a failed event behind later ones, gives up after five tries, and acknowledges an event
//! when it is queued, so a stopping daemon cannot know it was delivered.)

use std::time::Duration;

use containerd_shim_protos::api::ForwardRequest;
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim_async::{Client, EventsClient};
use tokio::sync::{mpsc, oneshot};

/// How long one forward may take before the connection counts as wedged.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// The first pause before a retry; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// What the publisher's queue carries.
pub enum Queued {
    /// An event, ready to forward.
    Event(Envelope),
    /// Answered once every event queued before it has been delivered.
    Flush(oneshot::Sender<()>),
}

/// Forwards everything queued to containerd at `address` until the queue closes.
pub async fn publish_all(address: String, mut queue: mpsc::UnboundedReceiver<Queued>) {
    let mut connection = Connection { address: ttrpc_address(&address), client: None };
    while let Some(queued) = queue.recv().await {
        match queued {
            Queued::Event(envelope) => connection.deliver(envelope).await,
            Queued::Flush(flushed) => {
                let _ = flushed.send(());
            }
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

/// The pause before retry number `attempt` (1 for the first retry).
fn pause_before(attempt: u32) -> Duration {
    FIRST_PAUSE.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(MAX_PAUSE)
}

/// One connection to containerd's events service, made when needed.
struct Connection {
    address: String,
    client: Option<EventsClient>,
}

impl Connection {
    /// Forwards `envelope`, retrying until containerd has it.
    async fn deliver(&mut self, envelope: Envelope) {
        let topic = envelope.topic.clone();
        let request = ForwardRequest { envelope: Some(envelope).into(), ..Default::default() };
        let mut attempt = 0;
        loop {
            match self.forward(&request).await {
                Ok(()) => {
                    if attempt > 0 {
                        tracing::info!("published {topic} after {attempt} retries");
                    }
                    return;
                }
                Err(error) => {
                    attempt += 1;
                    // Once per event at warning level, not once per retry.
                    if attempt == 1 {
                        tracing::warn!("publishing {topic} to containerd at {}: {error}; retrying", self.address);
                    } else {
                        tracing::debug!("publishing {topic}, retry {attempt}: {error}");
                    }
                    tokio::time::sleep(pause_before(attempt)).await;
                }
            }
        }
    }

    /// One try; a failure drops the connection, so the next try makes a new one.
    async fn forward(&mut self, request: &ForwardRequest) -> Result<(), String> {
        let client = match self.client.take() {
            Some(client) => client,
            None => EventsClient::new(Client::connect(&self.address).await.map_err(|error| error.to_string())?),
        };
        let context = ttrpc::context::with_duration(FORWARD_TIMEOUT);
        let forwarded = tokio::time::timeout(FORWARD_TIMEOUT, client.forward(context, request)).await;
        match forwarded {
            Ok(Ok(_)) => {
                self.client = Some(client);
                Ok(())
            }
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no answer within {FORWARD_TIMEOUT:?}")),
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
        let pauses: Vec<u64> = (1..=8).map(|attempt| pause_before(attempt).as_millis() as u64).collect();
        assert_eq!(pauses, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(pause_before(u32::MAX), MAX_PAUSE);
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
        Queued::Event(Envelope { topic: topic.into(), namespace: "ns".into(), ..Default::default() })
    }

    async fn flushed(queue: &mpsc::UnboundedSender<Queued>) {
        let (flushed, done) = oneshot::channel();
        queue.send(Queued::Flush(flushed)).unwrap();
        tokio::time::timeout(Duration::from_secs(20), done).await.expect("delivered in time").unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_reach_a_restarted_containerd_in_order_and_flush_waits_for_delivery() {
        let dir = std::env::temp_dir().join(format!("publisher-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("containerd.sock.ttrpc");
        let first = Recorder::default();
        let mut server = serve(&socket, &first).await;
        let (queue, receiver) = mpsc::unbounded_channel();
        tokio::spawn(publish_all(socket.display().to_string(), receiver));
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
