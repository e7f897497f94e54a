//! Each payload type, filled in as the gateway fills it, is valid under its
//! JSON Schema in docs/schema/ (a maintained Draft 2020-12 validator, formats
//! asserted) and reads back as the same value: the types and the published
//! contract cannot drift apart unnoticed.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::*;
use crate::event::rfc3339;

fn schema(name: &str) -> &'static str {
    match name {
        "excursion" => include_str!("../../../../docs/schema/excursion.json"),
        "door" => include_str!("../../../../docs/schema/door.json"),
        "sensor" => include_str!("../../../../docs/schema/sensor.json"),
        "lot" => include_str!("../../../../docs/schema/lot.json"),
        "gateway" => include_str!("../../../../docs/schema/gateway.json"),
        "audit" => include_str!("../../../../docs/schema/audit.json"),
        "status" => include_str!("../../../../docs/schema/status.json"),
        "manifest" => include_str!("../../../../docs/schema/manifest.json"),
        "telemetry" => include_str!("../../../../docs/schema/telemetry.json"),
        "command_result" => include_str!("../../../../docs/schema/command_result.json"),
        "manifest_command" => include_str!("../../../../docs/schema/manifest_command.json"),
        "replay" => include_str!("../../../../docs/schema/replay.json"),
        "replay_result" => include_str!("../../../../docs/schema/replay_result.json"),
        other => panic!("no schema {other}"),
    }
}

/// Validates `value` as `name` and reads it back; returns the JSON.
fn valid_and_round_trips<T>(name: &str, value: &T) -> Value
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let json = serde_json::to_value(value).unwrap();
    let schema: Value = serde_json::from_str(schema(name)).unwrap();
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&json)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:#?}\n{json:#}");
    let back: T = serde_json::from_slice(&to_bytes(value)).unwrap();
    assert_eq!(&back, value, "{name} reads back as it was written");
    json
}

fn envelope<B>(kind: &str, body: B) -> Envelope<B> {
    Envelope {
        schema: format!("coldgate.{kind}/1"),
        event_id: "01JDQ7Z8X4N0000000000000AB".into(),
        seq: 7,
        gateway_id: "reefer-0042".into(),
        at: rfc3339(1_764_104_645_120),
        body,
        part: None,
        parts: None,
    }
}

fn item() -> Item {
    Item {
        gtin: "09520123456788".into(),
        lot: "L1".into(),
        expiry: Some("2027-12-31".into()),
        serials: vec!["S1".into(), "S2".into()],
    }
}

#[test]
fn excursion_events_of_both_phases_are_valid_and_read_back() {
    let started = Excursion {
        phase: ExcursionPhase::Started,
        excursion_id: "01JDQ7Z8X4N0000000000000EX".into(),
        sensor_id: "rear-1".into(),
        zone: "rear".into(),
        quantity: coldgate_sensor_drivers::Quantity::Temperature,
        unit: "°C".into(),
        direction: Direction::High,
        limit: 8.0,
        exclusive: false,
        profile: "refrigerated".into(),
        rule: "refrigerated/temperature/0".into(),
        allowance_s: Some(86_400),
        freeze: false,
        started_at: rfc3339(1_000),
        ended_at: None,
        duration_s: 0,
        unknown_s: 0,
        min: 8.5,
        max: 9.25,
        mean: 8.9,
        end: None,
        affected: vec![Affected {
            sscc: "106141412345678908".into(),
            zone: "rear".into(),
            items: vec![item()],
        }],
    };
    let json = valid_and_round_trips("excursion", &envelope("excursion", started.clone()));
    assert!(json.get("degree_minutes").is_none() && json.get("part").is_none());
    let ended = Excursion {
        phase: ExcursionPhase::Ended,
        ended_at: Some(rfc3339(600_000)),
        duration_s: 420,
        unknown_s: 60,
        end: Some(ExcursionEnd {
            back_in_range_at: rfc3339(540_000),
            degree_minutes: 12.5,
            mkt: Some(9.1),
        }),
        ..started
    };
    let json = valid_and_round_trips("excursion", &envelope("excursion", ended.clone()));
    assert_eq!(json["degree_minutes"], 12.5);
    assert_eq!(json["back_in_range_at"], rfc3339(540_000));
    assert!(json.get("freeze").is_none(), "present only when true");
    // A freeze under a rule without allowance: `allowance_s: null`.
    let freeze = Excursion {
        direction: Direction::Low,
        limit: 0.0,
        rule: "refrigerated/temperature/1".into(),
        allowance_s: None,
        freeze: true,
        ..ended.clone()
    };
    let json = valid_and_round_trips("excursion", &envelope("excursion", freeze));
    assert!(json["allowance_s"].is_null() && json["freeze"] == true);
    // An excursion of a quantity without MKT ends with `mkt: null`.
    let no_mkt = Excursion {
        end: Some(ExcursionEnd {
            back_in_range_at: rfc3339(600_000),
            degree_minutes: 1.0,
            mkt: None,
        }),
        ..ended
    };
    let json = valid_and_round_trips("excursion", &envelope("excursion", no_mkt));
    assert!(json["mkt"].is_null() && json.get("mkt").is_some());
}

