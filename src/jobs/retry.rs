//! Retrying failed attempts: the exponential backoff between attempts (backon's
//! `ExponentialBuilder`) and the sweep that re-queues jobs whose worker disappeared.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::store::{Db, StoreError, now_ms};

/// Each retry waits this many times longer than the one before.
const BACKOFF_FACTOR: f32 = 2.0;

/// Expired leases recovered per sweep; the rest wait for the next sweep.
const SWEEP_BATCH: i64 = 100;

/// The wait before attempt `n + 1` after `n` failed attempts: `base · 2^(n−1)`, capped at
/// `max`, plus up to 100 % random jitter so jobs that failed together do not retry in
/// lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait after the first failed attempt.
    pub base: Duration,
    /// Longest wait (before jitter).
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(5),
            max: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The backoff after `failed_attempts` (≥ 1) failed attempts.
    pub fn delay(&self, failed_attempts: u32) -> Duration {
        let nth = usize::try_from(failed_attempts.max(1) - 1).unwrap_or(usize::MAX);
        ExponentialBuilder::new()
            .with_min_delay(self.base)
            .with_max_delay(self.max.max(self.base))
            .with_factor(BACKOFF_FACTOR)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(nth)
            .unwrap_or(self.max)
    }

    /// When a job that has had `attempts` attempts may run again (`None`: it has had
    /// `max_attempts` and fails for good).
    pub fn retry_at_ms(&self, attempts: i64, max_attempts: u32) -> Option<i64> {
        let attempts = u32::try_from(attempts.max(1)).unwrap_or(u32::MAX);
        (attempts < max_attempts).then(|| {
            let wait_ms = i64::try_from(self.delay(attempts).as_millis()).unwrap_or(i64::MAX);
            now_ms().saturating_add(wait_ms)
        })
    }
}

/// Re-queue (with backoff) or fail every job whose lease has expired; returns how many.
pub async fn recover_expired_leases(
    db: &Db,
    policy: &RetryPolicy,
    max_attempts: u32,
) -> Result<usize, StoreError> {
    let now = now_ms();
    let mut recovered = 0;
    for job in db.expired_leases(now, SWEEP_BATCH).await? {
        let Some(owner) = job.lease_owner.as_deref() else {
            continue;
        };
        let retry_at = policy.retry_at_ms(job.attempts, max_attempts);
        let reason = match retry_at {
            Some(_) => format!(
                "attempt {} stopped: its worker stopped responding (lease expired)",
                job.attempts
            ),
            None => format!(
                "the worker processing this job stopped responding on every attempt \
                 ({} attempts)",
                job.attempts
            ),
        };
        if db
            .retry_or_fail(&job.id, owner, retry_at, &reason, Some(now))
            .await?
        {
            tracing::warn!(job_id = %job.id, attempt = job.attempts, retry = retry_at.is_some(),
                "lease expired");
            metrics::counter!("radscore_job_leases_expired_total").increment(1);
            recovered += 1;
        }
    }
    Ok(recovered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_from_base_up_to_max_with_at_most_full_jitter() {
        let policy = RetryPolicy {
            base: Duration::from_millis(100),
            max: Duration::from_millis(350),
        };
        for (failed, nominal_ms) in [(1, 100), (2, 200), (3, 350), (10, 350)] {
            let d = policy.delay(failed).as_millis();
            assert!(
                (nominal_ms..=2 * nominal_ms).contains(&d),
                "after {failed} failures: {d} ms, nominal {nominal_ms} ms"
            );
        }
    }

    #[test]
    fn the_last_attempt_is_not_retried() {
        let policy = RetryPolicy::default();
        assert!(policy.retry_at_ms(1, 3).is_some());
        assert!(policy.retry_at_ms(2, 3).is_some());
        assert!(policy.retry_at_ms(3, 3).is_none());
    }
}
