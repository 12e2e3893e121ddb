//! Replaying a generated sequence of the blob model against fresh instances: every result
//! compared with the model's, the timeline a mismatch shows, and the final state left to the
//! settle check.

use blobjobs_store_api::{
    BlobStore, ByteStream, Etag, ListEntry, ListOptions, Metadata, SetOutcome,
};
use bytes::Bytes;
use futures_util::StreamExt as _;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{
    BlobAction, BlobModel, BlobStep, Entry, Expect, MODEL_KEYS, MetaShape, ModelCondition,
    ValueShape,
};
use crate::causes;
use crate::ctx::{limited, show_etag};
use crate::model::{Env, Mismatch};
use crate::options::Capabilities;
use crate::settle::{Group, Reader};

impl BlobModel {
    /// The state every model key must be in once the sequence has ended: its value and the
    /// ETag of the write that left it, or `None`.
    fn final_state(&self, run: &Run) -> Vec<(String, Option<(Bytes, Etag)>)> {
        MODEL_KEYS
            .iter()
            .map(|key| {
                let state = self
                    .entries
                    .get(*key)
                    .map(|e| (Bytes::from(e.value()), run.etag(e.version)));
                ((*key).to_owned(), state)
            })
            .collect()
    }
}

fn describe(step: &BlobStep) -> String {
    let what = match &step.action {
        BlobAction::Set {
            key,
            label,
            shape,
            meta,
            streamed,
            condition,
        } => {
            let cond = match condition {
                ModelCondition::Always => String::new(),
                ModelCondition::IfNew => " if-new".to_owned(),
                ModelCondition::IfMatch(v) => format!(" if-match <etag of version {v}>"),
                ModelCondition::IfMatchUnknown => " if-match <never issued>".to_owned(),
            };
            let how = if *streamed { "set-stream" } else { "set" };
            let value = match shape {
                ValueShape::Text => format!("\"v{label}\""),
                other => format!("<{} value {label}>", other.name()),
            };
            let meta = match meta {
                MetaShape::Absent => String::new(),
                other => format!(" with {}", other.name()),
            };
            format!("{how} {key:?}{cond} = {value}{meta}")
        }
        BlobAction::Get { key } => format!("get {key:?}"),
        BlobAction::GetStream { key } => format!("get-stream {key:?}"),
        BlobAction::GetMetadata { key } => format!("get-metadata {key:?}"),
        BlobAction::Delete { key } => format!("delete {key:?}"),
        BlobAction::List {
            prefix,
            directories,
            page_size,
        } => format!(
            "list prefix {prefix:?}{}{}",
            if *directories { " directories" } else { "" },
            page_size
                .map(|n| format!(" page-size {n}"))
                .unwrap_or_default()
        ),
    };
    format!("instance {}: {what}", step.instance)
}

fn show_entry(e: &Entry) -> String {
    match e.shape {
        ValueShape::Text => format!("\"v{}\" (version {})", e.label, e.version),
        other => format!(
            "<{} value {}> (version {})",
            other.name(),
            e.label,
            e.version
        ),
    }
}

fn show_expect(e: &Expect) -> String {
    match e {
        Expect::Written(v) => format!("written (version {v})"),
        Expect::ConditionFailed => "condition failed".to_owned(),
        Expect::Found(e) => show_entry(e),
        Expect::Missing => "not found".to_owned(),
        Expect::Deleted => "ok".to_owned(),
        Expect::Listed(blobs, dirs) => show_listing(
            &blobs.iter().map(|(k, _, _)| k.clone()).collect::<Vec<_>>(),
            dirs,
        ),
    }
}

fn show_listing(blobs: &[String], dirs: &[String]) -> String {
    let mut items: Vec<String> = blobs.iter().map(|k| format!("{k:?}")).collect();
    items.extend(dirs.iter().map(|d| format!("{d:?}/")));
    format!("[{}]", items.join(", "))
}

/// A short rendering of a value read back.
fn show_read(value: &[u8], etag: &Etag) -> String {
    let shown = if value.is_empty() {
        "<empty value>".to_owned()
    } else {
        crate::ctx::show_value(value)
    };
    let etag = if etag.as_str().trim().is_empty() {
        "no ETag".to_owned()
    } else {
        show_etag(etag)
    };
    format!("{shown} {etag}")
}

