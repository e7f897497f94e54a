//! `coldgate demo` as a newcomer runs it, watched by a separate MQTT client.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coldgate::event::EXCURSION_FIELDS;
use coldgate_tests::{free_port, wait_for_port, Proc, Subscriber};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");

fn is_rfc3339(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| coldgate::event::parse_rfc3339(s).is_some())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_publishes_status_and_an_excursion_that_starts_and_ends() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "demo",
        "--duration",
        "90s",
        "--mqtt-port",
        &port.to_string(),
        "--data-dir",
    ])
    .arg(dir.path())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut demo = Proc::spawn("coldgate demo", cmd);
    let started = Instant::now();
    wait_for_port(port, Duration::from_secs(20));
    let mut sub = Subscriber::connect(port, "coldgate/#").await;

    let mut status = None;
    let mut began: Option<Value> = None;
    let mut ended: Option<Value> = None;
    while started.elapsed() < Duration::from_secs(80) && (status.is_none() || ended.is_none()) {
        let Some((topic, v)) = sub.next(Duration::from_secs(5)).await else {
            continue;
        };
        if topic.ends_with("/status") {
            status = Some(v);
        } else if topic.ends_with("/events/excursion") {
            match v["phase"].as_str() {
                Some("started") if began.is_none() => began = Some(v),
                Some("ended")
                    if began
                        .as_ref()
                        .is_some_and(|b| b["excursion_id"] == v["excursion_id"]) =>
                {
                    ended = Some(v)
                }
                _ => {}
            }
        }
    }
    let real_time = started.elapsed();
    let status = status.expect("a retained status message");
    assert_eq!(status["state"], "online");
    assert_eq!(status["schema"], "coldgate.status/1");
    let began = began.expect("an excursion started");
    let ended = ended.expect("the excursion ended");
    assert!(
        real_time < Duration::from_secs(60),
        "start and end took {real_time:?}"
    );
    for ev in [&began, &ended] {
        for key in EXCURSION_FIELDS {
            assert!(ev.get(*key).is_some(), "{key} missing in {ev}");
        }
        assert_eq!(ev["schema"], "coldgate.excursion/1");
        assert_eq!(
            ev["event_id"].as_str().map(str::len),
            Some(26),
            "ULID event_id"
        );
        assert!(ev["event_id"]
            .as_str()
            .unwrap()
            .parse::<ulid::Ulid>()
            .is_ok());
        assert!(ev["seq"].as_u64().is_some_and(|s| s >= 1));
        assert!(is_rfc3339(&ev["at"]) && is_rfc3339(&ev["started_at"]));
        assert_eq!(ev["quantity"], "temperature");
        assert_eq!(ev["unit"], "CEL");
        assert_eq!(ev["direction"], "high");
        assert_eq!(ev["limit"], 8.0);
        assert!(ev["affected"].is_array());
    }
    assert_eq!(began["ended_at"], Value::Null);
    assert!(is_rfc3339(&ended["ended_at"]));
    assert_ne!(began["event_id"], ended["event_id"]);
    assert!(ended["max"].as_f64().unwrap() >= 8.0);
    assert!(
        ended["duration_s"].as_i64().unwrap() > 300,
        "longer than the 5 min delay"
    );

    demo.signal(2);
    let status = demo.wait(Duration::from_secs(20));
    assert!(status.success(), "demo exit {status:?}");
    let out = demo.stdout_text();
    assert!(out.contains("EXCURSION started"), "{out}");
    assert!(out.contains("EXCURSION ended"), "{out}");
}

#[test]
fn demo_refuses_a_port_that_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = Command::new(BIN)
        .args(["demo", "--duration", "1s", "--mqtt-port", &port.to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("port {port}")) && err.contains("in use"),
        "{err}"
    );
}

/// docs/mqtt.md: events at QoS 1, telemetry at `mqtt.telemetry.qos`, which
/// the demo sets to 1 (its broker, rumqttd 0.20, forwards at the
/// subscription's QoS); a subscriber asking for QoS 1 gets both at QoS 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_demo_broker_telemetry_arrives_at_the_qos_the_docs_say() {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "demo",
        "--duration",
        "60s",
        "--speed",
        "600",
        "--mqtt-port",
        &port.to_string(),
        "--data-dir",
    ])
    .arg(dir.path())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let _demo = Proc::spawn("coldgate demo", cmd);
    wait_for_port(port, Duration::from_secs(20));
    let mut opts = MqttOptions::new("qos-probe", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    client
        .subscribe("coldgate/+/+/telemetry/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    client
        .subscribe("coldgate/+/+/events/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let (mut telemetry, mut events) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(50);
    while Instant::now() < deadline && (telemetry.len() < 3 || events.len() < 3) {
        match tokio::time::timeout(Duration::from_secs(5), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                if p.topic.contains("/telemetry/") {
                    telemetry.push(p.qos);
                } else {
                    events.push(p.qos);
                }
            }
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(e)) => panic!("probe lost its connection: {e}"),
        }
    }
    assert!(
        telemetry.len() >= 3 && events.len() >= 3,
        "{telemetry:?} {events:?}"
    );
    assert!(
        telemetry.iter().all(|q| *q == QoS::AtLeastOnce),
        "{telemetry:?}"
    );
    assert!(events.iter().all(|q| *q == QoS::AtLeastOnce), "{events:?}");
}

/// The README's first command is `cargo run --release -- demo` at the
/// workspace's root. With the fleet's and the harness's binaries beside the
/// gateway's, a bare `cargo run` cannot choose one ("could not determine
/// which binary to run") unless the workspace's default members name the
/// gateway alone and the gateway's `default-run` is `coldgate`: both are
/// read back from cargo itself.
#[test]
fn the_readme_demo_command_runs_the_gateway_binary() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let defaults = meta["workspace_default_members"].as_array().unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let named: Vec<&str> = defaults
        .iter()
        .filter_map(|id| {
            packages
                .iter()
                .find(|p| p["id"] == *id)
                .and_then(|p| p["name"].as_str())
        })
        .collect();
    assert_eq!(named, ["coldgate"], "workspace default members");
    let gateway = packages.iter().find(|p| p["name"] == "coldgate").unwrap();
    assert_eq!(gateway["default_run"], "coldgate");
}
