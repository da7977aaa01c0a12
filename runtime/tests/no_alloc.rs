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

/// The tests share the allocation count: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn loading_and_classifying_allocate_zero_bytes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
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

#[test]
fn fast_plans_classify_one_image_and_a_batch_without_allocating() {
    use fmnist_runtime::{FastPlan, Logits};
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fast = FastPlan::new(Plan::new(BLOB).expect("the shipped blob loads"));
    let mut arena = vec![0u8; fast.batch_arena_bytes(3)];
    let images: Vec<u8> = (0..3 * 784).map(|i| (i * 7 % 256) as u8).collect();
    let mut logits = [Logits::default(); 3];
    COUNTING.with(|c| c.set(true));
    let one = fast.classify(&images.as_chunks::<784>().0[0], &mut arena);
    let batch = fast.classify_batch(&images, &mut arena, &mut logits);
    COUNTING.with(|c| c.set(false));
    assert_eq!(ALLOCATIONS.swap(0, Ordering::SeqCst), 0, "allocations");
    assert_eq!(batch, Ok(()));
    assert_eq!(one, Ok(logits[0]), "{}", fast.isa().name());
}
