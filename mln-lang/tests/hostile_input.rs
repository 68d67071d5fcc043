//! Hostile input through the whole front door (parse, resolve, check): what
//! a student's file could do to a tool that runs as root. Each case ends in
//! a result or a diagnostic at the right place, never a panic or a stack
//! overflow.
//!
//! The cases that could recurse run on a thread with a 256 KiB stack, far
//! less than the 2 MiB Rust gives a spawned thread and the 8 MiB of a main
//! thread: if any of them recursed once per block, link or file, they would
//! overflow it and abort the test binary. No timing assertions here; the
//! benchmarks measure speed.

use std::path::Path;

use mln_lang::model::GenericItem;
use mln_lang::syntax::{parse_source, Limits, NESTING_CEILING};
use mln_lang::{load, load_str, parse_str, Code, Report};

const SMALL_STACK: usize = 256 * 1024;

/// Run `f` on a fresh thread with a stack of `bytes`.
fn on_stack<T: Send + 'static>(bytes: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(bytes)
        .spawn(f)
        .expect("spawn a test thread")
        .join()
        .expect("the test thread panicked")
}

/// `(code, "file:line:col")` of every diagnostic, the file as a base name.
fn places(report: &Report) -> Vec<(Code, String)> {
    report
        .diagnostics
        .iter()
        .map(|d| {
            let at = d
                .span
                .map_or_else(|| "-".to_string(), |s| report.sources.location(s));
            let short = at.rsplit('/').next().unwrap_or(&at).to_string();
            (d.code, short)
        })
        .collect()
}

/// The only diagnostic of a failed load, as `(code, "file:line:col")`.
fn single_error(text: &str) -> (Code, String) {
    let report = load_str("t.mln", text).expect_err("the file is refused");
    let all = places(&report);
    assert_eq!(all.len(), 1, "{report}");
    all.into_iter()
        .next()
        .unwrap_or((Code::Syntax, String::new()))
}

#[test]
fn two_hundred_thousand_nested_blocks_are_refused_on_a_small_stack() {
    let (code, at) = on_stack(SMALL_STACK, || {
        let n = 200_000;
        let text = format!("{}{}", "a {\n".repeat(n), "}\n".repeat(n));
        single_error(&text)
    });
    assert_eq!(code, Code::LimitExceeded);
    // The 65th `{`: the first one past the default limit of 64.
    assert_eq!(at, "t.mln:65:3");
}

#[test]
fn blocks_nested_to_the_limit_inside_a_host_load_on_a_small_stack() {
    let depth = on_stack(SMALL_STACK, || {
        // The host block is one level; generic blocks fill the rest.
        let n = Limits::default().max_nesting - 1;
        let text = format!(
            "global {{ project p }}\nswitch lan {{\n}}\nhost a {{\n network eth0 {{ switch lan }}\n{}{}}}\n",
            "x {\n".repeat(n),
            "}\n".repeat(n)
        );
        let checked = load_str("t.mln", &text).expect("nesting at the limit is fine");
        assert!(checked.warnings.is_empty(), "{:?}", checked.warnings);
        let host = checked.project().host("a").expect("host a");
        let mut depth = 0;
        let mut next = host.blocks.first();
        while let Some(b) = next {
            depth += 1;
            next = b.items.iter().find_map(|i| match i {
                GenericItem::Block(b) => Some(b),
                _ => None,
            });
        }
        depth
    });
    assert_eq!(depth, Limits::default().max_nesting - 1);
}

#[test]
fn nesting_at_the_ceiling_loads_on_a_default_thread_stack() {
    // A caller may raise `max_nesting` up to the ceiling; such a tree must
    // still parse, resolve and drop on a spawned thread's default stack.
    let codes = on_stack(2 * 1024 * 1024, || {
        let n = NESTING_CEILING;
        let text = format!(
            "global {{ project p }}\n{}{}",
            "x {\n".repeat(n),
            "}\n".repeat(n)
        );
        let limits = Limits {
            max_nesting: usize::MAX,
            ..Limits::default()
        };
        let mut sources = mln_lang::SourceMap::new();
        let ast = parse_source(&mut sources, Path::new("t.mln"), text.as_bytes(), &limits)
            .expect("nesting at the ceiling parses");
        match mln_lang::resolve::resolve(&ast, &sources) {
            Ok(_) => Vec::new(),
            Err(d) => d.iter().map(|d| d.code).collect::<Vec<_>>(),
        }
    });
    // The resolver either reads it all or says where it stopped reading.
    assert!(codes.iter().all(|c| *c == Code::LimitExceeded), "{codes:?}");
}

