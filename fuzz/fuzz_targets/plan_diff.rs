//! Two project texts, separated by the first NUL byte (which no project
//! file may contain), → two checked projects → plans from the first to
//! the second for every goal. Plans must be well formed (every dependency
//! names an earlier action), render, serialise, and planning a running
//! project against itself must find nothing to do.
//!
//! Without a NUL byte the input is both the old and the new project.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mln_lang::plan::{diff, plan, DesiredProject, Goal, Observed, Plan, PlanOptions, State};
use mln_lang_fuzz::load;

const GOALS: [Goal; 5] = [
    Goal::Build,
    Goal::Up,
    Goal::Stop,
    Goal::Remove,
    Goal::Upgrade,
];

fuzz_target!(|data: &[u8]| {
    let (old, new) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, data),
    };
    let Some(old) = load(old) else { return };
    let Some(new) = load(new) else { return };
    let old = DesiredProject::from_project(&old);
    let new = DesiredProject::from_project(&new);

    for goal in GOALS {
        well_formed(&plan(
            &new,
            None,
            &Observed::default(),
            &PlanOptions::new(goal),
        ));
    }
    // The old project recorded as up and found running, as `mln diff`
    // plans it (refused between two different projects).
    let state = State::as_if_up(&old);
    let observed = Observed::assume_recorded(&state);
    for goal in GOALS {
        let options = PlanOptions::new(goal);
        match diff(&old, &new, &options) {
            Ok(p) => well_formed(&p),
            Err(e) => assert_ne!(old.name, new.name, "{e}"),
        }
        // Recorded, but nothing found running (after a reboot, say).
        well_formed(&plan(&new, Some(&state), &Observed::default(), &options));
    }
    if let Some(first) = new.hosts.keys().next() {
        let options = PlanOptions::new(Goal::Upgrade).only([first.clone()]);
        well_formed(&plan(&new, Some(&state), &observed, &options));
    }

    // Nothing to do when the project already runs as written. (KVM has no
    // backend, so such a host can never be recorded as running.)
    if old.hosts.values().all(|h| h.platform.backend().is_some()) {
        for goal in [Goal::Up, Goal::Upgrade] {
            let again = plan(&old, Some(&state), &observed, &PlanOptions::new(goal));
            assert!(
                again.is_empty(),
                "{goal:?} of a running project is not empty:\n{}",
                again.render_actions()
            );
        }
    }
});

/// Ids are positions, every dependency names an action of the plan, the
/// dependencies form no cycle, and the plan renders and serialises.
///
/// (The list itself is not in dependency order: switches and hooks are
/// appended after the actions that wait for them, so the executor must
/// follow `after`, not the list.)
fn well_formed(p: &Plan) {
    let n = p.actions.len();
    let mut waiting_on = vec![0usize; n];
    let mut waiters: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, a) in p.actions.iter().enumerate() {
        assert_eq!(a.id.0, i, "action id is not its position");
        for d in &a.after {
            assert!(
                d.0 < n && d.0 != i,
                "`{}` waits for a missing action or itself",
                a.op.describe()
            );
            waiting_on[i] += 1;
            waiters[d.0].push(i);
        }
    }
    // Kahn: everything can run once what it waits for has run.
    let mut ready: Vec<usize> = (0..n).filter(|&i| waiting_on[i] == 0).collect();
    let mut done = 0;
    while let Some(i) = ready.pop() {
        done += 1;
        for &w in &waiters[i] {
            waiting_on[w] -= 1;
            if waiting_on[w] == 0 {
                ready.push(w);
            }
        }
    }
    assert_eq!(
        done,
        n,
        "the dependencies have a cycle:\n{}",
        p.render_actions()
    );
    let _ = p.render_diff();
    let _ = p.render_actions();
    let json = p.to_json();
    let back: Plan = serde_json::from_str(&json).expect("plan JSON reads back");
    assert_eq!(&back, p, "plan JSON does not round-trip");
}
