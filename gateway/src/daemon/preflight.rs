//! The configuration checks that read the disk: the MQTT password, the TLS
//! files (certificates parsed, key matched, expiry), the HTTP token. They
//! run where the gateway is about to use them — `check-config`, `run`, a
//! SIGHUP reload, `uplink` — and list their problems beside the meaning
//! checks of `config::validate`, so one run still reports everything.

use std::path::Path;

use crate::config::{self, Config, ConfigError, Problem};
use crate::http::{read_token, HttpError};
use crate::publish::tls::{self, TlsError};

/// Reads, parses and checks `path`, files included.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    config::load_checked(path, &problems)
}

/// [`load`] of text already read (the daemon hashes the bytes it loads).
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    config::parse_checked(text, origin, &problems)
}

/// Every problem with the files `c` names, each under its key path.
pub fn problems(c: &Config) -> Vec<Problem> {
    let mut p = Vec::new();
    let m = &c.mqtt;
    if let Some(path) = &m.password_file {
        if let Err(e) = tls::read_password(path) {
            p.push(tls_problem(
                Problem::new("mqtt.password_file", e.to_string()),
                &e,
            ));
        }
    }
    if let Some(t) = &m.tls {
        for e in tls::check(t, &m.host, crate::event::now_ms()) {
            p.push(tls_problem(Problem::new(e.key(), e.to_string()), &e));
        }
    }
    if c.http.enabled {
        if let Some(path) = &c.http.token_file {
            if let Err(e) = read_token(path) {
                let problem = Problem::new("http.token_file", e.to_string());
                p.push(match &e {
                    HttpError::TokenRead { source, .. } => problem.unreadable(source.kind()),
                    _ => problem,
                });
            }
        }
    }
    p
}

fn tls_problem(problem: Problem, e: &TlsError) -> Problem {
    match e {
        TlsError::Read { kind, .. } => problem.unreadable(*kind),
        _ => problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::tests::MINIMAL;

    fn problems_of(text: &str) -> Vec<Problem> {
        match parse(text, "test.toml") {
            Ok(_) => Vec::new(),
            Err(e) => e.problems(),
        }
    }

    fn has(problems: &[Problem], path: &str, needle: &str) -> bool {
        problems
            .iter()
            .any(|p| p.path == path && p.message.contains(needle))
    }

    #[test]
    fn a_password_needs_tls_and_a_readable_file() {
        let text =
            format!("{MINIMAL}\n[mqtt]\nusername = \"u\"\npassword_file = \"/nonexistent/pw\"\n");
        let p = problems_of(&text);
        assert!(has(&p, "mqtt.password_file", "only sent over TLS"), "{p:?}");
        assert!(
            has(&p, "mqtt.password_file", "cannot read /nonexistent/pw"),
            "{p:?}"
        );
    }

    #[test]
    fn tls_files_are_checked_with_their_key_paths() {
        let text = format!("{MINIMAL}\n[mqtt.tls]\nca_file = \"/nonexistent/ca.pem\"\nkey_file = \"/nonexistent/k.pem\"\n");
        let p = problems_of(&text);
        assert!(
            has(&p, "mqtt.tls.ca_file", "cannot read /nonexistent/ca.pem"),
            "{p:?}"
        );
        assert!(has(&p, "mqtt.tls.cert_file", "go together"), "{p:?}");
        assert_eq!(p.len(), 2, "{p:?}");
    }

    #[test]
    fn an_unreadable_token_is_a_problem_of_http_token_file() {
        let text = format!(
            "{MINIMAL}\n[http]\nlisten = \"0.0.0.0:8080\"\ntoken_file = \"/nonexistent/token\"\n"
        );
        let p = problems_of(&text);
        assert!(has(&p, "http.token_file", "/nonexistent/token"), "{p:?}");
    }

    #[test]
    fn the_meaning_checks_alone_do_not_read_the_files() {
        // A report read on a laptop must not need the gateway's keys.
        let text = format!("{MINIMAL}\n[mqtt.tls]\nca_file = \"/nonexistent/ca.pem\"\ncert_file = \"/nonexistent/c.pem\"\nkey_file = \"/nonexistent/k.pem\"\n");
        assert!(crate::config::parse(&text, "t").is_ok());
        assert!(!problems_of(&text).is_empty());
    }

    #[test]
    fn file_problems_are_listed_beside_meaning_problems() {
        let text = format!("{MINIMAL}\n[mqtt]\nusername = \"u\"\npassword_file = \"/nonexistent/pw\"\nreconnect_probe = \"1ms\"\n");
        let p = problems_of(&text);
        assert!(has(&p, "mqtt.reconnect_probe", "100ms"), "{p:?}");
        assert!(has(&p, "mqtt.password_file", "cannot read"), "{p:?}");
    }
}