#[test]
fn door_and_sensor_events_are_valid_and_read_back() {
    let door = Door {
        phase: DoorPhase::Closed,
        door_id: "01JDQ7Z8X4N0000000000000DR".into(),
        sensor_id: "rear-1".into(),
        zone: "rear".into(),
        lux: 3.0,
        max_lux: Some(240.0),
        threshold_lux: 50.0,
        opened_at: rfc3339(1_000),
        closed_at: Some(rfc3339(61_000)),
        duration_s: 60,
    };
    valid_and_round_trips("door", &envelope("door", door));
    for phase in [SensorPhase::Silent, SensorPhase::Back] {
        for cause in [
            GapCause::SensorSilent,
            GapCause::GatewayDown,
            GapCause::GatewayStopped,
        ] {
            let gap = SensorGap {
                phase,
                sensor_id: "rear-1".into(),
                zone: "rear".into(),
                quantity: Some(coldgate_sensor_drivers::Quantity::Temperature),
                cause: Some(cause),
                last_seen_at: rfc3339(1_000),
                gap_s: 900,
                silence_limit_s: Some(600),
                value: None,
                physical_range: None,
            };
            valid_and_round_trips("sensor", &envelope("sensor", gap));
        }
    }
    let fault = SensorGap {
        phase: SensorPhase::Fault,
        sensor_id: "rear-1".into(),
        zone: "rear".into(),
        quantity: Some(coldgate_sensor_drivers::Quantity::Humidity),
        cause: None,
        last_seen_at: rfc3339(1_000),
        gap_s: 3,
        silence_limit_s: None,
        value: Some(327.67),
        physical_range: Some([0.0, 100.0]),
    };
    valid_and_round_trips("sensor", &envelope("sensor", fault));
}

#[test]
fn lot_events_keep_a_null_expiry_apart_from_an_absent_one() {
    let mut exhausted = Lot::new(LotPhase::Exhausted, LotReason::Budget);
    exhausted.gtin = Some("09520123456788".into());
    exhausted.lot = Some("L1".into());
    exhausted.expiry = Some(None);
    exhausted.profile = Some("refrigerated".into());
    exhausted.rule = Some(Some("refrigerated/temperature/0".into()));
    exhausted.direction = Some(Direction::High);
    exhausted.out_of_range_s = Some(4000);
    exhausted.budget_s = Some(3600);
    exhausted.pallets = Some(vec!["106141412345678908".into()]);
    let json = valid_and_round_trips("lot", &envelope("lot", exhausted));
    assert!(json["expiry"].is_null() && json.get("expiry").is_some());

    let mut warning = Lot::new(LotPhase::Warning, LotReason::SerialOnBoard);
    warning.sscc = Some("106141412345678908".into());
    warning.zone = Some("rear".into());
    warning.gtin = Some("09520123456788".into());
    warning.serial = Some("S1".into());
    warning.other_sscc = Some("106141412345678915".into());
    let json = valid_and_round_trips("lot", &envelope("lot", warning));
    assert!(json.get("expiry").is_none(), "{json}");

    let mut duplicate = Lot::new(LotPhase::Warning, LotReason::SerialDuplicate);
    duplicate.sscc = Some("106141412345678908".into());
    duplicate.zone = Some("rear".into());
    duplicate.gtin = Some("09520123456788".into());
    duplicate.lot = Some("L1".into());
    duplicate.serial = Some("S1".into());
    valid_and_round_trips("lot", &envelope("lot", duplicate));
    for reason in [LotReason::LoadedAtFuture, LotReason::LoadedAtPast] {
        let mut skew = Lot::new(LotPhase::Warning, reason);
        skew.sscc = Some("106141412345678908".into());
        skew.zone = Some("rear".into());
        skew.loaded_at = Some(rfc3339(1_900_000_000_000));
        skew.limit_s = Some(300);
        let json = valid_and_round_trips("lot", &envelope("lot", skew));
        assert_eq!(json["reason"], reason.as_str());
    }
}

