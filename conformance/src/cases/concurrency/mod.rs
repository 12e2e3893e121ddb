//! Concurrent operations from several tasks or instances: single winners of only-if-new and
//! only-if-match races, no lost compare-and-swap updates, deletes that racing updates cannot
//! undo, and random histories checked for linearizability.
//!
//! Races run many rounds ([`crate::Options::race_rounds`]), each released by one gate with
//! seeded jitter (see [`crate::race`]), and every case writes down the state its keys were
//! left in, to be read again once the store has settled (see [`crate::settle`]).
//!
//! One area, `concurrency`: this file lists its cases in run order; `clients.rs` holds the
//! recorded clients they share, and the cases live by topic in `winners.rs`,
//! `compare_and_swap.rs`, `histories.rs` and `partial_values.rs`.

mod clients;
mod compare_and_swap;
mod histories;
mod partial_values;
mod winners;

use compare_and_swap::{
    compare_and_swap_loses_no_update, compare_and_swap_loses_no_update_across_instances,
    deletes_racing_updates_leave_no_ghost_across_instances,
};
use histories::{
    concurrent_histories_are_linearizable, concurrent_histories_are_linearizable_across_instances,
};
use partial_values::readers_never_see_a_partial_value_across_instances;
use winners::{
    only_if_match_has_a_single_winner, only_if_match_has_a_single_winner_across_instances,
    only_if_new_has_a_single_winner, only_if_new_has_a_single_winner_across_instances,
};

use crate::case::{Case, case};

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!(
            "concurrency",
            only_if_new_has_a_single_winner,
            SingleInstance
        ),
        case!(
            "concurrency",
            only_if_new_has_a_single_winner_across_instances,
            CrossInstance
        ),
        case!(
            "concurrency",
            only_if_match_has_a_single_winner,
            SingleInstance
        ),
        case!(
            "concurrency",
            only_if_match_has_a_single_winner_across_instances,
            CrossInstance
        ),
        case!(
            "concurrency",
            compare_and_swap_loses_no_update,
            SingleInstance
        ),
        case!(
            "concurrency",
            compare_and_swap_loses_no_update_across_instances,
            CrossInstance
        ),
        case!(
            "concurrency",
            deletes_racing_updates_leave_no_ghost_across_instances,
            CrossInstance
        ),
        case!(
            "concurrency",
            readers_never_see_a_partial_value_across_instances,
            CrossInstance
        ),
        case!(
            "concurrency",
            concurrent_histories_are_linearizable,
            SingleInstance
        ),
        case!(
            "concurrency",
            concurrent_histories_are_linearizable_across_instances,
            CrossInstance
        ),
    ]
}
