//! Deterministic randomness from one 64-bit seed, so that a printed seed replays a run.

use proptest::test_runner::{RngAlgorithm, TestRng};

use crate::runner::splitmix;

/// A ChaCha generator whose 32-byte seed is expanded from `seed`.
pub(crate) fn rng_from_seed(seed: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    let mut s = seed;
    for chunk in bytes.chunks_mut(8) {
        s = splitmix(s);
        chunk.copy_from_slice(&s.to_le_bytes());
    }
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}