struct Run {
    lines: Vec<String>,
    etags: HashMap<u32, Etag>,
    per_key: HashMap<String, HashSet<Etag>>,
}

impl Run {
    fn fail(&mut self, line: String, message: String) -> Mismatch {
        self.lines.push(line);
        Mismatch::new(message, std::mem::take(&mut self.lines))
    }

    fn etag(&self, version: u32) -> Etag {
        self.etags
            .get(&version)
            .cloned()
            .unwrap_or_else(|| Etag::new("\"conformance-unobserved\""))
    }
}

/// Why a read of `key` by `instance` disagrees with the model, as a sentence and a cause:
/// a key another instance wrote that reads as missing is the seed's bug.
fn read_mismatch(
    model: &BlobModel,
    instance: usize,
    key: &str,
    how: &str,
    found: bool,
    expect: &Expect,
) -> (String, Option<&'static str>) {
    match expect {
        Expect::Found(e) if !found && e.writer != instance => (
            format!(
                "instance {instance} {how} {key:?} written by instance {}: not found",
                e.writer
            ),
            Some(causes::NOT_VISIBLE_ACROSS_INSTANCES),
        ),
        Expect::Missing if found => match model.deleted.get(key) {
            Some(by) if *by != instance => (
                format!(
                    "instance {instance} {how} {key:?} after instance {by} deleted it: still found"
                ),
                Some(causes::NOT_VISIBLE_ACROSS_INSTANCES),
            ),
            _ => (
                format!("instance {instance} disagrees with the model on {how} {key:?}"),
                None,
            ),
        },
        _ => (
            format!("instance {instance} disagrees with the model on {how} {key:?}"),
            None,
        ),
    }
}

/// Whether a read of `value`, `etag` and `metadata` is the one `entry` left.
fn read_matches(
    run: &Run,
    entry: &Entry,
    value: Option<&[u8]>,
    size: u64,
    etag: &Etag,
    metadata: &Metadata,
    caps: &Capabilities,
) -> bool {
    let want = entry.value();
    value.is_none_or(|v| v == want.as_slice())
        && size == want.len() as u64
        && *etag == run.etag(entry.version)
        && (!caps.metadata || *metadata == entry.metadata())
}

