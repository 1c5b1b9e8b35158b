//! Reaching another container's processes without SYS_PTRACE.
//!
//! A debug container in a target's process namespace sees the target's processes. The kernel
//! lets it read their files (`/proc/PID/root`, the target's Secret mounts included), their
//! environment (`/proc/PID/environ`) and, where Yama allows, trace them, with no capability at
//! all, when both run as the same user and the target holds no capability the debug container
//! lacks (`ptrace_may_access`: same uid and gid, permitted capabilities a subset). A root debug
//! container holding SETUID and SETGID (containerd and CRI-O grant them by default) can become
//! any user, so it reaches every non-root process that way. Without them it still can, unless
//! `allowPrivilegeEscalation: false` sets no_new_privs: holding FOWNER (both runtimes' default
//! too) it sets the setuid bit on a program owned by the target's user (its own, given away
//! with CHOWN, or one of the user's files in a volume it shares, rewritten with DAC_OVERRIDE)
//! and runs it, and the kernel then checks the target's user against that program's. That makes a grant of
//! `mountVolumes: nonSecret` hollow unless the engine judges what is reached this way, as it
//! judges what SYS_PTRACE reaches.
//!
//! What the pod spec tells: `runAsUser` (container, else pod), whether the container may run as
//! root, its added and dropped capabilities and `privileged`. What it does not: the user an
//! image runs as when no `runAsUser` is set, and the runtime's default capabilities (both
//! runtimes' defaults are taken into account). When the spec leaves it open, a container counts
//! as reachable (judged), except in one case: a debug container set to run as a non-root user
//! and a target whose image picks its user are taken to differ. A debug container that is
//! non-root only by `runAsNonRoot` runs as the user its image picks, which may be any
//! container's: it counts as reaching every container not set to run as root (the user picks
//! the debug image, and can read the user of each allowed image and of the target's).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{PodSecurityContext, SecurityContext};

use crate::capability::Capability;

/// Capabilities containerd and CRI-O both give a container by default.
const DEFAULT_IN_BOTH: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "NET_BIND_SERVICE",
    "SETGID",
    "SETPCAP",
    "SETUID",
];

/// Capabilities one of them gives by default (containerd: all of these; CRI-O: the first set).
const DEFAULT_IN_EITHER: &[&str] = &["AUDIT_WRITE", "MKNOD", "NET_RAW", "SETFCAP", "SYS_CHROOT"];

/// Who a container's processes run as and what capabilities they can hold, as far as its
/// pod spec says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// `runAsUser`, the container's or else the pod's, when set.
    pub uid: Option<i64>,
    /// It runs as root, or may become root through a setuid program.
    pub may_be_root: bool,
    /// `privileged: true`: every capability.
    pub privileged: bool,
    /// `allowPrivilegeEscalation: false`: no_new_privs is set, so running a setuid program
    /// changes no user.
    pub no_new_privs: bool,
    /// Capabilities it adds (`ALL` included). Sets, not lists: each capability one container
    /// holds is looked up among another's, and searching lists made comparing two containers
    /// adding 20 000 (free-form) capabilities each cost 490 ms.
    pub added: BTreeSet<Capability>,
    /// Capabilities it drops on every runtime (`ALL` included): written as the bare name, in
    /// any case, with no white space. Names that are no capability drop nothing.
    pub dropped: BTreeSet<Capability>,
    /// Capabilities it drops on some runtime only: written with the `CAP_` prefix, which
    /// CRI-O strips and containerd does not (it puts `CAP_` before every name, and
    /// `CAP_CAP_SETUID` drops nothing).
    pub dropped_somewhere: BTreeSet<Capability>,
}

/// How a debug container reaches a container's processes without SYS_PTRACE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum UserReach {
    /// Both set the same non-root `runAsUser`.
    SameUser(i64),
    /// It may run as root and become the container's (non-root) user: holding SETUID, or,
    /// without no_new_privs, holding FOWNER to make a program setuid to that user.
    SwitchUser,
    /// It runs as a non-root user its image picks (`runAsNonRoot` without `runAsUser`),
    /// which may be the container's user: its `runAsUser` when set (the value here), else
    /// the one its own image picks.
    ImageUser(Option<i64>),
    /// Both may run as root, and it may hold every capability the container holds.
    /// `dropping_helps`: the container surely holds some capability, so a debug container
    /// dropping every one (`drop: [ALL]`) holds less and cannot reach it; when it holds none,
    /// only another user keeps them apart.
    BothRoot {
        /// Whether dropping capabilities is a way out.
        dropping_helps: bool,
    },
}

