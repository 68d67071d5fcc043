//! What an archive (`mln export`, `mln import`) needs of a host's disks
//! wherever the host runs: what is there, the disks as one transfer
//! stream, and a stream made into the host's disks. On this machine in
//! process ([`disks`]); on a server through its agent's disk jobs
//! ([`carry`]), the stream flowing through this machine as a move's does.

use std::io::{self, BufRead, Write};
use std::path::Path;

use mln_core::disk::transfer::FileEntry;
use mln_core::{Error, Result};

use super::ClusterBackends;
use crate::agent::carry;
use crate::agent::disks::{self, HostDisks};
use crate::machine::Backends;
use crate::plan::HostSpec;

impl ClusterBackends {
    /// What `host`'s server holds of its disks (its template among it).
    pub fn disks_of(&self, host: &HostSpec) -> Result<HostDisks> {
        let at = self.remote(host.service_host.as_deref());
        self.host_disks(&self.project, at, host)
    }

    /// Write `host`'s disks to `out` as one transfer stream; nothing of
    /// them changes.
    pub fn write_disks(&self, host: &HostSpec, out: &mut dyn Write) -> Result<()> {
        match self.remote(host.service_host.as_deref()) {
            None => disks::export(&self.local, host, out).map(drop),
            Some(server) => carry::fetch_from(&self.access, server, &self.project, host, |input| {
                io::copy(input, out).map(drop).map_err(stream_error)
            }),
        }
    }

    /// Make `host`'s disks on its server from the transfer stream `input`
    /// (an overlay over `template`, which the server must have with the
    /// same content) and finish them as a moved-in host's are.
    pub fn read_disks(
        &self,
        host: &HostSpec,
        template: Option<&FileEntry>,
        mut input: &mut dyn BufRead,
    ) -> Result<()> {
        let at = self.remote(host.service_host.as_deref());
        match at {
            None => {
                disks::import(&self.local, &self.project, host, template, &mut input)?;
            }
            Some(server) => {
                carry::send_to(&self.access, server, &self.project, host, template, |out| {
                    io::copy(&mut input, out).map(drop).map_err(stream_error)
                })?;
            }
        }
        self.end_move(&self.project, at, host)?;
        // Placed there now: an evacuation can tell the files.
        self.claim_disks(&self.project, host)
    }

    /// Remove `host`'s disks from its server (an import undone).
    pub fn drop_disks(&self, host: &HostSpec) -> Result<()> {
        self.remove_disk(&self.project, host)
    }
}

fn stream_error(e: io::Error) -> Error {
    Error::io(Path::new("disk stream"), e)
}
