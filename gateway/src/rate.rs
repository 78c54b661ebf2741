//! Rate limiting per buyer and per client address (governor, GCRA). A caller over their rate gets
//! RESOURCE_EXHAUSTED with the time to wait, in the message and in `retry-after-ms` metadata.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tonic::metadata::MetadataValue;
use tonic::Status;

use crate::config::LimitsConfig;

/// How often keys that have been idle long enough to be at full burst are forgotten, so the
/// limiters' memory follows the active callers, not every caller ever seen.
const FORGET_IDLE_KEYS_EVERY: Duration = Duration::from_secs(60);

pub struct RateLimits {
    per_buyer: Option<DefaultKeyedRateLimiter<String>>,
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

fn quota(per_second: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_second)?;
    Some(Quota::per_second(rate).allow_burst(NonZeroU32::new(burst.max(1)).expect("at least one")))
}

fn exhausted(what: &str, wait: Duration) -> Status {
    let wait_ms = wait.as_millis().max(1) as u64;
    let mut status = Status::resource_exhausted(format!("rate limit of this {what} reached; retry after {wait_ms} ms"));
    status.metadata_mut().insert("retry-after-ms", MetadataValue::from(wait_ms));
    status
}

impl RateLimits {
    /// A rate of 0 turns that limiter off.
    pub fn new(config: &LimitsConfig) -> Arc<Self> {
        let limits = Arc::new(Self {
            per_buyer: quota(config.buyer_requests_per_second, config.buyer_requests_burst).map(RateLimiter::keyed),
            per_address: quota(config.address_requests_per_second, config.address_requests_burst)
                .map(RateLimiter::keyed),
        });
        let weak = Arc::downgrade(&limits);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(FORGET_IDLE_KEYS_EVERY);
            loop {
                ticker.tick().await;
                let Some(limits) = weak.upgrade() else { break };
                if let Some(limiter) = &limits.per_buyer {
                    limiter.retain_recent();
                    limiter.shrink_to_fit();
                }
                if let Some(limiter) = &limits.per_address {
                    limiter.retain_recent();
                    limiter.shrink_to_fit();
                }
            }
        });
        limits
    }

    pub fn check_buyer(&self, buyer: &str) -> Result<(), Status> {
        let Some(limiter) = &self.per_buyer else { return Ok(()) };
        limiter
            .check_key(&buyer.to_string())
            .map_err(|not_until| exhausted("buyer", not_until.wait_time_from(DefaultClock::default().now())))
    }

    pub fn check_address(&self, address: Option<IpAddr>) -> Result<(), Status> {
        let (Some(limiter), Some(address)) = (&self.per_address, address) else { return Ok(()) };
        limiter
            .check_key(&address)
            .map_err(|not_until| exhausted("client address", not_until.wait_time_from(DefaultClock::default().now())))
    }
}
