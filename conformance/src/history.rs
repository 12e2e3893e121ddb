//! Concurrent histories: every operation of every instance with the moments it was invoked
//! and returned, and a checker that decides, key by key, whether some sequential order of the
//! operations explains every result (linearizability).
//!
//! The checker is a small Wing–Gong search with memoization (as in Lowe's and Porcupine's
//! checkers): it repeatedly picks an operation that was invoked before every pending
//! operation returned, applies it to a model of one register with ETags, and backtracks when
//! the model disagrees. An operation whose outcome is unknown (a timeout or an unavailable
//! service) never returns: it may take effect at any point after its invocation, or not at
//! all. Keep histories small (a few instances × about ten operations per key).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// The condition of a recorded `set`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallCondition {
    /// Unconditional.
    Always,
    /// Only if the key does not exist.
    IfNew,
    /// Only if the key's current ETag is this one.
    IfMatch(String),
}

/// What an operation asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Call {
    /// Read the value and ETag.
    Get,
    /// Write `value` if `condition` holds.
    Set {
        /// The value written (histories use short unique labels as values).
        value: String,
        /// The write condition.
        condition: CallCondition,
    },
    /// Remove the key.
    Delete,
}

/// What an operation returned.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Ret {
    /// `get` found this value with this ETag.
    Found {
        /// The value.
        value: String,
        /// Its ETag.
        etag: String,
    },
    /// `get` found nothing.
    Missing,
    /// `set` wrote, giving this new ETag.
    Written {
        /// The new ETag.
        etag: String,
    },
    /// `set` did not write because its condition did not hold.
    ConditionFailed,
    /// `delete` returned.
    Deleted,
    /// The operation failed in a way that leaves its effect unknown (timeout, unavailable).
    Unknown,
}

/// One operation of one instance on one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The instance (or client) that issued it.
    pub instance: usize,
    /// The key.
    pub key: String,
    /// What it asked.
    pub call: Call,
    /// What it got.
    pub ret: Ret,
    /// The global sequence number taken just before the call.
    pub invoked: u64,
    /// The global sequence number taken just after it returned; `None` if its outcome is
    /// unknown, which places its return after everything else.
    pub returned: Option<u64>,
}

impl Event {
    /// One line such as `[3–9] instance 1: set "k" if-match "ab…" = "c1-4" → written "cd…"`.
    pub fn describe(&self) -> String {
        let call = match &self.call {
            Call::Get => format!("get {:?}", self.key),
            Call::Delete => format!("delete {:?}", self.key),
            Call::Set { value, condition } => {
                let cond = match condition {
                    CallCondition::Always => String::new(),
                    CallCondition::IfNew => " if-new".to_owned(),
                    CallCondition::IfMatch(e) => format!(" if-match {}", short(e)),
                };
                format!("set {:?}{cond} = {value:?}", self.key)
            }
        };
        let ret = match &self.ret {
            Ret::Found { value, etag } => format!("{value:?} {}", short(etag)),
            Ret::Missing => "not found".to_owned(),
            Ret::Written { etag } => format!("written {}", short(etag)),
            Ret::ConditionFailed => "condition failed".to_owned(),
            Ret::Deleted => "ok".to_owned(),
            Ret::Unknown => "unknown outcome".to_owned(),
        };
        let end = self
            .returned
            .map(|r| r.to_string())
            .unwrap_or_else(|| "…".to_owned());
        format!(
            "[{}–{end}] instance {}: {call} → {ret}",
            self.invoked, self.instance
        )
    }
}

fn short(etag: &str) -> String {
    if etag.chars().count() > 10 {
        format!("{}…", etag.chars().take(8).collect::<String>())
    } else {
        etag.to_owned()
    }
}

/// Collects events from concurrently running instances, stamped by one global counter.
#[derive(Debug, Default)]
pub struct Recorder {
    seq: AtomicU64,
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    /// An empty history.
    pub fn new() -> Self {
        Recorder::default()
    }

    /// The next sequence number: take one just before a call and one just after it returns.
    pub fn tick(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst)
    }

    /// Adds a finished (or abandoned) operation.
    pub fn push(&self, event: Event) {
        if let Ok(mut events) = self.events.lock() {
            events.push(event);
        }
    }

    /// The events so far, in invocation order.
    pub fn events(&self) -> Vec<Event> {
        let mut events = self.events.lock().map(|e| e.clone()).unwrap_or_default();
        events.sort_by_key(|e| e.invoked);
        events
    }
}

/// Why a history is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The key whose history no sequential order explains.
    pub key: String,
    /// What the checker concluded.
    pub message: String,
    /// The key's history, one line per operation, in invocation order.
    pub history: Vec<String>,
}

/// The model state of one key: its value and ETag (unknown after a write of unknown outcome).
type State = Option<(String, Option<String>)>;

/// The largest number of operations per key the checker accepts.
pub const MAX_EVENTS_PER_KEY: usize = 128;
/// The largest number of search states explored per key before giving up.
const SEARCH_BUDGET: usize = 2_000_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Holds {
    Yes,
    No,
    Maybe,
}

