//! `domain-demo`: create, list and destroy one domain through mln-core's
//! backend-neutral lifecycle API ([`Hypervisor`], [`DomainHandle`]), on Xen
//! (libxl) or on User-Mode Linux. Each step is printed with the time since
//! the start.
//!
//! ```text
//! domain-demo --backend xen --kernel /boot/vmlinuz --ramdisk guest.cpio   # a Xen dom0, as root
//! domain-demo --backend uml        # linux.uml + the busybox template, no root
//! domain-demo                      # Xen when this machine is a dom0, else UML
//! ```
//!
//! `cargo xtask xen-test --demo` runs it inside real Xen (QEMU TCG).
//! Exit status: 0 when every step worked, 1 on an error, 2 on bad usage.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use mln_core::disk::{CowFormat, Overlay};
use mln_core::guest::GuestConfig;
use mln_core::template::{BusyboxSource, BusyboxTemplate};
use mln_core::uml::{host_spec, Uml};
use mln_core::{Boot, DomainHandle, DomainInfo, DomainSpec, Hypervisor};

const MIB: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    /// Xen through libxenlight (run in a dom0, as root).
    Xen,
    /// User-Mode Linux processes.
    Uml,
}

/// Create, list and destroy one domain with mln-core's lifecycle API.
#[derive(Debug, Parser)]
#[command(name = "domain-demo")]
struct Args {
    /// The backend; by default Xen when this machine is a Xen dom0, else UML.
    #[arg(long, value_enum)]
    backend: Option<Backend>,
    /// The domain's name.
    #[arg(long, default_value = "demo")]
    name: String,
    /// Memory, MiB.
    #[arg(long, default_value_t = 128)]
    memory: u64,
    /// Xen: the PV guest's kernel (required for Xen).
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// Xen: the guest's initramfs.
    #[arg(long)]
    ramdisk: Option<PathBuf>,
    /// Xen: the guest kernel's command line.
    #[arg(long, default_value = "console=hvc0 quiet")]
    cmdline: String,
    /// UML: where the busybox template is built, or reused when already
    /// there (default: $MLN_TEMPLATE_DIR, else the scratch folder).
    #[arg(long, env = "MLN_TEMPLATE_DIR")]
    template_dir: Option<PathBuf>,
}

/// A chosen backend and the domain to run on it.
struct Setup {
    hypervisor: Box<dyn Hypervisor>,
    spec: DomainSpec,
    /// What the spec's files are (printed).
    about: String,
}

/// Destroys the domain when the demo fails half-way, so no guest is left
/// running.
struct Created<'h>(Option<DomainHandle<'h>>);

