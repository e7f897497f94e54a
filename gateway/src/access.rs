//! Why a file cannot be opened, in words an operator can act on.
//!
//! "Permission denied" alone sends people looking for a bad configuration.
//! The operator needs the user the command ran as, the owner, group and mode
//! of whatever refused (the file or a directory on the way) and what to do.
//! The user is read from `/proc/self/status` and named from `/etc/passwd`
//! and `/etc/group`, so no `unsafe` libc call is needed.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What the caller wanted to do with the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    /// redb opens its file for reading and writing, even to read it.
    ReadWrite,
}

impl Access {
    fn verb(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::ReadWrite => "read and write",
        }
    }

    /// The permission bits (owner position) this access needs.
    fn bits(self) -> u32 {
        match self {
            Access::Read => 0o4,
            Access::ReadWrite => 0o6,
        }
    }
}

/// The same error (its kind kept, so exit codes can follow it) with a message
/// naming the user, and for a refusal the owner, group and mode of what
/// refused and what to do about it.
pub fn explain(path: &Path, access: Access, error: io::Error) -> io::Error {
    let kind = error.kind();
    let message = match kind {
        io::ErrorKind::PermissionDenied => {
            let me = Identity::current();
            let mut m = format!("permission denied to {} as user {}", access.verb(), me.name);
            if let Some(why) = refusal(path, access, &me) {
                m.push_str("; ");
                m.push_str(&why);
            }
            m
        }
        io::ErrorKind::NotFound => match missing_parent(path) {
            Some(dir) => format!(
                "no such file: the directory {} does not exist",
                dir.display()
            ),
            None => "no such file".to_string(),
        },
        _ => return error,
    };
    io::Error::new(kind, message)
}

/// The sysexits code for an error opening a file: 77 (EX_NOPERM) for a
/// refusal, 66 (EX_NOINPUT) for a missing file, 74 (EX_IOERR) otherwise.
/// Never 78: that says the configuration's content is wrong.
pub fn exit_code(kind: io::ErrorKind) -> u8 {
    match kind {
        io::ErrorKind::PermissionDenied => 77,
        io::ErrorKind::NotFound => 66,
        _ => 74,
    }
}

/// Who this process is, for access checks and messages.
struct Identity {
    uid: u32,
    groups: Vec<u32>,
    name: String,
}

impl Identity {
    fn current() -> Identity {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        // "Uid:\treal\teffective\tsaved\tfs": the kernel checks the fs id.
        let field = |key: &str| -> Vec<u32> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|rest| {
                    rest.split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        let uid = field("Uid:").get(3).copied().unwrap_or(u32::MAX);
        let mut groups = field("Groups:");
        groups.extend(field("Gid:").get(3));
        let name = user_name(uid).unwrap_or_else(|| format!("uid {uid}"));
        Identity { uid, groups, name }
    }

    fn may(&self, meta: &std::fs::Metadata, bits: u32) -> bool {
        let mode = meta.mode();
        let granted = if self.uid == 0 {
            // Root passes every check but execute, which needs one x bit.
            return bits & 1 == 0 || mode & 0o111 != 0;
        } else if meta.uid() == self.uid {
            mode >> 6
        } else if self.groups.contains(&meta.gid()) {
            mode >> 3
        } else {
            mode
        };
        granted & bits == bits
    }
}

/// "the file is root:coldgate 0640 -- run as root or add alice to group
/// coldgate", for the first thing on the way to `path` that refuses `me`.
fn refusal(path: &Path, access: Access, me: &Identity) -> Option<String> {
    let absolute = std::path::absolute(path).ok()?;
    let mut dirs: Vec<&Path> = absolute.ancestors().skip(1).collect();
    dirs.reverse();
    for dir in dirs {
        let meta = std::fs::metadata(dir).ok()?;
        if !me.may(&meta, 0o1) {
            return Some(describe("the directory", dir, &meta, 0o1, me));
        }
    }
    let meta = std::fs::metadata(&absolute).ok()?;
    Some(describe("the file", &absolute, &meta, access.bits(), me))
}

fn describe(what: &str, path: &Path, meta: &std::fs::Metadata, bits: u32, me: &Identity) -> String {
    let owner = user_name(meta.uid()).unwrap_or_else(|| meta.uid().to_string());
    let group = group_name(meta.gid()).unwrap_or_else(|| meta.gid().to_string());
    let mode = meta.mode() & 0o7777;
    let group_grants = (mode >> 3) & bits == bits;
    let advice = if group_grants && !me.groups.contains(&meta.gid()) {
        format!(
            "run as root, or add {} to group {group} (then log in again)",
            me.name
        )
    } else if meta.uid() == 0 {
        "run as root".to_string()
    } else {
        format!("run as root or as {owner}")
    };
    format!(
        "{what} {} is {owner}:{group} {mode:04o} -- {advice}",
        path.display()
    )
}

/// The nearest missing directory above `path`, when the file's own
/// directory is what is missing.
fn missing_parent(path: &Path) -> Option<PathBuf> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty())?;
    match std::fs::metadata(parent) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Some(parent.to_path_buf()),
        _ => None,
    }
}

fn user_name(uid: u32) -> Option<String> {
    name_in("/etc/passwd", uid)
}

fn group_name(gid: u32) -> Option<String> {
    name_in("/etc/group", gid)
}

/// The name on the line of a `name:x:id:...` database whose third field is
/// `id`.
fn name_in(file: &str, id: u32) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let number = fields.nth(1)?.parse::<u32>().ok()?;
        (number == id).then(|| name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_in_a_missing_directory_names_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope").join("coldgate.toml");
        let e = std::fs::File::open(&path).unwrap_err();
        let e = explain(&path, Access::Read, e);
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("nope does not exist"), "{e}");
    }

    #[test]
    fn group_bits_that_would_grant_access_suggest_joining_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "x").unwrap();
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o640);
        std::fs::set_permissions(&path, perms).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        // Someone who is neither the owner nor in the group.
        let stranger = Identity {
            uid: meta.uid().wrapping_add(4242),
            groups: vec![meta.gid().wrapping_add(4242)],
            name: "alice".into(),
        };
        assert!(!stranger.may(&meta, 0o4));
        let text = describe("the file", &path, &meta, 0o4, &stranger);
        assert!(text.contains("0640"), "{text}");
        assert!(text.contains("add alice to group"), "{text}");
        let member = Identity {
            groups: vec![meta.gid()],
            ..stranger
        };
        assert!(member.may(&meta, 0o4));
        assert!(!member.may(&meta, 0o6));
        let text = describe("the file", &path, &meta, 0o6, &member);
        assert!(
            text.contains("run as root") && !text.contains("add alice"),
            "{text}"
        );
    }

    #[test]
    fn exit_codes_are_never_the_bad_configuration_one() {
        assert_eq!(exit_code(io::ErrorKind::PermissionDenied), 77);
        assert_eq!(exit_code(io::ErrorKind::NotFound), 66);
        assert_eq!(exit_code(io::ErrorKind::InvalidData), 74);
    }
}
