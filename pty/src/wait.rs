//! Waiting on file descriptors with an optional deadline: the one place that turns an `Instant` into a poll
//! timeout and retries `poll` when a signal interrupts it.

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollTimeout};

/// Polls `fds` until one is ready or `deadline` passes (never, if `None`); returns how many are ready (0 on timeout).
pub(crate) fn poll_until(fds: &mut [PollFd<'_>], deadline: Option<Instant>) -> Result<usize, Errno> {
    loop {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(deadline) => timeout_until(deadline),
        };
        match poll(fds, timeout) {
            // A stopped-and-continued process sees EINTR even with every handled signal blocked; the timeout is
            // recomputed from the deadline so the retry does not extend it.
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(errno),
            Ok(ready) => return Ok(usize::try_from(ready).unwrap_or(0)),
        }
    }
}

/// The poll timeout that ends at `deadline`.
fn timeout_until(deadline: Instant) -> PollTimeout {
    rounded_up_to_millis(deadline.saturating_duration_since(Instant::now()))
}

/// `remaining` as a poll timeout, rounded up to a whole millisecond so that a wait of less than one millisecond
/// does not turn into a busy loop of zero-timeout polls.
fn rounded_up_to_millis(remaining: Duration) -> PollTimeout {
    let millis = remaining.as_nanos().div_ceil(Duration::from_millis(1).as_nanos());
    // Deadlines further away than PollTimeout can express (~24 days) are capped; the caller loops anyway.
    PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use nix::poll::PollFlags;

    use super::*;

    #[test]
    fn poll_until_returns_zero_after_the_deadline_when_nothing_is_ready() {
        let (reader, _writer) = nix::unistd::pipe().expect("pipe");
        let mut fds = [PollFd::new(reader.as_fd(), PollFlags::POLLIN)];
        let start = Instant::now();
        let ready = poll_until(&mut fds, Some(start + Duration::from_millis(50))).expect("poll");
        assert_eq!(ready, 0);
        assert!(start.elapsed() >= Duration::from_millis(50), "returned early after {:?}", start.elapsed());
    }

    #[test]
    fn a_sub_millisecond_remainder_rounds_up_to_one_millisecond() {
        assert_eq!(rounded_up_to_millis(Duration::from_micros(300)).as_millis(), Some(1));
        assert_eq!(rounded_up_to_millis(Duration::from_micros(1500)).as_millis(), Some(2));
        assert_eq!(rounded_up_to_millis(Duration::ZERO).as_millis(), Some(0));
        assert_eq!(rounded_up_to_millis(Duration::from_secs(u64::MAX)), PollTimeout::MAX);
    }
}
