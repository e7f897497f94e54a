//! What the command line prints and refuses: a closed pipe, filter values,
//! times.

use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");

/// A pipe whose reader is already gone: the first write to it fails with
/// EPIPE, deterministically (no race with a reader like `head`).
fn closed_pipe() -> Stdio {
    let mut reader = Command::new("true").stdin(Stdio::piped()).spawn().unwrap();
    let writer = reader.stdin.take().unwrap();
    assert!(reader.wait().unwrap().success());
    Stdio::from(writer)
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.redb");
    drop(coldgate::store::Store::open(&db, 1 << 20).unwrap());
    let csv = dir.path().join("t.csv");
    std::fs::write(&csv, "time,temperature_c\n2026-01-01T00:00:00Z,5\n").unwrap();
    let db = db.to_str().unwrap();
    let csv = csv.to_str().unwrap();
    for args in [
        &["decode", "gs1", "(00)106141412345678908"][..],
        &["mkt", csv][..],
        // export writes through its own buffered writer.
        &["export", "--db", db][..],
    ] {
        let out = Command::new(BIN)
            .args(args)
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.is_empty(), "{args:?} said: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}
