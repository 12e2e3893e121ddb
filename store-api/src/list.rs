//! Listing semantics shared by every backend: prefix, directories mode and opaque cursors.
//!
//! A backend walks its keys in ascending byte order, starting at [`Paginator::start_key`],
//! and pushes each one into a [`Paginator`] until it says stop. Keeping this logic in one
//! place is what makes every backend paginate, collapse directories and reject bad cursors
//! the same way.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::blob::{ListEntry, ListOptions, ListPage};
use crate::error::{Error, Result};

/// Entries per page when [`ListOptions::page_size`] is not set.
pub const DEFAULT_PAGE_SIZE: usize = 1000;
/// The largest page size a caller may ask for.
pub const MAX_PAGE_SIZE: usize = 10_000;

/// Where the previous page ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum After {
    /// The last item was this blob key.
    Key(String),
    /// The last item was this directory; its keys are `dir/…`.
    Dir(String),
}

fn encode_cursor(after: &After) -> String {
    let raw = match after {
        After::Key(k) => format!("k{k}"),
        After::Dir(d) => format!("d{d}"),
    };
    URL_SAFE_NO_PAD.encode(raw)
}

fn decode_cursor(cursor: &str) -> Result<After> {
    let bad = || Error::invalid("malformed list cursor");
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let mut chars = raw.chars();
    match chars.next() {
        Some('k') => Ok(After::Key(chars.as_str().to_owned())),
        Some('d') => Ok(After::Dir(chars.as_str().to_owned())),
        _ => Err(bad()),
    }
}

/// Whether to keep feeding a [`Paginator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Push the next key.
    Continue,
    /// The page is full and the cursor is set; stop walking.
    Stop,
}

/// Builds one [`ListPage`] from keys pushed in ascending order.
#[derive(Debug)]
pub struct Paginator {
    prefix: String,
    directories: bool,
    after: Option<After>,
    page_size: usize,
    page: ListPage,
    last: Option<After>,
}

impl Paginator {
    /// Checks the options (the cursor and page size) and prepares an empty page.
    pub fn new(options: &ListOptions) -> Result<Self> {
        let after = options.cursor.as_deref().map(decode_cursor).transpose()?;
        let page_size = options.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        if page_size == 0 || page_size > MAX_PAGE_SIZE {
            return Err(Error::invalid(format!(
                "page size must be between 1 and {MAX_PAGE_SIZE}"
            )));
        }
        Ok(Paginator {
            prefix: options.prefix.clone(),
            directories: options.directories,
            after,
            page_size,
            page: ListPage::default(),
            last: None,
        })
    }

    /// The smallest key worth visiting: keys below it are either outside the prefix or on an
    /// earlier page. Backends with ordered indexes start their range scan here.
    pub fn start_key(&self) -> &str {
        let from_cursor = match &self.after {
            Some(After::Key(k)) | Some(After::Dir(k)) => k.as_str(),
            None => "",
        };
        if from_cursor > self.prefix.as_str() {
            from_cursor
        } else {
            &self.prefix
        }
    }

    /// The prefix being listed.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Offers the next key in ascending order. Keys outside the prefix, or at or before the
    /// cursor, are skipped. Returns [`Flow::Stop`] once the page is full and a further item
    /// exists, at which point `next_cursor` is set.
    pub fn push(&mut self, entry: ListEntry) -> Flow {
        if !entry.key.starts_with(&self.prefix) {
            // Keys are ascending, so once past the prefix range nothing more can match.
            return if entry.key.as_str() > self.prefix.as_str() {
                Flow::Stop
            } else {
                Flow::Continue
            };
        }
        match &self.after {
            Some(After::Key(k)) if entry.key.as_str() <= k.as_str() => return Flow::Continue,
            // The directory `d` stood for every key `d/…`, and it came after every key below
            // them, such as `d-1` or `d.x` (bytes below `/`): all of them are on earlier pages.
            Some(After::Dir(d))
                if entry.key.as_str() <= d.as_str()
                    || (entry.key.starts_with(d.as_str())
                        && entry
                            .key
                            .as_bytes()
                            .get(d.len())
                            .is_some_and(|&b| b <= b'/')) =>
            {
                return Flow::Continue;
            }
            _ => {}
        }
        let item = if self.directories {
            let rest = &entry.key[self.prefix.len()..];
            match rest.find('/') {
                Some(i) => After::Dir(entry.key[..self.prefix.len() + i].to_owned()),
                None => After::Key(entry.key.clone()),
            }
        } else {
            After::Key(entry.key.clone())
        };
        if let (After::Dir(d), Some(After::Dir(last))) = (&item, &self.last)
            && d == last
        {
            return Flow::Continue;
        }
        if self.page.blobs.len() + self.page.directories.len() >= self.page_size {
            if let Some(last) = &self.last {
                self.page.next_cursor = Some(encode_cursor(last));
            }
            return Flow::Stop;
        }
        match &item {
            After::Dir(d) => self.page.directories.push(d.clone()),
            After::Key(_) => self.page.blobs.push(entry),
        }
        self.last = Some(item);
        Flow::Continue
    }

