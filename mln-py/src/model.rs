//! `mln.Host`, `mln.Interface` and `mln.Switch`: read-only views of the
//! resolved model's parts.

use std::collections::BTreeMap;

use mln_lang::model;
use pyo3::prelude::*;

use crate::convert;

fn ip(a: Option<std::net::IpAddr>) -> Option<String> {
    a.map(|a| a.to_string())
}

/// One virtual machine, with everything it inherits from its superclasses
/// merged in and every variable expanded. Sizes are bytes.
#[pyclass(frozen, eq, module = "mln")]
#[derive(Debug, Clone, PartialEq)]
pub struct Host(pub(crate) model::Host);

#[pymethods]
impl Host {
    /// The host's name (also its guest hostname).
    #[getter]
    fn name(&self) -> &str {
        &self.0.name
    }

    /// The superclass chain, nearest first.
    #[getter]
    fn superclasses(&self) -> Vec<String> {
        self.0.superclasses.clone()
    }

    /// ``"uml"``, ``"xen"``, ``"hvm"`` or ``"kvm"``.
    #[getter]
    fn platform(&self) -> &'static str {
        self.0.platform.keyword()
    }

    /// The physical server that runs it; ``None`` for the local machine.
    #[getter]
    fn service_host(&self) -> Option<String> {
        self.0.service_host.clone()
    }

    /// RAM in bytes.
    #[getter]
    fn memory(&self) -> u64 {
        self.0.memory
    }

    /// Virtual CPUs.
    #[getter]
    fn vcpus(&self) -> u32 {
        self.0.vcpus
    }

    /// The filesystem template of the root disk; ``None`` for the default.
    #[getter]
    fn template(&self) -> Option<String> {
        self.0.template.clone()
    }

    /// Disk size in bytes; ``None`` for the default.
    #[getter]
    fn size(&self) -> Option<u64> {
        self.0.size
    }

    /// Bytes added to the template's size.
    #[getter]
    fn free_space(&self) -> Option<u64> {
        self.0.free_space
    }

    /// Swap size in bytes; ``None`` for no swap.
    #[getter]
    fn swap(&self) -> Option<u64> {
        self.0.swap
    }

    /// Boot directly from this kernel.
    #[getter]
    fn kernel(&self) -> Option<String> {
        self.0.kernel.clone()
    }

    /// Initial ramdisk for ``kernel``.
    #[getter]
    fn ramdisk(&self) -> Option<String> {
        self.0.ramdisk.clone()
    }

    /// Extra kernel command line.
    #[getter]
    fn extra(&self) -> Option<String> {
        self.0.extra.clone()
    }

    /// Start order in the project, low first.
    #[getter]
    fn boot_order(&self) -> u32 {
        self.0.boot_order
    }

    /// ``"screen"``, ``"xterm"``, ``"none"``, or ``None`` when not given.
    #[getter]
    fn term(&self) -> Option<&'static str> {
        self.0.term.map(model::Term::keyword)
    }

    /// The resolver written into the guest.
    #[getter]
    fn nameserver(&self) -> Option<String> {
        ip(self.0.nameserver)
    }

    /// Shell lines the guest runs at boot.
    #[getter]
    fn startup(&self) -> Vec<String> {
        self.0.startup.clone()
    }

    /// Shell lines the guest runs at halt.
    #[getter]
    fn shutdown(&self) -> Vec<String> {
        self.0.shutdown.clone()
    }

    /// Kernel modules loaded in the guest.
    #[getter]
    fn modules(&self) -> Vec<String> {
        self.0.modules.clone()
    }

    /// Public SSH keys installed in the guest.
    #[getter]
    fn sshkey(&self) -> Vec<String> {
        self.0.sshkey.clone()
    }

    /// Network interfaces, ordered by number (``eth0``, ``eth1``, ...).
    #[getter]
    fn interfaces(&self) -> Vec<Interface> {
        self.0.interfaces.iter().cloned().map(Interface).collect()
    }

    /// Variables the host itself declares, as written.
    #[getter]
    fn variables(&self) -> BTreeMap<String, String> {
        self.0.variables.clone()
    }

    /// Keywords this implementation does not know, with their values.
    #[getter]
    fn unknown(&self) -> BTreeMap<String, String> {
        self.0.unknown.clone()
    }

    /// The interface called ``name``, or ``None``.
    fn interface(&self, name: &str) -> Option<Interface> {
        self.0.interface(name).cloned().map(Interface)
    }

    /// Every setting as plain data (the JSON model's field names).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::to_py(py, &self.0)
    }

    /// The host as JSON text; indented by ``indent`` spaces when given.
    #[pyo3(signature = (indent=None))]
    fn to_json(&self, indent: Option<usize>) -> PyResult<String> {
        convert::to_json(&self.0, indent)
    }

    fn __repr__(&self) -> String {
        format!(
            "<Host {} platform={} memory={} vcpus={} interfaces={}>",
            self.0.name,
            self.0.platform.keyword(),
            self.0.memory,
            self.0.vcpus,
            self.0.interfaces.len()
        )
    }
}

