//! The tracing subscriber of every process of ours: events go to [`crate::logging`]'s sink.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::logging::LogTarget;

/// Our crates' log targets: their events are logged at the chosen level, other crates' (zbus,
/// ttrpc) only from warnings up, or from info up with `-debug`.
const OUR_TARGETS: [&str; 5] = ["containerd_shim_systemd_v1", "shim", "runc_wrap", "unit_gen", "pty"];

/// Installs the global subscriber: the log sink for `target` at info (debug with `debug`).
pub fn init(target: LogTarget, debug: bool) {
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = Vec::new();
    if let Some(log) = crate::logging::layer(target, target.current_sink()) {
        layers.push(log.with_filter(level_filter(debug)).boxed());
    }
    // Only fails when a subscriber is already installed (tests), which then stays.
    let _ = tracing_subscriber::registry().with(layers).try_init();
}

fn level_filter(debug: bool) -> Targets {
    let (ours, others) =
        if debug { (LevelFilter::DEBUG, LevelFilter::INFO) } else { (LevelFilter::INFO, LevelFilter::WARN) };
    Targets::new().with_default(others).with_targets(OUR_TARGETS.map(|target| (target, ours)))
}
