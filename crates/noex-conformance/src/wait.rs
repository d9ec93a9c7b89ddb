//! Waiting for a condition by polling it, on whatever clock the caller sleeps on (the OS
//! clock, tokio's paused clock, the harness's virtual clock). The one helper every test
//! crate uses; it needs nothing of the client.

use std::future::Future;
use std::time::Duration;

/// Polls a condition every [`Eventually::every`] until it holds; panics naming what it
/// waited for once [`Eventually::within`] has been spent sleeping. Time is counted in the
/// sleeps it made, so it follows a virtual clock as well as the real one.
///
/// ```
/// use noex_conformance::Eventually;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
///
/// let polls = AtomicU32::new(0);
/// // Any sleep function works; this one returns at once.
/// let wait = Eventually::new(|_| std::future::ready(())).within(Duration::from_secs(1));
/// futures::executor::block_on(
///     wait.until("the third poll", || polls.fetch_add(1, Ordering::Relaxed) == 2),
/// );
/// assert_eq!(polls.load(Ordering::Relaxed), 3);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Eventually<S> {
    sleep: S,
    every: Duration,
    within: Duration,
}

impl<S, F> Eventually<S>
where
    S: Fn(Duration) -> F,
    F: Future,
{
    /// Polls every 10 ms for at most 5 s, sleeping with `sleep`.
    pub fn new(sleep: S) -> Eventually<S> {
        Eventually {
            sleep,
            every: Duration::from_millis(10),
            within: Duration::from_secs(5),
        }
    }

    /// How long to sleep between polls.
    pub fn every(mut self, every: Duration) -> Self {
        self.every = every;
        self
    }

    /// How long to wait in all before failing.
    pub fn within(mut self, within: Duration) -> Self {
        self.within = within;
        self
    }

    /// Waits until `check()` is true.
    ///
    /// # Panics
    /// With "timed out after … waiting for `what`" once the time is up.
    pub async fn until(&self, what: &str, mut check: impl FnMut() -> bool) {
        self.until_async(what, || std::future::ready(check())).await
    }

    /// Waits until `check().await` is true.
    ///
    /// # Panics
    /// With "timed out after … waiting for `what`" once the time is up.
    pub async fn until_async<C, Fut>(&self, what: &str, mut check: C)
    where
        C: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let mut waited = Duration::ZERO;
        while !check().await {
            assert!(
                waited < self.within,
                "timed out after {:?} waiting for {what}",
                self.within
            );
            (self.sleep)(self.every).await;
            waited += self.every;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "timed out after 50ms waiting for never")]
    fn gives_up_with_the_name_of_what_it_waited_for() {
        let wait = Eventually::new(|_| std::future::ready(()))
            .every(Duration::from_millis(10))
            .within(Duration::from_millis(50));
        futures::executor::block_on(wait.until("never", || false));
    }
}
