//! The live table: one atomically swapped snapshot that every request reads without
//! locking. Writers build a whole new table (reusing backend state) and swap it in.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::{Diagnostic, Model, RegexStats, RoutingTable, build};

/// One published table and what its build reported.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Starts at 1 for the first applied model; 0 means nothing applied yet.
    pub generation: u64,
    pub table: RoutingTable,
    pub diagnostics: Vec<Diagnostic>,
}

/// The result of applying a model.
#[derive(Debug, Clone, Copy)]
pub struct Applied {
    pub generation: u64,
    pub routes: usize,
    pub build_time: Duration,
    /// Path regexes compiled by this build, and reused from the previous table.
    pub regexes: RegexStats,
}

/// Holds the current snapshot; cheap to clone and share.
#[derive(Debug, Clone, Default)]
pub struct LiveTable {
    current: Arc<ArcSwap<Snapshot>>,
    writer: Arc<Mutex<()>>,
}

impl LiveTable {
    /// The snapshot to serve one request from. Holding it keeps that table alive, so a
    /// request never sees half of one table and half of another.
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The snapshot as an owned `Arc`, for work that outlives a request.
    pub fn load_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Builds a table from `model` and swaps it in. Writers are serialized; readers
    /// never wait.
    pub fn apply(&self, model: &Model) -> Applied {
        let _writer = crate::sync::lock(&self.writer);
        let started = Instant::now();
        let previous = self.current.load_full();
        let (table, diagnostics) = build(model, Some(&previous.table));
        let snapshot = Snapshot {
            generation: previous.generation + 1,
            table,
            diagnostics,
        };
        let applied = Applied {
            generation: snapshot.generation,
            routes: snapshot.table.len(),
            build_time: started.elapsed(),
            regexes: snapshot.table.regex_stats(),
        };
        self.current.store(Arc::new(snapshot));
        applied
    }
}
