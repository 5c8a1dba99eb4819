//! The trace context containerd sends with a ttrpc request. containerd 2.x's shim client uses
//! the `otelttrpc` client interceptor, which injects its span with the W3C Trace Context
//! propagator (`traceparent`, `tracestate`) into the request's ttrpc metadata when containerd's
//! tracing is on; containerd 1.6 and 1.7 send none.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// ttrpc request metadata (`TtrpcContext::metadata`) read as a propagation carrier. Keys are
/// lower case on the wire (Go's `ttrpc.MD.Set` lowers them); a key sent twice uses its first
/// value.
struct MetadataCarrier<'a>(&'a HashMap<String, Vec<String>>);

impl Extractor for MetadataCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|values| values.first()).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The remote parent the request's metadata names, or `None` when it carries no valid
/// `traceparent`.
pub fn remote_parent(metadata: &HashMap<String, Vec<String>>) -> Option<Context> {
    if !metadata.contains_key("traceparent") {
        return None;
    }
    let context = TraceContextPropagator::new().extract_with_context(&Context::new(), &MetadataCarrier(metadata));
    context.span().span_context().is_valid().then_some(context)
}

/// The span context of [`remote_parent`], for tests and diagnostics.
pub fn remote_span_context(metadata: &HashMap<String, Vec<String>>) -> Option<SpanContext> {
    remote_parent(metadata).map(|context| context.span().span_context().clone())
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId};

    use super::*;

    fn metadata(entries: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
        let mut metadata: HashMap<String, Vec<String>> = HashMap::new();
        for (key, value) in entries {
            metadata.entry(key.to_string()).or_default().push(value.to_string());
        }
        metadata
    }

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_in_ttrpc_metadata_becomes_the_remote_parent() {
        let parent = remote_span_context(&metadata(&[("traceparent", TRACEPARENT), ("other", "x")]))
            .expect("a valid traceparent");
        assert_eq!(parent.trace_id(), TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap());
        assert_eq!(parent.span_id(), SpanId::from_hex("00f067aa0ba902b7").unwrap());
        assert!(parent.is_remote());
        assert_eq!(parent.trace_flags(), TraceFlags::SAMPLED);
    }

    #[test]
    fn tracestate_comes_along() {
        let parent = remote_span_context(&metadata(&[("traceparent", TRACEPARENT), ("tracestate", "vendor=value")]))
            .expect("a valid traceparent");
        assert_eq!(parent.trace_state().get("vendor"), Some("value"));
    }

    #[test]
    fn an_unsampled_parent_stays_unsampled() {
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let parent = remote_span_context(&metadata(&[("traceparent", unsampled)])).expect("a valid traceparent");
        assert!(!parent.is_sampled());
    }

    #[test]
    fn bad_or_missing_traceparents_give_no_parent() {
        struct Case {
            name: &'static str,
            entries: &'static [(&'static str, &'static str)],
        }
        let cases = [
            Case { name: "no metadata", entries: &[] },
            Case { name: "unrelated metadata only", entries: &[("containerd-namespace", "default")] },
            Case { name: "not a traceparent", entries: &[("traceparent", "garbage")] },
            Case {
                name: "all-zero trace id",
                entries: &[("traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01")],
            },
            Case {
                name: "all-zero span id",
                entries: &[("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01")],
            },
            Case {
                name: "unknown version ff",
                entries: &[("traceparent", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")],
            },
            Case { name: "upper-case key (keys are lower case on the wire)", entries: &[("Traceparent", TRACEPARENT)] },
        ];
        for case in cases {
            assert!(remote_parent(&metadata(case.entries)).is_none(), "{}", case.name);
        }
    }

    #[test]
    fn the_first_of_repeated_traceparents_wins() {
        let other = "00-11111111111111111111111111111111-2222222222222222-01";
        let parent = remote_span_context(&metadata(&[("traceparent", TRACEPARENT), ("traceparent", other)]))
            .expect("a valid traceparent");
        assert_eq!(parent.span_id(), SpanId::from_hex("00f067aa0ba902b7").unwrap());
    }
}
