//! The tracing subscriber of every process of ours, and the daemon's spans and their export.
//!
//! Every process logs through [`crate::logging`]'s sink. The daemon also opens a span for each
//! task API call (`task.Create`, `task.Start`, …, see [`task_span!`]), each D-Bus call to
//! systemd (`dbus`, exported as `dbus.<Method>`) and each runc run (`runc`, exported as
//! `runc.<command>`), and exports them over OTLP when the standard `OTEL_EXPORTER_OTLP_*`
//! variables ask for it ([`otlp`]). A task API span's parent is the span containerd sent in
//! the request's ttrpc metadata ([`propagation`]), so our spans join containerd's traces.

pub mod otlp;
pub mod propagation;

use std::collections::HashMap;
use std::fmt::Display;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::logging::{LogTarget, IDENTIFIER};
use otlp::ExportSetting;

/// Our crates' log targets: their events are logged at the chosen level, other crates' (zbus,
/// ttrpc, the OpenTelemetry SDK) only from warnings up, or from info up with `-debug`.
const OUR_TARGETS: [&str; 5] = ["containerd_shim_systemd_v1", "shim", "runc_wrap", "unit_gen", "pty"];

/// Whether spans may be exported.
pub enum Export {
    /// Never (`start`, `delete`, the helper: short-lived and on containerd's critical path).
    Off,
    /// When the environment, or else the configuration file (`configured_endpoint`), names an
    /// OTLP endpoint, with requests run on `runtime`.
    Otlp {
        /// The daemon's runtime.
        runtime: tokio::runtime::Handle,
        /// `[tracing] otlp_endpoint` of the configuration file.
        configured_endpoint: Option<String>,
    },
}

/// What [`init`] installed; [`Telemetry::shutdown`] flushes spans not yet exported.
#[must_use = "call shutdown() before exiting, or queued spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports what is queued and stops the exporter. Call it off the runtime's thread (the export
    /// requests run on the runtime) while the runtime still runs.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(error) = provider.shutdown() {
                tracing::warn!("exporting the last spans: {error}");
            }
        }
    }
}

/// Installs the global subscriber: the log sink for `target` at info (debug with `debug`), and
/// with [`Export::Otlp`] the OpenTelemetry layer when an endpoint is configured.
/// Without an endpoint, no exporter, thread or client is created.
pub fn init(target: LogTarget, debug: bool, export: Export) -> Telemetry {
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = Vec::new();
    if let Some(log) = crate::logging::layer(target, target.current_sink()) {
        layers.push(log.with_filter(level_filter(debug)).boxed());
    }
    let mut provider = None;
    let mut export_problem = None;
    let mut endpoint = None;
    if let Export::Otlp { runtime, configured_endpoint } = export {
        match otlp::export_setting(|name| std::env::var(name).ok(), configured_endpoint.as_deref()) {
            ExportSetting::Off => {}
            ExportSetting::Unsupported { reason } => export_problem = Some(format!("not exporting traces: {reason}")),
            ExportSetting::Http { endpoint: named, traces_url, timeout } => {
                match otlp::tracer_provider(&runtime, traces_url.as_deref(), timeout) {
                    Ok(built) => {
                        layers.push(otel_layer(&built, debug));
                        provider = Some(built);
                        endpoint = Some(named);
                    }
                    Err(error) => export_problem = Some(format!("not exporting traces to {named}: {error}")),
                }
            }
        }
    }
    // Only fails when a subscriber is already installed (tests), which then stays.
    let _ = tracing_subscriber::registry().with(layers).try_init();
    if let Some(problem) = export_problem {
        tracing::warn!("{problem}");
    }
    if let Some(endpoint) = endpoint {
        tracing::info!("exporting traces over OTLP/HTTP to {endpoint}");
    }
    Telemetry { provider }
}

/// The OpenTelemetry layer for `provider`'s tracer: our spans, and the events inside them as
/// span events.
fn otel_layer(provider: &SdkTracerProvider, debug: bool) -> Box<dyn Layer<Registry> + Send + Sync> {
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(IDENTIFIER))
        .with_threads(false)
        .with_filter(level_filter(debug))
        .boxed()
}

fn level_filter(debug: bool) -> Targets {
    let (ours, others) =
        if debug { (LevelFilter::DEBUG, LevelFilter::INFO) } else { (LevelFilter::INFO, LevelFilter::WARN) };
    Targets::new().with_default(others).with_targets(OUR_TARGETS.map(|target| (target, ours)))
}

/// Finishes a task API call's span made by [`task_span!`]: records the exec id when there is
/// one, and makes the span a child of the span containerd sent in `metadata`, if any.
pub fn serving(span: Span, metadata: &HashMap<String, Vec<String>>, exec_id: &str) -> Span {
    if !exec_id.is_empty() {
        span.record("exec_id", exec_id);
    }
    if let Some(parent) = propagation::remote_parent(metadata) {
        // Fails only when no OpenTelemetry layer is installed: nothing to join then.
        let _ = span.set_parent(parent);
    }
    span
}

/// Marks `span` (one with the `otel.status_code` and `otel.status_description` fields) failed.
pub fn record_failure(span: &Span, error: &dyn Display) {
    span.record("otel.status_code", "ERROR");
    span.record("otel.status_description", tracing::field::display(error));
}

