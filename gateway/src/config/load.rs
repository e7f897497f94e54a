//! Reading the file and turning every kind of failure into problems that
//! name where they are.

use std::fmt;
use std::path::{Path, PathBuf};

use super::Config;

/// One thing wrong with a configuration: where (a key path such as
/// `sensors[2].zone`, with `line:column` for syntax errors) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
    /// Set when the problem is a file (certificate, key, password, token)
    /// that could not be read: a matter of permissions or presence, not of
    /// the configuration's content, and told apart by the exit code.
    pub unreadable: Option<std::io::ErrorKind>,
}

impl Problem {
    /// Both parts are bounded, so a problem echoing a huge value (a 10 MB
    /// string in the file) stays a short message.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: truncate_to(&path.into(), 2 * MAX_ECHO),
            message: truncate_to(&message.into(), 8 * MAX_ECHO),
            unreadable: None,
        }
    }

    /// This problem, marked as a file that could not be read (`kind`:
    /// PermissionDenied, NotFound, ...); content problems keep `None`.
    pub fn unreadable(mut self, kind: std::io::ErrorKind) -> Self {
        if matches!(
            kind,
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::NotFound
        ) {
            self.unreadable = Some(kind);
        }
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} has {} problem(s):\n{}", .origin, .problems.len(), list(.problems))]
    Invalid {
        origin: String,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// When every problem is a file that cannot be read (the configuration
    /// itself, or a certificate, key, password or token it names): what the
    /// OS said about the first. `None` when any problem is about content.
    pub fn unreadable(&self) -> Option<std::io::ErrorKind> {
        match self {
            // Not UTF-8: the content is wrong, like any bad configuration.
            ConfigError::Read { source, .. }
                if source.kind() == std::io::ErrorKind::InvalidData =>
            {
                None
            }
            ConfigError::Read { source, .. } => Some(source.kind()),
            ConfigError::Invalid { problems, .. } => {
                let kinds: Option<Vec<_>> = problems.iter().map(|p| p.unreadable).collect();
                kinds.and_then(|k| k.first().copied())
            }
        }
    }

    /// The problems, for callers (the HTTP API, SIGHUP) that report them.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            ConfigError::Read { path, source } => {
                vec![
                    Problem::new("", format!("cannot read {}: {source}", path.display()))
                        .unreadable(source.kind()),
                ]
            }
            ConfigError::Invalid { problems, .. } => problems.clone(),
        }
    }
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The largest configuration (or token, password, certificate) file read:
/// far beyond any real one, small enough that a file pointing at
/// `/dev/zero` cannot grow the process.
pub const MAX_FILE_SIZE: u64 = 1 << 20;

/// Longest value echoed back in a message; the rest is cut and counted.
pub const MAX_ECHO: usize = 120;

/// Reads a file of at most `limit` bytes that must be a regular file.
/// FIFOs, devices, sockets and directories are refused before any byte is
/// read (opened non-blocking, so a FIFO without a writer cannot hang us),
/// and a file that grows past `limit` while read is refused too.
pub fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| crate::access::explain(path, crate::access::Access::Read, e))?;
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("it is {what}, not a regular file"),
        ));
    }
    let too_big = || {
        Error::new(
            ErrorKind::InvalidInput,
            format!("it is larger than the limit of {limit} bytes"),
        )
    };
    if meta.len() > limit {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(bytes)
}

/// `value` as echoed in a message: at most [`MAX_ECHO`] characters, the
/// rest replaced by a count.
pub fn truncate_echo(value: &str) -> String {
    truncate_to(value, MAX_ECHO)
}

fn truncate_to(value: &str, max: usize) -> String {
    match value.char_indices().nth(max) {
        None => value.to_string(),
        Some((cut, _)) => format!("{}… ({} more bytes)", &value[..cut], value.len() - cut),
    }
}

/// Reads, parses and validates the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_checked(path, &|_| Vec::new())
}

/// [`load`], with `more` checks whose problems are listed beside the
/// meaning checks' (`daemon::preflight` passes the ones that read files).
pub fn load_checked(
    path: &Path,
    more: &dyn Fn(&Config) -> Vec<Problem>,
) -> Result<Config, ConfigError> {
    let bytes = read_bounded(path, MAX_FILE_SIZE).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()),
    })?;
    parse_checked(&text, &path.display().to_string(), more)
}

/// Parses and validates `text`; `origin` names it in messages.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    parse_checked(text, origin, &|_| Vec::new())
}

/// [`parse`], with `more` checks (see [`load_checked`]).
pub fn parse_checked(
    text: &str,
    origin: &str,
    more: &dyn Fn(&Config) -> Vec<Problem>,
) -> Result<Config, ConfigError> {
    let invalid = |problems| ConfigError::Invalid {
        origin: origin.to_string(),
        problems,
    };
    let syntax = syntax_problems(text);
    if !syntax.is_empty() {
        return Err(invalid(syntax));
    }
    let de = toml::Deserializer::new(text);
    let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let at = inner
            .span()
            .map(|span| line_column(text, span.start))
            .map(|(l, c)| format!(" (line {l}, column {c})"))
            .unwrap_or_default();
        let path = if path == "." { String::new() } else { path };
        // A message may quote the offending value: bounded, whatever its size.
        invalid(vec![Problem::new(
            path,
            format!(
                "{}{at}",
                truncate_to(inner.message().trim_end(), 4 * MAX_ECHO)
            ),
        )])
    })?;
    let mut problems = config.validate();
    problems.extend(more(&config));
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(invalid(problems))
    }
}

/// Most syntax errors a file holds are reported at once, not one per round.
/// The TOML parser stops at the first; the line it points at is then blanked
/// (line numbers kept) and the text parsed again, up to this many times. A
/// later error could in principle follow from blanking an earlier line; on
/// ordinary typos (a missing bracket or quote, a duplicate key) it does not.
const MAX_SYNTAX_ERRORS: usize = 20;

fn syntax_problems(text: &str) -> Vec<Problem> {
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let mut problems: Vec<Problem> = Vec::new();
    let mut blanked = std::collections::BTreeSet::new();
    while problems.len() < MAX_SYNTAX_ERRORS {
        let current = lines.join("\n");
        let Err(e) = current.parse::<toml::Table>() else {
            break;
        };
        let span = e.span();
        let at = span
            .as_ref()
            .map(|span| line_column(&current, span.start))
            .map(|(l, c)| format!(" (line {l}, column {c})"))
            .unwrap_or_default();
        problems.push(Problem::new(
            "",
            format!("{}{at}", truncate_to(e.message().trim_end(), 4 * MAX_ECHO)),
        ));
        // Without a line to blank, or on one already blank, nothing more
        // can be learned.
        let Some(line) = span.map(|s| line_column(&current, s.start).0 - 1) else {
            break;
        };
        if line >= lines.len() || !blanked.insert(line) {
            break;
        }
        lines[line].clear();
    }
    problems
}

/// 1-based line and column of a byte offset, counting characters.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}
