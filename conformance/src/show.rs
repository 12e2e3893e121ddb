//! Values as failure messages show them: in words a reader of a report understands, never as
//! Rust `Debug` output. An empty ETag reads "no ETag", a failed condition "condition failed
//! (nothing written)", an absent value "none".

use std::collections::BTreeSet;

use blobjobs_store_api::{
    Blob, BlobInfo, ErrorKind, Etag, Job, JobId, JobPage, JobStatus, ListPage, Metadata,
    SetOutcome, Timestamp,
};
use bytes::Bytes;
use serde_json::Value;

use crate::ctx::{show_etag, show_job, show_value};

/// A value rendered for a failure message.
pub(crate) trait Show {
    /// The value in words.
    fn show(&self) -> String;
}

impl<T: Show + ?Sized> Show for &T {
    fn show(&self) -> String {
        (**self).show()
    }
}

impl<T: Show> Show for Option<T> {
    fn show(&self) -> String {
        match self {
            Some(v) => v.show(),
            None => "none".to_owned(),
        }
    }
}

impl<T: Show> Show for Vec<T> {
    fn show(&self) -> String {
        if self.is_empty() {
            return "an empty list".to_owned();
        }
        let items: Vec<String> = self.iter().map(Show::show).collect();
        format!("[{}]", items.join(", "))
    }
}

impl<T: Show> Show for BTreeSet<T> {
    fn show(&self) -> String {
        if self.is_empty() {
            return "an empty set".to_owned();
        }
        let items: Vec<String> = self.iter().map(Show::show).collect();
        format!("{{{}}}", items.join(", "))
    }
}

impl Show for str {
    fn show(&self) -> String {
        format!("{self:?}")
    }
}

impl Show for String {
    fn show(&self) -> String {
        self.as_str().show()
    }
}

impl Show for [u8] {
    fn show(&self) -> String {
        show_bytes(self)
    }
}

/// Byte strings show as short text when they are short UTF-8, else as their length.
impl Show for Bytes {
    fn show(&self) -> String {
        show_bytes(self)
    }
}

fn show_bytes(value: &[u8]) -> String {
    if value.is_empty() {
        "an empty value".to_owned()
    } else {
        show_value(value)
    }
}

macro_rules! show_display {
    ($($t:ty),*) => {
        $(impl Show for $t {
            fn show(&self) -> String {
                self.to_string()
            }
        })*
    };
}

show_display!(u8, u32, u64, usize, i64);

impl Show for bool {
    fn show(&self) -> String {
        if *self { "yes" } else { "no" }.to_owned()
    }
}

impl Show for Etag {
    fn show(&self) -> String {
        if self.as_str().trim().is_empty() {
            "no ETag".to_owned()
        } else {
            format!("ETag {}", show_etag(self).trim_matches('"'))
        }
    }
}

impl Show for SetOutcome {
    fn show(&self) -> String {
        match self {
            SetOutcome::Written { etag } => format!("written ({})", etag.show()),
            SetOutcome::ConditionFailed => "condition failed (nothing written)".to_owned(),
        }
    }
}

impl Show for ErrorKind {
    fn show(&self) -> String {
        format!("error {self}")
    }
}

impl Show for Metadata {
    fn show(&self) -> String {
        if self.is_empty() {
            return "no metadata".to_owned();
        }
        let json = self.to_json();
        if json.chars().count() > 80 {
            format!("metadata of {} bytes of JSON", json.len())
        } else {
            format!("metadata {json}")
        }
    }
}

impl Show for Value {
    fn show(&self) -> String {
        let json = self.to_string();
        if json.chars().count() > 80 {
            format!("{} bytes of JSON", json.len())
        } else {
            json
        }
    }
}

impl Show for JobStatus {
    fn show(&self) -> String {
        self.as_str().to_owned()
    }
}

impl Show for JobId {
    fn show(&self) -> String {
        format!("job {self}")
    }
}

impl Show for Job {
    fn show(&self) -> String {
        let mut s = format!(
            "{} ({}, input {}",
            show_job(self),
            self.kind,
            self.input.show()
        );
        if let Some(p) = &self.progress {
            s.push_str(&format!(", {}%", p.percent));
        }
        if let Some(r) = &self.result {
            s.push_str(&format!(", result {}", r.show()));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!(", error {e:?}"));
        }
        s.push(')');
        s
    }
}

impl Show for () {
    fn show(&self) -> String {
        "done".to_owned()
    }
}

impl Show for BlobInfo {
    fn show(&self) -> String {
        format!(
            "{} bytes, {}, {}, written {}",
            self.size,
            self.etag.show(),
            self.metadata.show(),
            self.last_modified.to_rfc3339()
        )
    }
}

impl Show for Blob {
    fn show(&self) -> String {
        format!("{} ({})", self.value.show(), self.info.etag.show())
    }
}

impl Show for ListPage {
    fn show(&self) -> String {
        let keys: Vec<String> = self.blobs.iter().map(|e| e.key.clone()).collect();
        format!("a page listing {}", keys.show())
    }
}

impl Show for JobPage {
    fn show(&self) -> String {
        let ids: Vec<JobId> = self.jobs.iter().map(|j| j.id.clone()).collect();
        format!("a page listing {}", ids.show())
    }
}

impl Show for Timestamp {
    fn show(&self) -> String {
        self.to_rfc3339()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_words_not_debug_output() {
        assert_eq!(Etag::new("").show(), "no ETag");
        assert_eq!(Etag::new("\"abc\"").show(), "ETag abc");
        assert_eq!(None::<Etag>.show(), "none");
        assert_eq!(
            SetOutcome::ConditionFailed.show(),
            "condition failed (nothing written)"
        );
        assert_eq!(Some(ErrorKind::TooLarge).show(), "error too_large");
        assert_eq!(Metadata::new().show(), "no metadata");
        assert_eq!(Bytes::new().show(), "an empty value");
        assert_eq!(Bytes::from_static(b"hi").show(), "\"hi\"");
        assert_eq!(Vec::<String>::new().show(), "an empty list");
        assert_eq!(vec!["a".to_owned()].show(), "[\"a\"]");
        assert_eq!(true.show(), "yes");
    }
}
