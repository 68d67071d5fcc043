//! `mln template build|import|register|list`: the guest templates in the templates
//! folder (`mln_core::template`).

use std::path::Path;

use mln_core::template::{self, BusyboxSource, BusyboxTemplate, DebianTemplate};

use crate::cli::{TableFormat, TemplateAction, TemplateArgs, TemplateKind};
use crate::lifecycle::Places;

/// Run `mln template`.
pub fn template(args: &TemplateArgs) -> u8 {
    match run(args) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("error: {message}");
            1
        }
    }
}

fn run(args: &TemplateArgs) -> Result<(), String> {
    let places = Places::new(args.state_dir.as_deref(), args.template_dir.as_deref())?;
    match &args.action {
        TemplateAction::Build {
            kind,
            out,
            suite,
            packages,
            size,
            format,
        } => {
            let dir = out.as_deref().unwrap_or(&places.template_dir);
            let size = size.as_deref().map(parse_size).transpose()?;
            match kind {
                TemplateKind::Debian => build_debian(dir, suite, packages, size, *format),
                TemplateKind::Busybox => build_busybox(dir, size, *format),
            }
        }
        TemplateAction::Import {
            image,
            name,
            format,
        } => import(image, name.as_deref(), &places.template_dir, *format),
        TemplateAction::Register { image, name, copy } => {
            register(image, name.as_deref(), &places.template_dir, *copy)
        }
        TemplateAction::List { format } => list(&places.template_dir, *format),
    }
}

fn build_debian(
    dir: &Path,
    suite: &str,
    packages: &[String],
    size: Option<u64>,
    format: TableFormat,
) -> Result<(), String> {
    let mut builder = DebianTemplate::new()
        .suite(suite)
        .with_packages(packages.iter().cloned());
    if let Some(s) = size {
        builder = builder.size(s);
    }
    let say = |line: &str| eprintln!("  … {line}");
    let built = builder.build(dir, &say).map_err(|e| e.to_string())?;
    let size = std::fs::metadata(&built.template.image)
        .map(|m| m.len())
        .unwrap_or_default();
    if format == TableFormat::Json {
        let value = serde_json::json!({
            "name": built.link.file_name().map(|n| n.to_string_lossy()),
            "link": built.link,
            "image": built.template.image,
            "size": size,
            "reused": built.reused,
            "mode": built.mode,
            "seconds": built.elapsed.as_secs_f64(),
            "boot_marker": built.template.boot_marker,
        });
        println!("{value:#}");
        return Ok(());
    }
    let verb = if built.reused {
        "already built (same inputs)"
    } else {
        "built"
    };
    println!(
        "{}: {verb}: {} ({} MiB{})",
        built.link.display(),
        built.template.image.display(),
        size >> 20,
        built
            .mode
            .map(|m| format!(
                ", mmdebstrap mode {m}, {:.0} s",
                built.elapsed.as_secs_f64()
            ))
            .unwrap_or_default()
    );
    Ok(())
}

fn build_busybox(dir: &Path, size: Option<u64>, format: TableFormat) -> Result<(), String> {
    let source = BusyboxSource::find(dir.join("download")).map_err(|e| e.to_string())?;
    let mut builder = BusyboxTemplate::new(source);
    if let Some(s) = size {
        builder = builder.size(s);
    }
    let built = builder.build(dir).map_err(|e| e.to_string())?;
    if format == TableFormat::Json {
        let value = serde_json::json!({
            "image": built.image,
            "boot_marker": built.boot_marker,
        });
        println!("{value:#}");
    } else {
        println!("{}", built.image.display());
    }
    Ok(())
}

fn import(image: &Path, name: Option<&str>, dir: &Path, format: TableFormat) -> Result<(), String> {
    let imported = template::import(image, dir, name).map_err(|e| e.to_string())?;
    let name = imported
        .template
        .image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if format == TableFormat::Json {
        let value = serde_json::json!({
            "name": name,
            "image": imported.template.image,
            "init": imported.init,
            "boot_marker": imported.template.boot_marker,
        });
        println!("{value:#}");
    } else {
        println!(
            "{name}: imported as {} (guest-configuration step hooked into {}); \
             `template {name}` in a project uses it",
            imported.template.image.display(),
            imported.init.as_str()
        );
    }
    Ok(())
}

fn register(image: &Path, name: Option<&str>, dir: &Path, copy: bool) -> Result<(), String> {
    let t = template::register(image, dir, name, copy).map_err(|e| e.to_string())?;
    let name = t
        .image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let how = if copy { "a copy of" } else { "a link to" };
    println!(
        "{name}: registered as {how} {}; `template {name}` in a project uses it",
        image.display()
    );
    Ok(())
}

fn list(dir: &Path, format: TableFormat) -> Result<(), String> {
    let templates = template::list(dir).map_err(|e| e.to_string())?;
    if format == TableFormat::Json {
        let value = serde_json::to_value(&templates).map_err(|e| e.to_string())?;
        println!("{value:#}");
        return Ok(());
    }
    if templates.is_empty() {
        println!("no templates in {}", dir.display());
        return Ok(());
    }
    let width = templates.iter().map(|t| t.name.len()).max().unwrap_or(4);
    println!(
        "{:<width$}  {:>9}  {:>9}  SHA256",
        "NAME", "SIZE", "ON DISK"
    );
    for t in &templates {
        println!(
            "{:<width$}  {:>9}  {:>9}  {}{}",
            t.name,
            human(t.size),
            human(t.allocated),
            t.sha256,
            t.link
                .as_deref()
                .map(|l| format!("  -> {l}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// `1536M`-style text for `bytes` (binary units, one decimal below 10).
fn human(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")];
    for (unit, suffix) in UNITS {
        if bytes >= unit {
            let v = bytes as f64 / unit as f64;
            return if v < 10.0 {
                format!("{v:.1}{suffix}")
            } else {
                format!("{v:.0}{suffix}")
            };
        }
    }
    format!("{bytes}B")
}

/// `512M`, `1G`, `65536K` (binary units) or bytes.
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("size {text:?}: expected a number with K, M or G"))?;
    let scale = match unit {
        "" => 1,
        "K" | "k" => 1 << 10,
        "M" | "m" => 1 << 20,
        "G" | "g" => 1 << 30,
        _ => return Err(format!("size {text:?}: the unit is K, M or G")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_and_print_in_binary_units() {
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert!(parse_size("1T").is_err());
        assert_eq!(human(1 << 30), "1.0G");
        assert_eq!(human(250 << 20), "250M");
    }
}
