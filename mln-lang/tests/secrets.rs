//! A plain-text `root_passwd` never leaves the front end as plain text: the
//! planner's host spec, a plan's JSON and the model the state records all
//! carry its SHA-512 crypt hash; a hash written in the project passes as is.

use mln_lang::plan::{plan, with_hashed_passwords, DesiredProject, Goal, Observed, PlanOptions};

const PROJECT: &str = "global { project sec }\n\
    host a { root_passwd Sup3rSecret }\n\
    host b { root_passwd Sup3rSecret }\n\
    host c { root_passwd $6$salt$alreadyhashed }\n";

#[test]
fn plain_text_root_password_is_hashed_before_planning_and_recording() {
    let checked = mln_lang::load_str("sec.mln", PROJECT).expect("valid");
    let desired = DesiredProject::from_project(checked.project());
    let a = desired.hosts["a"]
        .guest
        .root_passwd
        .clone()
        .expect("a has one");
    let b = desired.hosts["b"]
        .guest
        .root_passwd
        .clone()
        .expect("b has one");
    assert!(a.starts_with("$6$"), "{a}");
    assert_ne!(a, b, "two hosts share a hash: the salt must differ");
    assert_eq!(
        desired.hosts["c"].guest.root_passwd.as_deref(),
        Some("$6$salt$alreadyhashed")
    );
    // Stable: planning the same file again sees no change.
    let again = DesiredProject::from_project(checked.project());
    assert_eq!(
        again.hosts["a"].guest.root_passwd.as_deref(),
        Some(a.as_str())
    );

    let p = plan(
        &desired,
        None,
        &Observed::default(),
        &PlanOptions::new(Goal::Up),
    );
    assert!(!p.to_json().contains("Sup3rSecret"));
    assert!(!p.render_diff().contains("Sup3rSecret"));

    let recorded = serde_json::to_string(&with_hashed_passwords(checked.project())).unwrap();
    assert!(!recorded.contains("Sup3rSecret"), "{recorded}");
    assert!(recorded.contains(&a));
}