#[test]
fn every_kind_of_gateway_event_is_valid_and_reads_back() {
    let kinds = [
        Gateway::OutboxPressure {
            phase: PressurePhase::Started,
            outbox_waiting: 10_000,
            outbox_cap: 10_000,
            telemetry_dropped: 12,
        },
        Gateway::Storage {
            phase: StoragePhase::DiskFull,
            failure: Some(StorageFailure {
                error: "No space left on device".into(),
                held_readings: 40,
                buffer_limit: 100_000,
            }),
            recovery: None,
        },
        Gateway::Storage {
            phase: StoragePhase::Recovered,
            failure: None,
            recovery: Some(StorageRecovery {
                reason: StorageReason::DiskFull,
                since: rfc3339(1_000),
                outage_s: 30,
                failed_commits: 15,
                dropped_readings: 0,
            }),
        },
        Gateway::ClockJump {
            phase: ClockJumpPhase::Only,
            offset_ms: 3_600_000,
            affected_from: rfc3339(1_000),
            affected_to: rfc3339(2_000),
            synchronised: None,
        },
        Gateway::ConfigRejected {
            phase: ConfigRejectedPhase::Only,
            actor: "signal:SIGHUP".into(),
            path: "/etc/coldgate/coldgate.toml".into(),
            problems: vec!["mqtt.port: must be 1-65535".into()],
        },
        Gateway::EntrySetAside {
            phase: SetAsidePhase::Only,
            set_aside_seq: 41,
            topic: "events/excursion".into(),
            bytes: 300_000,
            max_payload: 131_072,
        },
        Gateway::UncleanStop {
            phase: DetectedPhase::Only,
            last_alive_at: rfc3339(1_000),
            started_at: rfc3339(26_000),
            downtime_s: 25,
        },
    ];
    let mut names = Vec::new();
    for body in kinds {
        let json = valid_and_round_trips("gateway", &envelope("gateway", body));
        names.push(format!(
            "{}/{}",
            json["kind"].as_str().unwrap(),
            json["phase"].as_str().unwrap()
        ));
    }
    assert_eq!(
        names,
        [
            "outbox_pressure/started",
            "storage/disk_full",
            "storage/recovered",
            "clock_jump/clock_jump",
            "config_rejected/config_rejected",
            "entry_set_aside/set_aside",
            "unclean_stop/detected"
        ]
    );
}

#[test]
fn an_audit_event_is_valid_and_reads_back() {
    let mut audit = Audit {
        phase: crate::audit::AuditKind::ManifestCommand,
        audit_seq: 3,
        actor: "mqtt:cmd/manifest".into(),
        details: serde_json::json!({"action": "load", "ok": true}),
        audit_head: Some(format!("3:{}", "ab".repeat(32))),
        lot_mkt: vec![],
    };
    valid_and_round_trips("audit", &envelope("audit", audit.clone()));
    // An unload's event carries its lots' MKT.
    audit.lot_mkt.push(LotMktAtUnload {
        gtin: "09520123456788".into(),
        lot: "ABC123".into(),
        mkt: 5.25,
        monitored_s: 7200,
        activation_energy_j_per_mol: 83144.0,
    });
    valid_and_round_trips("audit", &envelope("audit", audit));
}