impl UserReach {
    /// Why the debug container reaches container `holder`, and what would stop it.
    pub fn explain(&self, holder: &str) -> String {
        match self {
            UserReach::SameUser(uid) => format!(
                "the debug container runs as the same user as container {holder:?} ({uid}), so it \
                 reads that container's files through /proc/PID/root; run it as another user"
            ),
            UserReach::SwitchUser => format!(
                "the debug container may run as root and become the user of container \
                 {holder:?} (with SETUID; or, unless allowPrivilegeEscalation is false, by \
                 running a program it made setuid to that user, which FOWNER allows) \
                 and read that container's files through /proc/PID/root; drop SETUID and SETGID \
                 (securityContext.capabilities.drop) and set allowPrivilegeEscalation: false, \
                 or run it as a non-root user"
            ),
            UserReach::ImageUser(uid) => format!(
                "the debug container runs as the user its image picks (runAsNonRoot without \
                 runAsUser), which may be the user of container {holder:?} ({}), so it may read \
                 that container's files through /proc/PID/root; set runAsUser to a user no \
                 container of the pod runs as (kubectl debug and kspy attach take it in the \
                 file given to --custom: {{\"securityContext\": {{\"runAsUser\": N}}}})",
                match uid {
                    Some(uid) => uid.to_string(),
                    None => "the user its own image picks".to_owned(),
                }
            ),
            UserReach::BothRoot { dropping_helps } => format!(
                "the debug container and container {holder:?} may both run as root, with no \
                 capability that container holds beyond it, so it reads that container's files \
                 through /proc/PID/root; {}",
                if *dropping_helps {
                    "run it as a non-root user, or drop capabilities that container holds \
                     (securityContext.capabilities.drop: [ALL] drops every one)"
                } else {
                    "that container holds no capability, so dropping capabilities does not \
                     help: run it as a non-root user"
                }
            ),
        }
    }
}

impl Identity {
    /// The identity of a container with security context `sc` in a pod with `pod_sc`;
    /// `may_be_root`, `privileged` and `added` as the container's asks have them.
    pub fn of(
        sc: Option<&SecurityContext>,
        pod_sc: Option<&PodSecurityContext>,
        may_be_root: bool,
        privileged: bool,
        added: &[Capability],
    ) -> Identity {
        let names = sc
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|c| c.drop.as_deref())
            .unwrap_or_default();
        // Neither runtime trims a name; only CRI-O reads a `CAP_` prefix.
        let (mut dropped, mut dropped_somewhere) = (BTreeSet::new(), BTreeSet::new());
        for name in names.iter().filter(|n| n.trim() == n.as_str()) {
            let Ok(cap) = Capability::normalize(name) else {
                continue;
            };
            if name.to_ascii_uppercase().starts_with("CAP_") {
                dropped_somewhere.insert(cap);
            } else {
                dropped.insert(cap);
            }
        }
        Identity {
            uid: sc
                .and_then(|s| s.run_as_user)
                .or_else(|| pod_sc.and_then(|p| p.run_as_user)),
            may_be_root,
            privileged,
            no_new_privs: sc.and_then(|s| s.allow_privilege_escalation) == Some(false),
            added: added.iter().cloned().collect(),
            dropped,
            dropped_somewhere,
        }
    }

    /// May run as root and turn into any non-root user: with SETUID, or, when no_new_privs
    /// does not stop setuid programs, by making one setuid to that user and running it: FOWNER
    /// sets the bit on a file the user owns, which CHOWN gives away, or which is the user's
    /// already in a volume both mount (DAC_OVERRIDE rewrites it), so FOWNER alone decides.
    fn may_switch_user(&self) -> bool {
        self.may_be_root
            && (self.may_hold("SETUID") || (!self.no_new_privs && self.may_hold("FOWNER")))
    }

    fn adds(&self, cap: &str) -> bool {
        has(&self.added, cap)
    }

    /// Drops `cap` on every runtime.
    fn drops(&self, cap: &str) -> bool {
        has(&self.dropped, cap)
    }

    /// Drops `cap` on some runtime.
    fn drops_somewhere(&self, cap: &str) -> bool {
        self.drops(cap) || has(&self.dropped_somewhere, cap)
    }

    /// Holds `cap` whenever it runs as root, whatever the runtime.
    fn surely_holds(&self, cap: &str) -> bool {
        self.privileged
            || self.adds(cap)
            || (DEFAULT_IN_BOTH.contains(&cap) && !self.drops_somewhere(cap))
    }

    /// May hold `cap` when it runs as root, on some runtime.
    fn may_hold(&self, cap: &str) -> bool {
        self.privileged
            || self.adds(cap)
            || ((DEFAULT_IN_BOTH.contains(&cap) || DEFAULT_IN_EITHER.contains(&cap))
                && !self.drops(cap))
    }

    /// Holds, as root, some capability whatever the runtime: a debug container holding none
    /// (`drop: [ALL]`) then holds less.
    fn holds_any(&self) -> bool {
        self.privileged
            || DEFAULT_IN_BOTH
                .iter()
                .copied()
                .chain(self.added.iter().map(Capability::as_str))
                .any(|cap| self.surely_holds(cap))
    }

    /// Holds, as root, a capability `other` surely lacks even as root.
    fn holds_beyond(&self, other: &Identity) -> bool {
        if other.privileged || other.adds("ALL") {
            return false;
        }
        if self.privileged || self.adds("ALL") {
            return true;
        }
        DEFAULT_IN_BOTH
            .iter()
            .copied()
            .chain(self.added.iter().map(Capability::as_str))
            .any(|cap| self.surely_holds(cap) && !other.may_hold(cap))
    }
}

