//! `cargo xtask template`: build the default busybox guest template.
//!
//! ```text
//! cargo xtask template [--out DIR] [--size MIB] [--download]
//! ```
//!
//! - `--out DIR`: where the image goes (default `target/mln-templates`);
//! - `--size MIB`: image size in MiB (default 64; the file is sparse);
//! - `--download`: take busybox from Debian's `busybox-static` package
//!   (`apt-get download` + `dpkg -x`) even when `/bin/busybox` is static.
//!
//! Prints the image's path and the kernel arguments that boot it. The build
//! is skipped when an image from the same inputs is already there.

use std::path::PathBuf;

use mln_core::template::{BusyboxSource, BusyboxTemplate};

/// Run the task with its arguments (after `template`).
pub fn run(args: &[String]) -> Result<(), String> {
    let mut out = PathBuf::from("target/mln-templates");
    let mut size_mib: u64 = 64;
    let mut download = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--out" => {
                out = it.next().map(PathBuf::from).ok_or("--out needs a folder")?;
            }
            "--size" => {
                size_mib = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|&n| n >= 8)
                    .ok_or("--size needs a number of MiB, at least 8")?;
            }
            "--download" => download = true,
            "-h" | "--help" => {
                println!("usage: cargo xtask template [--out DIR] [--size MIB] [--download]");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    let scratch = out.join("download");
    let source = if download {
        BusyboxSource::download(&scratch)
    } else {
        BusyboxSource::find(&scratch)
    }
    .map_err(|e| e.to_string())?;
    let template = BusyboxTemplate::new(source)
        .size(size_mib << 20)
        .build(&out)
        .map_err(|e| e.to_string())?;
    println!("{}", template.image.display());
    println!("boot with: {}", template.cmdline);
    Ok(())
}
