//! Unpredictable numbers from the kernel's random source, for names others must not guess
//! (temporary files) and ids that must not repeat when a pid does.

use std::fs::File;
use std::io::Read;

/// The kernel's non-blocking random source (random(4)): it only blocks before the pool is
/// first seeded, early in boot, long before containerd runs.
const URANDOM: &str = "/dev/urandom";

/// 64 random bits from `/dev/urandom`. Reads the device: call it off the async workers.
pub fn random_u64() -> std::io::Result<u64> {
    let mut bytes = [0u8; 8];
    File::open(URANDOM)?.read_exact(&mut bytes)?;
    Ok(u64::from_ne_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_draws_differ() {
        // A 2^-64 chance of a false failure.
        assert_ne!(random_u64().expect("read /dev/urandom"), random_u64().expect("read /dev/urandom"));
    }
}
