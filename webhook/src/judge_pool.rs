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
//!
//! A job still running at its deadline keeps its thread: Rust cannot stop a thread. So that
//! such jobs do not take the pool's threads one by one (and with them every later review, each
//! denied at its deadline), the caller starts a stand-in thread for each, up to
//! [`MAX_STAND_INS`] at once; once any job ends with more threads alive than the pool's size,
//! its thread retires.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU8, Ordering};
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
    /// [`QUEUED`], [`RUNNING`], [`OVERRUNNING`] or [`ENDED`]; changed from `RUNNING` on only
    /// under the queue's lock.
    state: Arc<AtomicU8>,
    job: Job,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Queued>,
    idle: usize,
    closed: bool,
    /// Threads alive: the pool's size, plus stand-ins not yet retired.
    alive: usize,
    /// Jobs running past their deadlines, each holding a thread.
    overrunning: usize,
    /// Names the next thread.
    spawned: usize,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// The pool's size: threads beyond it retire once a job of theirs ends.
    size: usize,
}

/// The most stand-in threads alive at once, over the pool's size: each job still running
/// past its deadline holds one thread, and with it up to [`JUDGE_STACK_BYTES`] of stack; past
/// this, such jobs take the pool's own threads, as before.
pub(crate) const MAX_STAND_INS: usize = 16;

// Where a job is, for its caller to tell, at the deadline, a job still queued (dropped unrun,
// no thread held) from one running (holding a thread), which it marks overrunning.
const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const OVERRUNNING: u8 = 2;
const ENDED: u8 = 3;

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
            size: threads,
        });
        for _ in 0..threads {
            start_thread(&shared)?;
        }
        Ok(JudgePool { shared, threads })
    }

    /// Threads alive now: the pool's size, plus the stand-ins for jobs running past their
    /// deadlines that have not retired yet.
    #[cfg(test)]
    fn threads_alive(&self) -> usize {
        self.lock().alive
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
        let state = Arc::new(AtomicU8::new(QUEUED));
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
            state: state.clone(),
            job,
        });
        let shared = self.shared.clone();
        async move {
            match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(outcome)) => outcome,
                // Dropped unrun: expired in the queue, or the pool shut down.
                Ok(Err(_)) => Err(JobFailure::Timeout),
                Err(_) => {
                    stand_in(&shared, &state);
                    Err(JobFailure::Timeout)
                }
            }
        }
    }

    /// Jobs waiting for a thread now, those past their deadlines included (a thread drops
    /// them when it reaches them).
    pub(crate) fn queued(&self) -> usize {
        self.lock().jobs.len()
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
        let queued = {
            let mut q = self.lock();
            q.closed = true;
            std::mem::take(&mut q.jobs)
        };
        self.shared.ready.notify_all();
        // Dropped unrun: each caller sees a timeout at once.
        drop(queued);
    }
}

/// Starts one judging thread, counted alive.
fn start_thread(shared: &Arc<Shared>) -> std::io::Result<()> {
    let n = {
        let mut q = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
        q.alive += 1;
        q.spawned += 1;
        q.spawned - 1
    };
    spawn_counted(shared, n)
}

/// Spawns thread `n`, already counted alive; uncounts it if it cannot be spawned.
fn spawn_counted(shared: &Arc<Shared>, n: usize) -> std::io::Result<()> {
    let worker = shared.clone();
    let started = std::thread::Builder::new()
        .name(format!("kspy-judge-{n}"))
        .stack_size(JUDGE_STACK_BYTES)
        .spawn(move || work(&worker));
    if started.is_err() {
        shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .alive -= 1;
    }
    started.map(drop)
}

/// At a job's deadline: if it is still running, marks it overrunning and starts a thread to
/// stand in for the one it holds, unless [`MAX_STAND_INS`] are alive already.
fn stand_in(shared: &Arc<Shared>, state: &AtomicU8) {
    // Counted alive under the same lock as the cap is checked, so that the cap holds.
    let n = {
        let mut q = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if state
            .compare_exchange(RUNNING, OVERRUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Still queued (dropped unrun), or just ended: no thread is held.
            return;
        }
        q.overrunning += 1;
        if q.alive.saturating_sub(q.overrunning) >= shared.size {
            // A stand-in of an earlier job is free for this one's work.
            return;
        }
        if q.alive >= shared.size + MAX_STAND_INS {
            drop(q);
            tracing::warn!(
                stand_ins = MAX_STAND_INS,
                "a judgement is still running past its deadline and holds its judging thread; the limit of stand-in threads is reached, so the pool has one thread fewer until it ends"
            );
            return;
        }
        q.alive += 1;
        q.spawned += 1;
        q.spawned - 1
    };
    match spawn_counted(shared, n) {
        Ok(()) => tracing::warn!(
            "a judgement is still running past its deadline and holds its judging thread; started a stand-in thread until it ends"
        ),
        Err(err) => tracing::warn!(
            error = %err,
            "a judgement is still running past its deadline, and no stand-in thread could be started"
        ),
    }
}

