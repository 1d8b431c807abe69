//! Buffer storage a worker thread keeps for its connections: what an idle connection gives
//! back (so that it holds no buffer) and a busy one takes again (so that taking it allocates
//! nothing once the thread has some).
//!
//! Each worker thread owns its connections, so the lists are the thread's own (nothing is
//! shared, nothing locked). Two kinds: fixed byte queues' storage ([`take_boxed`], for
//! `proxy::buf::Buf`) and growable output vectors ([`take_vec`], for the HTTP/2 connection's
//! output), each by capacity, at most [`FREE_PER_SIZE`] of a size.

use std::cell::RefCell;

/// Free storage a thread keeps per kind and size, at most.
pub(crate) const FREE_PER_SIZE: usize = 256;

/// Free storage of one size: (the size, the storage).
type FreeList<T> = (usize, Vec<T>);

thread_local! {
    /// Byte-queue storage given back by this thread's connections, by size (a connection's
    /// buffers come in two or three sizes).
    static BOXED: RefCell<Vec<FreeList<Box<[u8]>>>> = const { RefCell::new(Vec::new()) };
    /// Empty vectors given back, by capacity.
    static VECS: RefCell<Vec<FreeList<Vec<u8>>>> = const { RefCell::new(Vec::new()) };
}

fn take<T>(lists: &RefCell<Vec<FreeList<T>>>, cap: usize) -> Option<T> {
    lists.borrow_mut().iter_mut().find(|(c, _)| *c == cap).and_then(|(_, v)| v.pop())
}

fn give<T>(lists: &RefCell<Vec<FreeList<T>>>, cap: usize, item: T) {
    let mut lists = lists.borrow_mut();
    match lists.iter_mut().find(|(c, _)| *c == cap) {
        Some((_, v)) if v.len() < FREE_PER_SIZE => v.push(item),
        Some(_) => {}
        None => lists.push((cap, vec![item])),
    }
}

/// Storage of `cap` bytes: from the thread's free list, or new.
pub(crate) fn take_boxed(cap: usize) -> Box<[u8]> {
    BOXED.with(|f| take(f, cap)).unwrap_or_else(|| vec![0; cap].into_boxed_slice())
}

/// Gives storage back to the thread's free list (dropped when the list for its size is full).
pub(crate) fn give_boxed(data: Box<[u8]>) {
    BOXED.with(|f| give(f, data.len(), data));
}

/// An empty vector of capacity `cap`: from the thread's free list, or new.
pub(crate) fn take_vec(cap: usize) -> Vec<u8> {
    VECS.with(|f| take(f, cap)).unwrap_or_else(|| Vec::with_capacity(cap))
}

/// Gives a vector back, emptied, under the capacity it was taken with (`cap`: one that grew
/// past it is dropped instead, so that each list holds one size).
pub(crate) fn give_vec(mut v: Vec<u8>, cap: usize) {
    if v.capacity() != cap {
        return;
    }
    v.clear();
    VECS.with(|f| give(f, cap, v));
}
