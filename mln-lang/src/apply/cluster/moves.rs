//! Moving a host between servers: what each side holds of its disks, the
//! storage mark that tells shared disks, and the spec a receiving server
//! builds.

use std::collections::BTreeMap;
use std::path::PathBuf;

use mln_core::{DomainSpec, Result};

use super::ClusterBackends;
use crate::agent::carry::Side;
use crate::agent::disks::{self, HostDisks};
use crate::agent::migrate;
use crate::agent::protocol::Request;
use crate::machine::{home, Backends};
use crate::plan::HostSpec;

impl ClusterBackends {
    /// What `at` holds of `host`'s disks.
    pub(super) fn host_disks(
        &self,
        project: &str,
        at: Option<&str>,
        host: &HostSpec,
    ) -> Result<HostDisks> {
        match at {
            None => disks::state(&self.local, host),
            Some(server) => self.link(server)?.call(&Request::HostDisks {
                project: project.to_string(),
                host: host.clone(),
            }),
        }
    }

    pub(super) fn end_move(&self, project: &str, at: Option<&str>, host: &HostSpec) -> Result<()> {
        match at {
            None => disks::end_move(&self.local, host),
            Some(server) => self
                .link(server)?
                .call::<serde_json::Value>(&Request::EndMove {
                    project: project.to_string(),
                    host: host.clone(),
                })
                .map(drop),
        }
    }

    pub(super) fn side<'s>(&'s self, at: Option<&'s str>) -> Side<'s> {
        match at {
            None => Side::Here(&self.local),
            Some(server) => Side::Server(server),
        }
    }

    /// The server the placement mark beside `host`'s root disk on `at`
    /// names (see [`crate::machine::home`]).
    pub(super) fn disks_placed_by(
        &self,
        project: &str,
        at: Option<&str>,
        host: &HostSpec,
    ) -> Result<Option<String>> {
        match at {
            None => home::placed_by(&self.local, &Self::here_host(host)),
            Some(server) => self.link(server)?.call(&Request::DisksPlacedBy {
                project: project.to_string(),
                host: host.clone(),
            }),
        }
    }

    /// Write (`Some`) or remove (`None`) the shared-storage mark beside
    /// `host`'s root disk on `at`; the disk's path there, if any.
    pub(super) fn storage_mark(
        &self,
        project: &str,
        at: Option<&str>,
        host: &HostSpec,
        token: Option<&str>,
    ) -> Result<Option<PathBuf>> {
        match at {
            None => migrate::mark(&self.local, project, &Self::here_host(host), token),
            Some(server) => self.link(server)?.call(&Request::StorageMark {
                project: project.to_string(),
                host: host.clone(),
                token: token.map(str::to_string),
            }),
        }
    }

    pub(super) fn storage_check(
        &self,
        project: &str,
        at: Option<&str>,
        host: &HostSpec,
        token: &str,
    ) -> Result<bool> {
        match at {
            None => migrate::marked(&self.local, project, &Self::here_host(host), token),
            Some(server) => self.link(server)?.call(&Request::StorageCheck {
                project: project.to_string(),
                host: host.clone(),
                token: token.to_string(),
            }),
        }
    }

    /// Whether `to`'s server sees `from`'s disk file itself (shared
    /// storage): a fresh token written beside the disk on the old server
    /// is read back beside the disk on the new one.
    pub(super) fn shares_disks(
        &self,
        project: &str,
        from: &HostSpec,
        to: &HostSpec,
    ) -> Result<bool> {
        let (a, b) = (
            self.remote(from.service_host.as_deref()),
            self.remote(to.service_host.as_deref()),
        );
        let token = migrate::token();
        let Some(disk) = self.storage_mark(project, a, from, Some(&token))? else {
            return Ok(false);
        };
        let seen = self.storage_check(project, b, to, &token);
        if let Err(e) = self.storage_mark(project, a, from, None) {
            log::warn!(
                "{}: storage mark left beside {}: {e}",
                from.name,
                disk.display()
            );
        }
        seen
    }

    /// The domain `to` becomes on its new server, plugged into that
    /// server's instances of its switches, each joined to its home one.
    pub(super) fn receiving_spec(&self, project: &str, to: &HostSpec) -> Result<DomainSpec> {
        let at = self.remote(to.service_host.as_deref());
        let mut switches = BTreeMap::new();
        for sw in to.interfaces.iter().filter_map(|i| i.switch.as_ref()) {
            if let Some(spec) = self.switch_specs.get(sw) {
                switches.insert(sw.clone(), self.joined_instance(project, spec, at)?);
            }
        }
        self.domain_spec(project, to, &switches)
    }
}
