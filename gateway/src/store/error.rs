use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {} does not exist", .0.display())]
    Missing(PathBuf),
    /// The file is there but refused (permissions, a directory on the way):
    /// told apart from `Missing` so nobody goes looking for a lost database.
    #[error("cannot open database {}: {source}", .path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database {} is in use by another process (a running coldgate daemon?); stop it, or work on a copy of the file", .0.display())]
    InUse(PathBuf),
    #[error("database {} was written by a newer coldgate (schema {found}, this build knows {known}); upgrade coldgate — the file is left untouched", .path.display())]
    NewerSchema {
        path: PathBuf,
        found: u64,
        known: u64,
    },
    #[error("{} is not a coldgate database", .0.display())]
    NotColdgate(PathBuf),
    #[error("database {} cannot be opened: {source}; it is left untouched — move it aside to start a new one, and keep it for recovery", .path.display())]
    Open {
        path: PathBuf,
        source: Box<redb::DatabaseError>,
    },
    #[error("database {} cannot be created: {source}", .path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database {} is closed after a storage error and not yet reopened; it is retried", .0.display())]
    Closed(PathBuf),
    #[error("event seq {found} given where {expected} was expected (a bug in the caller)")]
    EventOrder { found: u64, expected: u64 },
    /// A record could not be serialised: the commit is refused, so an empty
    /// or partial record never replaces the last good one.
    #[error("the {what} cannot be serialised ({reason}); the commit is refused and the last stored one kept")]
    Encode { what: &'static str, reason: String },
    #[error("database {}: {source}", .path.display())]
    Db {
        path: PathBuf,
        source: Box<redb::Error>,
    },
    /// The reading journal (docs/journal.md) could not be read or written.
    #[error("reading journal: {0}")]
    Journal(#[from] super::journal::JournalError),
    #[error("reading journal: {0}")]
    JournalPayload(#[from] super::journal::payload::PayloadError),
}

impl StoreError {
    /// Serialises `value` as JSON for the store, or fails the commit.
    pub fn encode<T: serde::Serialize + ?Sized>(
        what: &'static str,
        value: &T,
    ) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(value).map_err(|e| StoreError::Encode {
            what,
            reason: e.to_string(),
        })
    }

    /// Whether the disk (or the file system's quota) is full: `ENOSPC` or
    /// `EDQUOT` underneath.
    pub fn is_disk_full(&self) -> bool {
        let io = match self {
            StoreError::Db { source, .. } => match source.as_ref() {
                redb::Error::Io(e) => Some(e),
                redb::Error::Backend(b) => b.downcast_ref::<std::io::Error>(),
                _ => None,
            },
            StoreError::Open { source, .. } => match source.as_ref() {
                redb::DatabaseError::Storage(redb::StorageError::Io(e)) => Some(e),
                _ => None,
            },
            StoreError::Journal(super::journal::JournalError::Io { source, .. }) => Some(source),
            _ => None,
        };
        io.is_some_and(|e| {
            e.kind() == std::io::ErrorKind::StorageFull
                || e.kind() == std::io::ErrorKind::QuotaExceeded
                || matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        })
    }

    pub(crate) fn open(path: &Path, e: redb::DatabaseError) -> StoreError {
        match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse(path.to_path_buf()),
            other => StoreError::Open {
                path: path.to_path_buf(),
                source: Box::new(other),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serialises as an error, like a map whose keys are not strings.
    struct Unserialisable;

    impl serde::Serialize for Unserialisable {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("keys must be strings"))
        }
    }

    #[test]
    fn a_record_that_cannot_be_serialised_is_an_error_never_an_empty_record() {
        let err = StoreError::encode("engine state", &Unserialisable).unwrap_err();
        assert!(matches!(
            err,
            StoreError::Encode {
                what: "engine state",
                ..
            }
        ));
        assert!(err.to_string().contains("keys must be strings"), "{err}");
        assert_eq!(StoreError::encode("n", &1u8).unwrap(), b"1");
    }
}
