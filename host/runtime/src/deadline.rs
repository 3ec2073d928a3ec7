//! Call deadlines without a timer per call. A tokio timer costs a call a wake-up
//! of the timer driver when it is armed (about 15 µs on these machines, a fifth
//! of a whole loopback HTTP round trip); a call waiting on its deadline here only
//! leaves its waker in a list, which the epoch thread (already ticking every
//! [`EPOCH_TICK`](crate::runtime::EPOCH_TICK)) scans, waking the calls that are
//! late. A deadline is met to within one tick, as epoch interruption of guest
//! code already is.

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Poll, Waker};
use std::time::Instant;

/// The calls waiting with a deadline. One per runtime, shared with its epoch
/// thread.
#[derive(Default)]
pub(crate) struct Deadlines {
    waiting: Mutex<Vec<Weak<Waiting>>>,
}

struct Waiting {
    at: Instant,
    waker: Mutex<Option<Waker>>,
}

impl Deadlines {
    /// Runs `fut` until it completes (`Some`) or `at` passes (`None`, and `fut`
    /// is dropped). Nothing is registered unless `fut` has to wait.
    pub(crate) async fn until<F: Future>(&self, at: Instant, fut: F) -> Option<F::Output> {
        let mut fut = pin!(fut);
        let mut entry: Option<Arc<Waiting>> = None;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            if Instant::now() >= at {
                return Poll::Ready(None);
            }
            match &entry {
                Some(entry) => {
                    let mut waker = entry.waker.lock().unwrap_or_else(PoisonError::into_inner);
                    if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *waker = Some(cx.waker().clone());
                    }
                }
                None => {
                    let waiting = Arc::new(Waiting {
                        at,
                        waker: Mutex::new(Some(cx.waker().clone())),
                    });
                    self.lock().push(Arc::downgrade(&waiting));
                    entry = Some(waiting);
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Wakes every call whose deadline has passed by `now` and forgets it, and
    /// forgets the calls that ended. Returns how many still wait.
    pub(crate) fn tick(&self, now: Instant) -> usize {
        let mut late = Vec::new();
        let left = {
            let mut waiting = self.lock();
            waiting.retain(|weak| match weak.upgrade() {
                None => false,
                Some(entry) if now >= entry.at => {
                    let waker = entry.waker.lock().unwrap_or_else(PoisonError::into_inner);
                    late.extend(waker.clone());
                    false
                }
                Some(_) => true,
            });
            waiting.len()
        };
        // Woken outside the lock: a waker may run code of its executor.
        for waker in late {
            waker.wake();
        }
        left
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<Waiting>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_call_that_finishes_in_time_gives_its_output_and_leaves_nothing() {
        let deadlines = Deadlines::default();
        let at = Instant::now() + Duration::from_secs(30);
        assert_eq!(deadlines.until(at, async { 7 }).await, Some(7));
        let slept = deadlines.until(at, tokio::task::yield_now()).await;
        assert_eq!(slept, Some(()));
        // The call that waited once is forgotten at the next tick.
        assert_eq!(deadlines.tick(Instant::now()), 0);
    }

    #[tokio::test]
    async fn a_late_call_is_woken_by_the_tick_and_its_future_dropped() {
        let deadlines = Arc::new(Deadlines::default());
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        struct Flag(Arc<std::sync::atomic::AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let flag = Flag(dropped.clone());
        let at = Instant::now() + Duration::from_millis(20);
        let waiting = deadlines.clone();
        let call = tokio::spawn(async move {
            waiting
                .until(at, async move {
                    let _flag = flag;
                    std::future::pending::<()>().await
                })
                .await
        });
        // Ticks before the deadline wake nobody; the call stays registered.
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(deadlines.tick(Instant::now()), 1);
        assert!(!call.is_finished());
        while Instant::now() < at {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(deadlines.tick(Instant::now()), 0);
        let out = tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .expect("the tick woke the late call")
            .unwrap();
        assert_eq!(out, None);
        assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
    }
}
