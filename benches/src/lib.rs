//! Generators of test projects shared by the benchmarks.
