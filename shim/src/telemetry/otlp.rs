//! OpenTelemetry export over OTLP/HTTP with protobuf, configured by the standard environment
//! variables (the OpenTelemetry specification's "OpenTelemetry Protocol Exporter" and "SDK
//! Environment Variables"). Nothing here is built unless an endpoint is set.
//!
//! The SDK's batch processor exports from a thread of its own and blocks that thread on each
//! export; the HTTP request itself runs as a task on the daemon's tokio runtime (hyper), so no
//! second runtime or blocking client is brought in and no runtime worker ever blocks.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use opentelemetry::KeyValue;
use opentelemetry_http::hyper::HyperClient;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{ExporterBuildError, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tokio::runtime::Handle;

use crate::logging::IDENTIFIER;

const SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
const TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";
const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
const TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
const TRACES_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT";

/// The variables `start` copies from its environment (containerd's) into the daemon's unit, so
/// the daemon exports where containerd does. Not `OTEL_SERVICE_NAME`: containerd sets it to
/// `containerd` for itself, and our spans are the shim's. Not the `*_HEADERS`: they may hold
/// credentials, and a unit's environment is readable by every user (`systemctl show`).
pub const PASSED_TO_DAEMON: [&str; 13] = [
    SDK_DISABLED,
    TRACES_EXPORTER,
    ENDPOINT,
    TRACES_ENDPOINT,
    PROTOCOL,
    TRACES_PROTOCOL,
    TIMEOUT,
    TRACES_TIMEOUT,
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_MAX_QUEUE_SIZE",
];

/// `NAME=value` for each of [`PASSED_TO_DAEMON`] that `var` has.
pub fn daemon_environment(var: impl Fn(&str) -> Option<String>) -> Vec<String> {
    PASSED_TO_DAEMON.iter().filter_map(|name| var(name).map(|value| format!("{name}={value}"))).collect()
}

/// The specification's default export timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the environment asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportSetting {
    /// No export: no endpoint, or export turned off.
    Off,
    /// Export to `endpoint`, each request bounded by `timeout`.
    Http {
        /// The endpoint (generic or traces-specific), for the log.
        endpoint: String,
        /// The traces URL to give the exporter, for an endpoint from the configuration file;
        /// `None` when the exporter reads it from the environment itself.
        traces_url: Option<String>,
        /// Deadline of one export request.
        timeout: Duration,
    },
    /// Export is asked for in a way we do not support; the reason says which.
    Unsupported {
        /// What is unsupported.
        reason: String,
    },
}

/// Reads the export setting through `var` (the environment, in the daemon); `configured` is the
/// configuration file's endpoint, used when the environment names none.
pub fn export_setting(var: impl Fn(&str) -> Option<String>, configured: Option<&str>) -> ExportSetting {
    let non_empty = |name: &str| var(name).map(|value| value.trim().to_string()).filter(|value| !value.is_empty());
    if non_empty(SDK_DISABLED).is_some_and(|value| value.eq_ignore_ascii_case("true")) {
        return ExportSetting::Off;
    }
    match non_empty(TRACES_EXPORTER).as_deref() {
        None | Some("otlp") => {}
        Some("none") => return ExportSetting::Off,
        Some(other) => {
            return ExportSetting::Unsupported { reason: format!("{TRACES_EXPORTER}={other} (only otlp is supported)") }
        }
    }
    let from_environment = non_empty(TRACES_ENDPOINT).or_else(|| non_empty(ENDPOINT));
    let (endpoint, traces_url) = match (from_environment, configured.filter(|endpoint| !endpoint.is_empty())) {
        (Some(endpoint), _) => (endpoint, None),
        // As OTEL_EXPORTER_OTLP_ENDPOINT: a base URL, the signal's path appended.
        (None, Some(base)) => (base.to_string(), Some(format!("{}/v1/traces", base.trim_end_matches('/')))),
        (None, None) => return ExportSetting::Off,
    };
    if let Some(protocol) = non_empty(TRACES_PROTOCOL).or_else(|| non_empty(PROTOCOL)) {
        if protocol != "http/protobuf" {
            return ExportSetting::Unsupported {
                reason: format!("OTLP protocol {protocol:?} (only http/protobuf is supported)"),
            };
        }
    }
    if !endpoint.starts_with("http://") {
        return ExportSetting::Unsupported {
            reason: format!(
                "OTLP endpoint {endpoint:?} (only plain http:// endpoints, such as a collector on this host)"
            ),
        };
    }
    let timeout = non_empty(TRACES_TIMEOUT)
        .or_else(|| non_empty(TIMEOUT))
        .and_then(|millis| millis.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_TIMEOUT);
    ExportSetting::Http { endpoint, traces_url, timeout }
}

