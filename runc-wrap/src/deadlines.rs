//! How long each runc operation the daemon runs may take. One table, so that a slow operation
//! (a CRIU dump of a multi-GB container) gets a deadline of its own instead of the one that
//! suits `runc kill`: runc is killed when its deadline passes, and a checkpoint killed mid-dump
//! is lost.

use std::time::Duration;

/// The deadline of every operation but checkpoint: runc itself does little (signals, freezer
/// writes, cgroup writes, removing state), so a minute means it is stuck.
pub const DEFAULT_RUNC_TIMEOUT: Duration = Duration::from_secs(60);

/// The default deadline of `runc checkpoint`: CRIU writes every page of the container's memory
/// into the image directory, minutes for tens of GB on a slow disk.
pub const DEFAULT_CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// A runc operation the daemon runs and waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuncOperation {
    /// `runc start`, or releasing init through its exec fifo.
    Start,
    /// `runc kill`.
    Kill,
    /// `runc pause`.
    Pause,
    /// `runc resume`.
    Resume,
    /// `runc update`.
    Update,
    /// `runc ps`.
    Ps,
    /// `runc delete`.
    Delete,
    /// `runc checkpoint`.
    Checkpoint,
}

impl RuncOperation {
    /// The runc subcommand, as errors and spans name it.
    pub fn command(self) -> &'static str {
        match self {
            RuncOperation::Start => "start",
            RuncOperation::Kill => "kill",
            RuncOperation::Pause => "pause",
            RuncOperation::Resume => "resume",
            RuncOperation::Update => "update",
            RuncOperation::Ps => "ps",
            RuncOperation::Delete => "delete",
            RuncOperation::Checkpoint => "checkpoint",
        }
    }
}

/// The deadline of each [`RuncOperation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuncDeadlines {
    /// `runc start` (and the exec fifo's release).
    pub start: Duration,
    /// `runc kill`.
    pub kill: Duration,
    /// `runc pause`.
    pub pause: Duration,
    /// `runc resume`.
    pub resume: Duration,
    /// `runc update`.
    pub update: Duration,
    /// `runc ps`.
    pub ps: Duration,
    /// `runc delete`.
    pub delete: Duration,
    /// `runc checkpoint` (the configuration file's `[runc] checkpoint_timeout`).
    pub checkpoint: Duration,
}

impl Default for RuncDeadlines {
    fn default() -> RuncDeadlines {
        RuncDeadlines {
            start: DEFAULT_RUNC_TIMEOUT,
            kill: DEFAULT_RUNC_TIMEOUT,
            pause: DEFAULT_RUNC_TIMEOUT,
            resume: DEFAULT_RUNC_TIMEOUT,
            update: DEFAULT_RUNC_TIMEOUT,
            ps: DEFAULT_RUNC_TIMEOUT,
            delete: DEFAULT_RUNC_TIMEOUT,
            checkpoint: DEFAULT_CHECKPOINT_TIMEOUT,
        }
    }
}

impl RuncDeadlines {
    /// The defaults, with `checkpoint` as the deadline of `runc checkpoint`.
    pub fn with_checkpoint(checkpoint: Duration) -> RuncDeadlines {
        RuncDeadlines { checkpoint, ..RuncDeadlines::default() }
    }

    /// How long `operation` may take.
    pub fn of(&self, operation: RuncOperation) -> Duration {
        match operation {
            RuncOperation::Start => self.start,
            RuncOperation::Kill => self.kill,
            RuncOperation::Pause => self.pause,
            RuncOperation::Resume => self.resume,
            RuncOperation::Update => self.update,
            RuncOperation::Ps => self.ps,
            RuncOperation::Delete => self.delete,
            RuncOperation::Checkpoint => self.checkpoint,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_has_a_deadline_of_its_own_and_the_rest_keep_a_minute() {
        let deadlines = RuncDeadlines::with_checkpoint(Duration::from_secs(7200));
        assert_eq!(deadlines.of(RuncOperation::Checkpoint), Duration::from_secs(7200));
        assert_ne!(deadlines.of(RuncOperation::Checkpoint), deadlines.of(RuncOperation::Pause));
        for operation in [
            RuncOperation::Start,
            RuncOperation::Kill,
            RuncOperation::Pause,
            RuncOperation::Resume,
            RuncOperation::Update,
            RuncOperation::Ps,
            RuncOperation::Delete,
        ] {
            assert_eq!(deadlines.of(operation), DEFAULT_RUNC_TIMEOUT, "{}", operation.command());
        }
        assert_eq!(RuncDeadlines::default().of(RuncOperation::Checkpoint), DEFAULT_CHECKPOINT_TIMEOUT);
    }
}
