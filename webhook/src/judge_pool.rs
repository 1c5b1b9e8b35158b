//! The judging pool: a fixed set of threads (one per CPU by default) that parse and judge
//! reviews, fed by one first-in first-out queue.
//!
//! Why not Tokio's blocking pool: every `spawn_blocking` woke a sleeping pool thread (a futex
//! call and a context switch), and the pool rotated through a dozen threads, each with cold
//! caches and its own allocator heap. Here a thread that finishes a job takes the next one
//! without sleeping while there is work, so a busy server judges without a wake-up per review
//! (measured with `kspy-load bench`; figures in the crate README).
//!
//! What it keeps from the blocking pool: judging never runs on a connection-serving worker,
//! so a judgement that never returns cannot stall other connections, and the caller waits
//! only until the review's deadline ([`JudgePool::run`]). A job still queued when its
//! deadline passes is dropped unrun, and so is one whose caller stopped waiting (the request
//! was abandoned). A panic in a job is caught; the thread lives on.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use tokio::sync::oneshot;
use tokio::time::Instant;

/// Why a job gave no result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobFailure {
    /// The deadline passed first (still queued, or still running).
    Timeout,
    /// The job panicked.
    Panic,
}

type Job = Box<dyn FnOnce() + Send + 'static>;

struct Queued {
    deadline: std::time::Instant,
    job: Job,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Queued>,
    idle: usize,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

/// A fixed pool of judging threads. Dropping it lets the threads finish the job in hand and
/// exit; queued jobs are dropped (their callers see [`JobFailure::Timeout`]).
pub(crate) struct JudgePool {
    shared: Arc<Shared>,
    threads: usize,
}

impl std::fmt::Debug for JudgePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JudgePool")
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// Each judging thread's stack. CEL evaluates an expression tree recursively; the loader caps
/// its depth (`kspy_admission::cel::MAX_EXPRESSION_DEPTH`), and this leaves room for that
/// depth even in a debug build, where each level takes tens of KiB. Only what is used is
/// committed.
const JUDGE_STACK_BYTES: usize = 32 << 20;

impl JudgePool {
    /// Starts `threads` (at least one) judging threads named `kspy-judge-N`.
    pub(crate) fn new(threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
        });
        for n in 0..threads {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("kspy-judge-{n}"))
                .stack_size(JUDGE_STACK_BYTES)
                .spawn(move || work(&shared))?;
        }
        Ok(JudgePool { shared, threads })
    }

    /// Queues `f` for a judging thread at once; the returned future waits for its result
    /// until `deadline`. Dropping the future before `f` started means `f` never runs.
    pub(crate) fn run<T, F>(
        &self,
        deadline: Instant,
        f: F,
    ) -> impl Future<Output = Result<T, JobFailure>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The caller stopped waiting (its client hung up, or reset the HTTP/2 stream):
            // nobody would see the result. Running it anyway let a client that sent reviews
            // and went away at once keep the threads busy while reviews behind it timed out.
            if tx.is_closed() {
                return;
            }
            let outcome = catch_unwind(AssertUnwindSafe(f)).map_err(|_| JobFailure::Panic);
            // The caller may have given up (deadline); nothing to do then.
            let _ = tx.send(outcome);
        });
        self.push(Queued {
            deadline: deadline.into_std(),
            job,
        });
        async move {
            match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(outcome)) => outcome,
                // Dropped unrun: expired in the queue, or the pool shut down.
                Ok(Err(_)) | Err(_) => Err(JobFailure::Timeout),
            }
        }
    }

    fn push(&self, queued: Queued) {
        let wake = {
            let mut q = self.lock();
            q.jobs.push_back(queued);
            q.idle > 0
        };
        // Only a sleeping thread needs a wake-up; busy ones look at the queue before sleeping.
        if wake {
            self.shared.ready.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // Jobs run outside the lock and catch their panics, so poisoning cannot carry a
        // broken queue; recover rather than take the server down.
        self.shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for JudgePool {
    fn drop(&mut self) {
        self.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

/// One judging thread: take the oldest job, skip it if its deadline passed, run it, repeat;
/// sleep only when the queue is empty.
fn work(shared: &Shared) {
    loop {
        let queued = {
            let mut q = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if q.closed {
                    return;
                }
                if let Some(queued) = q.jobs.pop_front() {
                    break queued;
                }
                q.idle += 1;
                q = shared.ready.wait(q).unwrap_or_else(PoisonError::into_inner);
                q.idle -= 1;
            }
        };
        if std::time::Instant::now() >= queued.deadline {
            // Dropping the job drops its result channel: the caller sees a timeout.
            drop(queued);
            continue;
        }
        (queued.job)();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[tokio::test]
    async fn runs_jobs_and_returns_their_results() {
        let pool = JudgePool::new(2).expect("pool");
        let name = pool
            .run(soon(5_000), || {
                std::thread::current().name().map(str::to_owned)
            })
            .await
            .expect("result");
        assert!(name.is_some_and(|n| n.starts_with("kspy-judge-")));
        let pending: Vec<_> = (0..50u64)
            .map(|i| pool.run(soon(5_000), move || i * 2))
            .collect();
        let mut sums = Vec::new();
        for p in pending {
            sums.push(p.await.expect("result"));
        }
        assert_eq!(sums, (0..50u64).map(|i| i * 2).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_job_past_its_deadline_times_out_and_does_not_block_the_caller() {
        let pool = JudgePool::new(1).expect("pool");
        let started = std::time::Instant::now();
        let r = pool
            .run(soon(100), || std::thread::sleep(Duration::from_secs(1)))
            .await;
        assert_eq!(r, Err(JobFailure::Timeout));
        assert!(started.elapsed() < Duration::from_millis(800));
    }

    #[tokio::test]
    async fn a_job_queued_past_its_deadline_is_not_run() {
        let pool = JudgePool::new(1).expect("pool");
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Occupy the only thread, then queue a job whose deadline passes while it waits.
        let busy = pool.run(soon(5_000), || {
            std::thread::sleep(Duration::from_millis(300))
        });
        let flag = ran.clone();
        let late = pool.run(soon(50), move || {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let (busy, late) = tokio::join!(busy, late);
        assert_eq!(busy, Ok(()));
        assert_eq!(late, Err(JobFailure::Timeout));
        // Give the thread time to reach (and skip) the expired job.
        pool.run(soon(5_000), || ())
            .await
            .expect("pool still works");
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_job_whose_caller_stopped_waiting_is_not_run() {
        let pool = JudgePool::new(1).expect("pool");
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let busy = pool.run(soon(5_000), || {
            std::thread::sleep(Duration::from_millis(200))
        });
        let flag = ran.clone();
        drop(pool.run(soon(5_000), move || {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        }));
        assert_eq!(busy.await, Ok(()));
        // Queued after the abandoned job: by the time it ran, the other was taken and skipped.
        pool.run(soon(5_000), || ())
            .await
            .expect("pool still works");
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_panicking_job_is_reported_and_the_thread_keeps_working() {
        let pool = JudgePool::new(1).expect("pool");
        for _ in 0..3 {
            let r: Result<(), _> = pool.run(soon(5_000), || panic!("boom")).await;
            assert_eq!(r, Err(JobFailure::Panic));
        }
        assert_eq!(pool.run(soon(5_000), || 7).await, Ok(7));
    }

    #[tokio::test]
    async fn dropping_the_pool_fails_queued_jobs_instead_of_hanging() {
        let pool = JudgePool::new(1).expect("pool");
        let busy = pool.run(soon(5_000), || {
            std::thread::sleep(Duration::from_millis(200))
        });
        let queued = pool.run(soon(5_000), || 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(pool);
        let started = std::time::Instant::now();
        assert_eq!(busy.await, Ok(()), "the job in hand finishes");
        assert_eq!(
            queued.await,
            Err(JobFailure::Timeout),
            "the queued one is dropped"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
