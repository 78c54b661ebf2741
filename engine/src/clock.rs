//! The engine's clock: wall-clock milliseconds since the Unix epoch, advanced by tokio's monotonic
//! clock. Commands carry these milliseconds, so replaying a log needs no clock at all; tests that
//! pause and advance tokio's time move this clock with it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Wall-clock reading taken once at start, in Unix milliseconds.
    base_unix_ms: u64,
    /// tokio's reading at the same moment; later readings add the monotonic time elapsed since.
    base_instant: Instant,
}

impl Clock {
    pub fn start() -> Self {
        let base_unix_ms =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_millis() as u64).unwrap_or(0);
        Self { base_unix_ms, base_instant: Instant::now() }
    }

    /// This clock, reading `by` later than it would.
    pub fn ahead_by(self, by: Duration) -> Self {
        Self { base_unix_ms: self.base_unix_ms + by.as_millis() as u64, ..self }
    }

    /// Now, in Unix milliseconds. Never goes backwards.
    pub fn now_ms(&self) -> u64 {
        self.base_unix_ms + self.base_instant.elapsed().as_millis() as u64
    }

    /// The tokio instant at which `now_ms()` reaches `unix_ms` (now, if already past).
    pub fn instant_at(&self, unix_ms: u64) -> Instant {
        let offset_ms = unix_ms.saturating_sub(self.base_unix_ms);
        let at = self.base_instant + Duration::from_millis(offset_ms);
        at.max(Instant::now())
    }
}
