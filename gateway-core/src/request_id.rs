//! The id of the request being served on this thread, for log lines.
//!
//! [`AccessLog`](crate::AccessLog) numbers the requests ([`next`]) and runs each call inside
//! its id, so a log line the app writes can say which request it came from. A thread-local
//! number rather than a `tracing` span: a span per request cost the access log a slab entry,
//! its fields formatted and a filter lookup on every poll, most of what made the default
//! config slower than the tuned one. gatewayd's log formatter prints the id as `request{id=N}`.
//!
//! ```
//! use gateway_core::request_id;
//!
//! assert_eq!(request_id::current(), None);
//! {
//!     let _in = request_id::enter(7);
//!     assert_eq!(request_id::current(), Some(7));
//! }
//! assert_eq!(request_id::current(), None);
//! ```

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    /// 0: no request.
    static CURRENT: Cell<u64> = const { Cell::new(0) };
    /// The ids this thread may still give: `(next, end)`.
    static BLOCK: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Ids are handed to threads this many at a time.
const BLOCK_LEN: u64 = 1024;
/// The first id of the next block.
static BLOCKS: AtomicU64 = AtomicU64::new(1);

/// A new request id, unique in the process, from 1. Each thread takes its ids a block at a
/// time, so that threads serving requests side by side do not contend for one counter (a
/// cache line passed between cores at every request); ids therefore grow per thread, not
/// across threads.
///
/// ```
/// use gateway_core::request_id;
///
/// let (a, b) = (request_id::next(), request_id::next());
/// assert!(a >= 1 && b != a);
/// ```
pub fn next() -> u64 {
    // A `const` `Cell` has no destructor: it is there even while its thread is torn down.
    BLOCK.with(|block| {
        let (mut next, mut end) = block.get();
        if next == end {
            next = BLOCKS.fetch_add(BLOCK_LEN, Ordering::Relaxed);
            end = next + BLOCK_LEN;
        }
        block.set((next + 1, end));
        next
    })
}

/// The id of the request this thread is serving, if any.
pub fn current() -> Option<u64> {
    match CURRENT.with(Cell::get) {
        0 => None,
        id => Some(id),
    }
}

/// Serves request `id` on this thread until the guard is dropped (for work a request hands to
/// another thread). Ids start at 1.
pub fn enter(id: u64) -> Entered {
    Entered {
        prev: CURRENT.with(|c| c.replace(id)),
    }
}

/// Puts back the id that was current before [`enter`].
#[must_use = "the id is current only while this guard lives"]
#[derive(Debug)]
pub struct Entered {
    prev: u64,
}

impl Drop for Entered {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.prev));
    }
}
