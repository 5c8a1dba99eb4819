//! Harness for the logging and tracing tests: an in-process OTLP/HTTP receiver that keeps the
//! spans it is sent, a containerd of the test's own in the sandbox (beside the shared one, so
//! its environment can point containerd and our daemon at the receiver), and the daemon's
//! journal as JSON.
//!
//! The sandbox shares the host's network namespace, so the daemon and containerd inside it
//! reach the receiver on 127.0.0.1.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;

use super::{unique_id, wait_until, Run, Sandbox, IMAGE};

/// One span as the receiver got it.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// `service.name` of the resource that sent it.
    pub service: String,
    /// The span's name.
    pub name: String,
    /// Trace id, lower-case hex.
    pub trace_id: String,
    /// Span id, lower-case hex.
    pub span_id: String,
    /// Parent span id, lower-case hex; empty for a root span.
    pub parent_span_id: String,
    /// OTLP `SpanKind` (2 server, 3 client).
    pub kind: i32,
    /// OTLP status code (2 is error).
    pub status_code: i32,
    /// Attributes, values as text.
    pub attributes: HashMap<String, String>,
}

impl ReceivedSpan {
    /// The attribute `key`, if the span has it.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// OTLP `SpanKind` of a server span.
pub const SPAN_KIND_SERVER: i32 = 2;
/// OTLP `SpanKind` of a client span.
pub const SPAN_KIND_CLIENT: i32 = 3;
/// OTLP `StatusCode` of a failed span.
pub const STATUS_ERROR: i32 = 2;

#[derive(Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    /// Requests that were not valid OTLP/HTTP protobuf trace exports.
    errors: Vec<String>,
}

