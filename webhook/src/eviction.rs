//! Making room at the connection limit: when every slot is taken and another client has
//! connected, the connection idle the longest (nothing in flight: between requests, before its
//! first, or still in its TLS handshake) is asked to close for it.
//!
//! Without this, a slot was held until the connection's own deadline: 10 s for a handshake or
//! a first request, 120 s between keep-alive requests. A client that opened `--max-connections`
//! connections and sent nothing (or one request each, then kept them) locked every other
//! client out for that long, over and over. Now only connections with a request in flight
//! keep their slots against newcomers. The API server's idle keep-alive connections may be
//! closed so too, which costs it a reconnect.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use crate::idle_close::Activity;

/// The open connections of one port, by how long each has been idle.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    open: HashMap<u64, Entry>,
}

#[derive(Debug)]
struct Entry {
    activity: Arc<Activity>,
    evict: Arc<Notify>,
}

/// A connection's place in the [`Registry`], left when dropped.
#[derive(Debug)]
pub(crate) struct Registered {
    registry: Arc<Registry>,
    id: u64,
    /// Signalled when the connection is asked to close for a newcomer.
    pub(crate) evicted: Arc<Notify>,
}

impl Registry {
    /// Registers a connection whose requests `activity` counts.
    pub(crate) fn register(self: &Arc<Self>, activity: Arc<Activity>) -> Registered {
        let evict = Arc::new(Notify::new());
        let mut inner = self.lock();
        let id = inner.next;
        inner.next = inner.next.wrapping_add(1);
        inner.open.insert(
            id,
            Entry {
                activity,
                evict: evict.clone(),
            },
        );
        Registered {
            registry: self.clone(),
            id,
            evicted: evict,
        }
    }

    /// Asks the connection idle the longest to close, and forgets it; false when every
    /// connection has a request in flight.
    pub(crate) fn evict_idlest(&self) -> bool {
        let mut inner = self.lock();
        let idlest = inner
            .open
            .iter()
            .filter_map(|(&id, entry)| Some((entry.activity.idle_since()?, id)))
            .min();
        let Some((_, id)) = idlest else {
            return false;
        };
        if let Some(entry) = inner.open.remove(&id) {
            // Stored if the connection is not waiting yet: it sees it at its next look.
            entry.evict.notify_one();
        }
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.lock().open.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn the_connection_idle_longest_is_evicted_and_busy_ones_never() {
        let registry = Arc::new(Registry::default());
        let oldest = Activity::new();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let newer = Activity::new();
        let busy = Activity::new();
        let _request = busy.start_request();
        let a = registry.register(oldest.clone());
        let b = registry.register(newer.clone());
        let c = registry.register(busy.clone());

        assert!(registry.evict_idlest());
        // Signalled: a later look sees it.
        tokio::time::timeout(Duration::from_secs(1), a.evicted.notified())
            .await
            .expect("the oldest idle connection was asked to close");
        assert!(registry.evict_idlest());
        tokio::time::timeout(Duration::from_secs(1), b.evicted.notified())
            .await
            .expect("then the next");
        assert!(!registry.evict_idlest(), "only a busy connection is left");
        drop(c);
        assert!(!registry.evict_idlest(), "none left");
    }
}