impl Drop for Created<'_> {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            let name = handle.name().to_string();
            if let Err(e) = handle.destroy() {
                eprintln!("domain-demo: cleaning up {name}: {e}");
            }
        }
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    let scratch = std::env::temp_dir().join(format!("mln-domain-demo-{}", std::process::id()));
    let result = setup(&args, &scratch).and_then(|s| {
        println!("backend: {}", s.hypervisor.kind());
        println!("domain:  {}", s.about);
        lifecycle(&*s.hypervisor, &s.spec)
    });
    if scratch.exists() {
        if let Err(e) = std::fs::remove_dir_all(&scratch) {
            eprintln!("domain-demo: removing {}: {e}", scratch.display());
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("domain-demo: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Error(e)) => {
            eprintln!("domain-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Usage(String),
    Error(String),
}

impl From<mln_core::Error> for Failure {
    fn from(e: mln_core::Error) -> Self {
        Failure::Error(e.to_string())
    }
}

fn setup(args: &Args, scratch: &Path) -> Result<Setup, Failure> {
    match args.backend {
        Some(Backend::Xen) => xen_setup(args, connect_xen()?),
        Some(Backend::Uml) => uml_setup(args, scratch),
        None => match connect_xen() {
            Ok(xen) => xen_setup(args, xen),
            Err(Failure::Error(why)) | Err(Failure::Usage(why)) => {
                println!("using UML: {why}");
                uml_setup(args, scratch)
            }
        },
    }
}

#[cfg(feature = "xen")]
fn connect_xen() -> Result<Box<dyn Hypervisor>, Failure> {
    Ok(Box::new(mln_core::xen::XenHypervisor::connect()?))
}

#[cfg(not(feature = "xen"))]
fn connect_xen() -> Result<Box<dyn Hypervisor>, Failure> {
    Err(Failure::Usage(
        "built without the `xen` feature of the examples package".to_string(),
    ))
}

/// A PV guest from `--kernel` and `--ramdisk`.
fn xen_setup(args: &Args, xen: Box<dyn Hypervisor>) -> Result<Setup, Failure> {
    let kernel = args
        .kernel
        .clone()
        .ok_or_else(|| Failure::Usage("--kernel is needed for a Xen PV guest".to_string()))?;
    let about = match &args.ramdisk {
        Some(rd) => format!("PV, kernel {} + ramdisk {}", kernel.display(), rd.display()),
        None => format!("PV, kernel {}", kernel.display()),
    };
    let spec = DomainSpec::new(
        args.name.clone(),
        args.memory * MIB,
        Boot::Kernel {
            kernel,
            ramdisk: args.ramdisk.clone(),
            cmdline: args.cmdline.clone(),
        },
    );
    Ok(Setup {
        hypervisor: xen,
        spec,
        about,
    })
}

/// A UML host the way MLN lays one out: a copy-on-write root over the
/// busybox template, a guest configuration disk, `linux.uml`.
fn uml_setup(args: &Args, scratch: &Path) -> Result<Setup, Failure> {
    let templates = args
        .template_dir
        .clone()
        .unwrap_or_else(|| scratch.join("templates"));
    let source = BusyboxSource::find(scratch.join("download"))?;
    let template = BusyboxTemplate::new(source).build(&templates)?;
    let root = Overlay::create(
        &template.image,
        scratch.join(format!("{}.cow", args.name)),
        CowFormat::Uml,
    )?;
    let config_disk = scratch.join(format!("{}.config", args.name));
    GuestConfig::new(&args.name).write_disk(&config_disk)?;
    let spec = host_spec(
        &args.name,
        args.memory * MIB,
        &root,
        &config_disk,
        Vec::new(),
        "quiet",
    );
    let uml = Uml::new(scratch.join("uml"))?;
    let about = format!(
        "{} over template {}",
        Uml::default_kernel().display(),
        template.image.display()
    );
    Ok(Setup {
        hypervisor: Box::new(uml),
        spec,
        about,
    })
}

/// Create, start, list, destroy, list.
fn lifecycle(hv: &dyn Hypervisor, spec: &DomainSpec) -> Result<(), Failure> {
    let t0 = Instant::now();
    let step = |what: String| println!("[{:6.2}s] {what}", t0.elapsed().as_secs_f64());
    step(format!(
        "create {}: {} MiB, {} vCPU",
        spec.name,
        spec.memory / MIB,
        spec.vcpus
    ));
    let mut created = Created(Some(DomainHandle::create(hv, spec)?));
    let Some(handle) = created.0.as_ref() else {
        return Err(Failure::Error("the domain handle went missing".to_string()));
    };
    let info = handle.info()?;
    step(format!("created: id {}, {}", info.id, info.state));
    handle.start()?;
    step(format!("started: {}", handle.info()?.state));
    let listed = hv.list()?;
    step(format!("list: {} domain(s)", listed.len()));
    print_list(&listed);
    if let Some(handle) = created.0.take() {
        handle.destroy()?;
    }
    step(format!("destroyed {}", spec.name));
    let listed = hv.list()?;
    step(format!("list: {} domain(s)", listed.len()));
    print_list(&listed);
    Ok(())
}

fn print_list(domains: &[DomainInfo]) {
    if domains.is_empty() {
        return;
    }
    println!(
        "    {:<12} {:>6}  {:<8} {:>8} {:>8} {:>5} {:>8}",
        "NAME", "ID", "STATE", "MEMORY", "MAX", "VCPUS", "CPU"
    );
    for d in domains {
        println!(
            "    {:<12} {:>6}  {:<8} {:>4} MiB {:>4} MiB {:>5} {:>7.2}s",
            d.name,
            d.id,
            d.state.to_string(),
            d.memory / MIB,
            d.max_memory / MIB,
            d.vcpus,
            d.cpu_time.as_secs_f64()
        );
    }
}
