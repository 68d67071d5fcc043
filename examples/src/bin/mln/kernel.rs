//! `mln kernel show|path|fetch|fetch-guest`: which UML kernel guests boot
//! with, getting one that boots on this host (`mln_core::uml::KernelStore`),
//! and the kernel QEMU guests boot with (`mln_core::qemu::GuestKernel`).

use mln_core::template::BusyboxSource;
use mln_core::uml::{FetchSource, KernelStore, Uml, UmlKernel};

use crate::cli::{KernelAction, KernelArgs, TableFormat};
use crate::lifecycle::Places;

/// Run `mln kernel`.
pub fn kernel(args: &KernelArgs) -> u8 {
    match run(args) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("error: {message}");
            1
        }
    }
}

/// The kernels store of the state folder `state_dir` names (or the
/// default one).
pub fn store(state_dir: Option<&std::path::Path>) -> Result<KernelStore, String> {
    let places = Places::new(state_dir, None)?;
    Ok(KernelStore::new(mln_core::uml::kernels_dir(
        &places.state_root,
    )))
}

fn run(args: &KernelArgs) -> Result<(), String> {
    let store = store(args.state_dir.as_deref())?;
    match &args.action {
        KernelAction::Path => {
            println!("{}", store.choose(None).path.display());
            Ok(())
        }
        KernelAction::Show { format } => show(&store, *format),
        KernelAction::Fetch {
            suite,
            refresh,
            if_needed,
            format,
        } => {
            if *if_needed && distribution_boots(&store)? {
                eprintln!(
                    "{} boots on this host: nothing to fetch",
                    Uml::DEFAULT_KERNEL
                );
                return Ok(());
            }
            fetch(&store, suite, *refresh, *format)
        }
        KernelAction::FetchGuest => {
            let guest =
                mln_core::qemu::GuestKernel::fetch(store.dir()).map_err(|e| e.to_string())?;
            println!(
                "guest kernel: {} (Linux {}), initramfs {}",
                guest.kernel.display(),
                guest.version,
                guest.initrd.display()
            );
            Ok(())
        }
    }
}

/// Whether the distribution's kernel is installed and boots here (a
/// probe boot, recorded).
fn distribution_boots(store: &KernelStore) -> Result<bool, String> {
    let distro = std::path::Path::new(Uml::DEFAULT_KERNEL);
    if !distro.exists() {
        return Ok(false);
    }
    let busybox = busybox(store)?;
    let outcome = store.probe(distro, &busybox).map_err(|e| e.to_string())?;
    Ok(outcome.boots())
}

fn busybox(store: &KernelStore) -> Result<std::path::PathBuf, String> {
    match BusyboxSource::find(store.dir().join("download")) {
        Ok(BusyboxSource::Binary(b)) => Ok(b),
        Err(e) => Err(format!(
            "a static busybox is needed for the probe boot: {e}"
        )),
    }
}

fn show(store: &KernelStore, format: TableFormat) -> Result<(), String> {
    let choice = store.choose(None);
    let kernel = UmlKernel::inspect(&choice.path);
    let probe = store.recorded_probe(&choice.path);
    if format == TableFormat::Json {
        let value = serde_json::json!({
            "path": choice.path,
            "source": choice.source,
            "kernel": kernel.as_ref().ok(),
            "error": kernel.as_ref().err().map(ToString::to_string),
            "probe": probe,
            "fetched": store.fetched(),
        });
        println!("{value:#}");
        return Ok(());
    }
    println!("kernel:  {} ({})", choice.path.display(), choice.source);
    match &kernel {
        Ok(k) => println!("version: {}, network driver {:?}", k.version, k.net),
        Err(e) => println!("unusable: {e}"),
    }
    match probe {
        Some(p) => println!("probe:   {p} on this CPU"),
        None => println!("probe:   none recorded on this CPU (`mln doctor` runs one)"),
    }
    if let Some(f) = store.fetched() {
        println!(
            "fetched: {} ({} from {} {})",
            f.path.display(),
            f.package,
            f.archive,
            f.suite
        );
    }
    Ok(())
}

fn fetch(
    store: &KernelStore,
    suite: &str,
    refresh: bool,
    format: TableFormat,
) -> Result<(), String> {
    let source = FetchSource::from_host(suite).map_err(|e| e.to_string())?;
    let busybox = match BusyboxSource::find(store.dir().join("download")) {
        Ok(BusyboxSource::Binary(b)) => b,
        Err(e) => {
            return Err(format!(
                "a static busybox is needed for the probe boot: {e}"
            ))
        }
    };
    let say = |line: &str| eprintln!("  … {line}");
    let report = store
        .fetch(&source, &busybox, refresh, &say)
        .map_err(|e| e.to_string())?;
    if format == TableFormat::Json {
        let value = serde_json::to_value(&report).map_err(|e| e.to_string())?;
        println!("{value:#}");
        return Ok(());
    }
    println!(
        "fetched: {} (UML {}, {} from {} {})",
        report.fetched.path.display(),
        report.fetched.version,
        report.fetched.package,
        report.fetched.archive,
        report.fetched.suite
    );
    println!("probe:   {}", report.probe);
    match &report.distribution {
        Some(p) if p.boots() => println!(
            "the distribution's kernel {} here too: guests keep booting with it \
             (MLN_UML_KERNEL or --uml-kernel choose the fetched one)",
            p
        ),
        Some(p) => {
            println!("the distribution's kernel {p} here: guests now boot with the fetched one")
        }
        None => println!("no distribution kernel installed: MLN_UML_KERNEL names the fetched one"),
    }
    Ok(())
}
