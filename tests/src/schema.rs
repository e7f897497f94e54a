//! Every payload the gateway publishes, checked against its JSON Schema in
//! `docs/schema/` by a maintained validator (the `jsonschema` crate, Draft
//! 2020-12, formats asserted): what a subscriber's own validator would say.
//! [`crate::Subscriber`] runs it on every message it receives, so every
//! end-to-end test that subscribes checks the contract too.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;

const SCHEMAS: [(&str, &str); 13] = [
    (
        "excursion",
        include_str!("../../docs/schema/excursion.json"),
    ),
    ("door", include_str!("../../docs/schema/door.json")),
    ("sensor", include_str!("../../docs/schema/sensor.json")),
    ("lot", include_str!("../../docs/schema/lot.json")),
    ("gateway", include_str!("../../docs/schema/gateway.json")),
    ("audit", include_str!("../../docs/schema/audit.json")),
    ("status", include_str!("../../docs/schema/status.json")),
    ("manifest", include_str!("../../docs/schema/manifest.json")),
    (
        "telemetry",
        include_str!("../../docs/schema/telemetry.json"),
    ),
    (
        "command_result",
        include_str!("../../docs/schema/command_result.json"),
    ),
    (
        "manifest_command",
        include_str!("../../docs/schema/manifest_command.json"),
    ),
    ("replay", include_str!("../../docs/schema/replay.json")),
    (
        "replay_result",
        include_str!("../../docs/schema/replay_result.json"),
    ),
];

fn validators() -> &'static BTreeMap<&'static str, jsonschema::Validator> {
    static V: OnceLock<BTreeMap<&'static str, jsonschema::Validator>> = OnceLock::new();
    V.get_or_init(|| {
        SCHEMAS
            .iter()
            .map(|(name, text)| {
                let schema: Value = serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("docs/schema/{name}.json is not JSON: {e}"));
                let v = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .should_validate_formats(true)
                    .build(&schema)
                    .unwrap_or_else(|e| panic!("docs/schema/{name}.json is not a schema: {e}"));
                (*name, v)
            })
            .collect()
    })
}

/// The schema (its file name without `.json`) a topic's payload follows, for
/// topics below a gateway prefix (`coldgate/v1/{id}/…`); `None` for topics
/// that are not the gateway's output (operators' commands, which tests send
/// malformed on purpose) or unknown.
pub fn schema_of(topic: &str) -> Option<&'static str> {
    let rest = topic.splitn(4, '/').nth(3)?;
    Some(match rest {
        "status" => "status",
        "manifest" => "manifest",
        "cmd/manifest/result" => "command_result",
        "cmd/replay/result" => "replay_result",
        r if r.starts_with("manifest/part/") => "manifest",
        r if r.starts_with("telemetry/") => "telemetry",
        r => match r.strip_prefix("events/")? {
            "excursion" => "excursion",
            "door" => "door",
            "sensor" => "sensor",
            "lot" => "lot",
            "gateway" => "gateway",
            "audit" => "audit",
            _ => return None,
        },
    })
}

/// Validates `payload` against the named schema; every error, with where.
pub fn check(schema: &str, payload: &Value) -> Result<(), String> {
    let v = validators()
        .get(schema)
        .ok_or_else(|| format!("no schema named {schema}"))?;
    let errors: Vec<String> = v
        .iter_errors(payload)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{schema}.json: {}", errors.join("; ")))
    }
}

/// GS1's EPCIS 2.0 JSON Schema (draft-07), as copied into the repository.
const EPCIS_SCHEMA: &str = include_str!("../../docs/schema/epcis/EPCIS-JSON-Schema.json");

/// Validates an EPCIS document (`coldgate report --format epcis`, the
/// fleet's export) against GS1's schema, formats asserted: without them an
/// impossible date or a read point that is no URI would pass.
pub fn check_epcis(doc: &Value) -> Result<(), String> {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    let v = V.get_or_init(|| {
        let schema: Value = serde_json::from_str(EPCIS_SCHEMA)
            .unwrap_or_else(|e| panic!("the EPCIS schema is not JSON: {e}"));
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft7)
            .should_validate_formats(true)
            .build(&schema)
            .unwrap_or_else(|e| panic!("the EPCIS schema is not a schema: {e}"))
    });
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("EPCIS-JSON-Schema.json: {}", errors.join("; ")))
    }
}

/// Validates what a gateway published on `topic` (nothing for topics that
/// carry no payload of ours, and for an empty retained message, which
/// clears a topic).
pub fn check_published(topic: &str, payload: &[u8]) -> Result<(), String> {
    let Some(schema) = schema_of(topic) else {
        return Ok(());
    };
    if payload.is_empty() {
        return Ok(());
    }
    let v: Value =
        serde_json::from_slice(payload).map_err(|e| format!("{topic}: not JSON ({e})"))?;
    check(schema, &v).map_err(|e| format!("{topic}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gs1s_epcis_sensor_example_passes_and_with_a_bad_exception_or_date_fails() {
        let text = include_str!("../../docs/schema/epcis/SensorDataExample13.jsonld");
        let good: Value = serde_json::from_str(text).unwrap();
        assert_eq!(check_epcis(&good), Ok(()));
        let mut bad = good.clone();
        bad["epcisBody"]["eventList"][0]["sensorElementList"][0]["sensorReport"][0]["exception"] =
            json!("ALARM");
        assert!(check_epcis(&bad).is_err());
        let mut bad = good.clone();
        *bad.pointer_mut("/epcisBody/eventList/0/eventTime").unwrap() =
            json!("2021-02-30T15:00:00+01:00");
        assert!(check_epcis(&bad).is_err());
    }

    #[test]
    fn topics_map_to_their_schemas_and_commands_are_not_checked() {
        assert_eq!(
            schema_of("coldgate/v1/g/events/excursion"),
            Some("excursion")
        );
        assert_eq!(schema_of("coldgate/v1/g/events/audit"), Some("audit"));
        assert_eq!(schema_of("coldgate/v1/g/manifest/part/3"), Some("manifest"));
        assert_eq!(
            schema_of("coldgate/v1/g/telemetry/rear-1"),
            Some("telemetry")
        );
        assert_eq!(
            schema_of("coldgate/v1/g/cmd/replay/result"),
            Some("replay_result")
        );
        assert_eq!(schema_of("coldgate/v1/g/cmd/manifest"), None);
        assert_eq!(schema_of("coldgate/v1/g/events/unknown"), None);
    }

    #[test]
    fn the_validator_rejects_a_missing_field_a_wrong_type_and_a_bad_format() {
        let ok = json!({
            "schema": "coldgate.gateway/1", "event_id": "01JD8Z5K8Q4V2N7M3X6T9R1B0C",
            "seq": 3, "gateway_id": "g", "at": "2026-11-25T21:04:05.120Z",
            "phase": "config_rejected", "kind": "config_rejected",
        });
        check("gateway", &ok).unwrap();
        let mut no_kind = ok.clone();
        no_kind.as_object_mut().unwrap().remove("kind");
        assert!(check("gateway", &no_kind).unwrap_err().contains("kind"));
        let mut bad_seq = ok.clone();
        bad_seq["seq"] = json!("3");
        assert!(check("gateway", &bad_seq).is_err());
        let mut bad_time = ok;
        bad_time["at"] = json!("yesterday");
        assert!(check("gateway", &bad_time)
            .unwrap_err()
            .contains("date-time"));
    }
}
