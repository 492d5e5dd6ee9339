//! One watcher's events → index calls, with re-lists buffered into one reset.

use kube::runtime::watcher;

use super::{Index, Indexed, Malformed};

// === impl Relist ===

/// Turns one watcher's event stream into index calls: `Apply`/`Delete` go straight
/// through; `Init` … `InitApply`* … `InitDone` is buffered and becomes one `reset`, so
/// objects deleted while the watch was down disappear, and a half-listed set is never
/// translated. A [`Relist::scoped`] tracker feeds a watcher of one namespace: its
/// re-list replaces only that namespace's objects.
#[derive(Debug)]
pub struct Relist<K> {
    buffer: Option<Vec<K>>,
    /// Whether a full list has been applied at least once (for `/readyz`).
    synced: bool,
    /// The namespace this watcher lists; `None`: the whole cluster.
    scope: Option<String>,
}

impl<K> Default for Relist<K> {
    fn default() -> Self {
        Relist {
            buffer: None,
            synced: false,
            scope: None,
        }
    }
}

/// What handling one event did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handled {
    /// The index changed: schedule a (debounced) translation.
    pub changed: bool,
    pub malformed: Vec<Malformed>,
}

impl<K: Indexed> Relist<K> {
    /// The tracker of a cluster-wide watcher.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tracker of a watcher of namespace `namespace` alone.
    pub fn scoped(namespace: impl Into<String>) -> Self {
        Relist {
            scope: Some(namespace.into()),
            ..Self::default()
        }
    }

    /// The namespace this watcher lists; `None`: the whole cluster.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// Whether this kind has completed its first full list.
    pub fn synced(&self) -> bool {
        self.synced
    }

    pub fn handle(&mut self, index: &mut Index, event: watcher::Event<K>) -> Handled {
        let mut out = Handled::default();
        match event {
            watcher::Event::Apply(obj) => match index.apply(obj) {
                Ok(changed) => out.changed = changed,
                Err(m) => out.malformed.push(m),
            },
            watcher::Event::Delete(obj) => {
                let m = obj.meta();
                out.changed = index.delete::<K>(
                    m.namespace.as_deref().unwrap_or_default(),
                    m.name.as_deref().unwrap_or_default(),
                );
            }
            watcher::Event::Init => self.buffer = Some(Vec::new()),
            watcher::Event::InitApply(obj) => self.buffer.get_or_insert_with(Vec::new).push(obj),
            watcher::Event::InitDone => {
                let objs = self.buffer.take().unwrap_or_default();
                let reset = index.reset_scoped(objs, self.scope.as_deref());
                self.synced = true;
                out.changed = reset.changed;
                out.malformed = reset.malformed;
            }
        }
        out
    }
}
