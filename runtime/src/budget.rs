//! A memory budget for one thread's work: what tract may allocate while it loads and runs
//! an ONNX file.
//!
//! tract folds every node whose inputs are constants when it loads a model, so a few
//! kilobytes of graph can make gigabytes: a broadcast `Add` of a `[12000, 1]` and a
//! `[1, 12000]` constant, an outer-product `MatMul`, a shape computed by `Mul` and given to
//! `ConstantOfShape`. The `onnx` module (feature `tract`) bounds the shapes it can read from the file; this
//! budget bounds the rest. Installed as the program's allocator, [`Budgeted`] refuses any
//! allocation that would take the bytes the current thread allocated inside [`within`]
//! over its limit. tract's tensors then fail to allocate (a panic, which
//! the `onnx` module catches) and the load ends with `OnnxError::Memory`.
//!
//! Without [`Budgeted`] as the global allocator (a library user's choice: the `runtime`
//! binary installs it) nothing is refused, and [`within`] only runs its closure.
//!
//! ```
//! use fmnist_runtime::budget::Budgeted;
//! #[global_allocator]
//! static ALLOCATOR: Budgeted<std::alloc::System> = Budgeted(std::alloc::System);
//! # fn main() {}
//! ```

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

/// A global allocator that enforces [`within`]'s budgets and otherwise passes every call
/// to `A` unchanged.
#[derive(Debug, Default)]
pub struct Budgeted<A>(pub A);

/// The current thread's budget, while [`within`] runs.
#[derive(Clone, Copy)]
struct Window {
    /// Bytes allocated minus bytes freed on this thread since the window opened (frees
    /// of older memory make it negative: that memory is given back too).
    used: isize,
    limit: isize,
    /// Whether an allocation was refused.
    refused: bool,
}

thread_local! {
    static WINDOW: Cell<Option<Window>> = const { Cell::new(None) };
}

/// Counts `grow` bytes against the open window, if any; false if they do not fit.
fn charge(grow: isize) -> bool {
    WINDOW
        .try_with(|cell| match cell.get() {
            Some(mut window) => {
                // A panic's hook and unwinding are never refused: a backtrace printed
                // from inside a window could not otherwise be allocated, and an
                // allocation failure there aborts, or deadlocks on the hook's locks.
                let fits = grow <= 0
                    || window.used.saturating_add(grow) <= window.limit
                    || std::thread::panicking();
                if fits {
                    window.used = window.used.saturating_add(grow);
                } else {
                    window.refused = true;
                }
                cell.set(Some(window));
                fits
            }
            None => true,
        })
        // During the thread's teardown there is no window.
        .unwrap_or(true)
}

fn signed(bytes: usize) -> isize {
    isize::try_from(bytes).unwrap_or(isize::MAX)
}

/// Charges `grow` bytes and runs `allocate` if they fit (a null pointer if not); gives
/// them back if `allocate` fails.
fn charged(grow: isize, allocate: impl FnOnce() -> *mut u8) -> *mut u8 {
    if !charge(grow) {
        return std::ptr::null_mut();
    }
    let pointer = allocate();
    if pointer.is_null() {
        charge(-grow);
    }
    pointer
}

// SAFETY: every call is passed to `A` with the caller's arguments, or refused with a null
// pointer, which `GlobalAlloc` allows for any allocation; `dealloc` always passes on.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Budgeted<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        charged(signed(layout.size()), || unsafe { self.0.alloc(layout) })
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        charged(signed(layout.size()), || unsafe {
            self.0.alloc_zeroed(layout)
        })
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        charge(-signed(layout.size()));
        // SAFETY: the caller's contract, passed on.
        unsafe { self.0.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let grow = signed(new_size).saturating_sub(signed(layout.size()));
        // SAFETY: the caller's contract, passed on.
        charged(grow, || unsafe {
            self.0.realloc(pointer, layout, new_size)
        })
    }
}

/// Runs `work` with a budget of `limit` bytes for what this thread allocates and keeps
/// meanwhile, and says whether an allocation was refused for it. Nested calls use the
/// inner limit and then charge the outer window with the inner one's net use.
/// Enforced only where [`Budgeted`] is the global allocator.
pub fn within<T>(limit: usize, work: impl FnOnce() -> T) -> (T, bool) {
    let outer = WINDOW.with(|cell| {
        cell.replace(Some(Window {
            used: 0,
            limit: signed(limit),
            refused: false,
        }))
    });
    // Restores the outer window even if `work` unwinds.
    struct Restore(Option<Window>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let mut outer = self.0.take();
            if let (Some(outer), Some(inner)) = (&mut outer, WINDOW.with(Cell::get)) {
                outer.used = outer.used.saturating_add(inner.used);
            }
            WINDOW.with(|cell| cell.set(outer));
        }
    }
    let restore = Restore(outer);
    let value = work();
    let refused = WINDOW.with(|cell| cell.get().is_some_and(|w| w.refused));
    drop(restore);
    (value, refused)
}