#[test]
fn status_manifest_and_telemetry_are_valid_and_read_back() {
    let status = Status {
        schema: "coldgate.status/1".into(),
        gateway_id: "reefer-0042".into(),
        at: rfc3339(1_000),
        state: StatusState::Offline,
        reason: Some("stopped".into()),
        version: "0.1.0".into(),
        uptime_s: 3600,
        outbox_depth: 0,
        oldest_unsent_at: None,
        oldest_unsent_age_s: None,
        telemetry_dropped: 0,
        set_aside: 0,
        clock_synced: None,
        clock_state: Some("unknown".into()),
        clock_last_jump: Some(ClockJumpSeen {
            at: rfc3339(500),
            offset_ms: -3_600_000,
        }),
        client_cert_expires_at: Some(rfc3339(1_800_000_000_000)),
        audit_head: None,
        link: Link {
            state: LinkState::Disconnected,
            connected_since: None,
            failures: 2,
            last_error: Some("connection refused".into()),
            verified: false,
        },
    };
    valid_and_round_trips("status", &status);
    let manifest = Manifest {
        schema: "coldgate.manifest/1".into(),
        gateway_id: "reefer-0042".into(),
        at: rfc3339(1_000),
        pallets: vec![ManifestPallet {
            sscc: "106141412345678908".into(),
            zone: "rear".into(),
            profile: None,
            loaded_at: rfc3339(0),
            items: vec![item()],
        }],
        part: Some(1),
        parts: Some(2),
    };
    valid_and_round_trips("manifest", &manifest);
    let telemetry = Telemetry {
        schema: "coldgate.telemetry/1".into(),
        gateway_id: "reefer-0042".into(),
        sensor_id: "rear-1".into(),
        from: rfc3339(0),
        to: rfc3339(60_000),
        quantities: [(
            "temperature".to_string(),
            QuantityStats {
                unit: "°C".into(),
                min: 4.0,
                max: 5.5,
                mean: 4.75,
                count: 60,
            },
        )]
        .into(),
    };
    valid_and_round_trips("telemetry", &telemetry);
}

#[test]
fn commands_and_their_answers_are_valid_and_read_back() {
    let load = ManifestCommand::Load {
        request_id: "r1".into(),
        sscc: "106141412345678908".into(),
        zone: "rear".into(),
        profile: None,
        loaded_at: Some("2026-11-25T18:00:00Z".into()),
        items: vec![item()],
    };
    valid_and_round_trips("manifest_command", &load);
    let unload = ManifestCommand::Unload {
        request_id: "r2".into(),
        sscc: "106141412345678908".into(),
        at: None,
    };
    let json = valid_and_round_trips("manifest_command", &unload);
    assert_eq!(json["action"], "unload");
    let answer = CommandResult {
        schema: "coldgate.command_result/1".into(),
        gateway_id: "reefer-0042".into(),
        at: rfc3339(1_000),
        request_id: Some("r1".into()),
        command_id: Some("r1".into()),
        ok: false,
        duplicate: true,
        errors: vec!["zone: no zone `attic`".into()],
        warnings: Vec::new(),
    };
    valid_and_round_trips("command_result", &answer);
    let warned = CommandResult {
        ok: true,
        duplicate: false,
        errors: Vec::new(),
        warnings: vec![CommandWarning {
            reason: LotReason::SerialDuplicate,
            message: "serial S1 of GTIN 09520123456788 is twice in this load".into(),
        }],
        ..answer
    };
    let json = valid_and_round_trips("command_result", &warned);
    assert_eq!(json["warnings"][0]["reason"], "serial_duplicate");
    // An answer stored before warnings existed reads back with none.
    let mut old = json.clone();
    old.as_object_mut().unwrap().remove("warnings");
    let old: CommandResult = serde_json::from_value(old).unwrap();
    assert!(old.warnings.is_empty());
    let replay = ReplayRequest {
        request_id: "g1".into(),
        from_seq: 10,
        to_seq: 20,
    };
    valid_and_round_trips("replay", &replay);
    let result = ReplayResult {
        schema: "coldgate.replay_result/1".into(),
        gateway_id: "reefer-0042".into(),
        at: rfc3339(1_000),
        request_id: Some("g1".into()),
        ok: true,
        from_seq: Some(10),
        to_seq: Some(20),
        replayed: 9,
        missing: vec![20],
        set_aside: vec![15],
        errors: vec![],
    };
    valid_and_round_trips("replay_result", &result);
}

#[test]
fn a_payload_of_another_kind_or_missing_a_field_is_refused() {
    let door = envelope(
        "door",
        SensorGap {
            phase: SensorPhase::Back,
            sensor_id: "s".into(),
            zone: "z".into(),
            quantity: None,
            cause: None,
            last_seen_at: rfc3339(0),
            gap_s: 1,
            silence_limit_s: None,
            value: None,
            physical_range: None,
        },
    );
    assert!(EventBody::parse("door", &to_bytes(&door)).is_err());
    assert!(EventBody::parse("sensor", &to_bytes(&door)).is_ok());
    assert!(EventBody::parse("nonsense", &to_bytes(&door)).is_err());
}