/// A minimal OTLP/HTTP receiver (`POST /v1/traces`, protobuf) on 127.0.0.1.
pub struct OtlpReceiver {
    port: u16,
    received: Arc<Mutex<Received>>,
    stopping: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl OtlpReceiver {
    /// Listens on a free port of 127.0.0.1.
    pub fn start() -> OtlpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the OTLP receiver");
        let port = listener.local_addr().expect("receiver address").port();
        let received = Arc::new(Mutex::new(Received::default()));
        let stopping = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let received = Arc::clone(&received);
            let stopping = Arc::clone(&stopping);
            std::thread::spawn(move || {
                for connection in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(connection) = connection else { continue };
                    let received = Arc::clone(&received);
                    // Ends when the exporter closes its keep-alive connection or goes quiet.
                    std::thread::spawn(move || serve_connection(connection, &received));
                }
            })
        };
        OtlpReceiver { port, received, stopping, acceptor: Some(acceptor) }
    }

    /// The base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` takes it.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.lock().spans.clone()
    }

    /// What was sent that is not a valid trace export.
    pub fn errors(&self) -> Vec<String> {
        self.lock().errors.clone()
    }

    /// Waits until `condition` holds for the spans received (exporters send in batches, every
    /// few seconds); returns them either way.
    pub fn wait_for(&self, timeout: Duration, condition: impl Fn(&[ReceivedSpan]) -> bool) -> Vec<ReceivedSpan> {
        wait_until(timeout, || condition(&self.spans()));
        self.spans()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the acceptor, which sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Serves HTTP/1.1 requests on `connection` until it closes: each `POST /v1/traces` body is
/// decoded and kept, and answered `200` with an empty `ExportTraceServiceResponse`.
fn serve_connection(connection: TcpStream, received: &Mutex<Received>) {
    let _ = connection.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(mut writer) = connection.try_clone() else { return };
    let mut reader = BufReader::new(connection);
    loop {
        let mut request_line = String::new();
        match reader.read_line(&mut request_line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut content_length = 0usize;
        let mut content_type = String::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => content_length = value.trim().parse().unwrap_or(0),
                    "content-type" => content_type = value.trim().to_string(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let outcome = if !request_line.starts_with("POST /v1/traces ") {
            Err(format!("unexpected request {:?}", request_line.trim_end()))
        } else if content_type != "application/x-protobuf" {
            Err(format!("unexpected content type {content_type:?}"))
        } else {
            ExportTraceServiceRequest::decode(body.as_slice())
                .map(|request| spans_of(&request))
                .map_err(|error| format!("undecodable export: {error}"))
        };
        {
            let mut received = received.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match outcome {
                Ok(spans) => received.spans.extend(spans),
                Err(error) => received.errors.push(error),
            }
        }
        let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn spans_of(request: &ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut spans = Vec::new();
    for resource_spans in &request.resource_spans {
        let resource_attributes =
            resource_spans.resource.as_ref().map(|r| attributes(&r.attributes)).unwrap_or_default();
        let service = resource_attributes.get("service.name").cloned().unwrap_or_default();
        for scope_spans in &resource_spans.scope_spans {
            for span in &scope_spans.spans {
                spans.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    kind: span.kind,
                    status_code: span.status.as_ref().map_or(0, |status| status.code),
                    attributes: attributes(&span.attributes),
                });
            }
        }
    }
    spans
}

fn attributes(list: &[KeyValue]) -> HashMap<String, String> {
    list.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|value| value.value.as_ref()) {
                Some(Value::StringValue(text)) => text.clone(),
                Some(Value::IntValue(number)) => number.to_string(),
                Some(Value::BoolValue(flag)) => flag.to_string(),
                Some(Value::DoubleValue(number)) => number.to_string(),
                Some(other) => format!("{other:?}"),
                None => String::new(),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A containerd of the test's own in the sandbox: its own unit, socket, state and root, our
/// shim (the one `SHIM_TEST_SHIM` names) first on its `PATH`, and `env` in its environment, so
/// our shim serves it with a daemon of its own. Stopped, with that daemon, on drop.
pub struct SideContainerd {
    sandbox: &'static Sandbox,
    unit: String,
    /// containerd's gRPC socket (in the sandbox).
    pub address: String,
    state: String,
    root: PathBuf,
    config: PathBuf,
    /// containerd's major version (1 or 2).
    pub major_version: u32,
}

impl SideContainerd {
    /// Starts containerd (the version under test) with `env` (`NAME=value`) added.
    pub fn start(sandbox: &'static Sandbox, env: &[&str]) -> SideContainerd {
        let name = unique_id("side-containerd");
        let state = format!("/run/{name}");
        let address = format!("{state}/containerd.sock");
        let root = sandbox.root.join(format!("{name}-root"));
        let config = sandbox.root.join(format!("{name}.toml"));
        let major_version = containerd_major_version(&sandbox.containerd);
        // 1.7 and 2.x run NRI by default, on a fixed socket the shared containerd already uses.
        let nri = if major_version >= 2 { "[plugins.\"io.containerd.nri.v1.nri\"]\n  disable = true\n" } else { "" };
        let toml = format!(
            "version = 2\nroot = \"{}\"\nstate = \"{state}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{address}\"\n{nri}",
            root.display()
        );
        std::fs::write(&config, toml).expect("write the side containerd's config");
        let shim_dir = std::path::Path::new(&sandbox.shim).parent().expect("shim directory").display().to_string();
        let containerd_dir =
            std::path::Path::new(&sandbox.containerd).parent().expect("containerd directory").display().to_string();
        let unit = format!("{name}.service");
        let path =
            format!("PATH={shim_dir}:{containerd_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        let unit_arg = format!("--unit={unit}");
        let mut args = vec![
            "systemd-run",
            "--quiet",
            unit_arg.as_str(),
            "-p",
            "Type=notify",
            "-p",
            "Delegate=yes",
            "-p",
            "KillMode=process",
            "-E",
            path.as_str(),
        ];
        for variable in env {
            args.extend(["-E", variable]);
        }
        let config_text = config.to_str().expect("utf-8 path");
        args.extend([sandbox.containerd.as_str(), "--config", config_text]);
        sandbox.run(&args).success("starting the side containerd");
        SideContainerd { sandbox, unit, address, state, root, config, major_version }
    }

    /// `ctr -a ADDRESS -n NAMESPACE args…`.
    pub fn ctr(&self, namespace: &str, args: &[&str]) -> Run {
        let mut all = vec![self.sandbox.ctr.as_str(), "-a", self.address.as_str(), "-n", namespace];
        all.extend_from_slice(args);
        self.sandbox.run(&all)
    }

    /// Imports the test image into `namespace`.
    pub fn import_image(&self, namespace: &str) {
        let archive = self.sandbox.root.join("busybox-oci.tar");
        self.ctr(namespace, &["images", "import", archive.to_str().expect("utf-8 path")]).success("ctr images import");
    }

    /// `ctr run --rm --runtime io.containerd.systemd.v1 IMAGE ID command…`.
    pub fn ctr_run(&self, namespace: &str, id: &str, command: &[&str]) -> Run {
        let mut args = vec!["run", "--rm", "--runtime", super::RUNTIME, IMAGE, id];
        args.extend_from_slice(command);
        self.ctr(namespace, &args)
    }

    /// `ctr task ls`'s pid and status of task `id` in `namespace`.
    pub fn task_status(&self, namespace: &str, id: &str) -> Option<(u32, String)> {
        super::listed_task(&self.ctr(namespace, &["task", "ls"]).stdout, id)
    }

    /// The unit our daemon serving this containerd gives task `id` of `namespace` (not the
    /// default containerd's: its names carry the daemon's tag).
    pub fn unit_of(&self, namespace: &str, id: &str) -> String {
        super::unit_of_containerd(&self.address, namespace, id)
    }

    /// The unit of our daemon serving this containerd, once `start` launched it.
    pub fn daemon_unit(&self) -> Option<String> {
        let unit = shim::paths::DaemonIdentity::for_containerd(&self.address).unit;
        self.sandbox.unit_loaded(&unit).then_some(unit)
    }

    /// The daemon's journal entries whose `CONTAINER_ID` is `id`, as JSON objects.
    pub fn daemon_journal_of(&self, id: &str) -> Vec<serde_json::Value> {
        let Some(unit) = self.daemon_unit() else { return Vec::new() };
        let filter = format!("CONTAINER_ID={id}");
        let run = self.sandbox.run(&["journalctl", "--no-pager", "-o", "json", "-u", &unit, &filter]);
        run.stdout.lines().filter_map(|line| serde_json::from_str(line).ok()).collect()
    }
}

impl Drop for SideContainerd {
    fn drop(&mut self) {
        if let Some(daemon) = self.daemon_unit() {
            self.sandbox.run(&["systemctl", "stop", &daemon]);
            self.sandbox.run(&["systemctl", "reset-failed", &daemon]);
        }
        self.sandbox.run(&["systemctl", "stop", &self.unit]);
        self.sandbox.run(&["systemctl", "reset-failed", &self.unit]);
        self.sandbox.run(&["rm", "-rf", &self.state]);
        let _ = std::fs::remove_dir_all(&self.root);
        let _ = std::fs::remove_file(&self.config);
    }
}

/// The major version `containerd --version` reports (`… v1.6.20 …`, `… 2.1.9~ds1 …`).
fn containerd_major_version(containerd: &str) -> u32 {
    let output = std::process::Command::new(containerd).arg("--version").output().expect("containerd --version");
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .skip(1)
        .map(|word| word.trim_start_matches('v'))
        .find_map(|word| word.split('.').next().filter(|_| word.contains('.')).and_then(|major| major.parse().ok()))
        .unwrap_or_else(|| panic!("no version in {text:?}"))
}

/// The values of journal field `name` in a `journalctl -o json` entry (a field sent more than
/// once is an array there).
pub fn journal_field(entry: &serde_json::Value, name: &str) -> Vec<String> {
    match entry.get(name) {
        Some(serde_json::Value::String(value)) => vec![value.clone()],
        Some(serde_json::Value::Array(values)) => {
            values.iter().filter_map(|value| value.as_str().map(str::to_string)).collect()
        }
        _ => Vec::new(),
    }
}
