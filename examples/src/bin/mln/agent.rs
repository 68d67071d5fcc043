//! `mln agent`: a server's side of a project spread over several servers.
//! The managing `mln` runs it over ssh and speaks JSON lines on its stdin
//! and stdout (docs/agent-protocol.md); its log goes to stderr.

use std::io::Write;
use std::path::Path;

use mln_lang::agent::Agent;
use mln_lang::plan::Platform;

use crate::backend::Machine;
use crate::cli::{AgentArgs, AgentJob};
use crate::lifecycle::{fail, local_backends, Places};

/// Serve requests on stdin/stdout until stdin ends, or run one job.
pub fn agent(args: &AgentArgs) -> u8 {
    let places = match Places::new(args.state_dir.as_deref(), None) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    if let Some(AgentJob::Plug { project, switch }) = &args.job {
        return plug(&places, project, switch);
    }
    let mut platforms = vec![Platform::Uml];
    if Machine::detect().default_backend() == crate::cli::BackendChoice::Xen {
        platforms.extend([Platform::Xen, Platform::Hvm]);
    }
    if crate::backend::qemu_installed() {
        platforms.push(Platform::Kvm);
    }
    log::info!(
        "mln agent: projects under {}, templates in {}",
        places.state_root.display(),
        places.template_dir.display()
    );
    let root = places.state_root.clone();
    let make = move |dir: &Path| {
        local_backends(dir, &places, Machine::detect(), true, None).map_err(|message| {
            mln_core::Error::Backend {
                what: dir.display().to_string(),
                message,
            }
        })
    };
    let xen = platforms.contains(&Platform::Xen);
    let mut agent = Agent::new(root, Box::new(make)).with_platforms(platforms);
    if xen {
        // Capacity on a dom0 is what Xen can still hand out, not dom0's own
        // free memory.
        agent = agent.with_xen_memory(Box::new(|| {
            let xen = crate::backend::connect_xen().ok()?;
            let memory = xen
                .free_memory()
                .and_then(|free| Ok((free, xen.total_memory()?)));
            match memory {
                Ok((Some(free), Some(total))) => Some((free, total)),
                Ok(_) => None,
                Err(e) => {
                    log::warn!("Xen memory: {e}");
                    None
                }
            }
        }));
    }
    let mut stdin = std::io::stdin().lock();
    let stdout = std::io::stdout();
    match &args.job {
        Some(AgentJob::ExportDisks) => match agent.export_disks(&mut stdin, stdout.lock()) {
            Ok(m) => {
                log::info!("exported {} file(s)", m.files.len());
                0
            }
            Err(e) => fail(format!("export-disks: {e}")),
        },
        Some(AgentJob::ImportDisks) => match agent.import_disks(&mut stdin) {
            Ok(moved) => {
                // What was placed, for a human reading along; the managing
                // mln asks `host_disks` instead.
                let line = serde_json::to_string(&moved).unwrap_or_default();
                let mut out = stdout.lock();
                let _ = writeln!(out, "{line}");
                0
            }
            Err(e) => fail(format!("import-disks: {e}")),
        },
        Some(AgentJob::MigrateSend) => {
            // A hypervisor of its own, so the job chooses live or not.
            let make = |live: bool| -> mln_core::Result<Box<dyn mln_core::Hypervisor>> {
                migration_hypervisor(live)
            };
            match agent.migrate_send(&mut stdin, stdout.lock(), Some(&make)) {
                Ok(()) => 0,
                Err(e) => fail(format!("migrate-send: {e}")),
            }
        }
        Some(AgentJob::MigrateReceive) => match agent.migrate_receive(&mut stdin) {
            Ok(info) => {
                log::info!("received {} (domain {})", info.name, info.id);
                0
            }
            Err(e) => fail(format!("migrate-receive: {e}")),
        },
        Some(AgentJob::Console {
            project,
            platform,
            host,
        }) => {
            drop(stdin);
            let endpoint = platform
                .parse::<Platform>()
                .map_err(|e| e.to_string())
                .and_then(|p| agent.console(project, p, host).map_err(|e| e.to_string()));
            match endpoint {
                Ok(e) => crate::console::session(&format!("{project}.{host}"), &e),
                Err(e) => fail(format!("{project}.{host}: {e}")),
            }
        }
        _ => match agent.serve(stdin, stdout) {
            Ok(()) => 0,
            Err(e) => fail(format!("agent: {e}")),
        },
    }
}

#[cfg(feature = "xen")]
fn migration_hypervisor(live: bool) -> mln_core::Result<Box<dyn mln_core::Hypervisor>> {
    let xen = mln_core::xen::XenHypervisor::connect()?.with_live_migration(live);
    Ok(Box::new(xen))
}

#[cfg(not(feature = "xen"))]
fn migration_hypervisor(_live: bool) -> mln_core::Result<Box<dyn mln_core::Hypervisor>> {
    Err(mln_core::Error::XenUnavailable {
        reason: "mln was built without Xen support".into(),
    })
}

/// Become `vde_plug` on this server's instance of `switch` of `project`,
/// stdin and stdout being the cable.
fn plug(places: &Places, project: &str, switch: &str) -> u8 {
    use std::os::unix::process::CommandExt;
    let dir = match mln_core::SafeName::new(project) {
        Ok(p) => places.state_root.join(p.as_str()).join("switches"),
        Err(e) => return fail(e),
    };
    let sw = match mln_core::net::VdeSwitch::open(switch, &dir) {
        Ok(sw) => sw,
        Err(e) => return fail(format!("project {project}: {e}")),
    };
    let argv = sw.plug_argv();
    let err = std::process::Command::new(&argv[0]).args(&argv[1..]).exec();
    fail(format!("cannot run {}: {err}", argv[0].to_string_lossy()))
}