/// The span of one task API call, named `task.<Method>`, with the fields `namespace`,
/// `container_id` and (when not empty) `exec_id`, as a child of the span containerd sent in
/// the call's ttrpc metadata:
/// `task_span!("Start", ctx, self.namespace, request.id, request.exec_id)`.
#[macro_export]
macro_rules! task_span {
    ($method:literal, $ctx:expr, $namespace:expr, $id:expr) => {
        $crate::task_span!($method, $ctx, $namespace, $id, "")
    };
    ($method:literal, $ctx:expr, $namespace:expr, $id:expr, $exec_id:expr) => {
        $crate::telemetry::serving(
            ::tracing::info_span!(
                concat!("task.", $method),
                otel.kind = "server",
                namespace = %$namespace,
                container_id = %$id,
                exec_id = ::tracing::field::Empty,
                otel.status_code = ::tracing::field::Empty,
                otel.status_description = ::tracing::field::Empty,
            ),
            &$ctx.metadata,
            &$exec_id,
        )
    };
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};

    use super::*;

    /// What `task_span!` reads from a `TtrpcContext`.
    struct FakeContext {
        metadata: HashMap<String, Vec<String>>,
    }

    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

    fn context_with_traceparent() -> FakeContext {
        let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01");
        FakeContext { metadata: HashMap::from([("traceparent".to_string(), vec![traceparent])]) }
    }

    /// Runs `body` under a subscriber exporting to memory, and returns the finished spans.
    fn exported(body: impl FnOnce()) -> Vec<SpanData> {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        let subscriber = tracing_subscriber::registry().with(vec![otel_layer(&provider, false)]);
        tracing::subscriber::with_default(subscriber, body);
        provider.force_flush().expect("flush");
        exporter.get_finished_spans().expect("spans")
    }

    fn attribute(span: &SpanData, key: &str) -> Option<String> {
        span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
    }

    #[test]
    fn a_task_span_is_named_after_its_method_and_joins_containerds_trace() {
        let ctx = context_with_traceparent();
        let spans = exported(|| {
            let namespace = "default".to_string();
            let span = crate::task_span!("Create", ctx, namespace, "c1");
            span.in_scope(|| tracing::info!("creating"));
        });
        let [span] = spans.as_slice() else { panic!("one span expected: {spans:?}") };
        assert_eq!(span.name, "task.Create");
        assert_eq!(span.span_kind, SpanKind::Server);
        assert_eq!(span.span_context.trace_id(), TraceId::from_hex(TRACE_ID).unwrap());
        assert_eq!(span.parent_span_id, SpanId::from_hex(PARENT_SPAN_ID).unwrap());
        assert!(span.parent_span_is_remote);
        assert_eq!(attribute(span, "namespace").as_deref(), Some("default"));
        assert_eq!(attribute(span, "container_id").as_deref(), Some("c1"));
        assert_eq!(attribute(span, "exec_id"), None, "an init's span has no exec id");
        assert_eq!(span.events.len(), 1, "the log line is a span event");
    }

    #[test]
    fn an_exec_span_carries_the_exec_id() {
        let ctx = FakeContext { metadata: HashMap::new() };
        let spans = exported(|| drop(crate::task_span!("Start", ctx, "ns", "c1", "e1")));
        let [span] = spans.as_slice() else { panic!("one span expected: {spans:?}") };
        assert_eq!(span.name, "task.Start");
        assert_eq!(attribute(span, "exec_id").as_deref(), Some("e1"));
        assert_eq!(span.parent_span_id, SpanId::INVALID, "no traceparent: a root span");
    }

    #[test]
    fn child_spans_share_the_task_spans_trace() {
        let ctx = context_with_traceparent();
        let spans = exported(|| {
            let span = crate::task_span!("Delete", ctx, "ns", "c1");
            span.in_scope(|| {
                let child = tracing::info_span!("runc", otel.name = "runc.delete", otel.kind = "client");
                drop(child.entered());
            });
        });
        let task = spans.iter().find(|span| span.name == "task.Delete").expect("task span");
        let child = spans.iter().find(|span| span.name == "runc.delete").expect("runc span");
        assert_eq!(child.span_context.trace_id(), task.span_context.trace_id());
        assert_eq!(child.parent_span_id, task.span_context.span_id());
        assert_eq!(child.span_kind, SpanKind::Client);
    }

    #[test]
    fn debug_lowers_our_level_to_debug_and_other_crates_to_info() {
        use tracing::Level;
        let normal = level_filter(false);
        assert!(normal.would_enable("shim::daemon::exits", &Level::INFO));
        assert!(!normal.would_enable("shim::daemon::exits", &Level::DEBUG));
        assert!(normal.would_enable("runc_wrap::runc", &Level::INFO));
        assert!(!normal.would_enable("zbus::connection", &Level::INFO));
        assert!(normal.would_enable("ttrpc::asynchronous::server", &Level::WARN));
        let debug = level_filter(true);
        assert!(debug.would_enable("shim::daemon::exits", &Level::DEBUG));
        assert!(debug.would_enable("containerd_shim_systemd_v1", &Level::DEBUG));
        assert!(debug.would_enable("zbus::connection", &Level::INFO));
        assert!(!debug.would_enable("zbus::connection", &Level::DEBUG));
    }

    #[test]
    fn a_failed_call_marks_its_span_as_an_error() {
        let ctx = FakeContext { metadata: HashMap::new() };
        let spans = exported(|| {
            let span = crate::task_span!("Kill", ctx, "ns", "c1");
            record_failure(&span, &"task c1 not found");
        });
        let [span] = spans.as_slice() else { panic!("one span expected: {spans:?}") };
        assert_eq!(span.status, Status::error("task c1 not found"));
    }
}