/// One judging thread: take the oldest job, skip it if its deadline passed, run it, repeat;
/// sleep only when the queue is empty. Retires, once a job ends, when more threads are alive
/// than the pool's size (a stand-in was started for a job past its deadline).
fn work(shared: &Shared) {
    let mut ended: Option<Arc<AtomicU8>> = None;
    loop {
        let queued = {
            let mut q = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(state) = ended.take()
                && state.swap(ENDED, Ordering::AcqRel) == OVERRUNNING
            {
                q.overrunning = q.overrunning.saturating_sub(1);
            }
            if q.alive.saturating_sub(q.overrunning) > shared.size {
                q.alive -= 1;
                return;
            }
            loop {
                if q.closed {
                    q.alive -= 1;
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
        queued.state.store(RUNNING, Ordering::Release);
        ended = Some(queued.state);
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
        // The late job's caller is kept, not polled: it has not stopped waiting, so only the
        // deadline, passed while the job sat in the queue, can keep the job from running.
        assert_eq!(busy.await, Ok(()));
        // Queued behind it: by the time this runs, the thread reached (and skipped) the late job.
        pool.run(soon(5_000), || ())
            .await
            .expect("pool still works");
        assert!(
            !ran.load(std::sync::atomic::Ordering::SeqCst),
            "a job whose deadline passed in the queue was run"
        );
        assert_eq!(pool.queued(), 0, "the skipped job left the queue");
        assert_eq!(late.await, Err(JobFailure::Timeout));
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

    /// A job past its deadline keeps its thread, and a stand-in takes its place, so the jobs
    /// behind it still run in time; once it ends, the pool shrinks back to its size.
    #[tokio::test]
    async fn a_job_running_past_its_deadline_gets_a_stand_in_thread() {
        let pool = JudgePool::new(1).expect("pool");
        let release = Arc::new((Mutex::new(false), Condvar::new()));
        let hold = release.clone();
        let stuck = pool.run(soon(100), move || {
            let (lock, cvar) = &*hold;
            let mut go = lock.lock().unwrap();
            while !*go {
                go = cvar.wait(go).unwrap();
            }
        });
        assert_eq!(stuck.await, Err(JobFailure::Timeout));
        assert_eq!(pool.threads_alive(), 2, "a stand-in was started");
        // The only thread of the pool is still held; the stand-in runs what comes next.
        for i in 0..5 {
            assert_eq!(pool.run(soon(1_000), move || i).await, Ok(i));
        }
        // The held job ends; a thread retires once a job of its ends.
        {
            let (lock, cvar) = &*release;
            *lock.lock().unwrap() = true;
            cvar.notify_all();
        }
        for _ in 0..100 {
            let _ = pool.run(soon(1_000), || ()).await;
            if pool.threads_alive() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(pool.threads_alive(), 1, "back to the pool's size");
        assert_eq!(pool.run(soon(1_000), || 7).await, Ok(7));
    }

    /// Stand-ins are capped: past the cap, a job past its deadline holds a thread of the pool.
    #[tokio::test]
    async fn stand_ins_are_capped() {
        let pool = JudgePool::new(1).expect("pool");
        let release = Arc::new((Mutex::new(false), Condvar::new()));
        let mut stuck = Vec::new();
        for _ in 0..=MAX_STAND_INS + 2 {
            let hold = release.clone();
            stuck.push(pool.run(soon(100), move || {
                let (lock, cvar) = &*hold;
                let mut go = lock.lock().unwrap();
                while !*go {
                    go = cvar.wait(go).unwrap();
                }
            }));
            // One at a time, so that each is running (not queued) at its deadline.
            let r = stuck.pop().expect("pushed").await;
            assert_eq!(r, Err(JobFailure::Timeout));
        }
        assert_eq!(pool.threads_alive(), 1 + MAX_STAND_INS);
        {
            let (lock, cvar) = &*release;
            *lock.lock().unwrap() = true;
            cvar.notify_all();
        }
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
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let busy = pool.run(soon(5_000), move || {
            let _ = started_tx.send(());
            std::thread::sleep(Duration::from_millis(200))
        });
        let queued = pool.run(soon(5_000), || 1);
        // The thread has the first job in hand (an event, not a guess at how long that takes).
        started_rx.await.expect("the first job started");
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
