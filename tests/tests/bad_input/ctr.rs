//! Bad input through `ctr`: containerd validates ids and namespaces before our runtime sees
//! them, and runc's runtime options reach our Create.

use tests::{assert_nothing_left, unique_id, Run, Sandbox};

/// `ctr run --rm` of task `id` (running `true`) in `namespace` is refused with an error saying
/// what is invalid, and a good task still runs after it.
fn ctr_run_refuses(namespace: &str, id: &str) {
    let sandbox = Sandbox::get();
    sandbox.ensure_image("default");
    let run = sandbox.ctr(namespace, &["run", "--rm", "--runtime", tests::RUNTIME, tests::IMAGE, id, "true"]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("invalid"), "the error says what is invalid: {run:?}");
    let good = unique_id("after-bad-ids");
    let run = sandbox.ctr_run("default", &good, &["echo", "still serving"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "still serving\n"), "{run:?}");
}

#[test]
fn ctr_run_with_a_slash_in_the_id_is_invalid_and_a_good_task_still_runs() {
    ctr_run_refuses("default", "a/b");
}

#[test]
fn ctr_run_with_id_dot_dot_is_invalid_and_a_good_task_still_runs() {
    ctr_run_refuses("default", "..");
}

#[test]
fn ctr_run_with_an_id_of_300_characters_is_invalid_and_a_good_task_still_runs() {
    ctr_run_refuses("default", &"a".repeat(300));
}

#[test]
fn ctr_run_with_a_slash_in_the_namespace_is_invalid_and_a_good_task_still_runs() {
    ctr_run_refuses("a/b", "t");
}

#[test]
fn ctr_run_with_namespace_dot_dot_is_invalid_and_a_good_task_still_runs() {
    ctr_run_refuses("..", "t");
}

#[test]
fn ctr_run_with_a_namespace_of_300_characters_is_invalid_and_a_good_task_still_runs() {
    ctr_run_refuses(&"a".repeat(300), "t");
}

/// `ctr run --rm` of task `id` (running `true`) with runc's runtime options `options` (TOML).
/// ctr passes runtime options for runtimes other than runc as CRI's runtimeoptions.v1.Options,
/// naming a TOML file with runc's options.
fn ctr_run_with_runtime_options(sandbox: &Sandbox, id: &str, options: &str) -> Run {
    let config = sandbox.root.join(format!("{id}.toml"));
    std::fs::write(&config, options).expect("write runtime options");
    let config_path = config.to_str().expect("utf-8");
    let args =
        ["run", "--rm", "--runtime-config-path", config_path, "--runtime", tests::RUNTIME, tests::IMAGE, id, "true"];
    let run = sandbox.ctr("default", &args);
    std::fs::remove_file(&config).expect("remove runtime options");
    run
}

#[test]
fn missing_runc_is_a_clear_error_through_ctr_and_leaves_nothing() {
    let sandbox = Sandbox::get();
    sandbox.ensure_image("default");
    let id = unique_id("no-runc");
    let run = ctr_run_with_runtime_options(sandbox, &id, "BinaryName = \"no-such-runc\"\n");
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("no-such-runc") && run.stderr.contains("not found"), "{run:?}");
    sandbox.ctr("default", &["container", "rm", &id]);
    assert_nothing_left(sandbox, "default", &id);
    let good = unique_id("after-no-runc");
    assert_eq!(sandbox.ctr_run("default", &good, &["true"]).code, 0);
}

/// runc-v2 moves its per-task shim into `ShimCgroup`; there is no such process here, and the
/// Create that asks for it is refused by name, leaving nothing.
#[test]
fn shim_cgroup_is_refused_by_name_through_ctr_and_leaves_nothing() {
    let sandbox = Sandbox::get();
    sandbox.ensure_image("default");
    let id = unique_id("shim-cgroup");
    let run = ctr_run_with_runtime_options(sandbox, &id, "ShimCgroup = \"/containerd-shims\"\n");
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("ShimCgroup") && run.stderr.contains("/containerd-shims"), "{run:?}");
    sandbox.ctr("default", &["container", "rm", &id]);
    assert_nothing_left(sandbox, "default", &id);
}