/// A tracer provider exporting in batches over OTLP/HTTP to `traces_url`, or where the
/// environment says when it is `None`, with requests run on `runtime`.
pub fn tracer_provider(
    runtime: &Handle,
    traces_url: Option<&str>,
    timeout: Duration,
) -> Result<SdkTracerProvider, ExporterBuildError> {
    let client = RuntimeHttpClient {
        runtime: runtime.clone(),
        inner: Arc::new(HyperClient::with_default_connector(timeout, None)),
    };
    let mut builder =
        opentelemetry_otlp::SpanExporter::builder().with_http().with_http_client(client).with_timeout(timeout);
    if let Some(url) = traces_url {
        builder = builder.with_endpoint(url);
    }
    let exporter = builder.build()?;
    let resource = Resource::builder()
        .with_service_name(IDENTIFIER)
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(SdkTracerProvider::builder().with_resource(resource).with_batch_exporter(exporter).build())
}

/// Runs each request of `inner` (which needs a tokio reactor) as a task on `runtime`, so the
/// SDK's export thread can wait for it without a runtime of its own.
#[derive(Debug)]
struct RuntimeHttpClient {
    runtime: Handle,
    inner: Arc<HyperClient>,
}

#[async_trait]
impl HttpClient for RuntimeHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let inner = Arc::clone(&self.inner);
        let task = self.runtime.spawn(async move { inner.send_bytes(request).await });
        task.await.map_err(|error| Box::new(error) as HttpError)?
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn setting(vars: &[(&str, &str)], configured: Option<&str>) -> ExportSetting {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        export_setting(|name| vars.get(name).cloned(), configured)
    }

    #[test]
    fn the_standard_variables_decide_the_export() {
        struct Case {
            name: &'static str,
            vars: &'static [(&'static str, &'static str)],
            expected: Result<ExportSetting, &'static str>,
        }
        let http = |endpoint: &str, millis| {
            Ok(ExportSetting::Http {
                endpoint: endpoint.into(),
                traces_url: None,
                timeout: Duration::from_millis(millis),
            })
        };
        let cases = [
            Case { name: "nothing set", vars: &[], expected: Ok(ExportSetting::Off) },
            Case { name: "empty endpoint", vars: &[(ENDPOINT, " ")], expected: Ok(ExportSetting::Off) },
            Case {
                name: "generic endpoint",
                vars: &[(ENDPOINT, "http://127.0.0.1:4318")],
                expected: http("http://127.0.0.1:4318", 10_000),
            },
            Case {
                name: "traces endpoint wins",
                vars: &[(ENDPOINT, "http://a:4318"), (TRACES_ENDPOINT, "http://b:4318/v1/traces")],
                expected: http("http://b:4318/v1/traces", 10_000),
            },
            Case {
                name: "timeout in milliseconds",
                vars: &[(ENDPOINT, "http://a:4318"), (TIMEOUT, "2500")],
                expected: http("http://a:4318", 2500),
            },
            Case {
                name: "traces timeout wins",
                vars: &[(ENDPOINT, "http://a:4318"), (TIMEOUT, "2500"), (TRACES_TIMEOUT, "700")],
                expected: http("http://a:4318", 700),
            },
            Case {
                name: "explicit http/protobuf",
                vars: &[(ENDPOINT, "http://a:4318"), (PROTOCOL, "http/protobuf")],
                expected: http("http://a:4318", 10_000),
            },
            Case {
                name: "sdk disabled",
                vars: &[(ENDPOINT, "http://a:4318"), (SDK_DISABLED, "TRUE")],
                expected: Ok(ExportSetting::Off),
            },
            Case {
                name: "traces exporter none",
                vars: &[(ENDPOINT, "http://a:4318"), (TRACES_EXPORTER, "none")],
                expected: Ok(ExportSetting::Off),
            },
            Case {
                name: "grpc",
                vars: &[(ENDPOINT, "http://a:4317"), (PROTOCOL, "grpc")],
                expected: Err("only http/protobuf"),
            },
            Case {
                name: "grpc for traces only",
                vars: &[(ENDPOINT, "http://a:4317"), (PROTOCOL, "http/protobuf"), (TRACES_PROTOCOL, "grpc")],
                expected: Err("only http/protobuf"),
            },
            Case { name: "https", vars: &[(ENDPOINT, "https://a:4318")], expected: Err("only plain http://") },
            Case {
                name: "another exporter",
                vars: &[(ENDPOINT, "http://a:4318"), (TRACES_EXPORTER, "zipkin")],
                expected: Err("only otlp"),
            },
        ];
        for case in cases {
            let actual = setting(case.vars, None);
            match (&case.expected, &actual) {
                (Ok(expected), actual) => assert_eq!(actual, expected, "{}", case.name),
                (Err(needle), ExportSetting::Unsupported { reason }) => {
                    assert!(reason.contains(needle), "{}: {reason}", case.name)
                }
                (Err(_), actual) => panic!("{}: expected unsupported, got {actual:?}", case.name),
            }
        }
    }

    #[test]
    fn the_configuration_files_endpoint_applies_when_the_environment_names_none() {
        let configured = Some("http://collector:4318/");
        assert_eq!(
            setting(&[], configured),
            ExportSetting::Http {
                endpoint: "http://collector:4318/".into(),
                traces_url: Some("http://collector:4318/v1/traces".into()),
                timeout: DEFAULT_TIMEOUT,
            }
        );
        let from_environment = setting(&[(ENDPOINT, "http://env:4318")], configured);
        let expected =
            ExportSetting::Http { endpoint: "http://env:4318".into(), traces_url: None, timeout: DEFAULT_TIMEOUT };
        assert_eq!(from_environment, expected, "the environment wins");
        assert_eq!(setting(&[(SDK_DISABLED, "true")], configured), ExportSetting::Off);
        assert!(matches!(setting(&[(PROTOCOL, "grpc")], configured), ExportSetting::Unsupported { .. }));
        assert_eq!(setting(&[], Some("")), ExportSetting::Off);
    }

    #[test]
    fn the_daemon_gets_the_export_variables_that_are_set() {
        let vars = HashMap::from([
            (ENDPOINT, "http://127.0.0.1:4318"),
            ("OTEL_SERVICE_NAME", "containerd"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=secret"),
            ("OTEL_TRACES_SAMPLER", "parentbased_always_on"),
        ]);
        let environment = daemon_environment(|name| vars.get(name).map(|value| value.to_string()));
        assert_eq!(
            environment,
            ["OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318", "OTEL_TRACES_SAMPLER=parentbased_always_on"]
        );
    }

    #[test]
    fn no_header_or_service_name_variable_reaches_the_daemon() {
        for name in PASSED_TO_DAEMON {
            assert!(name.starts_with("OTEL_"), "{name}");
            assert!(!name.contains("HEADERS") && name != "OTEL_SERVICE_NAME", "{name}");
        }
    }
}
