//! Parser throughput on generated projects of 10 to 100,000 hosts.
//!
//! Two groups: `parse` in wall-clock time (criterion's default) and
//! `parse_cpu` in the thread's CPU time, which stays meaningful on a busy
//! shared machine. Both time `parse_source` alone: dropping the tree
//! afterwards is left out of the timing (`iter_with_large_drop`), and is
//! measured on its own in `parse_and_drop`.

#![forbid(unsafe_code)]

use std::hint::black_box;
use std::path::Path;

use benches::ThreadCpuTime;
use criterion::measurement::Measurement;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mln_lang::syntax::{parse_source, Ast, Limits};
use mln_lang::SourceMap;

const SIZES: [usize; 4] = [10, 1_000, 10_000, 100_000];

fn parse_once(text: &str, limits: &Limits) -> (SourceMap, Ast) {
    let mut sources = SourceMap::new();
    let ast = parse_source(
        &mut sources,
        Path::new("bench.mln"),
        black_box(text.as_bytes()),
        limits,
    );
    match ast {
        Ok(ast) => (sources, ast),
        Err(d) => panic!("generated project does not parse: {d}"),
    }
}

fn throughput<M: Measurement>(c: &mut Criterion<M>, group: &str, drop_too: bool) {
    let limits = Limits::default();
    let mut group = c.benchmark_group(group);
    for hosts in SIZES {
        let text = benches::generate_project(hosts);
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.sample_size(if hosts >= 10_000 { 10 } else { 50 });
        group.bench_with_input(BenchmarkId::from_parameter(hosts), &text, |b, text| {
            if drop_too {
                b.iter(|| parse_once(text, &limits).1.items.len());
            } else {
                b.iter_with_large_drop(|| parse_once(text, &limits));
            }
        });
    }
    group.finish();
}

fn wall(c: &mut Criterion) {
    throughput(c, "parse", false);
}

fn cpu(c: &mut Criterion<ThreadCpuTime>) {
    throughput(c, "parse_cpu", false);
    throughput(c, "parse_and_drop_cpu", true);
}

criterion_group!(wall_time, wall);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = cpu
}
criterion_main!(wall_time, cpu_time);