#[test]
fn a_five_megabyte_line_loads() {
    let words = 5 * 1024 * 1024 / 7 + 1;
    let mut line = String::from("    echo");
    for i in 0..words {
        line.push_str(&format!(" w{:05}", i % 100_000));
    }
    let text = format!(
        "global {{ project p }}\nswitch lan {{\n}}\nhost a {{\n  network eth0 {{ switch lan }}\n  startup {{\n{line}\n  }}\n}}\n"
    );
    assert!(line.len() > 5 * 1024 * 1024);
    let checked = load_str("t.mln", &text).expect("a long line is fine");
    let host = checked.project().host("a").expect("host a");
    assert_eq!(host.startup.len(), 1);
    assert_eq!(host.startup[0].split(' ').count(), words + 1);
}

#[test]
fn a_hundred_thousand_deep_superclass_chain_resolves_on_a_small_stack() {
    let (memory, startup) = on_stack(SMALL_STACK, || {
        let n = 100_000;
        let mut text = String::from("global { project p }\nswitch lan {\n}\n");
        text.push_str("superclass s0 { memory 64M; startup { echo base } }\n");
        for i in 1..n {
            text.push_str(&format!("superclass s{i} {{ superclass s{} }}\n", i - 1));
        }
        text.push_str(&format!(
            "host a {{ superclass s{}; network eth0 {{ switch lan }} }}\n",
            n - 1
        ));
        let checked = load_str("t.mln", &text).expect("a long chain is fine");
        let host = checked.project().host("a").expect("host a").clone();
        (host.memory, host.startup)
    });
    assert_eq!(memory, 64 << 20);
    assert_eq!(startup, ["echo base"]);
}

#[test]
fn a_hundred_thousand_long_superclass_cycle_is_reported_on_a_small_stack() {
    let codes = on_stack(SMALL_STACK, || {
        let n = 100_000;
        let mut text = String::from("global { project p }\nswitch lan {\n}\n");
        for i in 0..n {
            let next = (i + 1) % n;
            text.push_str(&format!("superclass s{i} {{ superclass s{next} }}\n"));
        }
        text.push_str("host a { superclass s0; network eth0 { switch lan } }\n");
        let report = load_str("t.mln", &text).expect_err("a cycle is refused");
        let mut codes: Vec<Code> = report.diagnostics.iter().map(|d| d.code).collect();
        codes.dedup();
        codes
    });
    assert_eq!(codes, [Code::SuperclassCycle]);
}

#[test]
fn ten_megabytes_of_closing_braces_stop_at_the_error_cap() {
    let text = "}".repeat(10 * 1024 * 1024);
    let report = parse_str("t.mln", &text).expect_err("stray braces are refused");
    let all = places(&report);
    assert_eq!(all.len(), Limits::default().max_errors);
    assert!(all.iter().all(|(code, _)| *code == Code::StrayClose));
    assert_eq!(all[0].1, "t.mln:1:1");
    assert_eq!(all[99].1, "t.mln:1:100");
}

/// `f0.mln` includes `f1.mln`, which includes `f2.mln`, ... up to
/// `f{n}.mln`, which declares the project. Returns the folder.
fn include_chain(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary folder");
    for i in 0..n {
        let text = format!("# file {i}\n#include f{}.mln\n", i + 1);
        std::fs::write(dir.path().join(format!("f{i}.mln")), text).expect("write");
    }
    let last = "global { project p }\nswitch lan {\n}\nhost a { network eth0 { switch lan } }\n";
    std::fs::write(dir.path().join(format!("f{n}.mln")), last).expect("write");
    dir
}

