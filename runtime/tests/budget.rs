//! The per-thread memory budget (`budget::within`) with `Budgeted` as the allocator: what
//! bounds tract's constant folding in the `runtime` binary (issue 12, item 8).

use std::alloc::System;

use fmnist_runtime::budget::{within, Budgeted};

#[global_allocator]
static ALLOCATOR: Budgeted<System> = Budgeted(System);

const MIB: usize = 1 << 20;

/// A vector of `bytes` capacity, if the allocator gives it.
fn try_vec(bytes: usize) -> Result<Vec<u8>, std::collections::TryReserveError> {
    let mut v = Vec::new();
    v.try_reserve_exact(bytes).map(|()| v)
}

#[test]
fn an_allocation_over_the_budget_is_refused_and_reported() {
    let (vec, refused) = within(MIB, || try_vec(2 * MIB));
    assert!(vec.is_err());
    assert!(refused);
    // Under the budget: allowed, and nothing reported.
    let (vec, refused) = within(MIB, || try_vec(MIB / 2));
    assert!(vec.is_ok() && !refused);
    // Outside a window nothing is refused.
    assert!(try_vec(64 * MIB).is_ok());
}

#[test]
fn what_is_freed_is_given_back_and_what_is_kept_counts() {
    let ((), refused) = within(MIB, || {
        for _ in 0..8 {
            let block = vec![1u8; 3 * MIB / 4];
            std::hint::black_box(&block);
        }
    });
    assert!(!refused, "eight 0.75 MiB blocks, one at a time, fit 1 MiB");
    let (kept, refused) = within(MIB, || {
        let first = try_vec(3 * MIB / 4);
        let second = try_vec(3 * MIB / 4);
        (first.is_ok(), second.is_ok())
    });
    assert_eq!(kept, (true, false));
    assert!(refused);
    // Growing in place counts the growth.
    let (grown, refused) = within(MIB, || {
        let mut v = vec![0u8; MIB / 2];
        v.try_reserve_exact(MIB).is_ok()
    });
    assert!(!grown && refused);
}

#[test]
fn nested_windows_use_the_inner_limit_and_charge_the_outer() {
    let ((inner_refused, after), outer_refused) = within(2 * MIB, || {
        let (kept, inner_refused) = within(MIB, || vec![0u8; 3 * MIB / 4]);
        // The inner window's 0.75 MiB stays allocated: 1.25 MiB are left outside it.
        let after = try_vec(3 * MIB / 2).is_ok();
        drop(kept);
        (inner_refused, after)
    });
    assert!(!inner_refused);
    assert!(!after, "0.75 + 1.5 MiB is over the outer 2 MiB");
    assert!(outer_refused);
}

#[test]
fn other_threads_are_not_charged() {
    let (joined, refused) = within(MIB, || {
        std::thread::spawn(|| vec![0u8; 8 * MIB].len())
            .join()
            .expect("the other thread allocates freely")
    });
    assert_eq!(joined, 8 * MIB);
    // The thread's own stack and handle are small; its 8 MiB was not counted here.
    assert!(!refused);
}

#[test]
fn a_panic_inside_the_window_closes_it() {
    let caught = std::panic::catch_unwind(|| within(MIB, || panic!("inside")));
    assert!(caught.is_err());
    assert!(try_vec(64 * MIB).is_ok());
}