/// Replays `steps` against fresh instances and compares every result with the model; a
/// sequence that passes leaves its final state to be re-read once the case has settled.
pub(crate) async fn execute(
    env: Arc<Env>,
    mut model: BlobModel,
    steps: Vec<BlobStep>,
    seen: Option<Arc<AtomicUsize>>,
) -> Result<(), Mismatch> {
    let mut run = Run {
        lines: Vec::new(),
        etags: HashMap::new(),
        per_key: HashMap::new(),
    };
    let caps = env.ctx.caps().clone();
    let mut instances: Vec<Arc<dyn BlobStore>> = Vec::new();
    for i in 0..model.instances {
        instances.push(env.blob_instance(i).await?);
    }
    let lim = env.op_timeout();
    for step in steps {
        if let Some(seen) = &seen {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        let before = model.clone();
        let expect = model.step(step.instance, &step.action);
        let Some(store) = instances.get(step.instance) else {
            continue;
        };
        let what = describe(&step);
        match (&step.action, &expect) {
            (
                BlobAction::Set {
                    key,
                    label,
                    shape,
                    meta,
                    streamed,
                    condition,
                },
                _,
            ) => {
                let options = meta.options(*label).condition(match condition {
                    ModelCondition::Always => blobjobs_store_api::Condition::Always,
                    ModelCondition::IfNew => blobjobs_store_api::Condition::IfNew,
                    ModelCondition::IfMatch(v) => {
                        blobjobs_store_api::Condition::IfMatch(run.etag(*v))
                    }
                    ModelCondition::IfMatchUnknown => blobjobs_store_api::Condition::IfMatch(
                        Etag::new("\"conformance-never-issued\""),
                    ),
                });
                let got = if *streamed {
                    let body: ByteStream = Box::pin(futures_util::stream::iter(
                        shape.chunks(*label).into_iter().map(Ok),
                    ));
                    limited(lim, store.set_stream(key, body, None, options)).await
                } else {
                    limited(
                        lim,
                        store.set(key, Bytes::from(shape.bytes(*label)), options),
                    )
                    .await
                };
                match (got, &expect) {
                    (Ok(SetOutcome::Written { etag }), Expect::Written(v)) => {
                        let known = run.per_key.entry(key.clone()).or_default();
                        if !known.insert(etag.clone()) {
                            let line = format!("{what} → written {} (reused)", show_etag(&etag));
                            return Err(run
                                .fail(
                                    line,
                                    format!(
                                        "a write to {key:?} returned an ETag that an earlier write with different content had"
                                    ),
                                )
                                .because(causes::ETAGS_REUSED));
                        }
                        run.etags.insert(*v, etag.clone());
                        run.lines
                            .push(format!("{what} → written {}", show_etag(&etag)));
                    }
                    (Ok(SetOutcome::ConditionFailed), Expect::ConditionFailed) => {
                        run.lines.push(format!("{what} → condition failed"));
                    }
                    (got, _) => {
                        let shown = match got {
                            Ok(SetOutcome::Written { etag }) => {
                                format!("written {}", show_etag(&etag))
                            }
                            Ok(SetOutcome::ConditionFailed) => "condition failed".to_owned(),
                            Err(e) => format!("error {}", e.kind()),
                        };
                        let line = format!("{what} → {shown} (model: {})", show_expect(&expect));
                        // A condition judged against a state another instance changed is the
                        // seed's bug again: that change was not seen.
                        let other_writer = before
                            .entries
                            .get(key)
                            .is_some_and(|e| e.writer != step.instance)
                            || before.deleted.get(key).is_some_and(|i| *i != step.instance);
                        let cause = match condition {
                            ModelCondition::Always => None,
                            _ if other_writer => Some(causes::NOT_VISIBLE_ACROSS_INSTANCES),
                            _ => Some(causes::CONDITIONS_IGNORED),
                        };
                        let mut m = run.fail(
                            line,
                            format!(
                                "instance {} disagrees with the model on a {} of {key:?}",
                                step.instance,
                                if *streamed { "set-stream" } else { "set" }
                            ),
                        );
                        m.cause = cause;
                        return Err(m);
                    }
                }
            }
            (BlobAction::Get { key }, _)
            | (BlobAction::GetStream { key }, _)
            | (BlobAction::GetMetadata { key }, _) => {
                let (how, got) = match &step.action {
                    BlobAction::Get { .. } => (
                        "get",
                        limited(lim, store.get(key))
                            .await
                            .map(|b| b.map(|b| (b.info, Some(b.value.to_vec())))),
                    ),
                    BlobAction::GetStream { .. } => {
                        let read = async {
                            let Some((info, mut stream)) = store.get_stream(key).await? else {
                                return Ok(None);
                            };
                            let mut value = Vec::new();
                            while let Some(chunk) = stream.next().await {
                                value.extend_from_slice(&chunk?);
                            }
                            Ok(Some((info, Some(value))))
                        };
                        ("get-stream", limited(lim, read).await)
                    }
                    _ => (
                        "get-metadata",
                        limited(lim, store.get_metadata(key))
                            .await
                            .map(|i| i.map(|i| (i, None))),
                    ),
                };
                let (shown, ok) = match (&got, &expect) {
                    (Ok(Some((info, value))), Expect::Found(e)) => (
                        match value {
                            Some(v) => show_read(v, &info.etag),
                            None => format!("{} bytes {}", info.size, show_etag(&info.etag)),
                        },
                        read_matches(
                            &run,
                            e,
                            value.as_deref(),
                            info.size,
                            &info.etag,
                            &info.metadata,
                            &caps,
                        ),
                    ),
                    (Ok(Some((info, value))), _) => (
                        match value {
                            Some(v) => show_read(v, &info.etag),
                            None => format!("{} bytes", info.size),
                        },
                        false,
                    ),
                    (Ok(None), e) => ("not found".to_owned(), *e == Expect::Missing),
                    (Err(e), _) => (format!("error {}", e.kind()), false),
                };
                if !ok {
                    let line = format!("{what} → {shown} (model: {})", show_expect(&expect));
                    let found = matches!(got, Ok(Some(_)));
                    let (message, cause) =
                        read_mismatch(&before, step.instance, key, how, found, &expect);
                    let mut m = run.fail(line, message);
                    m.cause = cause;
                    return Err(m);
                }
                run.lines.push(format!("{what} → {shown}"));
            }
            (BlobAction::Delete { key }, _) => match limited(lim, store.delete(key)).await {
                Ok(()) => run.lines.push(format!("{what} → ok")),
                Err(e) => {
                    let line = format!("{what} → error {} (model: ok)", e.kind());
                    return Err(run.fail(
                        line,
                        format!("instance {} failed to delete {key:?}", step.instance),
                    ));
                }
            },
            (
                BlobAction::List {
                    prefix,
                    directories,
                    page_size,
                },
                Expect::Listed(want_blobs, want_dirs),
            ) => {
                let mut blobs: Vec<ListEntry> = Vec::new();
                let mut dirs: Vec<String> = Vec::new();
                let mut cursor = None;
                let mut problem = None;
                for page_no in 0..64 {
                    let mut options = ListOptions::new()
                        .prefix(prefix.clone())
                        .directories(*directories)
                        .cursor(cursor.take());
                    options.page_size = *page_size;
                    match limited(lim, store.list(options)).await {
                        Ok(page) => {
                            let n = page.blobs.len() + page.directories.len();
                            if let Some(size) = page_size
                                && n > *size
                            {
                                problem = Some(format!(
                                    "page {page_no} has {n} entries, more than the page size {size}"
                                ));
                                break;
                            }
                            blobs.extend(page.blobs);
                            dirs.extend(page.directories);
                            cursor = page.next_cursor;
                            if cursor.is_none() {
                                break;
                            }
                        }
                        Err(e) => {
                            problem = Some(format!("error {}", e.kind()));
                            break;
                        }
                    }
                }
                if cursor.is_some() && problem.is_none() {
                    problem = Some("the listing did not end after 64 pages".to_owned());
                }
                let keys: Vec<String> = blobs.iter().map(|e| e.key.clone()).collect();
                let want_keys: Vec<String> = want_blobs.iter().map(|(k, _, _)| k.clone()).collect();
                let shown = show_listing(&keys, &dirs);
                let mut cause = None;
                if problem.is_none() && (keys != want_keys || dirs != *want_dirs) {
                    problem = Some("the listing differs from the model".to_owned());
                    let missing_other = want_keys.iter().any(|k| {
                        !keys.contains(k)
                            && before
                                .entries
                                .get(k)
                                .is_some_and(|e| e.writer != step.instance)
                    });
                    cause = Some(if missing_other {
                        causes::NOT_VISIBLE_ACROSS_INSTANCES
                    } else {
                        causes::LISTINGS_WRONG
                    });
                }
                if problem.is_none() {
                    for (entry, (_, v, size)) in blobs.iter().zip(want_blobs) {
                        if entry.etag != run.etag(*v) {
                            problem = Some(format!(
                                "the listing reports {} for {:?}, not the one its write returned",
                                crate::show::Show::show(&entry.etag),
                                entry.key
                            ));
                            cause = Some(causes::ETAGS_DISAGREE);
                            break;
                        }
                        if entry.size != *size {
                            problem = Some(format!(
                                "the listing reports {} bytes for {:?}, not the {size} it holds",
                                entry.size, entry.key
                            ));
                            cause = Some(causes::LISTINGS_WRONG);
                            break;
                        }
                    }
                }
                if let Some(problem) = problem {
                    let line = format!("{what} → {shown} (model: {})", show_expect(&expect));
                    let mut m = run.fail(line, format!("instance {}: {problem}", step.instance));
                    m.cause = cause;
                    return Err(m);
                }
                run.lines.push(format!("{what} → {shown}"));
            }
            (BlobAction::List { .. }, _) => {}
        }
    }
    let reader = if model.instances == 1 {
        Reader::Blobs(instances[0].clone())
    } else {
        Reader::Fresh
    };
    let mut group = Group::new(env.prefix.clone(), reader, env.ctx.now());
    group.label = env.label.clone();
    group.blobs = model.final_state(&run);
    group.blobs_complete = true;
    group.timeline = run.lines;
    env.ctx.ledger().push(group);
    Ok(())
}