/// Whether `set` holds `cap`, or `ALL`.
fn has(set: &BTreeSet<Capability>, cap: &str) -> bool {
    crate::search_steps::step(crate::search_steps::Search::IdentityCapabilities);
    set.contains("ALL") || set.contains(cap)
}

/// Whether (and how) a debug container with identity `debugger` reaches the processes of a
/// container with identity `held` in its process namespace without SYS_PTRACE; `None` when
/// the pod spec shows it cannot.
pub fn reach(debugger: &Identity, held: &Identity) -> Option<UserReach> {
    // The container's processes run as a non-root user: the debug container must run as
    // that user, or become it (root with SETUID).
    if held.uid != Some(0) {
        if debugger.may_switch_user() {
            return Some(UserReach::SwitchUser);
        }
        if let (Some(a), Some(b)) = (debugger.uid, held.uid)
            && a == b
        {
            return Some(UserReach::SameUser(a));
        }
        // Non-root, as the image says: the spec leaves open which user, and the user chose
        // the image knowing its user and the container's.
        if debugger.uid.is_none() && !debugger.may_be_root {
            return Some(UserReach::ImageUser(held.uid));
        }
    }
    // They run as root: the debug container must be root too, with every capability the
    // container's processes hold.
    if held.may_be_root && debugger.may_be_root && !held.holds_beyond(debugger) {
        return Some(UserReach::BothRoot {
            dropping_helps: held.holds_any(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(names: &[&str]) -> BTreeSet<Capability> {
        names
            .iter()
            .map(|n| Capability::normalize(n).expect("capability"))
            .collect()
    }

    fn root() -> Identity {
        Identity {
            may_be_root: true,
            ..Identity::default()
        }
    }

    fn user(uid: i64) -> Identity {
        Identity {
            uid: Some(uid),
            ..Identity::default()
        }
    }

    /// A debug container and a target running as root, both adding the same 1 000
    /// capabilities: whether the target holds one beyond the debug container looks each up
    /// in a set, a few times, never searching a list for each.
    #[test]
    fn comparing_identities_looks_each_capability_up_a_few_times() {
        const N: usize = 1000;
        let names: Vec<String> = (0..N).map(|i| format!("X{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let debugger = Identity {
            added: caps(&names),
            ..root()
        };
        let held = Identity {
            uid: Some(0),
            ..debugger.clone()
        };
        crate::search_steps::reset(crate::search_steps::Search::IdentityCapabilities);
        assert_eq!(
            reach(&debugger, &held),
            Some(UserReach::BothRoot {
                dropping_helps: true
            })
        );
        let steps = crate::search_steps::count(crate::search_steps::Search::IdentityCapabilities);
        assert!((N..=8 * (N + 20)).contains(&steps), "{steps} steps");
    }

    #[test]
    fn root_with_setuid_becomes_any_non_root_user() {
        assert_eq!(reach(&root(), &user(10001)), Some(UserReach::SwitchUser));
        // An image's user, unknown, and not root for sure.
        assert_eq!(
            reach(&root(), &Identity::default()),
            Some(UserReach::SwitchUser)
        );
        let no_setuid = Identity {
            dropped: caps(&["SETUID", "SETGID"]),
            no_new_privs: true,
            ..root()
        };
        assert_eq!(reach(&no_setuid, &user(10001)), None);
        // Without no_new_privs, FOWNER makes a program setuid to the user, and
        // running it turns root into that user.
        let setuid_program = Identity {
            no_new_privs: false,
            ..no_setuid.clone()
        };
        assert_eq!(
            reach(&setuid_program, &user(10001)),
            Some(UserReach::SwitchUser)
        );
        // Without CHOWN it still finds a file of that user's to rewrite; without FOWNER it
        // cannot set the bit on one.
        let without_chown = Identity {
            dropped: caps(&["SETUID", "SETGID", "CHOWN"]),
            ..setuid_program.clone()
        };
        assert_eq!(
            reach(&without_chown, &user(10001)),
            Some(UserReach::SwitchUser)
        );
        let without_fowner = Identity {
            dropped: caps(&["SETUID", "SETGID", "FOWNER"]),
            ..setuid_program.clone()
        };
        assert_eq!(reach(&without_fowner, &user(10001)), None);
        let none_at_all = Identity {
            dropped: caps(&["ALL"]),
            ..root()
        };
        assert_eq!(reach(&none_at_all, &user(10001)), None);
        // Added back after dropping ALL.
        let setuid_again = Identity {
            dropped: caps(&["ALL"]),
            added: caps(&["SETUID"]),
            ..root()
        };
        assert_eq!(
            reach(&setuid_again, &user(10001)),
            Some(UserReach::SwitchUser)
        );
    }

    #[test]
    fn non_root_debuggers_reach_only_their_own_user() {
        assert_eq!(
            reach(&user(10001), &user(10001)),
            Some(UserReach::SameUser(10001))
        );
        assert_eq!(reach(&user(65534), &user(10001)), None);
        // Taken to differ: the debug container's user is set, the target's image picks its
        // own.
        assert_eq!(reach(&user(65534), &Identity::default()), None);
        assert_eq!(reach(&user(65534), &root()), None);
    }

    #[test]
    fn a_debugger_whose_image_picks_its_user_may_be_any_non_root_user() {
        // runAsNonRoot without runAsUser: non-root, as whatever user the image names.
        let image_user = Identity::default();
        assert_eq!(
            reach(&image_user, &user(10001)),
            Some(UserReach::ImageUser(Some(10001)))
        );
        assert_eq!(
            reach(&image_user, &Identity::default()),
            Some(UserReach::ImageUser(None))
        );
        assert_eq!(
            reach(&image_user, &root()),
            Some(UserReach::ImageUser(None))
        );
        // A container set to run as root is out of a non-root user's reach.
        let explicit_root = Identity {
            uid: Some(0),
            ..root()
        };
        assert_eq!(reach(&image_user, &explicit_root), None);
        let text = UserReach::ImageUser(Some(10001)).explain("app");
        assert!(
            text.contains(r#"container "app" (10001)"#) && text.contains("set runAsUser"),
            "{text}"
        );
    }

    #[test]
    fn root_reaches_root_unless_the_target_holds_more() {
        // Its image may run it as any user: root with SETUID becomes that user first.
        assert_eq!(reach(&root(), &root()), Some(UserReach::SwitchUser));
        let explicit_root = Identity {
            uid: Some(0),
            ..root()
        };
        let both_root = |dropping_helps| Some(UserReach::BothRoot { dropping_helps });
        assert_eq!(reach(&root(), &explicit_root), both_root(true));
        // The target keeps SETUID, which the debug container dropped.
        let no_setuid = Identity {
            dropped: caps(&["SETUID", "SETGID"]),
            ..root()
        };
        assert_eq!(reach(&no_setuid, &explicit_root), None);
        // ...unless the target dropped it too.
        let bare_root = Identity {
            dropped: caps(&["ALL"]),
            ..explicit_root.clone()
        };
        // Holding nothing, it holds nothing the debug container lacks, whatever that drops.
        assert_eq!(reach(&no_setuid, &bare_root), both_root(false));
        // A capability the target adds, beyond any runtime's defaults.
        let net_admin = Identity {
            added: caps(&["NET_ADMIN"]),
            ..explicit_root.clone()
        };
        assert_eq!(reach(&root(), &net_admin), None);
        let also_net_admin = Identity {
            added: caps(&["NET_ADMIN"]),
            ..root()
        };
        assert_eq!(reach(&also_net_admin, &net_admin), both_root(true));
        let only_net_admin = Identity {
            dropped: caps(&["ALL"]),
            ..net_admin.clone()
        };
        assert_eq!(reach(&also_net_admin, &only_net_admin), both_root(true));
        // A privileged target holds everything.
        let privileged = Identity {
            privileged: true,
            ..explicit_root
        };
        assert_eq!(reach(&root(), &privileged), None);
    }

    #[test]
    fn explanations_name_the_container_and_the_way_out() {
        let text = UserReach::SwitchUser.explain("app");
        assert!(text.contains(r#"container "app""#) && text.contains("drop SETUID and SETGID"));
        assert!(UserReach::SameUser(7).explain("app").contains("(7)"));
        let drop_all = UserReach::BothRoot {
            dropping_helps: true,
        }
        .explain("app");
        assert!(drop_all.contains("drop: [ALL]") && !drop_all.contains("SETUID"));
        let only_a_user = UserReach::BothRoot {
            dropping_helps: false,
        }
        .explain("app");
        assert!(
            only_a_user.ends_with("dropping capabilities does not help: run it as a non-root user"),
            "{only_a_user}"
        );
    }
}
