//! Parser throughput on generated projects of 10 to 100,000 hosts.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mln_lang::syntax::{parse_source, Limits};
use mln_lang::SourceMap;

fn parse(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("parse");
    for hosts in [10usize, 1_000, 10_000, 100_000] {
        let text = benches::generate_project(hosts);
        group.throughput(Throughput::Bytes(text.len() as u64));
        if hosts >= 10_000 {
            group.sample_size(20);
        }
        group.bench_with_input(BenchmarkId::from_parameter(hosts), &text, |b, text| {
            b.iter(|| {
                let mut sources = SourceMap::new();
                let ast = parse_source(
                    &mut sources,
                    Path::new("bench.mln"),
                    black_box(text.as_bytes()),
                    &limits,
                );
                black_box(ast.map(|a| a.items.len()).unwrap_or(0))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
