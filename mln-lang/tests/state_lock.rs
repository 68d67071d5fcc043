//! The project lock between real processes: a second process is refused
//! with the holder's pid, and a holder killed with SIGKILL leaves neither a
//! stale lock nor a torn state.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use mln_lang::state::{State, StateError, StateStore};

/// Holds the lock of project `lab` under the folder it is given, saves a
/// state, says so on stdout and waits to be killed.
#[test]
#[ignore = "run as a child process by the tests below"]
fn child_holds_the_lock() {
    let Some(root) = std::env::var_os("MLN_STATE_LOCK_CHILD_ROOT") else {
        return;
    };
    let store = StateStore::open(&root, "lab").unwrap();
    let lock = store.lock().unwrap();
    store.save(&lock, &State::new("lab")).unwrap();
    println!("MLN-LOCKED");
    // Keep saving: a kill can land in the middle of a write.
    loop {
        let mut s = State::new("lab");
        s.model = Some(serde_json::json!({ "padding": "x".repeat(100_000) }));
        store.save(&lock, &s).unwrap();
    }
}

#[test]
fn another_process_is_refused_then_a_killed_holder_frees_the_lock() {
    let root = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_holds_the_lock",
            "--ignored",
            "--nocapture",
        ])
        .env("MLN_STATE_LOCK_CHILD_ROOT", root.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let locked = BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("MLN-LOCKED"));
    assert!(locked, "the child never took the lock");

    let store = StateStore::open(root.path(), "lab").unwrap();
    match store.lock() {
        Err(StateError::Locked { project, pid }) => {
            assert_eq!(project, "lab");
            assert_eq!(pid, Some(child.id()));
        }
        other => panic!("expected the lock to be held: {other:?}"),
    }

    child.kill().unwrap(); // SIGKILL, possibly mid-write
    child.wait().unwrap();
    // The kernel released the lock with the process; the state is whole.
    let lock = store.lock().unwrap();
    let state = store.load().unwrap().unwrap();
    assert_eq!(state.project, "lab");
    store.save(&lock, &State::new("lab")).unwrap();
    assert_eq!(store.load().unwrap(), Some(State::new("lab")));
}
