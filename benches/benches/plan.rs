//! Planning speed: the diff of two 10,000-host projects (target < 100 ms).
//!
//! The old project is recorded as fully running; the new one changes about
//! a fifth of the hosts in every way the planner classes (live memory,
//! moves, rebuilds, restarts, new and removed hosts). Measured twice: the
//! planner alone, and with the reduction of the resolved model to the
//! planner's view that `mln upgrade` also pays. Each in wall time and in
//! the thread's CPU time (`plan_cpu/...`), which a busy machine does not
//! inflate.

#![forbid(unsafe_code)]

use std::hint::black_box;

use benches::ThreadCpuTime;
use criterion::measurement::Measurement;
use criterion::{criterion_group, criterion_main, Criterion};
use mln_lang::model::{Address, Host, Interface, Platform, Project, Switch, SwitchPort};
use mln_lang::plan::{diff, plan, DesiredProject, Goal, Observed, PlanOptions, State};

const HOSTS: usize = 10_000;
const PER_SWITCH: usize = 20;
const SERVERS: usize = 10;

/// The old project: `HOSTS` Xen hosts spread over `SERVERS` service hosts,
/// `PER_SWITCH` hosts per switch.
fn old_project() -> Project {
    let mut p = Project {
        name: "big".into(),
        ..Default::default()
    };
    for s in 0..HOSTS / PER_SWITCH {
        let mut sw = Switch::new(format!("sw{s}"));
        for h in 0..PER_SWITCH {
            sw.members.push(SwitchPort {
                host: format!("h{}", s * PER_SWITCH + h),
                interface: "eth0".into(),
            });
        }
        p.switches.push(sw);
    }
    for i in 0..HOSTS {
        let mut h = Host::new(format!("h{i}"));
        h.platform = Platform::Xen;
        h.service_host = Some(format!("server-{}", i % SERVERS));
        h.startup.push(format!("echo {i} > /etc/motd"));
        let mut e = Interface::new("eth0");
        e.switch = Some(format!("sw{}", i / PER_SWITCH));
        e.address = Some(Address::Static {
            addr: std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i as u32 + 1)),
            prefix: Some(8),
        });
        h.interfaces.push(e);
        p.hosts.push(h);
    }
    p
}

/// The new project: a fifth of the hosts changed, 1% removed, 1% added.
fn new_project(old: &Project) -> Project {
    let mut p = old.clone();
    p.hosts.retain(|h| !h.name.ends_with("99"));
    for (i, h) in p.hosts.iter_mut().enumerate() {
        match i % 20 {
            0 | 5 => h.memory *= 2,                          // live
            1 => h.service_host = Some("server-new".into()), // move
            2 => h.template = Some("debian-12".into()),      // rebuild
            3 => h.startup.push("echo changed".into()),      // restart
            _ => {}
        }
    }
    for i in 0..HOSTS / 100 {
        let mut h = Host::new(format!("new{i}"));
        h.platform = Platform::Xen;
        let mut e = Interface::new("eth0");
        e.switch = Some(format!("sw{}", i % (HOSTS / PER_SWITCH)));
        h.interfaces.push(e);
        p.hosts.push(h);
    }
    p
}

fn bench_plan<M: Measurement>(c: &mut Criterion<M>, group: &str) {
    let old = old_project();
    let new = new_project(&old);
    let state = State::as_if_up(&DesiredProject::from_project(&old));
    let observed = Observed::assume_recorded(&state);
    let desired = DesiredProject::from_project(&new);
    let options = PlanOptions::new(Goal::Upgrade);

    // The diff is what the benchmark claims it is, and what the library's
    // one call for it (`plan::diff`) answers.
    let p = plan(&desired, Some(&state), &observed, &options);
    let old_desired = DesiredProject::from_project(&old);
    let whole = diff(&old_desired, &desired, &options).expect("one project");
    assert_eq!(whole.to_json(), p.to_json());
    let counts = p.counts();
    assert!(counts.update > 0 && counts.moved > 0 && counts.rebuild > 0);
    assert!(counts.create >= HOSTS / 100 && counts.destroy > 0);

    let mut g = c.benchmark_group(group);
    g.sample_size(20);
    g.bench_function("diff_10k_hosts", |b| {
        b.iter(|| black_box(plan(black_box(&desired), Some(&state), &observed, &options)))
    });
    g.bench_function("model_and_diff_10k_hosts", |b| {
        b.iter(|| {
            let d = DesiredProject::from_project(black_box(&new));
            black_box(plan(&d, Some(&state), &observed, &options))
        })
    });
    // `plan::diff` as an embedder calls it: the old version taken as up
    // (State::as_if_up) included.
    g.bench_function("plan_diff_call_10k_hosts", |b| {
        b.iter(|| black_box(diff(black_box(&old_desired), &desired, &options)))
    });
    g.finish();
}

fn wall(c: &mut Criterion) {
    bench_plan(c, "plan");
}

/// The same in the benchmark thread's CPU time, which a busy machine does
/// not inflate.
fn cpu(c: &mut Criterion<ThreadCpuTime>) {
    bench_plan(c, "plan_cpu");
}

criterion_group!(wall_time, wall);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = cpu
}
criterion_main!(wall_time, cpu_time);
