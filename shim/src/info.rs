//! `containerd-shim-systemd-v1 -info`: containerd 2.x runs it (`ctr plugins inspect-runtime`,
//! the introspection service's `PluginInfo`, CRI's checks of what the runtime supports) with the
//! task's runtime options on stdin, a serialized `google.protobuf.Any` (empty when there are
//! none), and reads a serialized `containerd.types.RuntimeInfo` from stdout.
//!
//! As runc-v2 answers (its manager's `Info`): our runtime name and version, the options echoed,
//! and the output of `features` of the OCI runtime binary a task with these options would run
//! (`BinaryName` of the options on stdin, else `runc_binary` of the configuration file, else
//! `runc` in `PATH`), as an `Any` of the type URL under which containerd's typeurl registers the
//! runtime-spec's Go `features.Features` struct, whose value is that struct's JSON.
//!
//! Unlike runc-v2, which then leaves the features out and logs at debug level, `-info` fails
//! when that binary cannot give its features, and says why: not found ([`Error::RuncUnavailable`]),
//! no working `features` command (it ran and failed: older runc, some other OCI runtimes, a
//! wrapper that does not pass the command on), or output that is not JSON (both
//! [`Error::RuntimeFeatures`]). An answer without features would hide a wrong `BinaryName` from
//! whoever asked; containerd's CRI plugin treats a failed `-info` as it treats missing features
//! (it checks specs against nothing), so nothing is lost there.

use std::path::Path;
use std::time::Duration;

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::types::introspection::{RuntimeInfo, RuntimeVersion};
use runc_wrap::runc::resolve_binary;

use crate::blocking::blocking;
use crate::daemon::{decode_options, TaskOptions};
use crate::error::Error;
use crate::paths::RUNTIME_NAME;
use crate::version::{REVISION, VERSION};

/// The type URL of the runtime-spec's features structure, as containerd registers it
/// (`types.containerd.io/opencontainers/runtime-spec/<major>/features/Features`).
pub const FEATURES_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/features/Features";

/// How long `BINARY features` may take.
const FEATURES_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of the binary's first stderr line a [`FeaturesFailure::NoFeaturesCommand`] keeps.
const MAX_STDERR_LINE_CHARS: usize = 200;

/// Answers `-info`: `stdin` as containerd wrote it, `defaults` from the configuration file,
/// `path_env` to find the runtime binary in. Returns the encoded `RuntimeInfo`.
pub async fn info(stdin: &[u8], defaults: &TaskOptions, path_env: &str) -> Result<Vec<u8>, Error> {
    let options = parse_options(stdin)?;
    let task_options = decode_options(options.as_ref(), defaults).await?;
    let binary_name = task_options.runc_binary.unwrap_or_else(|| "runc".to_string());
    let path_env = path_env.to_string();
    let binary = blocking("looking up runc", move || resolve_binary(&binary_name, Some(&path_env)))
        .await?
        .map_err(Error::RuncUnavailable)?;
    let features = runtime_features(&binary)
        .await
        .map_err(|failure| Error::RuntimeFeatures { binary: binary.clone(), failure })?;
    runtime_info(options, features)
        .write_to_bytes()
        .map_err(|error| Error::io("encoding the runtime info", std::io::Error::other(error)))
}

