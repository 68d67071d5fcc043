//! Site settings (`/etc/mln/mln.conf`, `~/.mln`; `mln_lang::site`): the
//! defaults they give a project's hosts, and `mln config`, which prints
//! what is in force and where each value came from.

use std::path::PathBuf;

use mln_lang::model::{Platform, Project};
use mln_lang::site::SiteConfig;

use crate::cli::{ConfigArgs, TableFormat};
use crate::lifecycle::Places;

/// Give the hosts of `project` the site's defaults for what they do not
/// say: `default_memory`, `default_template`, and on Xen `xen_kernel` and
/// `xen_ramdisk`.
pub fn apply_defaults(project: &mut Project, site: &SiteConfig) -> Result<(), String> {
    let memory = site.memory()?;
    for h in &mut project.hosts {
        if let Some(m) = memory {
            if !h.written.contains_key("memory") {
                h.memory = m;
            }
        }
        if h.template.is_none() {
            h.template = site.get("default_template").map(str::to_string);
        }
        if matches!(h.platform, Platform::Xen | Platform::Hvm) && h.kernel.is_none() {
            h.kernel = site.get("xen_kernel").map(str::to_string);
            if h.ramdisk.is_none() {
                h.ramdisk = site.get("xen_ramdisk").map(str::to_string);
            }
        }
    }
    Ok(())
}

/// `mln config`: every setting in force and where it came from.
pub fn config(args: &ConfigArgs) -> u8 {
    let site = SiteConfig::load();
    let places = match Places::new(args.state_dir.as_deref(), None) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let kernel = crate::kernel::store(args.state_dir.as_deref())
        .map(|s| s.choose(site.path("default_kernel").as_deref()));
    let effective: Vec<(&str, String, String)> = vec![
        (
            "state folder",
            places.state_root.display().to_string(),
            places.state_root_source.clone(),
        ),
        (
            "templates",
            places.template_dir.display().to_string(),
            places.template_dir_source.clone(),
        ),
        match &kernel {
            Ok(k) => (
                "UML kernel",
                k.path.display().to_string(),
                match (
                    std::env::var_os(mln_core::uml::KERNEL_ENV),
                    site.get("default_kernel"),
                ) {
                    (Some(_), _) => "MLN_UML_KERNEL".to_string(),
                    (None, Some(_)) => source_of(&site, "default_kernel"),
                    (None, None) => k.source.to_string(),
                },
            ),
            Err(e) => ("UML kernel", String::new(), e.clone()),
        },
        plugins_row(),
    ];
    if args.format == TableFormat::Json {
        let value = serde_json::json!({
            "effective": effective
                .iter()
                .map(|(k, v, s)| serde_json::json!({"setting": k, "value": v, "from": s}))
                .collect::<Vec<_>>(),
            "site": site.settings,
        });
        println!("{value:#}");
        return 0;
    }
    for (k, v, s) in &effective {
        println!("{k:<14} {v}  ({s})");
    }
    if site.settings.is_empty() {
        println!("no site settings ({} or ~/.mln)", mln_lang::site::SITE_FILE);
    }
    for s in &site.settings {
        println!("{:<14} {}  ({})", s.key, s.value, s.source);
    }
    0
}

/// The plugins found (`docs/plugins.md`), and the folders looked in.
fn plugins_row() -> (&'static str, String, String) {
    use mln_lang::plugin::{Origin, PluginFolders, Plugins, Program};
    let folders = PluginFolders::from_settings();
    let looked: Vec<String> = folders
        .site
        .iter()
        .chain(folders.user.iter())
        .chain(folders.given.iter())
        .map(|p| p.display().to_string())
        .collect();
    let value = match Plugins::discover(&folders) {
        Ok(plugins) => plugins
            .list()
            .iter()
            .map(|p| match (&p.program, p.origin) {
                (Program::Executable(path), _) => format!("{} ({})", p.name, path.display()),
                (Program::Builtin(_), Origin::Builtin) => format!("{} (built in)", p.name),
                (Program::Builtin(_), _) => p.name.clone(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Err(e) => e.to_string(),
    };
    ("plugins", value, looked.join(", "))
}

fn source_of(site: &SiteConfig, key: &str) -> String {
    site.source(key).unwrap_or("site settings").to_string()
}

/// Where a path setting comes from: a flag or environment variable
/// (`given`, named `flag`), else the site's `key`, else `default`.
pub fn resolve_path(
    given: Option<PathBuf>,
    flag: &str,
    site: &SiteConfig,
    key: &str,
    default: impl FnOnce() -> Result<PathBuf, String>,
) -> Result<(PathBuf, String), String> {
    if let Some(p) = given {
        return Ok((p, flag.to_string()));
    }
    if let Some(p) = site.path(key) {
        return Ok((p, source_of(site, key)));
    }
    Ok((default()?, "default".to_string()))
}

/// The `-D NAME=VALUE` arguments as definitions; an error is printed and
/// gives exit status 2 (a usage error).
pub fn definitions(defines: &[String]) -> Result<mln_lang::Definitions, u8> {
    defines
        .iter()
        .try_fold(mln_lang::Definitions::new(), |d, arg| d.variable_arg(arg))
        .map_err(|e| {
            eprintln!("error: {e}");
            2
        })
}
