//! Removing the temporary files that writers which died left behind.
//!
//! A handle sweeps at its first write or delete and then at most once per [`STALE_TEMP`]; a
//! sweep removes the regular files named `.tmp-…` in the store and its chunk directories that
//! were last modified at least [`STALE_TEMP`] ago. It is best effort: what it cannot remove
//! stays, never listed.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use super::Inner;
use super::names::TEMP_PREFIX;

/// A temporary file unchanged for this long was left by a writer that died: a live write
/// changes its file with every chunk it receives and renames it moments after the last.
const STALE_TEMP: Duration = Duration::from_secs(60 * 60);

impl Inner {
    /// Before the first change made through this handle, and before the first change after
    /// every [`STALE_TEMP`] since the last sweep, removes the temporary files that writers
    /// which died left in the store (those untouched for [`STALE_TEMP`]). Best effort: a file
    /// that cannot be removed stays, never listed, as it would have anyway.
    pub(super) fn sweep(&self) {
        {
            let Ok(mut last) = self.swept.lock() else {
                return;
            };
            if last.is_some_and(|at| at.elapsed() < STALE_TEMP) {
                return;
            }
            *last = Some(Instant::now());
        }
        let removed = sweep_stale_temps(&self.dir, SystemTime::now());
        if removed > 0 {
            tracing::info!(
                "removed {removed} temporary files left by interrupted writes in {}",
                self.dir.display()
            );
        }
    }
}

/// Removes the temporary files in `dir` and its chunk directories that were last modified at
/// least [`STALE_TEMP`] before `now`; returns how many it removed.
fn sweep_stale_temps(dir: &Path, now: SystemTime) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() && !name.starts_with('.') {
            removed += sweep_stale_temps(&entry.path(), now);
        } else if file_type.is_file() && name.starts_with(TEMP_PREFIX) {
            let modified = entry.metadata().and_then(|m| m.modified());
            let stale =
                modified.is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age >= STALE_TEMP));
            if stale && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}
