//! Awkward keys: they round-trip, never alias each other, and bad keys are typed errors.

use std::collections::BTreeMap;

use blobjobs_store_api::{ErrorKind, ListOptions, SetOptions};
use bytes::Bytes;

use crate::case::{Case, case, ensure, ensure_eq};
use crate::ctx::{Ctx, Failure};

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
    ]
}

/// Keys that break naive URL, path or file-name handling. Several are chosen to collide
/// under a careless encoding: `a b` / `a+b` / `a%20b`, `a/b` / `a%2Fb`, `x/../y` / `y`.
fn awkward_keys() -> Vec<&'static str> {
    vec![
        "a",
        "a/b",
        "a/b/c",
        "a b",
        "a+b",
        "a%20b",
        "a%2Fb",
        "a%2fb",
        "100%",
        "what?x=1&y=2",
        "#fragment",
        "x/../y",
        "y",
        "..",
        "./z",
        "z",
        "a//b",
        "trailing/",
        "back\\slash",
        "quote\"and'apos",
        "semi;colon:colon",
        "tilde~star*",
        "ünïcödé/日本語/😀",
        "e\u{301}",
        "\u{e9}",
        "UPPER",
        "upper",
        "tab\tnewline\n",
        "<angle>[brackets]{braces}|pipe^caret`tick",
    ]
}

async fn awkward_keys_round_trip_and_never_alias(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    let keys = awkward_keys();
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
        ensure!(
            blob.value.as_ref() == expected.as_bytes(),
            "key {key:?} reads {:?}: it aliases another key",
            String::from_utf8_lossy(&blob.value)
        );
        want.insert((*key).to_owned(), expected);
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
    for key in ["", "/leading-slash", too_long.as_str()] {
        let shown = if key.len() > 20 {
            format!("<{} bytes>", key.len())
        } else {
            format!("{key:?}")
        };
        let set = s
            .raw
            .set(key, Bytes::from_static(b"x"), SetOptions::new())
            .await;
        ensure_eq!(
            set.err().map(|e| e.kind()),
            Some(ErrorKind::InvalidInput),
            "kind of the error of set with key {shown}"
        );
        let get = s.raw.get(key).await;
        ensure_eq!(
            get.err().map(|e| e.kind()),
            Some(ErrorKind::InvalidInput),
            "kind of the error of get with key {shown}"
        );
    }
    Ok(())
}
