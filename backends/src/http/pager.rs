//! Listing pages of any size on top of the server's own pages.
//!
//! The wire protocol has no page-size parameter: the server picks its page size and hands
//! out opaque `next_cursor`s. To honour `ListOptions::page_size` exactly, the client cuts
//! server pages into pages of the requested size. Its cursor names the server page (by the
//! server cursor that fetched it) and the last item already returned from it, so a page in
//! the middle of a server page re-fetches that server page and skips what was returned.
//! The client also drops entries outside the prefix (the official `BlobsServer` returns
//! keys that are a prefix *of* the prefix) and sorts each server page.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use blobjobs_store_api::list::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use blobjobs_store_api::{Error, ListEntry, ListOptions, ListPage, Result};

/// One item of a listing in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// A blob.
    Blob(ListEntry),
    /// A directory (its keys are `name/…`).
    Dir(String),
}

impl Item {
    /// The string items are ordered by: a directory sorts where its first key would,
    /// just after `name/`.
    fn sort_key(&self) -> String {
        match self {
            Item::Blob(e) => e.key.clone(),
            Item::Dir(d) => format!("{d}/"),
        }
    }

    fn mark(&self) -> String {
        match self {
            Item::Blob(e) => format!("k{}", e.key),
            Item::Dir(d) => format!("d{d}"),
        }
    }
}

/// Where a client page ended: the server cursor of the server page it was cut from, and
/// the sort key of the last item returned from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) server_cursor: Option<String>,
    after: Option<String>,
}

impl Position {
    pub(crate) fn decode(cursor: Option<&str>) -> Result<Position> {
        let Some(cursor) = cursor else {
            return Ok(Position::default());
        };
        let bad = || Error::invalid("malformed list cursor");
        let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
        let (server_cursor, mark): (Option<String>, Option<String>) =
            serde_json::from_slice(&raw).map_err(|_| bad())?;
        let after = match mark {
            None => None,
            Some(m) => {
                let mut chars = m.chars();
                match chars.next() {
                    Some('k') => Some(chars.as_str().to_owned()),
                    Some('d') => Some(format!("{}/", chars.as_str())),
                    _ => return Err(bad()),
                }
            }
        };
        Ok(Position {
            server_cursor,
            after,
        })
    }

    fn encode(server_cursor: Option<&str>, last: Option<&Item>) -> String {
        let value = (server_cursor, last.map(Item::mark));
        // Serializing strings cannot fail.
        let json = serde_json::to_vec(&value).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }
}

/// The requested page size, checked like every backend checks it.
pub(crate) fn page_size(options: &ListOptions) -> Result<usize> {
    let size = options.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if size == 0 || size > MAX_PAGE_SIZE {
        return Err(Error::invalid(format!(
            "page size must be between 1 and {MAX_PAGE_SIZE}"
        )));
    }
    Ok(size)
}

/// Builds one client page from server pages fed in order.
pub(crate) struct Cutter {
    prefix: String,
    size: usize,
    position: Position,
    page: ListPage,
    last: Option<Item>,
}

/// What the cutter needs next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Fetch the server page at this cursor and feed it.
    Fetch(String),
    /// The client page is complete; take it with [`Cutter::finish`].
    Done,
}

impl Cutter {
    /// A cutter for `options`, and the server cursor of the first server page to fetch.
    pub(crate) fn new(options: &ListOptions) -> Result<(Cutter, Option<String>)> {
        let size = page_size(options)?;
        let position = Position::decode(options.cursor.as_deref())?;
        let first = position.server_cursor.clone();
        Ok((
            Cutter {
                prefix: options.prefix.clone(),
                size,
                position,
                page: ListPage::default(),
                last: None,
            },
            first,
        ))
    }

    fn is_full(&self) -> bool {
        self.page.blobs.len() + self.page.directories.len() >= self.size
    }

    /// Takes the server page fetched at the current position (as the protocol's list body
    /// reads it: keyless entries dropped, an empty cursor already `None`).
    pub(crate) fn feed(&mut self, server: ListPage) -> Step {
        let mut items: Vec<(String, Item)> = server
            .blobs
            .into_iter()
            .filter(|e| e.key.starts_with(&self.prefix))
            .map(Item::Blob)
            .chain(
                server
                    .directories
                    .into_iter()
                    .filter(|d| d.starts_with(&self.prefix))
                    .map(Item::Dir),
            )
            .map(|item| (item.sort_key(), item))
            .collect();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        items.dedup_by(|a, b| a.0 == b.0);
        for (sort_key, item) in items {
            if self
                .position
                .after
                .as_ref()
                .is_some_and(|after| sort_key <= *after)
            {
                continue;
            }
            if self.is_full() {
                self.page.next_cursor = Some(Position::encode(
                    self.position.server_cursor.as_deref(),
                    self.last.as_ref(),
                ));
                return Step::Done;
            }
            match &item {
                Item::Blob(e) => self.page.blobs.push(e.clone()),
                Item::Dir(d) => self.page.directories.push(d.clone()),
            }
            self.last = Some(item);
        }
        let Some(next) = server.next_cursor else {
            return Step::Done;
        };
        if self.is_full() {
            // Full exactly at the end of a server page: point at the start of the next
            // server page rather than fetch it now. That page may turn out empty.
            self.page.next_cursor = Some(Position::encode(Some(&next), None));
            return Step::Done;
        }
        self.position = Position {
            server_cursor: Some(next.clone()),
            after: None,
        };
        self.last = None;
        Step::Fetch(next)
    }

    /// The finished page.
    pub(crate) fn finish(self) -> ListPage {
        self.page
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blobjobs_store_api::{Etag, Timestamp};

    fn entry(key: &str) -> ListEntry {
        ListEntry {
            key: key.into(),
            etag: Etag::new("\"e\""),
            size: 1,
            last_modified: Timestamp::from_millis(0),
        }
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_are_rejected() {
        let item = Item::Dir("a".into());
        let c = Position::encode(Some("srv"), Some(&item));
        let p = Position::decode(Some(&c)).unwrap();
        assert_eq!(p.server_cursor.as_deref(), Some("srv"));
        assert_eq!(p.after.as_deref(), Some("a/"));
        for bad in ["***", "", "eA", "WzFd"] {
            assert!(Position::decode(Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_server_page_is_cut_into_client_pages() {
        let keys = ["a", "b", "c", "d", "e"];
        let mut cursor = None;
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let options = ListOptions::new().page_size(2).cursor(cursor);
            let (mut cutter, server_cursor) = Cutter::new(&options).unwrap();
            assert_eq!(server_cursor, None);
            let server = ListPage {
                blobs: keys.iter().rev().map(|k| entry(k)).collect(),
                directories: vec![],
                next_cursor: None,
            };
            assert_eq!(cutter.feed(server), Step::Done);
            let page = cutter.finish();
            pages += 1;
            seen.extend(page.blobs.into_iter().map(|e| e.key));
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(seen, keys);
        assert_eq!(pages, 3);
    }

    #[test]
    fn entries_outside_the_prefix_are_dropped() {
        let (mut cutter, _) = Cutter::new(&ListOptions::new().prefix("dir/")).unwrap();
        let server = ListPage {
            blobs: vec![entry("d"), entry("dir/a")],
            directories: vec!["dir/x".into(), "other".into()],
            next_cursor: None,
        };
        assert_eq!(cutter.feed(server), Step::Done);
        let page = cutter.finish();
        assert_eq!(page.blobs.len(), 1);
        assert_eq!(page.directories, ["dir/x"]);
    }
}
