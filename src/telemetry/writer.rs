//! Where log lines go: stderr. The per-request logs (`portcullis::decision`,
//! `portcullis::access`) are gathered in memory and written in batches by a thread of
//! their own, every [`FLUSH_EVERY`]: a request pays for a copy into a buffer instead of a
//! `write(2)` on the pipe to the container runtime. Every other line is written at once,
//! after whatever was gathered before it, so lines keep their order. Nothing is dropped:
//! past [`MAX_PENDING`] bytes the request that logs writes the batch itself, as an
//! unbuffered writer would. [`flush`] writes what is gathered (at exit, and before a
//! panic's message).

use std::io::{self, Write};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

// The writer's own locks are recovered without a log line: one logged here would
// wait for the lock its writer holds.
use crate::sync::lock_unlogged as lock;

/// How long a batched line may wait.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// How much may wait before the writing thread writes it itself.
pub const MAX_PENDING: usize = 256 * 1024;

/// The targets with one line per request.
pub(super) fn batched(target: &str) -> bool {
    target == "portcullis::decision" || target == "portcullis::access"
}

/// Lines gathered and not yet written.
static PENDING: Mutex<Vec<u8>> = Mutex::new(Vec::new());
/// Held while writing to stderr, so batches and direct lines keep their order.
static OUT: Mutex<()> = Mutex::new(());
/// Whether the batch writer's thread runs (without it every line is written at once).
static FLUSHER: OnceLock<bool> = OnceLock::new();

/// Writes every gathered line now.
pub fn flush() {
    let _out = lock(&OUT);
    let pending = std::mem::take(&mut *lock(&PENDING));
    let _ = io::stderr().lock().write_all(&pending);
}

/// The subscriber's writer.
pub(super) struct Sink;

impl<'a> MakeWriter<'a> for Sink {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line { batched: false }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Line {
        Line {
            batched: batched(meta.target()),
        }
    }
}

/// One line being written (the formatter writes a whole line with one `write_all`).
pub(super) struct Line {
    batched: bool,
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.batched && *FLUSHER.get_or_init(start_flusher) {
            let mut pending = lock(&PENDING);
            if pending.len() + buf.len() <= MAX_PENDING {
                pending.extend_from_slice(buf);
                return Ok(());
            }
        }
        let _out = lock(&OUT);
        let pending = std::mem::take(&mut *lock(&PENDING));
        let mut err = io::stderr().lock();
        err.write_all(&pending)?;
        err.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Starts the thread that writes the batches; whether it runs.
fn start_flusher() -> bool {
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(|| {
            let mut spare = Vec::new();
            loop {
                std::thread::sleep(FLUSH_EVERY);
                let _out = lock(&OUT);
                std::mem::swap(&mut *lock(&PENDING), &mut spare);
                if !spare.is_empty() {
                    let _ = io::stderr().lock().write_all(&spare);
                    spare.clear();
                }
            }
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_request_targets_are_batched_and_others_are_not() {
        assert!(batched("portcullis::decision"));
        assert!(batched("portcullis::access"));
        for t in ["portcullis::app", "portcullis::decisions", "rustls", ""] {
            assert!(!batched(t), "{t}");
        }
    }
}
