//! Ctrl-C (SIGINT): ending kspy as it ends any command, except while something is on its way
//! that kspy has to explain when interrupted — a write that may be carried out all the same,
//! a debug container being waited for. And, once an attach session has put the terminal in
//! raw mode, ending kspy by any signal only after the terminal's mode is given back
//! ([`restore_terminal_on_signals`]).
//!
//! Tokio installs its handler for a signal once per process and keeps it: giving the default
//! action back after one wait (`SIG_DFL`) left any later taker without a handler, so that
//! Ctrl-C ended kspy without a word. So the handler, once installed, stays, and a single
//! listener decides: while some [`interrupt`] future is alive it is told; otherwise kspy ends
//! as the default action would ([`die_of_interrupt`]).

use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// The exit code after Ctrl-C: 128 + SIGINT, what shells report for a command it ended
/// ([`die_of_interrupt`] ends kspy so; `main` calls it for a failure with this code).
pub const EXIT_INTERRUPTED: u8 = 130;

/// How many [`interrupt`] futures are alive: a Ctrl-C goes to them when there are any.
static TAKERS: AtomicUsize = AtomicUsize::new(0);

/// Told of each Ctrl-C while there are takers.
fn interrupts() -> &'static Notify {
    static INTERRUPTS: OnceLock<Notify> = OnceLock::new();
    INTERRUPTS.get_or_init(Notify::new)
}

/// Installs the process's one listener, the first time; false where the signal cannot be
/// taken (kspy then ends at Ctrl-C as before, without a word).
fn listening() -> bool {
    static LISTENING: OnceLock<bool> = OnceLock::new();
    *LISTENING.get_or_init(|| {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut signal) = signal(SignalKind::interrupt()) else {
                return false;
            };
            tokio::spawn(async move {
                while signal.recv().await.is_some() {
                    if TAKERS.load(Ordering::SeqCst) > 0 {
                        interrupts().notify_waiters();
                    } else {
                        die_of_interrupt();
                    }
                }
            });
            true
        }
        #[cfg(not(unix))]
        {
            false
        }
    })
}

/// One alive [`interrupt`] future.
struct Taker;

impl Taker {
    fn new() -> Taker {
        TAKERS.fetch_add(1, Ordering::SeqCst);
        Taker
    }
}

impl Drop for Taker {
    fn drop(&mut self) {
        TAKERS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Resolves at the first Ctrl-C from its creation on, which then does not end kspy. Once it
/// is dropped (what it guarded is done), Ctrl-C ends kspy at once again. Never resolves where
/// the signal cannot be taken.
pub fn interrupt() -> impl Future<Output = ()> + Send + 'static {
    let listening = listening();
    let taker = Taker::new();
    let mut told = Box::pin(interrupts().notified());
    // Counted from now, not from the first poll.
    told.as_mut().enable();
    async move {
        let _taker = taker;
        if !listening {
            std::future::pending::<()>().await;
        }
        told.await;
    }
}

/// Ends kspy after a Ctrl-C: killed by SIGINT itself, with the signal's default action given
/// back, so that the shell reports it as an interrupt — `$?` 130 — and a shell running kspy in
/// a script or a loop stops too, as it does for any command Ctrl-C ends (a plain `exit 130`
/// would let the loop go on: bash and others take it as handled). Returns exit code 130 only
/// where the signal cannot be raised.
pub fn die_of_interrupt() -> std::process::ExitCode {
    #[cfg(unix)]
    die_of_signal(libc::SIGINT);
    std::process::ExitCode::from(EXIT_INTERRUPTED)
}

/// Ends kspy by `signal`'s default action — after giving the terminal its mode back, when an
/// attach session has put it in raw mode: dying by the signal skips every destructor, the one
/// that restores the terminal included, and a shell left in raw mode echoes nothing and takes
/// no Enter. Returns only where the signal does not end the process.
#[cfg(unix)]
fn die_of_signal(signal: libc::c_int) {
    // Nothing to do when raw mode is off (crossterm keeps no saved mode then).
    let _ = crossterm::terminal::disable_raw_mode();
    // SAFETY: setting a signal's disposition to its default and raising it are
    // async-signal-safe and have no memory effects; raising a signal whose action is the
    // default ends the process, exactly as the signal kspy answered would have.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

/// For as long as kspy runs, from the first call on: SIGTERM, SIGHUP (the terminal closed, an
/// SSH session dropped) and SIGQUIT still end it by their default action, but after the
/// terminal's mode is restored ([`die_of_signal`]); SIGINT goes through [`interrupt`]'s
/// listener, which does the same. Called when an attach session puts the terminal in raw
/// mode. The handlers stay once installed (tokio keeps them for the process), each answering
/// as the default action would, so that kspy never outlives one of these signals.
pub fn restore_terminal_on_signals() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        // In raw mode Ctrl-C is a byte for the container, but `kill -INT` is not.
        listening();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            for (kind, number) in [
                (SignalKind::terminate(), libc::SIGTERM),
                (SignalKind::hangup(), libc::SIGHUP),
                (SignalKind::quit(), libc::SIGQUIT),
            ] {
                // Where the handler cannot be installed the default action stays, as before.
                if let Ok(mut incoming) = signal(kind) {
                    tokio::spawn(async move {
                        if incoming.recv().await.is_some() {
                            die_of_signal(number);
                        }
                    });
                }
            }
        }
    });
}
