//! How a failed command is told: one line of causes, each said once, and an
//! exit code that says which kind of failure it was.
//!
//! Exit codes (sysexits.h), documented in docs/install.md:
//! 78 EX_CONFIG a configuration whose content is wrong (systemd does not
//! restart); 77 EX_NOPERM a file that may not be read; 66 EX_NOINPUT a file
//! that is not there; 74 EX_IOERR another input/output failure; 69
//! EX_UNAVAILABLE the daemon cannot be reached; 1 anything else.

use crate::config::ConfigError;
use crate::store::StoreError;

/// Exit code for a configuration that cannot be used (sysexits EX_CONFIG):
/// systemd is told not to restart on it.
pub const EXIT_CONFIG: u8 = 78;

/// The error and its causes joined by ": ", leaving out a cause whose text
/// the message before it already carries (thiserror messages often embed
/// their source, which `{:#}` would then print twice).
pub fn render(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Whether the command failed only because whoever read its output stopped
/// reading (`| head`): not an error worth a word.
pub fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The exit code of the first cause that has a meaning of its own.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    use crate::access::exit_code as io_code;
    for cause in error.chain() {
        if let Some(c) = cause.downcast_ref::<ConfigError>() {
            // A certificate or token the configuration names that cannot be
            // read is a permissions matter too, unless content is also wrong.
            return c.unreadable().map_or(EXIT_CONFIG, io_code);
        }
        if let Some(s) = cause.downcast_ref::<StoreError>() {
            match s {
                StoreError::Missing(_) => return io_code(std::io::ErrorKind::NotFound),
                StoreError::Unreadable { source, .. } => return io_code(source.kind()),
                _ => {}
            }
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io_code(io.kind());
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let missing = std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "No such file or directory (os error 2)",
        );
        let error = anyhow::Error::new(ConfigError::Read {
            path: "/etc/coldgate/coldgate.toml".into(),
            source: missing,
        })
        .context("cannot start");
        let text = render(&error);
        assert_eq!(text.matches("os error 2").count(), 1, "{text}");
        assert!(text.starts_with("cannot start: cannot read configuration"));
        assert_eq!(exit_code(&error), 66);
    }

    #[test]
    fn a_bad_configuration_is_78_and_a_refused_file_77() {
        let invalid = anyhow::Error::new(ConfigError::Invalid {
            origin: "c.toml".into(),
            problems: vec![],
        });
        assert_eq!(exit_code(&invalid), 78);
        let refused = anyhow::Error::new(StoreError::Unreadable {
            path: "/var/lib/coldgate/coldgate.redb".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        });
        assert_eq!(exit_code(&refused), 77);
        assert_eq!(exit_code(&anyhow::anyhow!("other")), 1);
    }
}
