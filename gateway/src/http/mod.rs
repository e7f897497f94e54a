//! The technician's window on a running gateway: the local HTTP API
//! (JSON, `/metrics`, `/healthz`), the dashboard page, charts and trip
//! reports. Read-only towards the data path, except manifest commands,
//! which go through ingest (the single writer) exactly as the MQTT ones do.
//!
//! Design: handlers read the store (redb read transactions never block the
//! writer) on the blocking pool, and the last values from [`Live`], which
//! ingest keeps in memory; nothing runs between requests.

mod api;
mod ctx;
pub mod lot_view;
mod metrics;
pub mod query;
mod server;
mod zone_chart;

pub use ctx::Ctx;
pub use server::{Bound, HttpServer};

use std::path::{Path, PathBuf};

/// Shortest bearer token accepted: a guessable token is no protection.
pub const MIN_TOKEN_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("http.token_file {path}: cannot read it: {source}")]
    TokenRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("http.token_file {path}: the token must be one line of at least {MIN_TOKEN_LEN} visible characters")]
    TokenWeak { path: PathBuf },
    #[error("http.listen {addr} is not a loopback address and http.token_file is not set: refusing to serve the API unauthenticated")]
    TokenRequired { addr: std::net::SocketAddr },
    #[error("http.listen {addr}: cannot listen: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Reads the bearer token: the file's first line, trimmed; at least
/// [`MIN_TOKEN_LEN`] characters, none of them blank or control characters.
pub fn read_token(path: &Path) -> Result<String, HttpError> {
    let read = crate::config::read_bounded(path, crate::config::MAX_FILE_SIZE).and_then(|b| {
        String::from_utf8(b)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()))
    });
    let text = read.map_err(|source| HttpError::TokenRead {
        path: path.to_path_buf(),
        source,
    })?;
    let token = text.trim_end_matches(['\r', '\n']);
    if token.len() < MIN_TOKEN_LEN
        || token.contains(['\n', '\r'])
        || token.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(HttpError::TokenWeak {
            path: path.to_path_buf(),
        });
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_needs_one_long_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, "0123456789abcdef\n").unwrap();
        assert_eq!(read_token(&p).unwrap(), "0123456789abcdef");
        std::fs::write(&p, "short\n").unwrap();
        assert!(matches!(read_token(&p), Err(HttpError::TokenWeak { .. })));
        std::fs::write(&p, "0123456789abcdef\nsecond line\n").unwrap();
        assert!(matches!(read_token(&p), Err(HttpError::TokenWeak { .. })));
        let missing = dir.path().join("missing");
        let e = read_token(&missing).unwrap_err().to_string();
        assert!(
            e.contains("http.token_file") && e.contains("missing"),
            "{e}"
        );
    }
}
