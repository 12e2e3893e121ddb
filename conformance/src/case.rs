//! What a case is: a named behaviour, its area, its scope, the capabilities it needs, and
//! the async function that checks it.

use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::ctx::{Ctx, Failure};
use crate::factory::InstanceFactory;
use crate::options::Capabilities;
use crate::report::Scope;

/// A capability a case needs (see [`Capabilities`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    Metadata,
    Directories,
    PageSize,
    LargeValues,
    /// Instances that are OS processes the case can kill.
    Processes,
}

impl Need {
    /// Why the case is skipped, or `None` if the capability is claimed.
    pub(crate) fn missing(
        self,
        caps: &Capabilities,
        factory: Option<&dyn InstanceFactory>,
    ) -> Option<&'static str> {
        let ok = match self {
            Need::Metadata => caps.metadata,
            Need::Directories => caps.directories,
            Need::PageSize => caps.page_size,
            Need::LargeValues => caps.max_value_bytes >= 1024 * 1024,
            Need::Processes => factory.is_some_and(|f| f.spawns_processes()),
        };
        (!ok).then_some(match self {
            Need::Metadata => "the backend does not claim metadata",
            Need::Directories => "the backend does not claim directories mode",
            Need::PageSize => "the backend does not claim custom page sizes",
            Need::LargeValues => "the backend does not claim values of 1 MiB or more",
            Need::Processes => {
                "the instances run inside this process, so none can be killed mid-write \
                 (run them as processes: --processes, or a ProcessFactory)"
            }
        })
    }
}

/// The body of a case.
pub(crate) type CaseFn = fn(Ctx) -> BoxFuture<'static, Result<(), Failure>>;

/// One named behaviour.
#[derive(Clone, Copy)]
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) area: &'static str,
    pub(crate) scope: Scope,
    pub(crate) needs: &'static [Need],
    pub(crate) run: CaseFn,
}

/// A case's name, area and scope, as listed by [`crate::cases`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CaseInfo {
    /// The name, phrased as the behaviour it checks.
    pub name: &'static str,
    /// The area it belongs to (one source file or folder of cases).
    pub area: &'static str,
    /// Single-instance or cross-instance.
    pub scope: Scope,
}

impl Case {
    /// Whether the case grades the job layer (its area is one of the `jobs*` files or folders), so
    /// that it runs against a job store alone too.
    pub(crate) fn is_job(&self) -> bool {
        self.area.starts_with("jobs")
    }

    pub(crate) fn info(&self) -> CaseInfo {
        CaseInfo {
            name: self.name,
            area: self.area,
            scope: self.scope,
        }
    }
}

/// Expects `r` to be an error of `kind`; `what` says which call it was.
pub(crate) fn expect_kind<T: crate::show::Show>(
    r: blobjobs_store_api::Result<T>,
    kind: blobjobs_store_api::ErrorKind,
    what: &str,
) -> Result<(), Failure> {
    match r {
        Err(e) if e.kind() == kind => Ok(()),
        Err(e) => Err(Failure::new(format!(
            "{what}: expected error {kind}, got error {} ({})",
            e.kind(),
            e.message()
        ))),
        Ok(v) => Err(Failure::new(format!(
            "{what}: expected error {kind}, got success: {}",
            v.show()
        ))),
    }
}

/// Stamps out a [`Case`] from an async function `fn(Ctx) -> Result<(), Failure>`.
macro_rules! case {
    ($area:expr, $f:ident, $scope:ident $(, $need:ident)*) => {
        $crate::case::Case {
            name: stringify!($f),
            area: $area,
            scope: $crate::report::Scope::$scope,
            needs: &[$($crate::case::Need::$need),*],
            run: |ctx| Box::pin($f(ctx)),
        }
    };
}

/// Returns a failure from the case unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::ctx::Failure::new(format!($($fmt)+)));
        }
    };
}

/// Returns a failure from the case unless `left == right`, showing both.
macro_rules! ensure_eq {
    ($left:expr, $right:expr, $($fmt:tt)+) => {
        match (&$left, &$right) {
            (l, r) => {
                if l != r {
                    return Err($crate::ctx::Failure::new(format!(
                        "{}: got {}, expected {}",
                        format!($($fmt)+),
                        $crate::show::Show::show(l),
                        $crate::show::Show::show(r)
                    )));
                }
            }
        }
    };
}

pub(crate) use {case, ensure, ensure_eq};
