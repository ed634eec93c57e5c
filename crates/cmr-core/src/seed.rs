//! One seed derives every random stream: a stream is named by a path of labels (stage, client, subject, …) and its
//! seed is the first 8 bytes of `sha256(root_seed ‖ labels)`, so streams are independent of the order in which they
//! are created and adding a stream never shifts another.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// Derives the seed of the stream named by `labels` from `root`.
///
/// ```
/// let a = cmr_core::seed::derive(7, &["phantom", "subject", "12"]);
/// assert_eq!(a, cmr_core::seed::derive(7, &["phantom", "subject", "12"]));
/// assert_ne!(a, cmr_core::seed::derive(7, &["phantom", "subject", "13"]));
/// ```
pub fn derive(root: u64, labels: &[&str]) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(root.to_le_bytes());
    for label in labels {
        // Length-prefix each label so ["ab", "c"] and ["a", "bc"] differ.
        hasher.update((label.len() as u64).to_le_bytes());
        hasher.update(label.as_bytes());
    }
    let digest = hasher.finalize();
    u64::from_le_bytes(digest[..8].try_into().expect("sha256 has 32 bytes"))
}

/// A reproducible generator for the stream named by `labels`.
pub fn rng(root: u64, labels: &[&str]) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(derive(root, labels))
}
