//! The reference model of one blob store shared by every instance, and its state machine.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use blobjobs_store_api::{BlobStore, Etag, ListOptions, Metadata, SetOptions, SetOutcome};
use bytes::Bytes;
use proptest::prelude::*;
use proptest::sample::select;
use proptest_state_machine::ReferenceStateMachine;
use serde::{Deserialize, Serialize};

use super::{Mismatch, SequentialStrategy, weighted};
use crate::ctx::{limited, show_etag};
use crate::options::Capabilities;

/// The keys sequences use: nested names so that directories mode and prefixes matter.
pub const MODEL_KEYS: [&str; 6] = ["a", "a/b", "a/c/d", "b", "b c", "ü/x"];
/// The prefixes listings use.
pub const MODEL_PREFIXES: [&str; 5] = ["", "a", "a/", "b", "ü/"];

/// The condition of a modelled `set`. ETags are named by the version that produced them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelCondition {
    /// Unconditional.
    Always,
    /// Only if the key does not exist.
    IfNew,
    /// Only if the key's ETag is the one returned by the write of this version.
    IfMatch(u32),
    /// Only if the key's ETag is one no store ever issued.
    IfMatchUnknown,
}

/// One operation of a sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum BlobAction {
    /// Write value `v<label>` (with metadata `{"label": label}` if `metadata`).
    Set {
        /// The key.
        key: String,
        /// Names the value; unique within a sequence.
        label: u32,
        /// Whether to store metadata.
        metadata: bool,
        /// The condition.
        condition: ModelCondition,
    },
    /// Read a key.
    Get {
        /// The key.
        key: String,
    },
    /// Read a key's metadata.
    GetMetadata {
        /// The key.
        key: String,
    },
    /// Remove a key.
    Delete {
        /// The key.
        key: String,
    },
    /// List every page.
    List {
        /// The prefix.
        prefix: String,
        /// Directories mode.
        directories: bool,
        /// The page size, if any.
        page_size: Option<usize>,
    },
}

/// An operation and the instance that performs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobStep {
    /// Which instance (0-based).
    pub instance: usize,
    /// What it does.
    pub action: BlobAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    label: u32,
    metadata: bool,
    version: u32,
}

/// The model: one store that every instance shares, as a correct backend behaves.
#[derive(Debug, Clone, Default)]
pub struct BlobModel {
    /// How many instances the sequence spreads over.
    pub instances: usize,
    entries: BTreeMap<String, Entry>,
    /// Versions issued so far (each successful write issues the next).
    versions: u32,
    /// Labels handed out so far.
    labels: u32,
}

/// What the model says an operation returns.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    Written(u32),
    ConditionFailed,
    Found(Entry),
    Missing,
    Deleted,
    Listed(Vec<(String, u32)>, Vec<String>),
}

/// The bytes of the value with `label`.
pub fn value_of(label: u32) -> Vec<u8> {
    format!("v{label}").into_bytes()
}

fn metadata_of(label: u32, on: bool) -> Metadata {
    if on {
        Metadata::from_pairs([("label", label)])
    } else {
        Metadata::new()
    }
}

impl BlobModel {
    fn step(&mut self, action: &BlobAction) -> Expect {
        match action {
            BlobAction::Set {
                key,
                label,
                metadata,
                condition,
            } => {
                let current = self.entries.get(key);
                let allowed = match condition {
                    ModelCondition::Always => true,
                    ModelCondition::IfNew => current.is_none(),
                    ModelCondition::IfMatch(v) => current.is_some_and(|e| e.version == *v),
                    ModelCondition::IfMatchUnknown => false,
                };
                if !allowed {
                    return Expect::ConditionFailed;
                }
                let version = self.versions;
                self.versions += 1;
                self.entries.insert(
                    key.clone(),
                    Entry {
                        label: *label,
                        metadata: *metadata,
                        version,
                    },
                );
                Expect::Written(version)
            }
            BlobAction::Get { key } | BlobAction::GetMetadata { key } => {
                match self.entries.get(key) {
                    Some(e) => Expect::Found(e.clone()),
                    None => Expect::Missing,
                }
            }
            BlobAction::Delete { key } => {
                self.entries.remove(key);
                Expect::Deleted
            }
            BlobAction::List {
                prefix,
                directories,
                ..
            } => {
                let mut blobs = Vec::new();
                let mut dirs = BTreeSet::new();
                for (key, e) in self.entries.range(prefix.clone()..) {
                    if !key.starts_with(prefix.as_str()) {
                        break;
                    }
                    let rest = &key[prefix.len()..];
                    match rest.find('/') {
                        Some(i) if *directories => {
                            dirs.insert(key[..prefix.len() + i].to_owned());
                        }
                        _ => blobs.push((key.clone(), e.version)),
                    }
                }
                Expect::Listed(blobs, dirs.into_iter().collect())
            }
        }
    }