#[test]
fn includes_chained_to_the_depth_limit_load() {
    let depth = Limits::default().max_include_depth;
    let dir = include_chain(depth);
    let checked = load(dir.path().join("f0.mln")).expect("the chain at the limit is fine");
    assert_eq!(checked.project().name, "p");
    assert_eq!(checked.sources.files().count(), depth + 1);
}

#[test]
fn includes_chained_past_the_depth_limit_are_refused_where_the_limit_is_crossed() {
    let depth = Limits::default().max_include_depth;
    let dir = include_chain(1000);
    let path = dir.path().join("f0.mln");
    let report = on_stack(SMALL_STACK, move || load(path).expect_err("too deep"));
    let all = places(&report);
    assert_eq!(all.len(), 1, "{report}");
    assert_eq!(all[0].0, Code::LimitExceeded);
    // The directive in the file that is already `depth` includes deep.
    assert_eq!(all[0].1, format!("f{depth}.mln:2:1"));
}

#[test]
fn an_include_bomb_stops_at_the_include_count_limit() {
    // Each level includes the next twice: 2^13 - 2 includes if followed,
    // and never deeper than the depth limit.
    let dir = tempfile::tempdir().expect("a temporary folder");
    let levels = 12;
    for i in 0..levels {
        let next = format!("#include l{}.mln\n", i + 1);
        std::fs::write(dir.path().join(format!("l{i}.mln")), next.repeat(2)).expect("write");
    }
    std::fs::write(dir.path().join(format!("l{levels}.mln")), "x 1\n").expect("write");
    let report = load(dir.path().join("l0.mln")).expect_err("the bomb is refused");
    let codes: Vec<Code> = report.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, [Code::LimitExceeded], "{report}");
    assert!(
        report.diagnostics.0[0]
            .message
            .contains("more than 1024 includes"),
        "{report}"
    );
}

#[test]
fn a_file_over_the_size_limit_is_refused_unread() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("big.mln");
    // Sparse: costs no disk, and the parser must not read it all anyway.
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(Limits::default().max_file_bytes as u64 + 1)
        .expect("grow");
    let report = load(&path).expect_err("too big");
    let codes: Vec<Code> = report.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, [Code::LimitExceeded]);
}

#[test]
fn nul_bytes_are_refused_at_their_line_and_column() {
    for (text, at) in [
        ("\0global { project p }\n", "t.mln:1:1"),
        ("global {\n  project p\n  x\0y\n}\n", "t.mln:3:4"),
        ("global { project é\0 }\n", "t.mln:1:19"),
        ("global { project p }\n\0", "t.mln:2:1"),
    ] {
        assert_eq!(
            single_error(text),
            (Code::BadEncoding, at.to_string()),
            "{text:?}"
        );
    }
}

#[test]
fn a_nul_byte_in_an_included_file_points_into_that_file() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    std::fs::write(dir.path().join("inc.mln"), "switch lan {\n  hub\0\n}\n").expect("write");
    std::fs::write(
        dir.path().join("main.mln"),
        "global { project p }\n#include inc.mln\n",
    )
    .expect("write");
    let report = load(dir.path().join("main.mln")).expect_err("refused");
    let all = places(&report);
    assert_eq!(all, [(Code::BadEncoding, "inc.mln:2:6".to_string())]);
}

