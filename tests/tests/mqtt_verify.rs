//! `mqtt.verify_own_status`: a broker that PUBACKs what its ACL denies (as
//! mosquitto 2.0 does) must not make events leave the outbox.

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use coldgate::daemon::Gateway;
use coldgate::store::Store;
use coldgate_tests::{free_port, read_mqtt_packet, start_broker, TestConfig};

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");

/// A broker that accepts everything and delivers nothing: CONNACK, SUBACK,
/// and a PUBACK for every QoS 1 PUBLISH, like mosquitto denying by ACL.
fn acl_denying_broker() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            std::thread::spawn(move || loop {
                let Some((head, body)) = read_mqtt_packet(&mut s) else {
                    return;
                };
                let reply: Vec<u8> = match head >> 4 {
                    1 => vec![0x20, 0x02, 0x00, 0x00],
                    3 if (head >> 1) & 0x03 == 1 && body.len() >= 2 => {
                        let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
                        match body.get(2 + topic_len..4 + topic_len) {
                            Some(pid) => vec![0x40, 0x02, pid[0], pid[1]],
                            None => return,
                        }
                    }
                    8 if body.len() >= 2 => vec![0x90, 0x03, body[0], body[1], 0x01],
                    12 => vec![0xD0, 0x00],
                    14 => return,
                    _ => Vec::new(),
                };
                if !reply.is_empty() && s.write_all(&reply).is_err() {
                    return;
                }
            });
        }
    });
    port
}

fn config(dir: &Path, port: u16, verify: bool) -> coldgate::config::Config {
    let mut cfg = TestConfig::new(dir);
    cfg.mqtt_port = Some(port);
    let path = cfg.write();
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[mqtt]\n",
        &format!("[mqtt]\nverify_own_status = {verify}\n"),
    );
    std::fs::write(&path, text).unwrap();
    coldgate::config::load(&path).expect("config loads")
}

/// Runs the gateway in this process for `for_at_most`, or until `done`;
/// returns the last link state and how many events were PUBACKed.
async fn run(
    config: &coldgate::config::Config,
    for_at_most: Duration,
    done: impl Fn(&coldgate::publish::LinkState, usize) -> bool,
) -> (coldgate::publish::LinkState, usize) {
    let mut gw = Gateway::start(config, Vec::new()).expect("starts");
    let mut delivered = gw.take_delivered().expect("delivered");
    let mut acked = 0;
    let deadline = Instant::now() + for_at_most;
    loop {
        while delivered.try_recv().is_ok() {
            acked += 1;
        }
        let link = gw.link.borrow().clone();
        if done(&link, acked) || Instant::now() > deadline {
            gw.stop().await.expect("stops");
            return (link, acked);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_acknowledges_but_never_delivers_keeps_every_event_in_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), acl_denying_broker(), true);
    let (link, acked) = run(&config, Duration::from_secs(20), |l, _| {
        l.last_error.is_some()
    })
    .await;
    let error = link.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("did not deliver this gateway's own status back")
            && error.contains("coldgate/v1/test-gw")
            && error.contains("events stay in the outbox"),
        "{error}"
    );
    assert!(link.connected && !link.verified, "{link:?}");
    assert_eq!(acked, 0, "no event may count as delivered");
    let store = Store::open_existing(&config.storage.path).unwrap();
    let events = store.last_event_seq().unwrap();
    assert!(events >= 2, "the simulator raised only {events} events");
    assert_eq!(store.outbox_depth().unwrap().0, events, "all still waiting");
}

/// Why the option exists: without it, the same broker empties the outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_verification_such_a_broker_swallows_events() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), acl_denying_broker(), false);
    let (_, acked) = run(&config, Duration::from_secs(20), |_, n| n >= 2).await;
    assert!(acked >= 2, "PUBACKed events count as delivered: {acked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_delivers_our_status_back_verifies_the_link_and_events_flow() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = start_broker(BIN, port);
    let config = config(dir.path(), port, true);
    let (link, acked) = run(&config, Duration::from_secs(30), |_, n| n >= 3).await;
    assert!(link.verified, "{link:?}");
    assert!(acked >= 3, "{acked} events PUBACKed; {link:?}");
}

/// `coldgate status` and `/metrics` of a gateway whose broker PUBACKs but
/// never delivers its own status back, and of one whose broker does.
fn status_and_metrics(http_port: u16) -> (String, String) {
    let out = std::process::Command::new(BIN)
        .args(["status", "--url", &format!("http://127.0.0.1:{http_port}")])
        .output()
        .expect("coldgate status runs");
    let metrics = coldgate_tests::http_get(&format!("http://127.0.0.1:{http_port}/metrics"), None);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        metrics.body,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_whose_own_status_never_comes_back_is_shown_connected_but_not_verified() {
    for (broker, verified) in [(None, false), (Some(free_port()), true)] {
        let dir = tempfile::tempdir().unwrap();
        let http_port = free_port();
        let _real = broker.map(|port| start_broker(BIN, port));
        let mut cfg = TestConfig::new(dir.path());
        cfg.mqtt_port = Some(broker.unwrap_or_else(acl_denying_broker));
        cfg.http_port = Some(http_port);
        let config = coldgate::config::load(&cfg.write()).expect("config loads");
        let gw = Gateway::start(&config, Vec::new()).expect("starts");
        let mut link = gw.link.clone();
        tokio::time::timeout(
            Duration::from_secs(20),
            link.wait_for(|l| l.connected && (l.verified || l.last_error.is_some())),
        )
        .await
        .expect("verified or given up on within 20 s")
        .unwrap();
        let (status, metrics) = tokio::task::spawn_blocking(move || status_and_metrics(http_port))
            .await
            .unwrap();
        assert!(metrics.contains("coldgate_mqtt_connected 1"), "{metrics}");
        if verified {
            assert!(status.contains(", verified"), "{status}");
            assert!(metrics.contains("coldgate_mqtt_verified 1"), "{metrics}");
        } else {
            assert!(
                status.contains("NOT VERIFIED")
                    && status.contains("ACL")
                    && status.contains("may be delivered to nobody"),
                "{status}"
            );
            assert!(metrics.contains("coldgate_mqtt_verified 0"), "{metrics}");
        }
        gw.stop().await.expect("stops");
    }
}
