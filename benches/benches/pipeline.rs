//! The whole front end on generated projects of 10 to 100,000 hosts:
//! parse, resolve and check (`mln_lang::load_str`), plus resolve and check
//! alone on an already parsed tree. Target: 10,000 hosts in under 50 ms
//! on one core. Measured in the thread's CPU time (see `parse.rs` for why)
//! and in wall-clock time.

#![forbid(unsafe_code)]

use std::hint::black_box;

use benches::ThreadCpuTime;
use criterion::measurement::Measurement;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const SIZES: [usize; 4] = [10, 1_000, 10_000, 100_000];

fn pipeline<M: Measurement>(c: &mut Criterion<M>, suffix: &str) {
    let mut whole = c.benchmark_group(format!("parse_resolve_check{suffix}"));
    for hosts in SIZES {
        let text = benches::generate_project(hosts);
        whole.sample_size(if hosts >= 10_000 { 10 } else { 30 });
        whole.bench_with_input(BenchmarkId::from_parameter(hosts), &text, |b, text| {
            b.iter_with_large_drop(|| match mln_lang::load_str("bench.mln", black_box(text)) {
                Ok(checked) => checked,
                Err(report) => panic!("generated project is invalid: {report}"),
            });
        });
    }
    whole.finish();

    let mut later = c.benchmark_group(format!("resolve_check{suffix}"));
    for hosts in SIZES {
        let text = benches::generate_project(hosts);
        let parsed = match mln_lang::parse_str("bench.mln", &text) {
            Ok(p) => p,
            Err(report) => panic!("generated project does not parse: {report}"),
        };
        later.sample_size(if hosts >= 10_000 { 10 } else { 30 });
        later.bench_with_input(BenchmarkId::from_parameter(hosts), &parsed, |b, parsed| {
            b.iter_with_large_drop(|| {
                let resolved = match parsed.resolve() {
                    Ok(r) => r,
                    Err(report) => panic!("generated project does not resolve: {report}"),
                };
                let diags = parsed.check(&resolved);
                (resolved, diags)
            });
        });
    }
    later.finish();
}

fn wall(c: &mut Criterion) {
    pipeline(c, "");
}

fn cpu(c: &mut Criterion<ThreadCpuTime>) {
    pipeline(c, "_cpu");
}

criterion_group!(wall_time, wall);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = cpu
}
criterion_main!(wall_time, cpu_time);