#[test]
fn invalid_utf8_is_refused_at_its_line_and_column() {
    let cases: &[(&[u8], &str)] = &[
        // The very first byte.
        (b"\xffglobal { project p }\n", "t.mln:1:1"),
        // After multi-byte characters: the column counts characters.
        (
            b"global {\n  project p\n  \xc3\xa9\xe2\x82\xac \xfe }\n",
            "t.mln:3:6",
        ),
        // A sequence cut short by the end of the file.
        (b"global { project p }\n\xe2\x82", "t.mln:2:1"),
        // An overlong encoding of `/`, and an encoded surrogate.
        (b"host a { template x\xc0\xaf }\n", "t.mln:1:20"),
        (b"host a {\n memory 1\xed\xa0\x80M }\n", "t.mln:2:10"),
        // A lone continuation byte as the last byte.
        (b"global { project p }\n\x80", "t.mln:2:1"),
    ];
    for (bytes, at) in cases {
        let mut sources = mln_lang::SourceMap::new();
        let d = parse_source(&mut sources, Path::new("t.mln"), bytes, &Limits::default())
            .expect_err("refused");
        assert_eq!(d.len(), 1, "{bytes:?}");
        assert_eq!(d.0[0].code, Code::BadEncoding, "{bytes:?}");
        let span = d.0[0].span.expect("a span");
        assert_eq!(sources.location(span), *at, "{bytes:?}");
        // The span covers the U+FFFD the bad bytes show as.
        assert_eq!(sources.text(span), "\u{fffd}", "{bytes:?}");
    }
}

#[test]
fn the_first_of_a_nul_byte_and_invalid_utf8_is_the_one_reported() {
    let mut sources = mln_lang::SourceMap::new();
    let limits = Limits::default();
    let d =
        parse_source(&mut sources, Path::new("a.mln"), b"x\0\n\xff", &limits).expect_err("refused");
    assert_eq!(d.0[0].message, "NUL byte in the text");
    assert_eq!(sources.location(d.0[0].span.expect("span")), "a.mln:1:2");
    let d =
        parse_source(&mut sources, Path::new("b.mln"), b"x\xff\n\0", &limits).expect_err("refused");
    assert!(
        d.0[0].message.contains("invalid UTF-8"),
        "{}",
        d.0[0].message
    );
    assert_eq!(sources.location(d.0[0].span.expect("span")), "b.mln:1:2");
}

#[test]
fn autoenum_past_the_host_limit_is_refused_before_generating() {
    let max = mln_lang::resolve::MAX_GENERATED_HOSTS;
    for numhosts in [u64::from(max) + 1, u64::from(u32::MAX)] {
        let text =
            format!("global {{\n  project p\n  autoenum {{\n    numhosts {numhosts}\n  }}\n}}\n");
        let (code, at) = single_error(&text);
        assert_eq!(code, Code::LimitExceeded, "{numhosts}");
        assert_eq!(at, "t.mln:4:14", "{numhosts}");
    }
}

#[test]
fn autoenum_blocks_share_one_host_budget() {
    let max = mln_lang::resolve::MAX_GENERATED_HOSTS;
    let half = max / 2 + 1;
    let text = format!(
        "global {{\n  project p\n  autoenum {{ numhosts {half}; hostprefix a }}\n  autoenum1 {{ numhosts {half}; hostprefix b }}\n}}\n"
    );
    let report = load_str("t.mln", &text).expect_err("refused");
    let all = places(&report);
    assert!(
        all.contains(&(Code::LimitExceeded, "t.mln:4:24".to_string())),
        "{all:?}"
    );
}

#[test]
fn an_included_fifo_is_refused_not_waited_on() {
    // A student's file can name a FIFO (or /dev/stdin, a tty): opening it
    // for reading waits for a writer forever. Includes should be regular
    // files. The writer thread below only exists so that the test ends
    // without the fix (the include then reads `x 1`); with the fix it stays
    // blocked, unseen, until the test binary exits.
    let dir = tempfile::tempdir().expect("a temporary folder");
    let fifo = dir.path().join("pipe.mln");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    let writer = fifo.clone();
    std::thread::spawn(move || {
        if let Ok(mut w) = std::fs::OpenOptions::new().write(true).open(writer) {
            let _ = std::io::Write::write_all(&mut w, b"x 1\n");
        }
    });
    std::fs::write(
        dir.path().join("main.mln"),
        "global { project p }\n#include pipe.mln\n",
    )
    .expect("write");
    let report = load(dir.path().join("main.mln")).expect_err("a FIFO is refused");
    let all = places(&report);
    assert_eq!(all, [(Code::IncludeNotFound, "main.mln:2:10".to_string())]);
}