/// One network interface of a host (``network eth0 { ... }``).
#[pyclass(frozen, eq, module = "mln")]
#[derive(Debug, Clone, PartialEq)]
pub struct Interface(pub(crate) model::Interface);

#[pymethods]
impl Interface {
    /// ``eth0``, ``eth1``, ...
    #[getter]
    fn name(&self) -> &str {
        &self.0.name
    }

    /// The project switch it plugs into.
    #[getter]
    fn switch(&self) -> Option<String> {
        self.0.switch.clone()
    }

    /// ``"10.0.0.1"``, ``"10.0.0.1/24"``, ``"dhcp"``, or ``None``.
    #[getter]
    fn address(&self) -> Option<String> {
        self.0.address.map(|a| a.to_string())
    }

    /// The netmask, dotted.
    #[getter]
    fn netmask(&self) -> Option<String> {
        ip(self.0.netmask)
    }

    /// The broadcast address.
    #[getter]
    fn broadcast(&self) -> Option<String> {
        ip(self.0.broadcast)
    }

    /// The default gateway.
    #[getter]
    fn gateway(&self) -> Option<String> {
        ip(self.0.gateway)
    }

    /// A fixed MAC address (lower case, colons); ``None`` for a generated,
    /// stable one.
    #[getter]
    fn mac(&self) -> Option<String> {
        self.0.mac.clone()
    }

    /// An existing host bridge it attaches to instead of a switch.
    #[getter]
    fn bridge(&self) -> Option<String> {
        self.0.bridge.clone()
    }

    /// Every setting as plain data.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::to_py(py, &self.0)
    }

    fn __repr__(&self) -> String {
        format!(
            "<Interface {} switch={} address={}>",
            self.0.name,
            self.0.switch.as_deref().unwrap_or("-"),
            self.0
                .address
                .map_or_else(|| "-".to_string(), |a| a.to_string())
        )
    }
}

/// A project switch (``switch NAME { ... }``).
#[pyclass(frozen, eq, module = "mln")]
#[derive(Debug, Clone, PartialEq)]
pub struct Switch(pub(crate) model::Switch);

#[pymethods]
impl Switch {
    /// The switch's name.
    #[getter]
    fn name(&self) -> &str {
        &self.0.name
    }

    /// The server that runs it; ``None`` for the local machine.
    #[getter]
    fn service_host(&self) -> Option<String> {
        self.0.service_host.clone()
    }

    /// True when it floods every port.
    #[getter]
    fn hub(&self) -> bool {
        self.0.hub
    }

    /// The bridge name used on Xen.
    #[getter]
    fn bridge(&self) -> Option<String> {
        self.0.bridge.clone()
    }

    /// An existing switch socket it joins.
    #[getter]
    fn socket(&self) -> Option<String> {
        self.0.socket.clone()
    }

    /// A host tap interface it connects.
    #[getter]
    fn tap(&self) -> Option<String> {
        self.0.tap.clone()
    }

    /// The ``(host, interface)`` pairs plugged into it, in host order.
    #[getter]
    fn members(&self) -> Vec<(String, String)> {
        self.0
            .members
            .iter()
            .map(|p| (p.host.clone(), p.interface.clone()))
            .collect()
    }

    /// Every setting as plain data.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::to_py(py, &self.0)
    }

    fn __repr__(&self) -> String {
        format!("<Switch {} members={}>", self.0.name, self.0.members.len())
    }
}
