//! The engine in force, swapped whole when policies reload. Each review takes a reference to
//! the engine current when it starts and keeps it to the end, so a reload never mixes two
//! policy sets in one decision.

use std::sync::{Arc, PoisonError, RwLock};

use kspy_admission::Engine;

/// Holds the current [`Engine`].
#[derive(Debug)]
pub struct EngineCell {
    current: RwLock<Arc<Engine>>,
}

impl EngineCell {
    /// A cell holding `engine`.
    pub fn new(engine: Engine) -> Self {
        EngineCell {
            current: RwLock::new(Arc::new(engine)),
        }
    }

    /// The engine in force now.
    pub fn current(&self) -> Arc<Engine> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts `engine` in force, and returns it as in force; reviews already running finish
    /// with the previous one.
    pub fn replace(&self, engine: Engine) -> Arc<Engine> {
        let engine = Arc::new(engine);
        let previous = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(PoisonError::into_inner),
            engine.clone(),
        );
        // Dropped outside the lock.
        drop(previous);
        engine
    }
}
