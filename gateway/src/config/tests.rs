//! Tests of loading and meaning checks.
//!
//! One room: every test starts from the same MINIMAL file and the same `problems`/`has` helpers.

use super::*;

pub(crate) const MINIMAL: &str = r#"
gateway_id = "g1"
[[profiles]]
id = "refrigerated"
limits = [{ quantity = "temperature", low = 2.0, high = 8.0, delay = "5m" }]
[[zones]]
id = "rear"
profile = "refrigerated"
[[sensors]]
id = "rear-1"
zone = "rear"
kind = "sim"
[sim]
"#;

fn problems(text: &str) -> Vec<Problem> {
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

/// The shipped template with its example sensors un-commented, as an
/// installer would (the same rule scripts/check-deb.sh applies with sed).
pub(crate) fn filled_in(template: &str) -> String {
    let mut inside = false;
    let mut out = String::new();
    for line in template.lines() {
        if line == "# --- example sensors ---" {
            inside = true;
        } else if line == "# --- end of example sensors ---" {
            inside = false;
        } else if inside {
            out.push_str(
                line.strip_prefix('#')
                    .map_or(line, |l| l.strip_prefix(' ').unwrap_or(l)),
            );
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[test]
fn the_shipped_template_is_refused_until_sensors_are_listed() {
    let p = problems(EXAMPLE);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(has(&p, "sensors", "no sensors configured"), "{p:?}");
    let filled = parse(&filled_in(EXAMPLE), "filled in").expect("filled-in template loads");
    assert_eq!(filled.sensors.len(), 2);
    assert!(
        filled.sim.is_none() && filled.pallets.is_empty(),
        "no fake data"
    );
}

#[test]
fn the_shipped_example_and_demo_files_load() {
    let example = parse(&filled_in(EXAMPLE), "coldgate.example.toml").expect("example loads");
    assert_eq!(example.gateway_id, "reefer-7");
    assert_eq!(example.ingest.batch_interval, Duration::from_secs(2));
    assert_eq!(example.topic_prefix(), "coldgate/v1/reefer-7");
    parse(DEMO, "demo.toml").expect("demo loads");
    parse(MINIMAL, "minimal").expect("minimal loads");
}

#[test]
fn defaults_are_the_documented_ones() {
    let c = parse(MINIMAL, "minimal").unwrap();
    assert_eq!(c.storage.retention, Duration::from_secs(90 * 86400));
    assert_eq!(c.storage.max_size, ByteSize(1 << 30));
    assert!(!c.storage.journal);
    assert_eq!(c.storage.fold_interval, Duration::from_secs(300));
    assert_eq!(c.mqtt.port, 1883);
    assert_eq!(c.mqtt.inflight, 32);
    assert_eq!(c.mqtt.max_payload, ByteSize(128 * 1024));
    assert_eq!(c.mqtt.reconnect_probe, Duration::from_secs(1));
    assert_eq!(c.mqtt.reconnect_spread, Duration::from_secs(3));
    assert_eq!(c.sensors[0].quantities, vec![Quantity::Temperature]);
    assert_eq!(c.manifest.loaded_at_skew, Duration::from_secs(5 * 60));
    assert_eq!(c.manifest.loaded_at_max_age, Duration::from_secs(7 * 86400));
    assert_eq!(c.manifest.serial_retention, Duration::from_secs(90 * 86400));
}

#[test]
fn the_load_time_skew_and_age_are_configurable() {
    let c = parse(
        &format!("{MINIMAL}\n[manifest]\nloaded_at_skew = \"30s\"\nloaded_at_max_age = \"2d\"\n"),
        "t",
    )
    .unwrap();
    assert_eq!(c.manifest.loaded_at_skew, Duration::from_secs(30));
    assert_eq!(c.manifest.loaded_at_max_age, Duration::from_secs(2 * 86400));
}

#[test]
fn every_syntax_error_on_its_own_line_is_reported_at_once() {
    let text = format!(
        "{MINIMAL}\n[storage\npath = \"x.redb\"\n[ingest]\nbatch_size = = 3\n[mqtt]\nhost = \"unterminated\n"
    );
    let p = problems(&text);
    let line_of = |needle: &str| text.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
    let lines = [line_of("[storage"), line_of("batch_size"), line_of("host")];
    assert_eq!(p.len(), 3, "{p:?}");
    for (problem, line) in p.iter().zip(lines) {
        assert!(problem.message.contains(&format!("line {line},")), "{p:?}");
    }
}

#[test]
fn syntax_errors_give_line_and_column() {
    let p = problems("gateway_id = \"g1\"\n[storage\npath = 1\n");
    assert_eq!(p.len(), 1);
    assert!(p[0].message.contains("line 2"), "{p:?}");
    assert!(p[0].message.contains("column"), "{p:?}");
}

#[test]
fn unknown_keys_are_named_with_their_path() {
    let p = problems(&MINIMAL.replace("zone = \"rear\"\nkind", "zoen = \"rear\"\nkind"));
    assert!(
        p.iter()
            .any(|p| p.path.starts_with("sensors[0]") && p.message.contains("zoen")),
        "{p:?}"
    );
}

#[test]
fn wrong_types_are_named_with_their_path() {
    let p = problems(&format!("{MINIMAL}\n[mqtt]\nport = \"eighteen\"\n"));
    assert!(p.iter().any(|p| p.path == "mqtt.port"), "{p:?}");
}

#[test]
fn unknown_zone_of_a_sensor_is_named() {
    let p = problems(&MINIMAL.replace("zone = \"rear\"", "zone = \"middle\""));
    assert!(has(&p, "sensors[0].zone", "middle"), "{p:?}");
}

#[test]
fn unknown_profile_of_a_zone_is_named() {
    let p = problems(&MINIMAL.replace("profile = \"refrigerated\"", "profile = \"deep-frozen\""));
    assert!(has(&p, "zones[0].profile", "deep-frozen"), "{p:?}");
}

#[test]
fn duplicate_ids_are_named() {
    let text = format!("{MINIMAL}\n[[sensors]]\nid = \"rear-1\"\nzone = \"rear\"\nkind = \"sim\"\n[[zones]]\nid = \"rear\"\nprofile = \"refrigerated\"\n");
    let p = problems(&text);
    assert!(has(&p, "sensors[1].id", "duplicate"), "{p:?}");
    assert!(has(&p, "zones[1].id", "duplicate"), "{p:?}");
}

#[test]
fn impossible_limits_are_named() {
    let p = problems(&MINIMAL.replace("low = 2.0, high = 8.0", "low = 8.0, high = 2.0"));
    assert!(has(&p, "profiles[0].limits[0].low", "below high"), "{p:?}");
    let p = problems(&MINIMAL.replace("low = 2.0, high = 8.0", "low = 8.0, high = 8.0"));
    assert!(has(&p, "profiles[0].limits[0].low", "below high"), "{p:?}");
}

#[test]
fn zero_intervals_are_named() {
    let text = format!(
        "{}\nreading_interval = \"0s\"\n[ingest]\nbatch_interval = \"0s\"\n",
        MINIMAL.trim_end()
    );
    let p = problems(&text);
    assert!(
        has(&p, "ingest.batch_interval", "longer than zero"),
        "{p:?}"
    );
    assert!(has(&p, "sim.reading_interval", "longer than zero"), "{p:?}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = MINIMAL
        .replace("zone = \"rear\"", "zone = \"middle\"")
        .replace("low = 2.0, high = 8.0", "low = 9.0, high = 8.0")
        .replace("gateway_id = \"g1\"", "gateway_id = \"g 1/#\"");
    let p = problems(&text);
    assert!(has(&p, "sensors[0].zone", "middle"), "{p:?}");
    assert!(has(&p, "profiles[0].limits[0].low", "below"), "{p:?}");
    assert!(has(&p, "gateway_id", "letters"), "{p:?}");
    assert_eq!(p.len(), 3, "{p:?}");
}

#[test]
fn presets_can_be_named_and_the_files_own_profile_replaces_a_preset() {
    let c = parse(
        &MINIMAL.replace("profile = \"refrigerated\"", "profile = \"who-30dtr\""),
        "t",
    )
    .unwrap();
    assert_eq!(c.zone_profile("rear").map(|p| p.limits.len()), Some(2));
    let c = parse(MINIMAL, "t").unwrap();
    let own = c.profile("refrigerated").unwrap();
    assert!(own.mkt.is_none(), "the file's refrigerated, not the preset");
}

#[test]
fn a_single_budget_is_refused_where_it_could_mean_either_direction() {
    let with = |limit: &str| {
        problems(&MINIMAL.replace(
            "limits = [{ quantity = \"temperature\", low = 2.0, high = 8.0, delay = \"5m\" }]",
            &format!("limits = [{limit}]"),
        ))
    };
    let p = with(r#"{ quantity = "temperature", low = 2.0, high = 8.0, budget = "1h" }"#);
    assert!(
        has(&p, "profiles[0].limits[0].budget", "per direction"),
        "{p:?}"
    );
    // One-sided: `budget` can only mean that side, so it stays valid.
    let p = with(r#"{ quantity = "temperature", high = 8.0, budget = "1h" }"#);
    assert!(p.is_empty(), "{p:?}");
    let p = with(r#"{ quantity = "temperature", high = 8.0, low_budget = "1h" }"#);
    assert!(
        has(&p, "profiles[0].limits[0].low_budget", "needs `low`"),
        "{p:?}"
    );
    let p = with(r#"{ quantity = "temperature", low = 0.0, freeze = true, low_budget = "1h" }"#);
    assert!(
        has(&p, "profiles[0].limits[0].freeze", "no budget"),
        "{p:?}"
    );
    let p = with(r#"{ quantity = "temperature", high = 8.0, freeze = true }"#);
    assert!(
        has(&p, "profiles[0].limits[0].freeze", "needs `low`"),
        "{p:?}"
    );
}

#[test]
fn a_one_sided_budget_is_that_sides_allowance_and_only_that_sides() {
    use crate::event::payload::Direction;
    let c = crate::config::parse(
        &MINIMAL.replace(
            "limits = [{ quantity = \"temperature\", low = 2.0, high = 8.0, delay = \"5m\" }]",
            r#"limits = [{ quantity = "temperature", high = 8.0, budget = "1h" }, { quantity = "temperature", low = 2.0, high = 9.0, low_budget = "2h" }]"#,
        ),
        "t",
    )
    .unwrap();
    let l = &c.profile("refrigerated").unwrap().limits;
    let h = std::time::Duration::from_secs(3600);
    assert_eq!(l[0].allowance(Direction::High), Some(h));
    assert_eq!(l[0].allowance(Direction::Low), None);
    assert_eq!(l[1].allowance(Direction::Low), Some(2 * h));
    assert_eq!(l[1].allowance(Direction::High), None);
}

#[test]
fn new_profile_keys_are_checked_with_their_paths() {
    let text = MINIMAL.replace(
        "limits = [{ quantity = \"temperature\", low = 2.0, high = 8.0, delay = \"5m\" }]",
        r#"silence = "0s"
light = { threshold = -1.0, hysteresis = 2.0 }
mkt = { limit = 8.0, window = "0s", activation_energy = 0.0 }
limits = [
  { quantity = "temperature", low = 2.0, high = 8.0, hysteresis = 3.0, high_budget = "0s" },
  { quantity = "temperature", high = 8.0, exclusive = true },
]"#,
    );
    let p = problems(&text);
    for (path, needle) in [
        ("profiles[0].silence", "longer than zero"),
        ("profiles[0].light.threshold", "positive"),
        ("profiles[0].light.hysteresis", "below the threshold"),
        ("profiles[0].mkt.window", "longer than zero"),
        ("profiles[0].mkt.activation_energy", "positive"),
        ("profiles[0].limits[0].hysteresis", "half the range"),
        ("profiles[0].limits[0].high_budget", "longer than zero"),
        (
            "profiles[0].limits[1].high",
            "already has a high limit of 8",
        ),
    ] {
        assert!(has(&p, path, needle), "{path}: {p:?}");
    }
    assert_eq!(p.len(), 8, "{p:?}");
}

#[test]
fn pallets_are_checked_field_by_field() {
    let text = format!(
        "{MINIMAL}\n[[pallets]]\nsscc = \"106141412345678909\"\nzone = \"hold\"\nprofile = \"nope\"\nloaded_at = \"yesterday\"\nitems = [{{ gtin = \"9520123456788\", lot = \"A B\", expiry = \"2027-02-30\", serials = [\"\"] }}]\n"
    );
    let p = problems(&text);
    for (path, needle) in [
        ("pallets[0].sscc", "check digit"),
        ("pallets[0].zone", "unknown zone `hold`"),
        ("pallets[0].profile", "unknown profile `nope`"),
        ("pallets[0].loaded_at", "RFC 3339"),
        ("pallets[0].items[0].gtin", "GTIN-14"),
        ("pallets[0].items[0].lot", "character set 82"),
        ("pallets[0].items[0].expiry", "YYYY-MM-DD"),
        ("pallets[0].items[0].serials[0]", "1 to 20"),
    ] {
        assert!(has(&p, path, needle), "{path}: {p:?}");
    }
    assert_eq!(p.len(), 8, "{p:?}");
}

#[test]
fn a_pallet_unloaded_before_it_was_loaded_is_named() {
    let text = format!(
        "{MINIMAL}\n[[pallets]]\nsscc = \"106141412345678908\"\nzone = \"rear\"\nloaded_at = \"2026-11-25T18:00:00Z\"\nunloaded_at = \"2026-11-25T17:00:00Z\"\nitems = [{{ gtin = \"09520123456788\", lot = \"A\" }}]\n"
    );
    let p = problems(&text);
    assert!(
        has(&p, "pallets[0].unloaded_at", "after loaded_at"),
        "{p:?}"
    );
    assert_eq!(p.len(), 1, "{p:?}");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,400}") {
            let _ = parse(&text, "fuzz");
        }

        #[test]
        fn mutated_example_never_panics(pos in 0usize..4000, byte in any::<u8>(), cut in 0usize..4000) {
            let mut bytes = EXAMPLE.as_bytes().to_vec();
            let pos = pos % bytes.len();
            bytes[pos] = byte;
            bytes.truncate(cut.max(pos + 1).min(bytes.len()));
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = parse(text, "fuzz");
            }
        }
    }
}

#[test]
fn sensors_fed_by_drivers_must_be_declared_with_their_kind() {
    let text = format!(
        "{MINIMAL}\n[[sensors]]\nid = \"wired-1\"\nzone = \"rear\"\nkind = \"modbus\"\n\
         [[sensors]]\nid = \"tag-1\"\nzone = \"rear\"\nkind = \"ble\"\n\
         [[modbus.tcp]]\nhost = \"127.0.0.1\"\nport = 502\n\
         [[modbus.tcp.devices]]\nsensor = \"rear-1\"\nunit = 0\nprofile = \"xy-md02\"\n\
         [[ble.sensors]]\nsensor = \"ghost\"\nmac = \"A4:C1:38:12:34:56\"\n"
    );
    let p = problems(&text);
    assert!(
        has(&p, "modbus.tcp[0].devices[0].sensor", "not of kind"),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|x| x.path.starts_with("modbus.tcp[0].devices[0].unit")),
        "{p:?}"
    );
    assert!(
        has(&p, "ble.sensors[0].sensor", "unknown sensor `ghost`"),
        "{p:?}"
    );
    assert!(has(&p, "sensors[1].kind", "wired-1"), "{p:?}");
    assert!(has(&p, "sensors[2].kind", "tag-1"), "{p:?}");
}

#[test]
fn a_gateway_with_modbus_and_ble_sensors_loads() {
    let text = format!(
        "{MINIMAL}\n[[sensors]]\nid = \"wired-1\"\nzone = \"rear\"\nkind = \"modbus\"\nquantities = [\"temperature\", \"humidity\"]\n\
         [[sensors]]\nid = \"tag-1\"\nzone = \"rear\"\nkind = \"ble\"\n\
         [[modbus.rtu]]\ndevice = \"/dev/ttyUSB0\"\n\
         [[modbus.rtu.devices]]\nsensor = \"wired-1\"\nunit = 1\nprofile = \"xy-md02\"\n\
         [[ble.sensors]]\nsensor = \"tag-1\"\nmac = \"A4:C1:38:12:34:56\"\nformat = \"pvvx\"\n"
    );
    let c = parse(&text, "wired").expect("loads");
    assert_eq!(c.modbus.rtu[0].devices[0].unit, 1);
    assert_eq!(c.ble.sensors.len(), 1);
}

#[test]
fn a_fifo_a_device_and_a_directory_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo failed");
    // No writer: a blocking open would hang here.
    let e = read_bounded(&fifo, MAX_FILE_SIZE).unwrap_err().to_string();
    assert!(e.contains("a FIFO"), "{e}");
    let zero = dir.path().join("zero.toml");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let e = load(&zero).unwrap_err().to_string();
    assert!(e.contains("a device") && e.contains("zero.toml"), "{e}");
    let e = read_bounded(dir.path(), MAX_FILE_SIZE)
        .unwrap_err()
        .to_string();
    assert!(e.contains("a directory"), "{e}");
}

#[test]
fn a_file_over_the_size_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.toml");
    std::fs::write(&big, vec![b'#'; (MAX_FILE_SIZE + 1) as usize]).unwrap();
    let e = load(&big).unwrap_err().to_string();
    assert!(e.contains("larger than the limit"), "{e}");
    std::fs::write(&big, b"abc").unwrap();
    assert_eq!(read_bounded(&big, 3).unwrap(), b"abc");
    assert!(read_bounded(&big, 2).is_err());
}

#[test]
fn a_huge_bad_value_is_echoed_truncated() {
    let huge = "x".repeat(100_000);
    let text = MINIMAL.replace("gateway_id = \"g1\"", &format!("gateway_id = \"{huge}\""));
    let e = parse(&text, "t").unwrap_err().to_string();
    assert!(e.len() < 1_000, "{} bytes", e.len());
    assert!(e.contains("more bytes"), "{e}");
    let text = MINIMAL.replace("[sim]", &format!("[sim]\nspeed = \"{huge}\""));
    let e = parse(&text, "t").unwrap_err().to_string();
    assert!(e.len() < 1_000, "{} bytes: {}", e.len(), &e[..200]);
}

#[test]
fn a_directory_as_storage_path_is_a_config_problem() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{MINIMAL}\n[storage]\npath = \"{}\"\n",
        dir.path().display()
    );
    let p = problems(&text);
    assert!(has(&p, "storage.path", "is a directory"), "{p:?}");
}

#[test]
fn plain_mqtt_is_refused_to_a_remote_broker_unless_allowed() {
    let remote = format!("{MINIMAL}\n[mqtt]\nhost = \"broker.example.com\"\n");
    let p = problems(&remote);
    assert!(has(&p, "mqtt.tls", "allow_plaintext"), "{p:?}");
    let allowed = format!("{remote}allow_plaintext = true\n");
    assert!(problems(&allowed).is_empty(), "{:?}", problems(&allowed));
    for host in [
        "127.0.0.1",
        "localhost",
        "::1",
        "[::1]",
        "::ffff:127.0.0.1",
        "127.3.4.5",
    ] {
        let local = format!("{MINIMAL}\n[mqtt]\nhost = \"{host}\"\n");
        assert!(
            problems(&local).is_empty(),
            "{host}: {:?}",
            problems(&local)
        );
    }
    let off = format!("{remote}enabled = false\n");
    assert!(problems(&off).is_empty());
}

#[test]
fn an_ipv4_mapped_loopback_counts_as_loopback() {
    assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
    assert!(is_loopback("127.0.0.1".parse().unwrap()));
    assert!(is_loopback("::1".parse().unwrap()));
    assert!(!is_loopback("::ffff:10.0.0.1".parse().unwrap()));
    assert!(!is_loopback("0.0.0.0".parse().unwrap()));
    let text = format!("{MINIMAL}\n[http]\nlisten = \"[::ffff:127.0.0.1]:8080\"\n");
    assert!(problems(&text).is_empty(), "{:?}", problems(&text));
}

#[test]
fn http_limits_and_host_names_are_checked() {
    let text = format!(
        "{MINIMAL}\n[http]\nmax_connections = 1\nheader_timeout = \"1ms\"\nallowed_hosts = [\"ok.local\", \"bad host:80\"]\n"
    );
    let p = problems(&text);
    assert!(has(&p, "http.max_connections", "between"), "{p:?}");
    assert!(has(&p, "http.header_timeout", "at least"), "{p:?}");
    assert!(has(&p, "http.allowed_hosts[1]", "not a host name"), "{p:?}");
    assert!(!p.iter().any(|x| x.path == "http.allowed_hosts[0]"));
}

#[test]
fn a_max_payload_outside_what_mqtt_and_one_event_need_is_named() {
    for bad in ["1KiB", "300MiB"] {
        let p = problems(&format!("{MINIMAL}[mqtt]\nmax_payload = \"{bad}\"\n"));
        assert!(
            has(&p, "mqtt.max_payload", "between 4KiB and 256MiB"),
            "{bad}: {p:?}"
        );
    }
    let ok = parse(&format!("{MINIMAL}[mqtt]\nmax_payload = \"256KiB\"\n"), "t").unwrap();
    assert_eq!(ok.mqtt.max_payload, ByteSize(256 * 1024));
}

#[test]
fn a_reconnect_probe_shorter_than_100ms_is_named_and_zero_turns_probes_off() {
    let p = problems(&format!("{MINIMAL}[mqtt]\nreconnect_probe = \"10ms\"\n"));
    assert!(has(&p, "mqtt.reconnect_probe", "at least 100ms"), "{p:?}");
    let off = parse(
        &format!("{MINIMAL}[mqtt]\nreconnect_probe = \"0s\"\nreconnect_spread = \"10s\"\n"),
        "t",
    )
    .unwrap();
    assert_eq!(off.mqtt.reconnect_probe, Duration::ZERO);
    assert_eq!(off.mqtt.reconnect_spread, Duration::from_secs(10));
}
