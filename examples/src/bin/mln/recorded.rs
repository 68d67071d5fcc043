//! The recorded project, and one recorded host of it with the backends
//! that reach it: what the per-host verbs (`console`, `exec`, `log`) start
//! from.

use std::path::Path;

use mln_lang::agent::ServerAccess;
use mln_lang::apply::{ClusterBackends, LocalBackends};
use mln_lang::plan::HostSpec;
use mln_lang::state::{State, StateStore};

use crate::lifecycle::{fail, Places};

/// Project `project`'s store and recorded state; the exit code after
/// saying why when there is none.
pub(crate) fn project(state_dir: Option<&Path>, project: &str) -> Result<(StateStore, State), u8> {
    let places = Places::new(state_dir, None).map_err(fail)?;
    let store = places.recorded(project).map_err(fail)?;
    match store.load() {
        Ok(Some(state)) => Ok((store, state)),
        Ok(None) => Err(fail(format!("project {project}: nothing recorded"))),
        Err(e) => Err(fail(e)),
    }
}

/// A recorded host and the backends (this machine's, and its servers')
/// that reach it.
pub(crate) struct Host {
    pub(crate) spec: HostSpec,
    pub(crate) cluster: ClusterBackends,
}

/// Host `host` of recorded project `name`.
pub(crate) fn host(state_dir: Option<&Path>, name: &str, host: &str) -> Result<Host, u8> {
    let (store, state) = project(state_dir, name)?;
    let Some(spec) = state.hosts.get(host).map(|r| r.spec.clone()) else {
        return Err(fail(format!("project {name} has no host {host}")));
    };
    let local = LocalBackends::new(store.dir()).map_err(fail)?;
    let local = crate::backend::Machine::detect().attach(local);
    let cluster = ClusterBackends::new(name, local, ServerAccess::from_env())
        .with_servers(state.desired.as_ref(), Some(&state));
    Ok(Host { spec, cluster })
}
