//! The reference model of one blob store shared by every instance, and its state machine;
//! `replay.rs` runs a generated sequence against real instances and compares.

mod replay;

use blobjobs_store_api::Metadata;
use proptest::prelude::*;
use proptest::sample::select;
use proptest_state_machine::ReferenceStateMachine;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

pub(crate) use replay::execute;

use super::{SequentialStrategy, weighted};
use crate::options::Capabilities;
pub use crate::shapes::{MetaShape, ValueShape};

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
    /// Write the value of `label` in `shape`, with metadata in `meta`.
    Set {
        /// The key.
        key: String,
        /// Names the write; unique within a sequence.
        label: u32,
        /// The value's shape.
        shape: ValueShape,
        /// The metadata's shape.
        meta: MetaShape,
        /// Whether the write goes through `set_stream` (in three chunks) instead of `set`.
        streamed: bool,
        /// The condition.
        condition: ModelCondition,
    },
    /// Read a key.
    Get {
        /// The key.
        key: String,
    },
    /// Read a key as a stream.
    GetStream {
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
    shape: ValueShape,
    meta: MetaShape,
    version: u32,
    /// The instance that wrote it.
    writer: usize,
}

impl Entry {
    fn value(&self) -> Vec<u8> {
        self.shape.bytes(self.label)
    }

    fn metadata(&self) -> Metadata {
        self.meta.metadata(self.label)
    }
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
    /// Keys deleted since their last write, with the instance that deleted them.
    deleted: BTreeMap<String, usize>,
}

/// What the model says an operation returns.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    Written(u32),
    ConditionFailed,
    Found(Entry),
    Missing,
    Deleted,
    Listed(Vec<(String, u32, u64)>, Vec<String>),
}

/// The bytes of the text value with `label` (the [`ValueShape::Text`] shape).
pub fn value_of(label: u32) -> Vec<u8> {
    ValueShape::Text.bytes(label)
}

impl BlobModel {
    fn step(&mut self, instance: usize, action: &BlobAction) -> Expect {
        match action {
            BlobAction::Set {
                key,
                label,
                shape,
                meta,
                condition,
                ..
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
                self.deleted.remove(key);
                self.entries.insert(
                    key.clone(),
                    Entry {
                        label: *label,
                        shape: *shape,
                        meta: *meta,
                        version,
                        writer: instance,
                    },
                );
                Expect::Written(version)
            }
            BlobAction::Get { key }
            | BlobAction::GetStream { key }
            | BlobAction::GetMetadata { key } => match self.entries.get(key) {
                Some(e) => Expect::Found(e.clone()),
                None => Expect::Missing,
            },
            BlobAction::Delete { key } => {
                if self.entries.remove(key).is_some() {
                    self.deleted.insert(key.clone(), instance);
                }
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
                        _ => blobs.push((key.clone(), e.version, e.value().len() as u64)),
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
        self.step(step.instance, &step.action);
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
        let versions = self.versions;
        let current: HashMap<String, u32> = self
            .entries
            .iter()
            .map(|(k, e)| (k.clone(), e.version))
            .collect();
        // Short text most of the time, the other small shapes now and then. Multi-page
        // values are left to the fixed shape cases, which combine them with every metadata
        // shape and path: a sequence of them would move megabytes to check the same thing.
        let shape = weighted(vec![
            (8, Just(ValueShape::Text).boxed()),
            (2, Just(ValueShape::Empty).boxed()),
            (2, Just(ValueShape::OneByte).boxed()),
            (2, Just(ValueShape::EveryByte).boxed()),
        ]);
        let meta = if caps.metadata {
            weighted(vec![
                (6, Just(MetaShape::Absent).boxed()),
                (1, Just(MetaShape::EmptyObject).boxed()),
                (3, Just(MetaShape::Nested).boxed()),
                (2, Just(MetaShape::Unicode).boxed()),
                (1, Just(MetaShape::NearLimit).boxed()),
            ])
        } else {
            Just(MetaShape::Absent).boxed()
        };
        let set = (
            key.clone(),
            shape,
            meta,
            prop_oneof![3 => Just(false), 1 => Just(true)],
        )
            .prop_flat_map(move |(key, shape, meta, streamed)| {
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
                    shape,
                    meta,
                    streamed,
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
                4,
                key.clone().prop_map(|key| BlobAction::Get { key }).boxed(),
            ),
            (
                1,
                key.clone()
                    .prop_map(|key| BlobAction::GetStream { key })
                    .boxed(),
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
