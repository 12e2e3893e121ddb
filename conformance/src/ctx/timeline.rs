//! What a case's timeline is made of: the timeline itself, which instance last wrote each
//! key (to name the seed's bug when another instance finds nothing), and the short
//! renderings of values, ETags, conditions, errors and jobs its lines use.

use std::sync::Mutex;

use blobjobs_store_api::{Condition, Error, Etag, Job};

/// The operations of one case, in the order they returned.
#[derive(Debug, Default)]
pub(crate) struct Timeline(Mutex<Vec<String>>);

/// Lines kept per case; a longer timeline keeps its end, where the failure is.
const TIMELINE_KEEP: usize = 60;

impl Timeline {
    pub(crate) fn push(&self, line: String) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(line);
        }
    }

    pub(crate) fn lines(&self) -> Vec<String> {
        let lines = self.0.lock().map(|l| l.clone()).unwrap_or_default();
        if lines.len() > TIMELINE_KEEP {
            let mut tail = vec![format!(
                "… {} earlier operations",
                lines.len() - TIMELINE_KEEP
            )];
            tail.extend_from_slice(&lines[lines.len() - TIMELINE_KEEP..]);
            tail
        } else {
            lines
        }
    }
}

/// Which instance of a case last wrote each key or created each job, so that a read by
/// another instance that finds nothing can be named for what it is: the seed's bug.
#[derive(Debug, Default)]
pub(crate) struct Owners(Mutex<std::collections::HashMap<String, Option<usize>>>);

impl Owners {
    /// `instance` wrote `key` (or created the job `key`).
    pub(super) fn wrote(&self, key: &str, instance: usize) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(key.to_owned(), Some(instance));
        }
    }

    /// `key` was deleted (by any instance): finding nothing is right from now on.
    pub(crate) fn deleted(&self, key: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(key.to_owned(), None);
        }
    }

    /// The instance other than `reader` that wrote `key` last, if the key should exist.
    pub(super) fn other_writer(&self, key: &str, reader: usize) -> Option<usize> {
        let m = self.0.lock().ok()?;
        m.get(key).copied().flatten().filter(|w| *w != reader)
    }
}

/// A short rendering of a value for timelines.
pub(crate) fn show_value(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(s) if s.chars().count() <= 24 => format!("{s:?}"),
        _ => format!("<{} bytes>", value.len()),
    }
}

/// A short rendering of an ETag for timelines.
pub(crate) fn show_etag(etag: &Etag) -> String {
    let s = etag.as_str();
    if s.chars().count() > 14 {
        let head: String = s.chars().take(12).collect();
        format!("{head}…")
    } else {
        s.to_owned()
    }
}

pub(crate) fn show_condition(c: &Condition) -> String {
    match c {
        Condition::Always => String::new(),
        Condition::IfNew => " if-new".to_owned(),
        Condition::IfMatch(e) => format!(" if-match {}", show_etag(e)),
    }
}

pub(crate) fn show_err(e: &Error) -> String {
    format!("error {}", e.kind())
}

pub(crate) fn show_job(job: &Job) -> String {
    let mut s = format!("{} {}", job.id, job.status);
    if let Some(lease) = &job.lease {
        s.push_str(&format!(" by {}", lease.owner));
    }
    s.push_str(&format!(", attempts {}", job.attempts));
    s
}
