//! `BINARY features`: the OCI runtime's own account of what it supports (runtime-spec's
//! `features.md`), which `-info` hands to containerd unchanged once it proved to be JSON.

use std::path::Path;
use std::time::Duration;

/// How long `BINARY features` may take.
const FEATURES_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of the binary's first stderr line a [`FeaturesFailure::NoFeaturesCommand`] keeps.
const MAX_STDERR_LINE_CHARS: usize = 200;

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

/// `BINARY features`' stdout, once it proved to be JSON.
pub async fn runtime_features(binary: &Path) -> Result<Vec<u8>, FeaturesFailure> {
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
}
