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

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A database holding readings of `front-1` and `rear-1`.
fn database(dir: &std::path::Path) -> String {
    use coldgate_sensor_drivers::{Quantity, Reading};
    let path = dir.join("db.redb");
    let (_store, mut writer) = coldgate::store::Store::open(&path, 1 << 20).unwrap();
    let at = coldgate::event::now_ms() - 3_600_000;
    let readings = vec![
        Reading::new("front-1".into(), Quantity::Temperature, 5.0, at),
        Reading::new("rear-1".into(), Quantity::Temperature, 6.0, at + 1000),
    ];
    writer
        .commit(&coldgate::store::Batch {
            readings,
            ..Default::default()
        })
        .unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn a_mistyped_filter_is_an_error_listing_the_valid_values() {
    let (code, err) = run(&["events", "--kind", "excurion"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("excursion") && err.contains("door"), "{err}");
    let (code, err) = run(&["events", "--phase", "strated"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("known: ") && err.contains("started"), "{err}");
    // A phase of another kind would match nothing: refused before asking.
    let (code, err) = run(&["events", "--kind", "door", "--phase", "started"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("opened, closed"), "{err}");
    let (code, err) = run(&["events", "--sscc", "10614141234567890"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("18 digits"), "{err}");
    let (code, err) = run(&["lot", "ABC", "--gtin", "9520123456788"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("GTIN-14"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path());
    let (code, err) = run(&["export", "--db", &db, "--sensor", "rear-l"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("no sensor named `rear-l`; known: front-1, rear-1"),
        "{err}"
    );
    let (code, err) = run(&["lots", "--db", &db, "--gtin", "0952012345678"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("GTIN-14"), "{err}");
    let (code, err) = run(&["lots", "--db", &db, "--gtin", "09520123456788"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("no GTIN with lots named `09520123456788`"),
        "{err}"
    );
}

#[test]
fn every_time_option_takes_the_same_syntax() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path());
    let out = Command::new(BIN)
        .args(["export", "--db", &db, "--from", "2h", "--to", "90m"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Both readings are an hour old: after a window that ends 90 minutes ago.
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    let out = Command::new(BIN)
        .args(["export", "--db", &db, "--from", "2h"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    let out = Command::new(BIN)
        .args(["export", "--db", &db, "--from", "2026-01-01T00:00:00Z"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);

    // The same parser on the API commands: accepted at parse time (exit 2
    // would be a refused argument), then the absent daemon is reported (69).
    let url = ["--url", "http://127.0.0.1:9"];
    for args in [
        &[
            "events",
            "--since",
            "90m",
            "--until",
            "2026-11-25T18:00:00Z",
        ][..],
        &["manifest", "unload", "106141412345678908", "--at", "2h"][..],
    ] {
        let mut all = args.to_vec();
        all.extend(url);
        let (code, err) = run(&all);
        assert_eq!(code, Some(69), "{args:?}: {err}");
    }
    for args in [
        &["events", "--since", "yesterday"][..],
        &["export", "--db", &db, "--to", "soon"][..],
        &[
            "manifest",
            "unload",
            "106141412345678908",
            "--at",
            "now-ish",
        ][..],
    ] {
        let (code, err) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains("duration ago (90m, 2d)"), "{args:?}: {err}");
    }
}
