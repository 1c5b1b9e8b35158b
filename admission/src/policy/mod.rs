//! Policy files: the format ([`spec`]), loading with precise errors ([`load`]) and the compiled
//! form the engine evaluates ([`compiled`]).

pub mod compiled;
pub mod load;
pub mod spec;

pub use compiled::{CompiledPolicy, Grant, HostPathGrant, Match};
pub use load::{LoadError, LoadErrors, LoadWarning, PolicySet};
pub use spec::Mode;