    /// The state after `step` (the expected result is dropped).
    pub fn apply(mut self, step: &BlobStep) -> Self {
        if let BlobAction::Set { label, .. } = &step.action {
            self.labels = self.labels.max(label + 1);
        }
        self.step(&step.action);
        self
    }

    /// Whether `step` may follow in this state.
    pub fn accepts(&self, step: &BlobStep) -> bool {
        step.instance < self.instances
            && match &step.action {
                BlobAction::Set {
                    condition: ModelCondition::IfMatch(v),
                    ..
                } => *v < self.versions,
                _ => true,
            }
    }

    /// Operations that may follow, for a backend with `caps`.
    pub fn transitions(&self, caps: &Capabilities) -> BoxedStrategy<BlobStep> {
        let instance = 0..self.instances.max(1);
        let key = select(MODEL_KEYS.to_vec()).prop_map(str::to_owned);
        let label = self.labels;
        let metadata = caps.metadata;
        let versions = self.versions;
        let current: HashMap<String, u32> = self
            .entries
            .iter()
            .map(|(k, e)| (k.clone(), e.version))
            .collect();
        let set = (key.clone(), any::<bool>())
            .prop_flat_map(move |(key, with_meta)| {
                let mut conds: Vec<(u32, BoxedStrategy<ModelCondition>)> = vec![
                    (4, Just(ModelCondition::Always).boxed()),
                    (2, Just(ModelCondition::IfNew).boxed()),
                    (1, Just(ModelCondition::IfMatchUnknown).boxed()),
                ];
                if let Some(v) = current.get(&key) {
                    conds.push((4, Just(ModelCondition::IfMatch(*v)).boxed()));
                }
                if versions > 0 {
                    conds.push((2, (0..versions).prop_map(ModelCondition::IfMatch).boxed()));
                }
                weighted(conds).prop_map(move |condition| BlobAction::Set {
                    key: key.clone(),
                    label,
                    metadata: with_meta && metadata,
                    condition,
                })
            })
            .boxed();
        let directories = if caps.directories {
            any::<bool>().boxed()
        } else {
            Just(false).boxed()
        };
        let page_size = if caps.page_size {
            proptest::option::of(1usize..4).boxed()
        } else {
            Just(None).boxed()
        };
        let list = (select(MODEL_PREFIXES.to_vec()), directories, page_size)
            .prop_map(|(prefix, directories, page_size)| BlobAction::List {
                prefix: prefix.to_owned(),
                directories,
                page_size,
            })
            .boxed();
        let action = weighted(vec![
            (6, set),
            (
                5,
                key.clone().prop_map(|key| BlobAction::Get { key }).boxed(),
            ),
            (
                2,
                key.clone()
                    .prop_map(|key| BlobAction::GetMetadata { key })
                    .boxed(),
            ),
            (2, key.prop_map(|key| BlobAction::Delete { key }).boxed()),
            (2, list),
        ]);
        (instance, action)
            .prop_map(|(instance, action)| BlobStep { instance, action })
            .boxed()
    }
}

/// The machine as `proptest-state-machine` sees it, for callers who drive it themselves:
/// every capability, 1 to 4 instances.
#[derive(Debug, Clone, Copy)]
pub struct BlobMachine;

impl ReferenceStateMachine for BlobMachine {
    type State = BlobModel;
    type Transition = BlobStep;

    fn init_state() -> BoxedStrategy<BlobModel> {
        (1usize..=4)
            .prop_map(|instances| BlobModel {
                instances,
                ..BlobModel::default()
            })
            .boxed()
    }

    fn transitions(state: &BlobModel) -> BoxedStrategy<BlobStep> {
        state.transitions(&Capabilities::default())
    }

    fn apply(state: BlobModel, step: &BlobStep) -> BlobModel {
        state.apply(step)
    }

    fn preconditions(state: &BlobModel, step: &BlobStep) -> bool {
        state.accepts(step)
    }
}

