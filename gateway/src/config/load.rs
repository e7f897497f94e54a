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
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
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
    /// The problems, for callers (the HTTP API, SIGHUP) that report them.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            ConfigError::Read { path, source } => {
                vec![Problem::new(
                    "",
                    format!("cannot read {}: {source}", path.display()),
                )]
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

/// Reads, parses and validates the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses and validates `text`; `origin` names it in messages.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let invalid = |problems| ConfigError::Invalid {
        origin: origin.to_string(),
        problems,
    };
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
        invalid(vec![Problem::new(
            path,
            format!("{}{at}", inner.message().trim_end()),
        )])
    })?;
    let problems = config.validate();
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(invalid(problems))
    }
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
