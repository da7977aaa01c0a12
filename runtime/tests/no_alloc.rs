//! Loading a blob and classifying allocate nothing: a counting global allocator proves it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use fmnist_runtime::Plan;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Only this test thread's allocations count (the harness's own threads may allocate).
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The shipped edge model, as firmware embeds it.
static BLOB: &[u8] = include_bytes!("../../models/edge.q8");

#[test]
fn loading_and_classifying_allocate_zero_bytes() {
    let mut arena = [0u8; 64 * 1024]; // on the stack: no allocation
    let image = [90u8; 784];
    let sanity = {
        COUNTING.with(|c| c.set(true));
        let boxed = std::hint::black_box(Box::new(1u8));
        drop(boxed);
        COUNTING.with(|c| c.set(false));
        ALLOCATIONS.swap(0, Ordering::SeqCst)
    };
    assert_eq!(sanity, 1, "the counting allocator counts");
    COUNTING.with(|c| c.set(true));
    let plan = Plan::new(BLOB).expect("the shipped blob loads");
    let first = plan
        .classify(&image, &mut arena)
        .expect("arena is large enough");
    let second = plan
        .classify(&image, &mut arena)
        .expect("arena is large enough");
    COUNTING.with(|c| c.set(false));
    assert_eq!(
        ALLOCATIONS.load(Ordering::SeqCst),
        0,
        "allocations during load + classify"
    );
    assert_eq!(first, second);
    assert!(plan.arena_bytes() <= arena.len());
}