    /// The finished page.
    pub fn finish(self) -> ListPage {
        self.page
    }
}

/// Lists `entries`, which must be in ascending key order, with `options`: the whole
/// listing algorithm for backends that can produce their keys as an iterator.
pub fn paginate(
    entries: impl IntoIterator<Item = ListEntry>,
    options: &ListOptions,
) -> Result<ListPage> {
    let mut pager = Paginator::new(options)?;
    for entry in entries {
        if pager.push(entry) == Flow::Stop {
            break;
        }
    }
    Ok(pager.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::{Etag, Timestamp};

    fn entries(keys: &[&str]) -> Vec<ListEntry> {
        let mut keys: Vec<&str> = keys.to_vec();
        keys.sort();
        keys.into_iter()
            .map(|k| ListEntry {
                key: k.to_owned(),
                etag: Etag::new("\"x\""),
                size: 1,
                last_modified: Timestamp::from_millis(0),
            })
            .collect()
    }

    fn walk(keys: &[&str], options: ListOptions) -> (Vec<String>, Vec<String>, usize) {
        let all = entries(keys);
        let mut blobs = Vec::new();
        let mut dirs = Vec::new();
        let mut pages = 0;
        let mut cursor = None;
        loop {
            let page = paginate(all.clone(), &options.clone().cursor(cursor)).unwrap();
            pages += 1;
            assert!(pages <= all.len() + 1, "the cursors go round");
            blobs.extend(page.blobs.into_iter().map(|e| e.key));
            dirs.extend(page.directories);
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        (blobs, dirs, pages)
    }

    /// A key such as `a-1` sorts after `a` but before the directory `a/`, so a cursor past the
    /// directory must skip it: it was on an earlier page (paging used to go round forever).
    #[test]
    fn a_cursor_past_a_directory_skips_the_keys_listed_before_it() {
        let keys = ["a", "a-1", "a.b", "a/x", "a/y", "a0", "b"];
        let (blobs, dirs, pages) = walk(&keys, ListOptions::new().directories(true).page_size(1));
        assert_eq!(blobs, ["a", "a-1", "a.b", "a0", "b"]);
        assert_eq!(dirs, ["a"]);
        assert_eq!(pages, 6);
    }

    #[test]
    fn prefix_is_exact() {
        let (blobs, _, _) = walk(
            &["d", "dir/a", "dir/b", "dx"],
            ListOptions::new().prefix("dir/"),
        );
        assert_eq!(blobs, ["dir/a", "dir/b"]);
    }

    #[test]
    fn directories_collapse_after_the_prefix() {
        let keys = ["top", "cart/42", "cart/43", "cart/x/1", "cart/x/2", "cart0"];
        let (blobs, dirs, _) = walk(&keys, ListOptions::new().directories(true));
        assert_eq!(blobs, ["cart0", "top"]);
        assert_eq!(dirs, ["cart"]);
        let (blobs, dirs, _) = walk(&keys, ListOptions::new().prefix("cart/").directories(true));
        assert_eq!(blobs, ["cart/42", "cart/43"]);
        assert_eq!(dirs, ["cart/x"]);
    }

    #[test]
    fn pages_partition_the_listing() {
        let keys: Vec<String> = (0..25).map(|i| format!("k{i:02}")).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let (blobs, _, pages) = walk(&refs, ListOptions::new().page_size(10));
        assert_eq!(blobs, keys);
        assert_eq!(pages, 3);
        // A page size that divides the count exactly leaves no empty trailing page.
        let (blobs, _, pages) = walk(&refs[..20], ListOptions::new().page_size(10));
        assert_eq!(blobs.len(), 20);
        assert_eq!(pages, 2);
    }

    #[test]
    fn directory_and_blob_of_one_name_both_appear_across_pages() {
        let keys = ["a", "a/b", "a/c", "b"];
        for size in 1..=4 {
            let (blobs, dirs, _) =
                walk(&keys, ListOptions::new().directories(true).page_size(size));
            assert_eq!(blobs, ["a", "b"], "page size {size}");
            assert_eq!(dirs, ["a"], "page size {size}");
        }
    }

    #[test]
    fn bad_cursors_and_sizes_are_invalid_input() {
        let all = entries(&["a"]);
        for cursor in ["***", "", "eA"] {
            let err = paginate(all.clone(), &ListOptions::new().cursor(Some(cursor.into())));
            assert!(err.is_err(), "{cursor:?}");
        }
        assert!(paginate(all.clone(), &ListOptions::new().page_size(0)).is_err());
    }

    #[test]
    fn start_key_skips_what_cannot_match() {
        let p = Paginator::new(&ListOptions::new().prefix("m")).unwrap();
        assert_eq!(p.start_key(), "m");
        let cursor = encode_cursor(&After::Key("q".into()));
        let p = Paginator::new(&ListOptions::new().prefix("m").cursor(Some(cursor))).unwrap();
        assert_eq!(p.start_key(), "q");
    }
}