/// The sequential strategy for `instances` (an inclusive range) and `caps`.
pub(crate) fn strategy(
    instances: (usize, usize),
    caps: Capabilities,
    max_ops: usize,
) -> SequentialStrategy<BlobModel, BlobStep> {
    let caps = Arc::new(caps);
    SequentialStrategy::new(
        (1..=max_ops).into(),
        move || {
            (instances.0..=instances.1)
                .prop_map(|instances| BlobModel {
                    instances,
                    ..BlobModel::default()
                })
                .boxed()
        },
        |state: &BlobModel, step: &BlobStep| state.accepts(step),
        move |state: &BlobModel| state.transitions(&caps),
        |state: BlobModel, step: &BlobStep| state.apply(step),
    )
}

fn describe(step: &BlobStep) -> String {
    let what = match &step.action {
        BlobAction::Set {
            key,
            label,
            metadata,
            condition,
        } => {
            let cond = match condition {
                ModelCondition::Always => String::new(),
                ModelCondition::IfNew => " if-new".to_owned(),
                ModelCondition::IfMatch(v) => format!(" if-match <etag of version {v}>"),
                ModelCondition::IfMatchUnknown => " if-match <never issued>".to_owned(),
            };
            let meta = if *metadata { " with metadata" } else { "" };
            format!("set {key:?}{cond} = \"v{label}\"{meta}")
        }
        BlobAction::Get { key } => format!("get {key:?}"),
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

fn show_expect(e: &Expect) -> String {
    match e {
        Expect::Written(v) => format!("written (version {v})"),
        Expect::ConditionFailed => "condition failed".to_owned(),
        Expect::Found(e) => format!("\"v{}\" (version {})", e.label, e.version),
        Expect::Missing => "not found".to_owned(),
        Expect::Deleted => "ok".to_owned(),
        Expect::Listed(blobs, dirs) => show_listing(
            &blobs.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            dirs,
        ),
    }
}

fn show_listing(blobs: &[String], dirs: &[String]) -> String {
    let mut items: Vec<String> = blobs.iter().map(|k| format!("{k:?}")).collect();
    items.extend(dirs.iter().map(|d| format!("{d:?}/")));
    format!("[{}]", items.join(", "))
}

/// Where a sequence runs: fresh instances of the factory under a fresh prefix.
pub(crate) struct Env {
    pub(crate) factory: crate::factory::SharedFactory,
    pub(crate) prefix: String,
    pub(crate) caps: Capabilities,
    pub(crate) op_timeout: Duration,
}

impl Env {
    /// The environment of one run of a sequence of `ctx`'s case, under a prefix of its own.
    pub(crate) fn fresh(ctx: &crate::ctx::Ctx) -> Arc<Env> {
        Arc::new(Env {
            factory: ctx.factory().clone(),
            prefix: ctx.fresh_prefix(),
            caps: ctx.caps().clone(),
            op_timeout: ctx.options().op_timeout,
        })
    }
}

struct Run {
    lines: Vec<String>,
    etags: HashMap<u32, Etag>,
    per_key: HashMap<String, HashSet<Etag>>,
}

impl Run {
    fn fail(&mut self, line: String, message: String) -> Mismatch {
        self.lines.push(line);
        Mismatch {
            message,
            timeline: std::mem::take(&mut self.lines),
        }
    }

    fn etag(&self, version: u32) -> Etag {
        self.etags
            .get(&version)
            .cloned()
            .unwrap_or_else(|| Etag::new("\"conformance-unobserved\""))
    }
}

/// Replays `steps` against fresh instances and compares every result with the model.
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
    let mut instances: Vec<Arc<dyn BlobStore>> = Vec::new();
    for i in 0..model.instances {
        match limited(env.op_timeout, env.factory.instance()).await {
            Ok(s) => instances.push(Arc::new(crate::ctx::Scoped::new(s, env.prefix.clone()))),
            Err(e) => {
                return Err(Mismatch {
                    message: format!("the factory could not open instance {i}: {e}"),
                    timeline: Vec::new(),
                });
            }
        }
    }
    for step in steps {
        if let Some(seen) = &seen {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        let expect = model.step(&step.action);
        let Some(store) = instances.get(step.instance) else {
            continue;
        };
        let what = describe(&step);
        let lim = env.op_timeout;
        match (&step.action, &expect) {
            (
                BlobAction::Set {
                    key,
                    label,
                    metadata,
                    condition,
                },
                _,
            ) => {
                let cond = match condition {
                    ModelCondition::Always => SetOptions::new(),
                    ModelCondition::IfNew => SetOptions::new().if_new(),
                    ModelCondition::IfMatch(v) => SetOptions::new().if_match(run.etag(*v)),
                    ModelCondition::IfMatchUnknown => {
                        SetOptions::new().if_match(Etag::new("\"conformance-never-issued\""))
                    }
                };
                let options = cond.metadata(metadata_of(*label, *metadata));
                let got =
                    limited(lim, store.set(key, Bytes::from(value_of(*label)), options)).await;
                match (got, &expect) {
                    (Ok(SetOutcome::Written { etag }), Expect::Written(v)) => {
                        let known = run.per_key.entry(key.clone()).or_default();
                        if !known.insert(etag.clone()) {
                            let line = format!("{what} → written {} (reused)", show_etag(&etag));
                            return Err(run.fail(line, format!("a write to {key:?} returned an etag that an earlier write with different content had")));
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
                        return Err(run.fail(
                            line,
                            format!(
                                "instance {} disagrees with the model on a set of {key:?}",
                                step.instance
                            ),
                        ));
                    }
                }
            }
            (BlobAction::Get { key }, _) => {
                let got = limited(lim, store.get(key)).await;
                let (shown, ok) = match (&got, &expect) {
                    (Ok(Some(b)), Expect::Found(e)) => {
                        let ok = b.value.as_ref() == value_of(e.label).as_slice()
                            && b.info.etag == run.etag(e.version)
                            && (!env.caps.metadata
                                || b.info.metadata == metadata_of(e.label, e.metadata));
                        (
                            format!(
                                "{} {}",
                                crate::ctx::show_value(&b.value),
                                show_etag(&b.info.etag)
                            ),
                            ok,
                        )
                    }
                    (Ok(Some(b)), _) => (crate::ctx::show_value(&b.value), false),
                    (Ok(None), e) => ("not found".to_owned(), *e == Expect::Missing),
                    (Err(e), _) => (format!("error {}", e.kind()), false),
                };
                if !ok {
                    let line = format!("{what} → {shown} (model: {})", show_expect(&expect));
                    return Err(run.fail(
                        line,
                        format!(
                            "instance {} disagrees with the model on a get of {key:?}",
                            step.instance
                        ),
                    ));
                }
                run.lines.push(format!("{what} → {shown}"));
            }
            (BlobAction::GetMetadata { key }, _) => {
                let got = limited(lim, store.get_metadata(key)).await;
                let (shown, ok) = match (&got, &expect) {
                    (Ok(Some(i)), Expect::Found(e)) => {
                        let ok = i.size == value_of(e.label).len() as u64
                            && i.etag == run.etag(e.version)
                            && (!env.caps.metadata
                                || i.metadata == metadata_of(e.label, e.metadata));
                        (format!("{} bytes {}", i.size, show_etag(&i.etag)), ok)
                    }
                    (Ok(Some(i)), _) => (format!("{} bytes", i.size), false),
                    (Ok(None), e) => ("not found".to_owned(), *e == Expect::Missing),
                    (Err(e), _) => (format!("error {}", e.kind()), false),
                };
                if !ok {
                    let line = format!("{what} → {shown} (model: {})", show_expect(&expect));
                    return Err(run.fail(
                        line,
                        format!(
                            "instance {} disagrees with the model on get-metadata of {key:?}",
                            step.instance
                        ),
                    ));
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
                let mut blobs: Vec<(String, Etag)> = Vec::new();
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
                            blobs.extend(page.blobs.into_iter().map(|e| (e.key, e.etag)));
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
                let keys: Vec<String> = blobs.iter().map(|(k, _)| k.clone()).collect();
                let want_keys: Vec<String> = want_blobs.iter().map(|(k, _)| k.clone()).collect();
                let shown = show_listing(&keys, &dirs);
                if problem.is_none() && (keys != want_keys || dirs != *want_dirs) {
                    problem = Some("the listing differs from the model".to_owned());
                }
                if problem.is_none() {
                    for ((k, etag), (_, v)) in blobs.iter().zip(want_blobs) {
                        if *etag != run.etag(*v) {
                            problem = Some(format!(
                                "the listing reports etag {} for {k:?}, not the one its write returned",
                                show_etag(etag)
                            ));
                            break;
                        }
                    }
                }
                if let Some(problem) = problem {
                    let line = format!("{what} → {shown} (model: {})", show_expect(&expect));
                    return Err(run.fail(line, format!("instance {}: {problem}", step.instance)));
                }
                run.lines.push(format!("{what} → {shown}"));
            }
            (BlobAction::List { .. }, _) => {}
        }
    }
    Ok(())
}
