//! Logging and tracing: the daemon's journal lines carry a task's NAMESPACE, CONTAINER_ID,
//! EXEC_ID and UNIT as fields; its spans (a task API call, the D-Bus and runc calls inside it)
//! reach an OTLP receiver, as children of the span containerd (2.x) or a client sent along.
//!
//! Each test runs a containerd of its own in the sandbox (tests::telemetry::SideContainerd), so
//! its environment, which `start` passes on to our daemon, can name the test's receiver.

use std::time::Duration;

use containerd_shim_protos::api::{CreateTaskRequest, DeleteRequest, StartRequest, WaitRequest};
use tests::direct::{client_for, runnable_bundle};
use tests::telemetry::{
    journal_field, OtlpReceiver, ReceivedSpan, SideContainerd, SPAN_KIND_CLIENT, SPAN_KIND_SERVER, STATUS_ERROR,
};
use tests::{calls, unique_id, wait_until, Sandbox, IMAGE, RUNTIME};

/// `service.name` of our spans.
const SERVICE: &str = "containerd-shim-systemd-v1";
/// How long exported spans may take: both SDKs export in batches every 5 s.
const EXPORT_WAIT: Duration = Duration::from_secs(60);

fn our_task_span<'a>(spans: &'a [ReceivedSpan], name: &str, id: &str) -> Option<&'a ReceivedSpan> {
    spans.iter().find(|span| span.service == SERVICE && span.name == name && span.attribute("container_id") == Some(id))
}

/// The spans below `root` (children, their children, …).
fn descendants<'a>(spans: &'a [ReceivedSpan], root: &ReceivedSpan) -> Vec<&'a ReceivedSpan> {
    let mut found: Vec<&ReceivedSpan> = Vec::new();
    let mut parents = vec![root.span_id.clone()];
    while let Some(parent) = parents.pop() {
        for child in spans.iter().filter(|span| span.parent_span_id == parent && span.trace_id == root.trace_id) {
            parents.push(child.span_id.clone());
            found.push(child);
        }
    }
    found
}

fn names(spans: &[&ReceivedSpan]) -> Vec<String> {
    spans.iter().map(|span| span.name.clone()).collect()
}

#[test]
fn a_tasks_journal_lines_carry_namespace_container_id_exec_id_and_unit_fields() {
    let sandbox = Sandbox::get();
    let containerd = SideContainerd::start(sandbox, &[]);
    let namespace = "journal-fields";
    containerd.import_image(namespace);
    let id = unique_id("journal");
    containerd.ctr(namespace, &["run", "-d", "--runtime", RUNTIME, IMAGE, &id, "sleep", "60"]).success("ctr run -d");
    // Long enough to outlive its Start: an exit racing the Start is published by the Start.
    containerd.ctr(namespace, &["task", "exec", "--exec-id", "probe", &id, "sleep", "1"]).success("ctr task exec");
    containerd.ctr(namespace, &["task", "kill", "-s", "SIGKILL", &id]).success("ctr task kill");
    let stopped = wait_until(Duration::from_secs(30), || {
        containerd
            .ctr(namespace, &["task", "ls"])
            .stdout
            .lines()
            .any(|line| line.starts_with(&id) && line.contains("STOPPED"))
    });
    assert!(stopped, "task {id} never stopped");
    containerd.ctr(namespace, &["task", "rm", &id]).success("ctr task rm");
    containerd.ctr(namespace, &["container", "rm", &id]).success("ctr container rm");
    // A call that fails inside its task API span: the warning carries the span's fields.
    let missing = unique_id("missing");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let client = client_for(sandbox, &containerd.address, &[], namespace).await;
        assert_eq!(calls::code_of(calls::state(&client, &missing).await), ttrpc::Code::NOT_FOUND);
    });

    let unit = containerd.unit_of(namespace, &id);
    let has =
        |entry: &serde_json::Value, field: &str, value: &str| journal_field(entry, field).iter().any(|v| v == value);
    let message = |entry: &serde_json::Value| journal_field(entry, "MESSAGE").join(" ");
    let mut entries = Vec::new();
    let complete = wait_until(Duration::from_secs(60), || {
        entries = containerd.daemon_journal_of(&id);
        let init_exit = entries.iter().any(|entry| {
            message(entry).contains("exited with status 137")
                && has(entry, "NAMESPACE", namespace)
                && has(entry, "UNIT", &unit)
        });
        let exec_exit = entries.iter().any(|entry| {
            message(entry).contains("exec process")
                && has(entry, "EXEC_ID", "probe")
                && has(entry, "NAMESPACE", namespace)
        });
        init_exit && exec_exit
    });
    assert!(
        complete,
        "the journal of the daemon ({:?}) lacks the exits of {id} and its exec with their fields: {entries:#?}",
        containerd.daemon_unit()
    );
    for entry in &entries {
        assert_eq!(journal_field(entry, "SYSLOG_IDENTIFIER"), [SERVICE], "{entry}");
        assert!(entry.get("F_CONTAINER_ID").is_none(), "fields have no prefix: {entry}");
    }

    let failed = containerd.daemon_journal_of(&missing);
    let warning = failed
        .iter()
        .find(|entry| has(entry, "SPAN_NAME", "task.State"))
        .unwrap_or_else(|| panic!("no journal line for the failed State of {missing}: {failed:#?}"));
    assert!(has(warning, "NAMESPACE", namespace), "{warning}");
    assert!(has(warning, "PRIORITY", "4"), "a warning: {warning}");
    assert!(message(warning).starts_with("task.State: "), "{warning}");
}

