//! Argument values checked where they are parsed, so a typo is an error that
//! lists what is valid instead of a filter that silently matches nothing.
//! One time syntax for every option that takes a time.

use clap::ValueEnum;

use crate::event::now_ms;
use crate::manifest::{gtin_problem, sscc_problem};

/// The time syntax of every option that takes one (`--since`, `--until`,
/// `export --from/--to`, `unload --at`), the same the HTTP API accepts:
/// RFC 3339, milliseconds since the epoch, or a duration ago (`2h`, `90m`,
/// `3d`). Milliseconds since the epoch.
pub fn when(text: &str) -> Result<i64, String> {
    crate::http::query::parse_time(text, now_ms())
}

/// An 18-digit SSCC with its check digit.
pub fn sscc(text: &str) -> Result<String, String> {
    match sscc_problem(text) {
        Some(problem) => Err(problem),
        None => Ok(text.to_string()),
    }
}

/// A GTIN-14 with its check digit.
pub fn gtin(text: &str) -> Result<String, String> {
    match gtin_problem(text) {
        Some(problem) => Err(problem),
        None => Ok(text.to_string()),
    }
}

/// The kinds of event, one topic each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Excursion,
    Door,
    Sensor,
    Lot,
    Gateway,
    Audit,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Excursion => "excursion",
            Kind::Door => "door",
            Kind::Sensor => "sensor",
            Kind::Lot => "lot",
            Kind::Gateway => "gateway",
            Kind::Audit => "audit",
        }
    }

    /// The phases events of this kind carry (docs/mqtt.md, docs/schema/).
    pub fn phases(self) -> &'static [&'static str] {
        match self {
            Kind::Excursion => &["started", "ended"],
            Kind::Door => &["opened", "closed"],
            Kind::Sensor => &["silent", "back", "fault"],
            Kind::Lot => &["exhausted", "warning"],
            Kind::Gateway => &[
                "started",
                "ended",
                "clock_jump",
                "config_rejected",
                "recovered",
                "disk_full",
                "storage_error",
                "detected",
                "set_aside",
            ],
            Kind::Audit => &[
                "gateway_started",
                "gateway_stopped",
                "config_loaded",
                "config_reloaded",
                "config_rejected",
                "manifest_command",
                "readings_checkpoint",
            ],
        }
    }
}

/// A phase some kind of event carries.
pub fn phase(text: &str) -> Result<String, String> {
    let mut known: Vec<&str> = Kind::value_variants()
        .iter()
        .flat_map(|k| k.phases().iter().copied())
        .collect();
    known.sort_unstable();
    known.dedup();
    if known.contains(&text) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "unknown phase `{text}`; known: {}",
            known.join(", ")
        ))
    }
}

/// A phase that events of `kind` never carry: an error naming theirs.
pub fn check_phase_of(kind: Kind, phase: &str) -> anyhow::Result<()> {
    if kind.phases().contains(&phase) {
        return Ok(());
    }
    anyhow::bail!(
        "--phase `{phase}`: {} events have the phases {}",
        kind.as_str(),
        kind.phases().join(", ")
    )
}

/// `name` must be one of `known` (sensors in a database, GTINs with lots):
/// otherwise an error naming them, as a filter would silently match nothing.
pub fn must_exist<'a>(
    what: &str,
    name: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> anyhow::Result<()> {
    let known: Vec<&str> = known.into_iter().collect();
    if known.contains(&name) {
        return Ok(());
    }
    if known.is_empty() {
        anyhow::bail!("no {what} named `{name}`; there are none");
    }
    anyhow::bail!("no {what} named `{name}`; known: {}", known.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_in_the_published_schemas_is_known() {
        for kind in Kind::value_variants() {
            let path = format!(
                "{}/../docs/schema/{}.json",
                env!("CARGO_MANIFEST_DIR"),
                kind.as_str()
            );
            let schema: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            for phase in schema["properties"]["phase"]["enum"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let phase = phase.as_str().unwrap();
                assert!(kind.phases().contains(&phase), "{path}: {phase}");
            }
        }
    }

    #[test]
    fn a_mistyped_value_is_refused_with_the_valid_ones() {
        let e = phase("strated").unwrap_err();
        assert!(e.contains("started") && e.contains("opened"), "{e}");
        assert!(check_phase_of(Kind::Door, "started").is_err());
        assert!(check_phase_of(Kind::Door, "opened").is_ok());
        assert!(sscc("10614141234567890").is_err());
        assert!(sscc("106141412345678908").is_ok());
        assert!(gtin("9520123456788").is_err());
        let e = must_exist("sensor", "rear-l", ["front-1", "rear-1"])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "no sensor named `rear-l`; known: front-1, rear-1");
    }

    #[test]
    fn times_are_absolute_or_a_duration_ago() {
        let now = now_ms();
        let two_hours = when("2h").unwrap();
        assert!((now - 2 * 3600 * 1000 - two_hours).abs() < 60_000);
        assert!((now - 90 * 60 * 1000 - when("90m").unwrap()).abs() < 60_000);
        assert_eq!(when("2026-11-25T18:00:00Z").unwrap(), 1_795_629_600_000);
        assert!(when("yesterday").is_err());
    }
}
