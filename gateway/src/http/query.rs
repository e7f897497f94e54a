//! Query parameters of the API, pure: times, ranges, event filters.

use serde_json::Value;

use crate::event::parse_rfc3339;

/// Longest range one request may ask for by default: 24 h.
pub const DEFAULT_SPAN_MS: i64 = 24 * 3600 * 1000;

/// A time as the API accepts it: RFC 3339 (`2026-11-25T18:00:00Z`),
/// milliseconds since the epoch, or a duration before `now` (`90m`, `2d`).
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    let t = text.trim();
    if let Some(ms) = parse_rfc3339(t) {
        return Ok(ms);
    }
    if let Ok(ms) = t.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(d) = humantime::parse_duration(t) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        return Ok(now_ms.saturating_sub(ms));
    }
    Err(format!(
        "`{t}` is not a time: use RFC 3339 (2026-11-25T18:00:00Z), milliseconds since the epoch, or a duration ago (90m, 2d)"
    ))
}

/// `[from, to)` from optional parameters: `to` defaults to `end` (now, or
/// the newest reading when a simulator runs ahead), `from` to a day before
/// `to`; a `from` given as a duration (`6h`) counts back from `to`. Names
/// the parameter that is wrong.
pub fn range(
    from: Option<&str>,
    to: Option<&str>,
    now_ms: i64,
    end_ms: i64,
) -> Result<(i64, i64), String> {
    let to = match to {
        Some(t) => parse_time(t, now_ms).map_err(|e| format!("to: {e}"))?,
        None => end_ms,
    };
    let from = match from {
        Some(f) if parse_rfc3339(f.trim()).is_none() && f.trim().parse::<i64>().is_err() => {
            parse_time(f, to).map_err(|e| format!("from: {e}"))?
        }
        Some(f) => parse_time(f, now_ms).map_err(|e| format!("from: {e}"))?,
        None => to.saturating_sub(DEFAULT_SPAN_MS),
    };
    if from >= to {
        return Err("from: must be before to".to_string());
    }
    Ok((from, to))
}

/// Which events to list; every given field must match.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    /// `excursion`, `door`, `sensor`, `lot`, `gateway`.
    pub kind: Option<String>,
    /// `started`, `ended`, `opened`, `closed`, `silent`, `back`, …
    pub phase: Option<String>,
    /// A pallet named by the event (`affected[].sscc`, `sscc`, `pallets`).
    pub sscc: Option<String>,
    /// A lot named by the event (`affected[].items[].lot`, `lot`).
    pub lot: Option<String>,
    pub sensor: Option<String>,
    pub zone: Option<String>,
}

impl EventFilter {
    pub fn matches(&self, topic: &str, payload: &Value) -> bool {
        let s = |k: &str| payload.get(k).and_then(Value::as_str);
        if let Some(kind) = &self.kind {
            if topic.strip_prefix("events/") != Some(kind.as_str()) {
                return false;
            }
        }
        if self.phase.as_deref().is_some_and(|p| s("phase") != Some(p)) {
            return false;
        }
        if self
            .sensor
            .as_deref()
            .is_some_and(|x| s("sensor_id") != Some(x))
        {
            return false;
        }
        if self.zone.as_deref().is_some_and(|x| s("zone") != Some(x)) {
            return false;
        }
        let affected = || {
            payload
                .get("affected")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        };
        if let Some(sscc) = &self.sscc {
            let named = s("sscc") == Some(sscc)
                || affected().any(|p| p.get("sscc").and_then(Value::as_str) == Some(sscc))
                || payload
                    .get("pallets")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|p| p.as_str() == Some(sscc)));
            if !named {
                return false;
            }
        }
        if let Some(lot) = &self.lot {
            let named = s("lot") == Some(lot)
                || affected().any(|p| {
                    p.get("items")
                        .and_then(Value::as_array)
                        .is_some_and(|items| {
                            items
                                .iter()
                                .any(|i| i.get("lot").and_then(Value::as_str) == Some(lot))
                        })
                });
            if !named {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_795_629_600_000; // 2026-11-25T18:00:00Z

    #[test]
    fn times_are_rfc3339_milliseconds_or_a_duration_ago() {
        assert_eq!(parse_time("2026-11-25T18:00:00Z", 0), Ok(NOW));
        assert_eq!(parse_time("1000", NOW), Ok(1000));
        assert_eq!(parse_time("90m", NOW), Ok(NOW - 90 * 60_000));
        let e = parse_time("yesterday", NOW).unwrap_err();
        assert!(e.contains("`yesterday`"), "{e}");
    }

    #[test]
    fn a_range_defaults_to_the_day_before_its_end_and_must_be_ordered() {
        assert_eq!(
            range(None, None, NOW, NOW + 5),
            Ok((NOW + 5 - DEFAULT_SPAN_MS, NOW + 5))
        );
        assert_eq!(
            range(Some("1h"), None, NOW, NOW + 10),
            Ok((NOW + 10 - 3_600_000, NOW + 10)),
            "a duration counts back from the end"
        );
        let e = range(Some("2000"), Some("1000"), NOW, NOW).unwrap_err();
        assert!(e.starts_with("from:"), "{e}");
        let e = range(None, Some("soon"), NOW, NOW).unwrap_err();
        assert!(e.starts_with("to:"), "{e}");
    }

    #[test]
    fn events_are_found_by_kind_phase_pallet_and_lot() {
        let exc = json!({"phase": "started", "sensor_id": "rear-1", "zone": "rear",
            "affected": [{"sscc": "106141412345678908", "items": [{"lot": "ABC123"}]}]});
        let lot = json!({"phase": "exhausted", "lot": "L9", "pallets": ["106141412345678915"]});
        let f = |q: serde_json::Value| serde_json::from_value::<EventFilter>(q).unwrap();
        assert!(
            f(json!({"kind": "excursion", "phase": "started"})).matches("events/excursion", &exc)
        );
        assert!(!f(json!({"kind": "door"})).matches("events/excursion", &exc));
        assert!(!f(json!({"phase": "ended"})).matches("events/excursion", &exc));
        assert!(f(json!({"sscc": "106141412345678908"})).matches("events/excursion", &exc));
        assert!(!f(json!({"sscc": "106141412345678915"})).matches("events/excursion", &exc));
        assert!(f(json!({"sscc": "106141412345678915"})).matches("events/lot", &lot));
        assert!(
            f(json!({"lot": "ABC123", "zone": "rear", "sensor": "rear-1"}))
                .matches("events/excursion", &exc)
        );
        assert!(f(json!({"lot": "L9"})).matches("events/lot", &lot));
        assert!(!f(json!({"lot": "L9"})).matches("events/excursion", &exc));
    }
}
