//! Links libxenlight, libxlutil and libxentoollog (found with pkg-config)
//! and, with the `bindgen` feature only, generates the bindings from the
//! installed headers.
//!
//! Without `bindgen` the crate uses the bindings committed in
//! `src/bindings_4_17.rs` and `src/have_4_17.rs`: no libclang and no
//! headers are needed, only the libraries and their pkg-config files, which
//! must be Xen 4.17 (libxl's structs change size between releases, so the
//! 4.17 layout is wrong for any other version).
//!
//! On failure it stops with one line naming the Debian packages to install.

use std::env;
use std::path::PathBuf;

/// The `LIBXL_HAVE_*` list committed with the pre-generated bindings, for
/// the `DEP_XENLIGHT_*` metadata when bindgen does not run.
#[cfg(not(feature = "bindgen"))]
#[allow(dead_code)]
mod have {
    include!("src/have_4_17.rs");
}

#[cfg(feature = "bindgen")]
const PACKAGES_HINT: &str = "install them with: apt-get install libxen-dev libclang-dev pkg-config";
#[cfg(not(feature = "bindgen"))]
const PACKAGES_HINT: &str = "install them with: apt-get install libxen-dev pkg-config";

fn fail(what: &str) -> ! {
    // One line: the first line of the cause, then what to install.
    println!("cargo:warning=xenlight-sys: {what}; {PACKAGES_HINT}");
    eprintln!("error: xenlight-sys: {what}; {PACKAGES_HINT}");
    std::process::exit(1);
}

/// The first meaningful line of a pkg-config error.
fn first_line(e: &pkg_config::Error) -> String {
    let cause = e.to_string();
    cause
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.ends_with(':'))
        .unwrap_or("not installed")
        .to_string()
}

/// Finds the three libraries with pkg-config (which also tells cargo to link
/// them) and returns their include paths. `xenlight` and `xlutil` must be
/// at least `min` and below `below` (when given).
fn probe_libraries(min: &str, below: Option<&str>) -> Vec<PathBuf> {
    let wanted = match below {
        Some(b) => format!("{min} (below {b})"),
        None => format!("{min} or newer"),
    };
    let mut include_paths: Vec<PathBuf> = Vec::new();
    for lib in ["xenlight", "xlutil", "xentoollog"] {
        let mut config = pkg_config::Config::new();
        // xentoollog carries its own version numbering (1.x).
        if lib != "xentoollog" {
            match below {
                Some(b) => config.range_version(min..b),
                None => config.atleast_version(min),
            };
        }
        match config.probe(lib) {
            Ok(found) => include_paths.extend(found.include_paths),
            Err(e) => fail(&format!(
                "pkg-config cannot find {lib} {wanted} ({})",
                first_line(&e)
            )),
        }
    }
    include_paths
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");

    // libxl's JSON generators take a yajl handle; libyajl2 is a dependency of
    // libxenlight, but Debian ships no unversioned libyajl.so without -dev.
    println!("cargo:rustc-link-lib=dylib:+verbatim=libyajl.so.2");

    #[cfg(feature = "bindgen")]
    generate();
    #[cfg(not(feature = "bindgen"))]
    use_pregenerated();
}

/// Links Xen 4.17's libraries for the committed bindings.
#[cfg(not(feature = "bindgen"))]
fn use_pregenerated() {
    println!("cargo:rerun-if-changed=src/have_4_17.rs");
    // The committed layouts are those of x86-64 Linux (e.g. its va_list).
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if arch != "x86_64" || os != "linux" {
        fail(&format!(
            "the pre-generated bindings are for x86_64 Linux, not {arch} {os}; \
             build with the `bindgen` feature (needs libclang-dev)"
        ));
    }
    let _ = probe_libraries("4.17", Some("4.18"));
    for name in have::ALL {
        // Dependent build scripts see DEP_XENLIGHT_<NAME>.
        println!("cargo:{}=1", name.to_ascii_lowercase());
    }
}

/// Generates `bindings.rs` and `have.rs` in `OUT_DIR` from the installed
/// headers (Xen 4.17 or newer).
#[cfg(feature = "bindgen")]
fn generate() {
    println!("cargo:rerun-if-changed=wrapper.h");
    let mut include_paths = probe_libraries("4.17", None);
    if include_paths.is_empty() {
        include_paths.push(PathBuf::from("/usr/include"));
    }

    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_else(|| fail("OUT_DIR is not set")));
    write_feature_macros(&include_paths, &out.join("have.rs"));

    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_function("libxl_.*|xtl_.*|xlu_.*|libxlu_.*")
        .allowlist_type("libxl_.*|xentoollog_.*|xtl_.*|XLU_.*|xlu_.*")
        .allowlist_var("LIBXL_.*|XTL_.*|ERROR_.*|XLU_.*")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .derive_default(true)
        .generate_comments(false)
        .layout_tests(true);
    for p in &include_paths {
        builder = builder.clang_arg(format!("-I{}", p.display()));
    }

    // bindgen panics when libclang cannot be loaded; turn that into the one line.
    let generated =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || builder.generate()));
    let bindings = match generated {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => fail(&format!("bindgen could not parse libxl.h: {e}")),
        Err(_) => fail("bindgen could not load libclang"),
    };
    if let Err(e) = bindings.write_to_file(out.join("bindings.rs")) {
        fail(&format!("cannot write bindings: {e}"));
    }
}

/// Every `#define LIBXL_HAVE_*` of the headers becomes `pub const NAME: bool = true`
/// in module `have`, plus a list of all names, so the safe layer can adapt to
/// the Xen version it is built against.
#[cfg(feature = "bindgen")]
fn write_feature_macros(include_paths: &[PathBuf], dest: &std::path::Path) {
    let mut names: Vec<String> = Vec::new();
    for dir in include_paths {
        for header in ["libxl.h", "libxl_event.h", "libxl_utils.h", "libxl_json.h"] {
            let path = dir.join(header);
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            println!("cargo:rerun-if-changed={}", path.display());
            for line in text.lines() {
                let line = line.trim_start();
                let Some(rest) = line.strip_prefix("#define ") else {
                    continue;
                };
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name.starts_with("LIBXL_HAVE_") && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    names.sort();
    let mut src = String::from("// Generated by build.rs from the libxl headers.\n");
    for n in &names {
        src.push_str(&format!(
            "/// `{n}` is defined by the libxl headers.\npub const {n}: bool = true;\n"
        ));
        // Dependent build scripts see DEP_XENLIGHT_<NAME>.
        println!("cargo:{}=1", n.to_ascii_lowercase());
    }
    src.push_str(
        "/// Every `LIBXL_HAVE_*` macro the headers define.\npub const ALL: &[&str] = &[\n",
    );
    for n in &names {
        src.push_str(&format!("    \"{n}\",\n"));
    }
    src.push_str("];\n");
    if let Err(e) = std::fs::write(dest, src) {
        fail(&format!("cannot write {}: {e}", dest.display()));
    }
}