/// Why the OCI runtime binary gave no runtime features.
#[derive(Debug, thiserror::Error)]
pub enum FeaturesFailure {
    /// `BINARY features` could not be run at all.
    #[error("running `features`: {0}")]
    Run(#[source] std::io::Error),
    /// It did not finish in time.
    #[error("`features` took longer than {0:?}")]
    TimedOut(Duration),
    /// It ran and failed: the binary has no `features` command, or it does not work.
    #[error("it has no working `features` command: `features` ended with {status}, saying {stderr_line:?}")]
    NoFeaturesCommand {
        /// How it ended (`exit status: 1`, …).
        status: String,
        /// The first line it wrote to stderr.
        stderr_line: String,
    },
    /// It succeeded but printed something that is not JSON.
    #[error("`features` printed no JSON: {0}")]
    NotJson(#[source] serde_json::Error),
}

/// The options containerd sent: nothing, or an `Any`.
fn parse_options(stdin: &[u8]) -> Result<Option<Any>, Error> {
    if stdin.is_empty() {
        return Ok(None);
    }
    let any = Any::parse_from_bytes(stdin).map_err(|error| {
        Error::InvalidRequest(format!("the runtime options on stdin are not a protobuf Any: {error}"))
    })?;
    Ok(Some(any).filter(|any| !any.type_url.is_empty()))
}

/// The answer, from the options echoed and the runtime's features (JSON).
fn runtime_info(options: Option<Any>, features_json: Vec<u8>) -> RuntimeInfo {
    RuntimeInfo {
        name: RUNTIME_NAME.to_string(),
        version: MessageField::some(RuntimeVersion {
            version: VERSION.to_string(),
            revision: REVISION.to_string(),
            ..Default::default()
        }),
        options: options.into(),
        features: MessageField::some(Any {
            type_url: FEATURES_TYPE_URL.to_string(),
            value: features_json,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `BINARY features`' stdout, once it proved to be JSON.
async fn runtime_features(binary: &Path) -> Result<Vec<u8>, FeaturesFailure> {
    let output = tokio::time::timeout(
        FEATURES_TIMEOUT,
        tokio::process::Command::new(binary)
            .arg("features")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| FeaturesFailure::TimedOut(FEATURES_TIMEOUT))?
    .map_err(FeaturesFailure::Run)?;
    features_of(output)
}

/// The features in what `BINARY features` left behind: its stdout if it succeeded with JSON.
fn features_of(output: std::process::Output) -> Result<Vec<u8>, FeaturesFailure> {
    if !output.status.success() {
        return Err(FeaturesFailure::NoFeaturesCommand {
            status: output.status.to_string(),
            stderr_line: first_line(&output.stderr),
        });
    }
    serde_json::from_slice::<serde_json::Value>(&output.stdout).map_err(FeaturesFailure::NotJson)?;
    Ok(output.stdout)
}

/// The first non-blank line of `text`, at most [`MAX_STDERR_LINE_CHARS`] characters of it.
fn first_line(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    match text.lines().map(str::trim).find(|line| !line.is_empty()) {
        Some(line) => line.chars().take(MAX_STDERR_LINE_CHARS).collect(),
        None => "nothing on stderr".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::shim::oci::Options as RuncOptions;

    #[test]
    fn runtime_info_carries_name_version_options_and_features() {
        let options = Any { type_url: "containerd.runc.v1.Options".into(), value: vec![], ..Default::default() };
        let features = br#"{"ociVersionMin":"1.0.0","ociVersionMax":"1.0.2-dev"}"#.to_vec();
        let info = runtime_info(Some(options.clone()), features.clone());
        let decoded = RuntimeInfo::parse_from_bytes(&info.write_to_bytes().unwrap()).unwrap();
        assert_eq!(decoded.name, "io.containerd.systemd.v1");
        assert_eq!(decoded.version.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(decoded.version.revision, REVISION);
        assert_eq!(decoded.options.as_ref(), Some(&options));
        assert_eq!(decoded.features.type_url, FEATURES_TYPE_URL);
        assert_eq!(decoded.features.value, features);
    }

    fn output(code: i32, stdout: &str, stderr: &str) -> std::process::Output {
        use std::os::unix::process::ExitStatusExt;
        std::process::Output {
            // A wait status: the exit code in the second byte.
            status: std::process::ExitStatus::from_raw(code << 8),
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    #[test]
    fn features_are_the_json_a_successful_features_command_printed() {
        let json = "{\"ociVersionMin\":\"1.0.0\",\"annotations\":{\"x\":\"y\"}}\n";
        assert_eq!(features_of(output(0, json, "")).unwrap(), json.as_bytes());
    }

    #[test]
    fn a_failed_features_command_and_output_that_is_not_json_are_told_apart() {
        struct Case {
            name: &'static str,
            output: std::process::Output,
            expected: &'static str,
        }
        let cases = [
            Case {
                name: "unknown command",
                output: output(1, "", "\n  unknown command \"features\"\nusage: wrapper create|start\n"),
                expected: "it has no working `features` command: `features` ended with exit status: 1, saying \
                           \"unknown command \\\"features\\\"\"",
            },
            Case {
                name: "silent failure",
                output: output(3, "{}", ""),
                expected: "it has no working `features` command: `features` ended with exit status: 3, saying \
                           \"nothing on stderr\"",
            },
            Case {
                name: "usage text on stdout",
                output: output(0, "NAME:\n   runc - Open Container Initiative runtime\n", ""),
                expected: "`features` printed no JSON: expected value at line 1 column 1",
            },
            Case { name: "nothing at all", output: output(0, "", ""), expected: "`features` printed no JSON" },
        ];
        for case in cases {
            let failure = features_of(case.output).expect_err(case.name);
            let message = failure.to_string();
            assert!(message.starts_with(case.expected), "{}: {message}", case.name);
            let not_json = matches!(failure, FeaturesFailure::NotJson(_));
            assert_eq!(not_json, case.expected.contains("no JSON"), "{}: {failure:?}", case.name);
        }
    }

    #[test]
    fn the_first_stderr_line_is_kept_short() {
        let long = "x".repeat(1000);
        assert_eq!(first_line(long.as_bytes()).len(), 200);
        assert_eq!(first_line(b"\n\n second\nthird"), "second");
    }

    #[tokio::test]
    async fn a_binary_that_fails_or_prints_nothing_gives_no_features() {
        // Two binaries every Linux system has: `false features` fails, `true features` prints nothing.
        let failed = runtime_features(Path::new("/bin/false")).await.unwrap_err();
        assert!(matches!(failed, FeaturesFailure::NoFeaturesCommand { .. }), "{failed:?}");
        let silent = runtime_features(Path::new("/bin/true")).await.unwrap_err();
        assert!(matches!(silent, FeaturesFailure::NotJson(_)), "{silent:?}");
        let missing = runtime_features(Path::new("/nonexistent/runc")).await.unwrap_err();
        assert!(matches!(missing, FeaturesFailure::Run(_)), "{missing:?}");
    }

    #[test]
    fn a_features_failure_names_the_binary_and_the_command() {
        let failure = features_of(output(1, "", "No help topic for 'features'")).unwrap_err();
        let error = Error::RuntimeFeatures { binary: "/usr/local/bin/my-runtime".into(), failure };
        assert_eq!(
            error.to_string(),
            "runtime features of /usr/local/bin/my-runtime: it has no working `features` command: `features` ended \
             with exit status: 1, saying \"No help topic for 'features'\""
        );
    }

    #[test]
    fn options_on_stdin_are_an_any_or_nothing() {
        assert_eq!(parse_options(&[]).unwrap(), None);
        let runc = RuncOptions { binary_name: "/opt/runc".into(), ..Default::default() };
        let any = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: runc.write_to_bytes().unwrap(),
            ..Default::default()
        };
        assert_eq!(parse_options(&any.write_to_bytes().unwrap()).unwrap(), Some(any));
        assert!(matches!(parse_options(&[0xff, 0xff]), Err(Error::InvalidRequest(_))));
    }

    #[tokio::test]
    async fn an_unknown_runc_binary_is_named_in_the_error() {
        let runc = RuncOptions { binary_name: "/nonexistent/runc".into(), ..Default::default() };
        let any = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: runc.write_to_bytes().unwrap(),
            ..Default::default()
        };
        let error = info(&any.write_to_bytes().unwrap(), &TaskOptions::default(), "/usr/bin").await.unwrap_err();
        assert!(matches!(error, Error::RuncUnavailable(_)), "{error:?}");
        assert!(error.to_string().contains("/nonexistent/runc"), "{error}");
    }
}
