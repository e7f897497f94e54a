//! Files the command line cannot read: the message names the path, the user
//! the command ran as and the owner, group and mode of what refused, and the
//! exit code is not 78 (that one says the configuration's content is wrong).
//!
//! CI runs as root, which reads every file whatever its mode: there the
//! command is run as `nobody` through `setpriv`. As another user the file is
//! made mode 0000 instead. Each test asserts the read really failed (exit 77
//! and "permission denied"), so neither way can pass without the refusal.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");

fn is_root() -> bool {
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs the binary as a user who may not read what `locked` was given
/// (`nobody` when we are root); returns its output and that user's name.
fn run_refused(args: &[&std::ffi::OsStr]) -> (Output, String) {
    if is_root() {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
            .args(args)
            .output()
            .expect("setpriv (util-linux) runs");
        let name = std::fs::read_to_string("/etc/passwd")
            .unwrap()
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.get(2) == Some(&"65534")).then(|| f[0].to_string())
            })
            .unwrap_or_else(|| "uid 65534".into());
        (out, name)
    } else {
        let out = Command::new(BIN).args(args).output().unwrap();
        (out, std::env::var("USER").unwrap_or_default())
    }
}

/// A mode that refuses the user `run_refused` runs as.
fn locked_mode(readable_by_group: bool) -> u32 {
    match (is_root(), readable_by_group) {
        (true, true) => 0o640,
        (true, false) => 0o600,
        (false, _) => 0o000,
    }
}

#[test]
fn an_unreadable_configuration_names_path_user_and_mode_and_exits_77() {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    let path = dir.path().join("coldgate.toml");
    std::fs::write(&path, "gateway_id = \"g\"\n").unwrap();
    let mode = locked_mode(true);
    chmod(&path, mode);
    let (out, user) = run_refused(&[
        "check-config".as_ref(),
        "--config".as_ref(),
        path.as_os_str(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("permission denied"), "{err}");
    assert!(err.contains(&format!("as user {user}")), "{err}");
    assert!(err.contains(&format!("{mode:04o}")), "{err}");
    assert!(
        !err.contains("os error"),
        "raw OS text instead of words: {err}"
    );
    if is_root() {
        // root:root 0640, run as nobody: joining the group would do.
        assert!(err.contains("add nobody to group root"), "{err}");
    }

    // A missing file is EX_NOINPUT, also not 78.
    let missing = dir.path().join("absent.toml");
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&missing)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(66), "{err}");
    assert_eq!(err.matches("such file").count(), 1, "said once: {err}");
}

#[test]
fn a_database_behind_a_closed_directory_is_unreadable_not_missing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let db = state.join("coldgate.redb");
    drop(coldgate::store::Store::open(&db, 1 << 20).unwrap());
    chmod(dir.path(), 0o755);
    // Like /var/lib/coldgate: the directory is the daemon's alone.
    let mode = if is_root() { 0o700 } else { 0o000 };
    chmod(&state, mode);
    let (out, user) = run_refused(&[
        "audit".as_ref(),
        "verify".as_ref(),
        "--db".as_ref(),
        db.as_os_str(),
    ]);
    chmod(&state, 0o755);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{err}");
    assert!(!err.contains("does not exist"), "{err}");
    assert!(err.contains("cannot open database"), "{err}");
    assert!(err.contains(&format!("as user {user}")), "{err}");
    assert!(
        err.contains(&format!("the directory {} is", state.display())),
        "{err}"
    );

    // The file itself refused (read and write, as redb opens it).
    let mode = locked_mode(false);
    chmod(&db, mode);
    let (out, _) = run_refused(&["export".as_ref(), "--db".as_ref(), db.as_os_str()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{err}");
    assert!(err.contains("permission denied to read and write"), "{err}");
    assert!(
        err.contains(&format!("the file {} is", db.display()))
            && err.contains(&format!("{mode:04o}")),
        "{err}"
    );
}

#[test]
fn an_unreadable_certificate_is_named_with_the_user_and_exits_77() {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not even PEM").unwrap();
    let mode = locked_mode(false);
    chmod(&ca, mode);
    let config = dir.path().join("coldgate.toml");
    std::fs::write(
        &config,
        format!(
            "gateway_id = \"g\"\n[mqtt.tls]\nca_file = \"{}\"\n\
             [[zones]]\nid = \"z\"\nprofile = \"refrigerated\"\n\
             [[sensors]]\nid = \"s\"\nzone = \"z\"\nkind = \"sim\"\n[sim]\n",
            ca.display()
        ),
    )
    .unwrap();
    chmod(&config, 0o644);
    let (out, user) = run_refused(&[
        "check-config".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{err}");
    assert!(err.contains("mqtt.tls.ca_file"), "{err}");
    assert!(err.contains(&ca.display().to_string()), "{err}");
    assert!(
        err.contains(&format!("permission denied to read as user {user}")),
        "{err}"
    );
    assert!(err.contains(&format!("{mode:04o}")), "{err}");

    // A content problem beside it: the configuration is wrong, 78.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("profile = \"refrigerated\"", "profile = \"nope\""),
    )
    .unwrap();
    let (out, _) = run_refused(&[
        "check-config".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("2 problem"), "{err}");
}