fn holds(condition: &CallCondition, state: &State) -> Holds {
    match (condition, state) {
        (CallCondition::Always, _) => Holds::Yes,
        (CallCondition::IfNew, None) => Holds::Yes,
        (CallCondition::IfNew, Some(_)) => Holds::No,
        (CallCondition::IfMatch(_), None) => Holds::No,
        (CallCondition::IfMatch(want), Some((_, Some(have)))) => {
            if want == have {
                Holds::Yes
            } else {
                Holds::No
            }
        }
        (CallCondition::IfMatch(_), Some((_, None))) => Holds::Maybe,
    }
}

/// The states the register may be in after `event` is applied to `state` (none if the
/// event's result is impossible in `state`).
fn step(state: &State, event: &Event) -> Vec<State> {
    match (&event.call, &event.ret) {
        (Call::Get, Ret::Found { value, etag }) => match state {
            Some((v, e)) if v == value && e.as_ref().is_none_or(|e| e == etag) => {
                vec![Some((v.clone(), Some(etag.clone())))]
            }
            _ => vec![],
        },
        (Call::Get, Ret::Missing) => {
            if state.is_none() {
                vec![None]
            } else {
                vec![]
            }
        }
        (Call::Get, Ret::Unknown) => vec![state.clone()],
        (Call::Set { value, condition }, Ret::Written { etag }) => {
            if holds(condition, state) == Holds::No {
                vec![]
            } else {
                vec![Some((value.clone(), Some(etag.clone())))]
            }
        }
        (Call::Set { condition, .. }, Ret::ConditionFailed) => {
            if holds(condition, state) == Holds::Yes {
                vec![]
            } else {
                vec![state.clone()]
            }
        }
        (Call::Set { value, condition }, Ret::Unknown) => {
            let mut out = vec![state.clone()];
            if holds(condition, state) != Holds::No {
                out.push(Some((value.clone(), None)));
            }
            out
        }
        (Call::Delete, Ret::Deleted) => vec![None],
        (Call::Delete, Ret::Unknown) => vec![state.clone(), None],
        _ => vec![],
    }
}

struct Search<'a> {
    events: &'a [Event],
    complete: u128,
    memo: HashSet<(u128, State)>,
    explored: usize,
    exhausted: bool,
}

impl Search<'_> {
    fn dfs(&mut self, done: u128, state: State) -> bool {
        if done & self.complete == self.complete {
            return true;
        }
        if self.explored >= SEARCH_BUDGET {
            self.exhausted = true;
            return false;
        }
        if !self.memo.insert((done, state.clone())) {
            return false;
        }
        self.explored += 1;
        let pending = |i: usize| done & (1u128 << i) == 0;
        let horizon = (0..self.events.len())
            .filter(|&i| pending(i))
            .map(|i| self.events[i].returned.unwrap_or(u64::MAX))
            .min()
            .unwrap_or(u64::MAX);
        for i in 0..self.events.len() {
            if !pending(i) || self.events[i].invoked > horizon {
                continue;
            }
            for next in step(&state, &self.events[i]) {
                if self.dfs(done | (1u128 << i), next) {
                    return true;
                }
            }
        }
        false
    }
}

/// Checks the history of one key (all events must be for the same key), starting from
/// `initial` (the key's value and ETag before the history, or `None` if it did not exist).
pub fn check_key(events: &[Event], initial: Option<(String, String)>) -> Result<(), Violation> {
    let key = events.first().map(|e| e.key.clone()).unwrap_or_default();
    let mut sorted = events.to_vec();
    sorted.sort_by_key(|e| e.invoked);
    let history = sorted.iter().map(Event::describe).collect();
    if sorted.len() > MAX_EVENTS_PER_KEY {
        return Err(Violation {
            key,
            message: format!(
                "the history has {} operations on one key; the checker takes at most {MAX_EVENTS_PER_KEY}",
                sorted.len()
            ),
            history,
        });
    }
    let complete = sorted
        .iter()
        .enumerate()
        .filter(|(_, e)| e.returned.is_some())
        .fold(0u128, |acc, (i, _)| acc | (1u128 << i));
    let mut search = Search {
        events: &sorted,
        complete,
        memo: HashSet::new(),
        explored: 0,
        exhausted: false,
    };
    if search.dfs(0, initial.map(|(v, e)| (v, Some(e)))) {
        return Ok(());
    }
    let message = if search.exhausted {
        format!("the checker gave up after {SEARCH_BUDGET} states; make the history smaller")
    } else {
        format!(
            "no sequential order of these {} operations on {key:?} explains every result: \
             the store is not linearizable (a lost update, a stale read or a broken condition)",
            sorted.len()
        )
    };
    Err(Violation {
        key,
        message,
        history,
    })
}

