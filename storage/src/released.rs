//! [`Released`]: whether a database file (the store's, or the replication log's) is closed.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Whether a database is closed: its last handle (the store or log, a read view, the writer) is
/// gone and the file is free to be opened again. A caller that stops one waits on this rather
/// than retrying to open the file.
#[derive(Clone, Default)]
pub struct Released(Arc<(Mutex<bool>, Condvar)>);

impl Released {
    /// Waits until the database is closed, at most `timeout`; whether it is.
    pub fn wait(&self, timeout: Duration) -> bool {
        let (closed, signal) = &*self.0;
        let closed = closed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (closed, _) = signal
            .wait_timeout_while(closed, timeout, |closed| !*closed)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *closed
    }
}

/// Marks its [`Released`] when dropped: a field declared after the database, so dropped after it.
#[derive(Default)]
pub(crate) struct ReleaseOnDrop(Released);

impl ReleaseOnDrop {
    pub(crate) fn signal(&self) -> Released {
        self.0.clone()
    }
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        let (closed, signal) = &*(self.0).0;
        *closed.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        signal.notify_all();
    }
}
