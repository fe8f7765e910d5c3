//! A global allocator that counts the heap allocations one thread makes while asked to, for tests
//! and benches that prove a path allocates nothing. Each binary still declares its own
//! `#[global_allocator] static GLOBAL: CountingAllocator = CountingAllocator;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Forwards to the system allocator, counting on the threads inside [`counted`].
pub struct CountingAllocator;

/// Heap allocations (reallocations included) counted by [`counted`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allocations {
    pub count: usize,
    /// Bytes requested; a reallocation counts its new size.
    pub bytes: usize,
}

thread_local! {
    // Per thread, so that the test harness and tests running alongside are not counted.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNTED: Cell<Allocations> = const { Cell::new(Allocations { count: 0, bytes: 0 }) };
}

fn note_allocation(bytes: usize) {
    // `try_with`: the allocator also runs while this thread's locals are being torn down.
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = COUNTED.try_with(|counted| {
            let Allocations {
                count,
                bytes: total,
            } = counted.get();
            counted.set(Allocations {
                count: count + 1,
                bytes: total + bytes,
            });
        });
    }
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation(new_size);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f`, returning its result and the allocations it made on this thread. Counts nothing
/// unless the binary's global allocator is a [`CountingAllocator`].
pub fn counted<T>(f: impl FnOnce() -> T) -> (T, Allocations) {
    COUNTED.with(|counted| counted.set(Allocations::default()));
    COUNTING.with(|counting| counting.set(true));
    let out = f();
    COUNTING.with(|counting| counting.set(false));
    (out, COUNTED.with(Cell::get))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static GLOBAL: CountingAllocator = CountingAllocator;

    #[test]
    fn counts_allocations_inside_counted_only() {
        let outside = String::from("allocated before counting");
        let (inside, allocations) = counted(|| {
            let mut grown = Vec::<u8>::with_capacity(16);
            grown.resize(1000, 0);
            grown
        });
        assert_eq!(
            allocations,
            Allocations {
                count: 2,
                bytes: 16 + 1000
            }
        );
        assert_eq!(
            counted(|| outside.len() + inside.len()).1,
            Allocations::default()
        );
    }
}
