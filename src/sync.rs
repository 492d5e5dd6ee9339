//! Taking std locks. A thread that panics while it holds a `Mutex` poisons it, and
//! from then on every `lock()` fails. What our locks guard (caches, replay sets,
//! rate-limit budgets, the current connection, status counters, the table writer's
//! turn) is left usable by a holder that stopped half-way: at worst a cache entry is
//! missing or stale. So a panicking holder must not take the data plane down with it:
//! every std lock in the crate is taken through [`lock`], which takes the guard
//! anyway, clears the poison and logs that it did — once per panic, since the lock
//! is no longer poisoned afterwards. docs/design.md ("Errors") states the rule;
//! clippy's `disallowed-methods` (clippy.toml) keeps `Mutex::lock` out of the rest of
//! the tree.

use std::panic::Location;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// `mutex`'s guard, also when a holder panicked (logged at the caller's place).
#[track_caller]
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    let at = Location::caller();
    recover(mutex, || {
        tracing::warn!(
            %at,
            "a thread panicked while holding this lock; carrying on with what it left"
        );
    })
}

/// [`lock`] without the log line, for the log writer's own locks: a line logged there
/// would wait for the lock its writer holds.
pub fn lock_unlogged<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    recover(mutex, || {})
}

#[allow(clippy::disallowed_methods)]
fn recover<T: ?Sized>(mutex: &Mutex<T>, report: impl FnOnce()) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => {
            // Reported with the lock released: the report may take other locks.
            drop(poisoned);
            mutex.clear_poison();
            report();
            mutex.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_panicking_holder_leaves_the_data_and_clears_the_poison() {
        let m = Arc::new(Mutex::new(vec![1]));
        let held = m.clone();
        let _ = std::thread::spawn(move || {
            let mut v = lock(&held);
            v.push(2);
            panic!("holder fails");
        })
        .join();
        assert!(m.is_poisoned());
        assert_eq!(*lock(&m), [1, 2]);
        assert!(!m.is_poisoned());
        lock(&m).push(3);
        assert_eq!(*lock_unlogged(&m), [1, 2, 3]);
    }
}
