//! Awkward keys: they round-trip, never alias each other, and bad keys are typed errors.

use std::collections::BTreeMap;

use blobjobs_store_api::{ErrorKind, ListOptions, Metadata, SetOptions, SetOutcome, once_stream};
use bytes::Bytes;

use crate::case::{Case, case, ensure, ensure_eq, expect_kind};
use crate::causes;
use crate::ctx::{Ctx, Failure};
use crate::show::Show as _;

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!(
            "keys",
            awkward_keys_round_trip_and_never_alias,
            SingleInstance
        ),
        case!("keys", longest_key_round_trips, SingleInstance),
        case!(
            "keys",
            invalid_keys_are_rejected_as_invalid_input,
            SingleInstance
        ),
        case!(
            "keys",
            awkward_keys_work_through_every_operation,
            SingleInstance
        ),
    ]
}

/// Valid keys that are easy to get wrong, the longest ones filling `max_key_bytes`: keys that
/// break naive URL, path, file-name or shell handling, and pairs chosen to collide under a
/// careless encoding (`a b` / `a+b` / `a%20b`, `a/b` / `a%2Fb`, `%41` / `A`, `x/../y` / `y`,
/// `e\u{301}` / `\u{e9}`). Besides those: siblings that are prefixes of each other, dot
/// segments, repeated and trailing slashes, control characters, unicode, case, and the longest
/// keys (also as one 2-byte character repeated, and as a segment too long for a file name).
///
/// Backends' own tests use the same list (with the protocol's 600 bytes), so that every
/// place that encodes keys is held to one set.
pub fn awkward_keys(max_key_bytes: usize) -> Vec<String> {
    let mut keys: Vec<String> = [
        "a",
        "a/b",
        "a/b/c",
        "a b",
        "a+b",
        "a%b",
        "a%20b",
        "a%2Fb",
        "a%2fb",
        "%41",
        "A",
        "100%",
        "a?b",
        "a#b",
        "what?x=1&y=2",
        "#fragment",
        "a;b*c",
        "q\"<>^`{}|",
        "..",
        ".",
        "...",
        "../x",
        "x/../y",
        "y",
        "./z",
        "z",
        "z/.",
        "dot.",
        "a//b",
        "trailing/",
        "\\",
        "a\\b",
        "back\\slash",
        "quote\"and'apos",
        "semi;colon:colon",
        "tilde~star*",
        "-",
        "_",
        "~",
        "a.b",
        "a.b.b",
        "ü/ß",
        "ü/é",
        "日本語",
        "emoji-😀",
        "😀",
        "ünïcödé/日本語/😀",
        "e\u{301}",
        "\u{e9}",
        "UPPER",
        "upper",
        "nul\u{0}byte",
        "x\ny",
        "tab\there",
        "tab\tnewline\n",
        "<angle>[brackets]{braces}|pipe^caret`tick",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let n = max_key_bytes;
    keys.push("k".repeat(n));
    keys.push("%".repeat(n));
    keys.push("ü".repeat(n / 2));
    // A segment longer than the 255 bytes a file name may have, after a shorter one.
    let first = 250.min(n / 3);
    keys.push(format!(
        "{}/{}",
        "d".repeat(first),
        "e".repeat(n - first - 1)
    ));
    keys.push("K".repeat(n));
    keys
}

async fn awkward_keys_round_trip_and_never_alias(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    let keys = awkward_keys(ctx.max_key_bytes());
    // Each key's value names the key, so an alias shows as a wrong value.
    for key in &keys {
        s.put(key, format!("value of {key}")).await?;
    }
    let mut want: BTreeMap<String, String> = BTreeMap::new();
    for key in &keys {
        let blob = s.get(key).await?;
        let Some(blob) = blob else {
            return Err(Failure::new(format!("key {key:?} not found after set")));
        };
        let expected = format!("value of {key}");
        if blob.value.as_ref() != expected.as_bytes() {
            return Err(Failure::new(format!(
                "key {key:?} reads {:?}: it aliases another key",
                String::from_utf8_lossy(&blob.value)
            ))
            .because(causes::KEYS_MANGLED));
        }
        want.insert(key.clone(), expected);
    }
    let (entries, _) = s.list_all(ListOptions::new()).await?;
    let listed: Vec<String> = entries.iter().map(|e| e.key.clone()).collect();
    let expected: Vec<String> = want.keys().cloned().collect();
    ensure_eq!(
        listed,
        expected,
        "the listing of awkward keys (exactly these, in byte order)"
    );
    // Deleting one key of an aliasing pair must leave the other.
    s.delete("a%2Fb").await?;
    ensure!(
        s.get("a/b").await?.is_some(),
        "deleting \"a%2Fb\" removed \"a/b\""
    );
    s.delete("x/../y").await?;
    ensure!(
        s.get("y").await?.is_some(),
        "deleting \"x/../y\" removed \"y\""
    );
    Ok(())
}

async fn longest_key_round_trips(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    let n = ctx.max_key_bytes();
    ensure!(
        n >= 16,
        "the run's key prefix leaves only {n} bytes for keys"
    );
    // A key of exactly the maximum length that ends in a multi-byte character.
    let mut key = "k".repeat(n - 2);
    key.push('ü');
    ensure_eq!(
        key.len() + ctx.prefix().len(),
        ctx.caps().max_key_bytes,
        "test key length"
    );
    s.put(&key, "long").await?;
    let blob = s
        .get(&key)
        .await?
        .ok_or_else(|| Failure::new("the longest key reads as not found"))?;
    ensure_eq!(
        blob.value.as_ref(),
        b"long".as_slice(),
        "value under the longest key"
    );
    let shorter = &key[..n - 3];
    ensure!(
        s.get(shorter).await?.is_none(),
        "a truncated key aliases the longest key"
    );
    Ok(())
}

async fn invalid_keys_are_rejected_as_invalid_input(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    // Keys that are wrong whatever the prefix go to the instance without it.
    let too_long = format!("{}x", "k".repeat(ctx.caps().max_key_bytes));
    for key in ["", "/leading-slash", "%2Fencoded-slash", too_long.as_str()] {
        let shown = if key.len() > 20 {
            format!("<{} bytes>", key.len())
        } else {
            format!("{key:?}")
        };
        let set = s
            .raw
            .set(key, Bytes::from_static(b"x"), SetOptions::new())
            .await;
        expect_kind(
            set,
            ErrorKind::InvalidInput,
            &format!("set with key {shown}"),
        )?;
        let get = s.raw.get(key).await;
        expect_kind(
            get,
            ErrorKind::InvalidInput,
            &format!("get with key {shown}"),
        )?;
        let head = s.raw.get_metadata(key).await;
        expect_kind(
            head,
            ErrorKind::InvalidInput,
            &format!("get-metadata with key {shown}"),
        )?;
        let delete = s.raw.delete(key).await;
        expect_kind(
            delete,
            ErrorKind::InvalidInput,
            &format!("delete with key {shown}"),
        )?;
        let streamed = s.raw.get_stream(key).await;
        expect_kind(
            streamed.map(|o| o.map(|(info, _)| info)),
            ErrorKind::InvalidInput,
            &format!("get-stream with key {shown}"),
        )?;
        let body = once_stream(Bytes::from_static(b"x"));
        let set = s.raw.set_stream(key, body, None, SetOptions::new()).await;
        expect_kind(
            set,
            ErrorKind::InvalidInput,
            &format!("set-stream with key {shown}"),
        )?;
    }
    Ok(())
}

/// Every operation takes every awkward key: conditional and streamed writes, reads of all
/// kinds, listings under the key itself and under awkward prefixes, page by page, and
/// deletes that leave nothing behind.
async fn awkward_keys_work_through_every_operation(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    let (ctx, w, s) = (&ctx, &s, &s);
    let mut keys = awkward_keys(ctx.max_key_bytes());
    keys.sort();
    for (i, key) in keys.iter().enumerate() {
        // The key travels in the metadata too, where it is a JSON string.
        let meta = if ctx.caps().metadata {
            Metadata::from_pairs([("key", key.as_str())])
        } else {
            Metadata::new()
        };
        let first = w
            .set_with(
                key,
                format!("v{i}"),
                SetOptions::new().if_new().metadata(meta.clone()),
            )
            .await?;
        let SetOutcome::Written { etag } = first else {
            return Err(Failure::new(format!(
                "only-if-new of the fresh key {key:?} did not write"
            )));
        };
        let info = s
            .get_metadata(key)
            .await?
            .ok_or_else(|| Failure::new(format!("get-metadata of {key:?} found nothing")))?;
        ensure_eq!(info.etag, etag, "etag of {key:?} from get-metadata");
        if info.metadata != meta {
            return Err(Failure::new(format!(
                "get-metadata of {key:?} reads {}, not {}",
                info.metadata.show(),
                meta.show()
            ))
            .because(causes::METADATA_ALTERED));
        }
        let value = format!("streamed {i}");
        let chunks = vec![Bytes::from(value.clone())];
        let streamed = w
            .set_stream(key, chunks, None, SetOptions::new().if_match(etag))
            .await?;
        let SetOutcome::Written { etag } = streamed else {
            return Err(Failure::new(format!(
                "a streamed only-if-match write of {key:?} with its current etag failed"
            )));
        };
        let (info, read) = s
            .get_stream(key)
            .await?
            .ok_or_else(|| Failure::new(format!("get-stream of {key:?} found nothing")))?;
        ensure!(
            read == value.as_bytes(),
            "get-stream of {key:?} reads {:?}: it aliases another key",
            String::from_utf8_lossy(&read)
        );
        ensure_eq!(info.etag, etag, "etag of {key:?} from get-stream");
        let blob = s
            .get(key)
            .await?
            .ok_or_else(|| Failure::new(format!("get of {key:?} found nothing")))?;
        ensure_eq!(blob.value.as_ref(), value.as_bytes(), "value of {key:?}");
    }
    // Every key, and every awkward prefix, selects exactly the keys that start with it.
    let awkward_prefixes = ["a", "a/", "%", "ü", ".", "..", "K", "a?", "a#"];
    let prefixes = keys.iter().map(String::as_str).chain(awkward_prefixes);
    for prefix in prefixes {
        let (entries, _) = s.list_all(ListOptions::new().prefix(prefix)).await?;
        let listed: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
        let want: Vec<&str> = keys
            .iter()
            .map(String::as_str)
            .filter(|k| k.starts_with(prefix))
            .collect();
        ensure_eq!(listed, want, "the listing under the prefix {prefix:?}");
    }
    let mut paged = ListOptions::new();
    if ctx.caps().page_size {
        paged = paged.page_size(5);
    }
    let (entries, _) = s.list_all(paged).await?;
    let listed: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
    let want: Vec<&str> = keys.iter().map(String::as_str).collect();
    ensure_eq!(
        listed,
        want,
        "the listing of every awkward key, page by page"
    );
    for key in &keys {
        w.delete(key).await?;
        ensure!(
            s.get_metadata(key).await?.is_none(),
            "{key:?} still has metadata after its delete"
        );
    }
    let (entries, _) = s.list_all(ListOptions::new()).await?;
    let left: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
    ensure!(
        left.is_empty(),
        "keys left after deleting them all: {left:?}"
    );
    Ok(())
}
