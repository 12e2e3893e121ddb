//! Removing the temporary files that writers which died left behind.
//!
//! A writer locks its temporary file (`.tmp-l<16 hex>`, see `names::LOCKED_TEMP_PREFIX`) for
//! as long as it works on it, and a lock dies with its process. So a sweep removes such a file
//! exactly when it can take the lock itself, whatever its age, and removes it while holding the
//! lock; a writer that created its file just before the sweep took the lock sees the file gone
//! once it gets the lock, and starts over with another (`write::Inner::create_temp`). Files of
//! older versions (`.tmp-<16 hex>`, never locked) are removed once unmodified for
//! [`STALE_TEMP`].
//!
//! [`sweep_root`] sweeps every store under a root, which a
//! [`Catalog::file`](crate::Catalog::file) does when it opens, so a restarted server starts
//! clean. A handle also sweeps its store at its first write or delete, and then at most once per
//! [`STALE_TEMP`]. Sweeping is best effort: what it cannot remove stays, never listed.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use super::Inner;
use super::names::{TEMP_PREFIX, is_locked_temp};
use super::sys::open_existing;

/// A temporary file of an older version unchanged for this long was left by a writer that
/// died: a live write changes its file with every chunk it receives and renames it moments
/// after the last.
const STALE_TEMP: Duration = Duration::from_secs(60 * 60);

impl Inner {
    /// Before the first change made through this handle, and before the first change after
    /// every [`STALE_TEMP`] since the last sweep, removes the temporary files that writers
    /// which died left in the store. Best effort: a file that cannot be removed stays, never
    /// listed, as it would have anyway.
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
        let removed = sweep_dead_temps(&self.dir, SystemTime::now());
        if removed > 0 {
            tracing::info!(
                "removed {removed} temporary files left by interrupted writes in {}",
                self.dir.display()
            );
        }
    }
}

/// Removes the temporary files of dead writers in every store directory under `root`; returns
/// how many it removed.
pub(crate) fn sweep_root(root: &Path) -> usize {
    let Ok(entries) = fs::read_dir(root) else {
        return 0;
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let is_store = entry.file_type().is_ok_and(|t| t.is_dir())
            && !entry.file_name().to_string_lossy().starts_with('.');
        if is_store {
            removed += sweep_dead_temps(&entry.path(), now);
        }
    }
    if removed > 0 {
        tracing::info!(
            "removed {removed} temporary files left by interrupted writes under {}",
            root.display()
        );
    }
    removed
}

/// Removes the temporary files of dead writers in `dir` and its chunk directories; returns how
/// many it removed.
fn sweep_dead_temps(dir: &Path, now: SystemTime) -> usize {
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
            removed += sweep_dead_temps(&entry.path(), now);
        } else if file_type.is_file() && is_locked_temp(name) {
            removed += usize::from(remove_if_unlocked(&entry.path()));
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

/// Removes the locked temporary file at `path` if no writer holds its lock, while holding it.
fn remove_if_unlocked(path: &Path) -> bool {
    let Ok(Some(file)) = open_existing(path) else {
        return false;
    };
    if file.try_lock().is_err() {
        return false;
    }
    fs::remove_file(path).is_ok()
}
