//! Steps of searches whose size a review chooses, counted in tests: a test pins each search
//! as linear by its count of steps, not by a timing. Outside tests a step is a no-op.

/// A search counted apart from the others.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Search {
    /// The policy set, searched by `decide` for each applied policy and each denied ask, and
    /// by `/mutate` for each policy applying to a subject: it was quadratic in the number of
    /// policies.
    PolicySet,
    /// What a traced container holds, looked up among the debug container's own asks
    /// (`reach.rs`): it was the product of the two lists.
    TracedHoldings,
    /// A capability looked up in an identity's sets (`user_reach.rs`): searching lists made
    /// it quadratic.
    IdentityCapabilities,
}

#[cfg(test)]
thread_local! {
    static COUNTS: [std::cell::Cell<usize>; 3] =
        const { [const { std::cell::Cell::new(0) }; 3] };
}

/// One step of `search` (a no-op outside tests).
#[inline(always)]
pub(crate) fn step(search: Search) {
    #[cfg(test)]
    COUNTS.with(|c| {
        let c = &c[search as usize];
        c.set(c.get() + 1);
    });
    #[cfg(not(test))]
    let _ = search;
}

/// Starts counting `search`'s steps on this thread from 0.
#[cfg(test)]
pub(crate) fn reset(search: Search) {
    COUNTS.with(|c| c[search as usize].set(0));
}

/// The steps of `search` taken on this thread since [`reset`].
#[cfg(test)]
pub(crate) fn count(search: Search) -> usize {
    COUNTS.with(|c| c[search as usize].get())
}