/// Checks every key of a history; keys absent from `initial` start out not existing.
pub fn check(
    events: &[Event],
    initial: &BTreeMap<String, (String, String)>,
) -> Result<(), Violation> {
    let mut by_key: BTreeMap<&str, Vec<Event>> = BTreeMap::new();
    for e in events {
        by_key.entry(e.key.as_str()).or_default().push(e.clone());
    }
    for (key, events) in by_key {
        check_key(&events, initial.get(key).cloned())?;
    }
    Ok(())
}

impl Violation {
    /// The violation as readable text.
    pub fn to_text(&self) -> String {
        let mut out = self.message.clone();
        for line in &self.history {
            let _ = write!(out, "\n  {line}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(instance: usize, call: Call, ret: Ret, invoked: u64, returned: Option<u64>) -> Event {
        Event {
            instance,
            key: "k".into(),
            call,
            ret,
            invoked,
            returned,
        }
    }

    fn set(v: &str, c: CallCondition) -> Call {
        Call::Set {
            value: v.into(),
            condition: c,
        }
    }

    fn written(e: &str) -> Ret {
        Ret::Written { etag: e.into() }
    }

    fn found(v: &str, e: &str) -> Ret {
        Ret::Found {
            value: v.into(),
            etag: e.into(),
        }
    }

    #[test]
    fn overlapping_writes_may_be_ordered_either_way() {
        let h = [
            ev(
                0,
                set("a", CallCondition::Always),
                written("e1"),
                0,
                Some(3),
            ),
            ev(
                1,
                set("b", CallCondition::Always),
                written("e2"),
                1,
                Some(2),
            ),
            ev(2, Call::Get, found("a", "e1"), 4, Some(5)),
        ];
        assert!(check_key(&h, None).is_ok());
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_caught() {
        let h = [
            ev(
                0,
                set("a", CallCondition::Always),
                written("e1"),
                0,
                Some(1),
            ),
            ev(
                0,
                set("b", CallCondition::Always),
                written("e2"),
                2,
                Some(3),
            ),
            ev(1, Call::Get, found("a", "e1"), 4, Some(5)),
        ];
        let v = check_key(&h, None).unwrap_err();
        assert_eq!(v.key, "k");
        assert_eq!(v.history.len(), 3);
    }

    #[test]
    fn two_winners_of_one_etag_are_a_lost_update() {
        let h = [
            ev(
                0,
                set("a", CallCondition::IfMatch("e0".into())),
                written("e1"),
                0,
                Some(3),
            ),
            ev(
                1,
                set("b", CallCondition::IfMatch("e0".into())),
                written("e2"),
                1,
                Some(2),
            ),
        ];
        assert!(check_key(&h, Some(("z".into(), "e0".into()))).is_err());
        // One winner and one loser is fine.
        let h = [
            ev(
                0,
                set("a", CallCondition::IfMatch("e0".into())),
                written("e1"),
                0,
                Some(3),
            ),
            ev(
                1,
                set("b", CallCondition::IfMatch("e0".into())),
                Ret::ConditionFailed,
                1,
                Some(2),
            ),
        ];
        assert!(check_key(&h, Some(("z".into(), "e0".into()))).is_ok());
    }

    #[test]
    fn two_only_if_new_winners_are_caught() {
        let h = [
            ev(0, set("a", CallCondition::IfNew), written("e1"), 0, Some(2)),
            ev(1, set("b", CallCondition::IfNew), written("e2"), 1, Some(3)),
        ];
        assert!(check_key(&h, None).is_err());
    }

    #[test]
    fn an_unknown_write_may_or_may_not_have_happened() {
        let lost = [
            ev(0, set("a", CallCondition::Always), Ret::Unknown, 0, None),
            ev(1, Call::Get, Ret::Missing, 1, Some(2)),
        ];
        assert!(check_key(&lost, None).is_ok());
        let landed = [
            ev(0, set("a", CallCondition::Always), Ret::Unknown, 0, None),
            ev(1, Call::Get, found("a", "e9"), 1, Some(2)),
            ev(1, Call::Get, found("a", "e9"), 3, Some(4)),
        ];
        assert!(check_key(&landed, None).is_ok());
        // It cannot take effect before it was invoked.
        let early = [
            ev(1, Call::Get, found("a", "e9"), 0, Some(1)),
            ev(0, set("a", CallCondition::Always), Ret::Unknown, 2, None),
        ];
        assert!(check_key(&early, None).is_err());
    }

    #[test]
    fn delete_then_read_missing() {
        let h = [
            ev(0, Call::Delete, Ret::Deleted, 0, Some(1)),
            ev(1, Call::Get, Ret::Missing, 2, Some(3)),
        ];
        assert!(check_key(&h, Some(("a".into(), "e".into()))).is_ok());
        let h = [
            ev(0, Call::Delete, Ret::Deleted, 0, Some(1)),
            ev(1, Call::Get, found("a", "e"), 2, Some(3)),
        ];
        assert!(check_key(&h, Some(("a".into(), "e".into()))).is_err());
    }
}