#[test]
fn ctr_run_exports_a_span_per_task_api_call_with_its_dbus_and_runc_calls_inside() {
    let sandbox = Sandbox::get();
    let receiver = OtlpReceiver::start();
    let export = format!("OTEL_EXPORTER_OTLP_ENDPOINT={}", receiver.endpoint());
    let containerd = SideContainerd::start(sandbox, &[&export]);
    let namespace = "traced";
    containerd.import_image(namespace);
    let id = unique_id("traced");
    containerd.ctr_run(namespace, &id, &["true"]).success("ctr run --rm");

    let calls = ["task.Create", "task.Start", "task.Wait", "task.Delete"];
    // Inside Delete, runc delete runs only while runc still has the container; an exited
    // container's unit is stopped (and reset) after Delete answers, in a trace of its own.
    let expected_inside = [("task.Create", vec!["dbus.StartTransientUnit"]), ("task.Start", vec!["runc.start"])];
    let unit = containerd.unit_of(namespace, &id);
    let stopped = |spans: &[ReceivedSpan]| {
        spans.iter().any(|span| span.name == "dbus.StopUnit" && span.attribute("unit") == Some(unit.as_str()))
    };
    let complete = |spans: &[ReceivedSpan]| {
        stopped(spans)
            && calls.iter().all(|call| our_task_span(spans, call, &id).is_some())
            && expected_inside.iter().all(|(call, inside)| {
                our_task_span(spans, call, &id).is_some_and(|root| {
                    let below = names(&descendants(spans, root));
                    inside.iter().all(|name| below.iter().any(|found| found == name))
                })
            })
    };
    let spans = receiver.wait_for(EXPORT_WAIT, complete);
    assert!(complete(&spans), "missing spans for {id}: {:#?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>());
    assert_eq!(receiver.errors(), Vec::<String>::new(), "requests the receiver could not read");

    for call in calls {
        let span = our_task_span(&spans, call, &id).expect("checked above");
        assert_eq!(span.kind, SPAN_KIND_SERVER, "{call}");
        assert_eq!(span.attribute("namespace"), Some(namespace), "{call}");
        assert_ne!(span.status_code, STATUS_ERROR, "{call} succeeded");
        for inside in descendants(&spans, span) {
            assert_eq!(inside.kind, SPAN_KIND_CLIENT, "{call} > {}", inside.name);
            assert_eq!(inside.trace_id, span.trace_id, "{call} > {}", inside.name);
            // Delete's StopUnit of a unit systemd already collected answers NoSuchUnit: fine.
            assert_ne!(inside.status_code, STATUS_ERROR, "{call} > {} succeeded", inside.name);
        }
        // containerd 2.x sends its ttrpc client span along; 1.6 sends nothing, so our span is a
        // root. Either way the parent is what containerd sent, and nothing else.
        if containerd.major_version >= 2 {
            let parent = spans
                .iter()
                .find(|candidate| candidate.span_id == span.parent_span_id)
                .unwrap_or_else(|| panic!("{call}: parent {} was not exported by containerd", span.parent_span_id));
            assert_eq!(parent.service, "containerd", "{call}");
            assert_eq!(parent.trace_id, span.trace_id, "{call}");
            let method = call.trim_start_matches("task.");
            assert!(parent.name.ends_with(&format!("Task/{method}")), "{call}: parent is {}", parent.name);
            assert_eq!(parent.kind, SPAN_KIND_CLIENT, "{call}: containerd's ttrpc client span");
        } else {
            assert_eq!(span.parent_span_id, "", "{call}: containerd 1.6 sends no trace context");
        }
    }
    let create = our_task_span(&spans, "task.Create", &id).expect("checked above");
    let start_unit = descendants(&spans, create)
        .into_iter()
        .find(|span| span.name == "dbus.StartTransientUnit")
        .expect("checked above");
    assert_eq!(start_unit.attribute("unit"), Some(containerd.unit_of(namespace, &id).as_str()));
    let start = our_task_span(&spans, "task.Start", &id).expect("checked above");
    let runc_start =
        descendants(&spans, start).into_iter().find(|span| span.name == "runc.start").expect("checked above");
    assert_eq!(runc_start.attribute("container_id"), Some(id.as_str()));
}

/// A traceparent in the request's metadata, as containerd's otelttrpc interceptor sends it.
fn traced_context(trace_id: &str, span_id: &str) -> ttrpc::context::Context {
    let mut context = tests::direct::context();
    context.add("traceparent".into(), format!("00-{trace_id}-{span_id}-01"));
    context
}

#[test]
fn a_traceparent_sent_with_a_call_becomes_the_parent_of_its_span() {
    let sandbox = Sandbox::get();
    let receiver = OtlpReceiver::start();
    let export = format!("OTEL_EXPORTER_OTLP_ENDPOINT={}", receiver.endpoint());
    let containerd = SideContainerd::start(sandbox, &[&export]);
    let namespace = "traceparent";
    let id = unique_id("traceparent");
    let bundle = runnable_bundle(sandbox, &id, &["true"]);
    // One trace, a parent span of the caller's for each call.
    let trace_id = format!("{:032x}", u128::from(std::process::id()) << 64 | 0x5eed);
    let parents = [
        ("task.Create", "00000000000000c1"),
        ("task.Start", "00000000000000c2"),
        ("task.Wait", "00000000000000c3"),
        ("task.Delete", "00000000000000c4"),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        // `start` launches the daemon with the export variables, as containerd's would.
        let client = client_for(sandbox, &containerd.address, &[&export], namespace).await;
        let create = CreateTaskRequest { id: id.clone(), bundle: bundle.display().to_string(), ..Default::default() };
        client.create(traced_context(&trace_id, parents[0].1), &create).await.expect("Create");
        let start = StartRequest { id: id.clone(), ..Default::default() };
        client.start(traced_context(&trace_id, parents[1].1), &start).await.expect("Start");
        let wait = WaitRequest { id: id.clone(), ..Default::default() };
        let exit = client.wait(traced_context(&trace_id, parents[2].1), &wait).await.expect("Wait");
        assert_eq!(exit.exit_status, 0);
        let delete = DeleteRequest { id: id.clone(), ..Default::default() };
        client.delete(traced_context(&trace_id, parents[3].1), &delete).await.expect("Delete");
    });
    let _ = std::fs::remove_dir_all(&bundle);

    let complete = |spans: &[ReceivedSpan]| {
        parents.iter().all(|(call, _)| our_task_span(spans, call, &id).is_some())
            && our_task_span(spans, "task.Start", &id)
                .is_some_and(|start| names(&descendants(spans, start)).contains(&"runc.start".to_string()))
    };
    let spans = receiver.wait_for(EXPORT_WAIT, complete);
    assert!(complete(&spans), "missing spans for {id}: {:#?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>());
    for (call, parent) in parents {
        let span = our_task_span(&spans, call, &id).expect("checked above");
        assert_eq!(span.trace_id, trace_id, "{call} joins the caller's trace");
        assert_eq!(span.parent_span_id, parent, "{call} is a child of the caller's span");
        for inside in descendants(&spans, span) {
            assert_eq!(inside.trace_id, trace_id, "{call} > {}", inside.name);
        }
    }
    let create = our_task_span(&spans, "task.Create", &id).expect("checked above");
    assert!(names(&descendants(&spans, create)).contains(&"dbus.StartTransientUnit".to_string()));
}

#[test]
fn the_configuration_files_otlp_endpoint_applies_when_the_environment_names_none() {
    let sandbox = Sandbox::get();
    let receiver = OtlpReceiver::start();
    let config = sandbox.root.join(format!("{}.toml", unique_id("tracing-config")));
    std::fs::write(&config, format!("[tracing]\notlp_endpoint = \"{}\"\n", receiver.endpoint())).expect("write config");
    let config_env = format!("CONTAINERD_SHIM_SYSTEMD_CONFIG={}", config.display());
    let containerd = SideContainerd::start(sandbox, &[&config_env]);
    let namespace = "traced-by-config";
    containerd.import_image(namespace);
    let id = unique_id("configured");
    containerd.ctr_run(namespace, &id, &["true"]).success("ctr run --rm");
    let complete = |spans: &[ReceivedSpan]| {
        ["task.Create", "task.Start", "task.Delete"].iter().all(|call| our_task_span(spans, call, &id).is_some())
    };
    let spans = receiver.wait_for(EXPORT_WAIT, complete);
    let _ = std::fs::remove_file(&config);
    assert!(complete(&spans), "missing spans for {id}: {:#?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>());
}
