//! The source driven through the scanner trait with scripted advertisements,
//! on tokio's paused clock.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::decode::ccm;
use super::*;
use crate::{Quantity, Reading, Source, SourceError};

const CONFIGURED: MacAddr = MacAddr([0xA4, 0xC1, 0x38, 0x00, 0x00, 0x01]);
const KEYED: MacAddr = MacAddr([0x54, 0x48, 0xE6, 0x8F, 0x80, 0xA5]);
const STRANGER: MacAddr = MacAddr([0x11, 0x22, 0x33, 0x44, 0x55, 0x66]);
const KEY: &str = "231d39c1d7cc1ab1aee224cd096db932";

fn config() -> BleConfig {
    BleConfig {
        adapter: None,
        sensors: vec![
            BleSensorConfig {
                sensor: "rear-ble-1".into(),
                mac: CONFIGURED.to_string(),
                format: None,
                key: None,
            },
            BleSensorConfig {
                sensor: "front-ble-enc".into(),
                mac: KEYED.to_string(),
                format: Some("bthome".into()),
                key: Some(KEY.into()),
            },
        ],
    }
}

/// A plain BTHome advertisement: packet id, temperature in 0.01 °C.
fn bthome(mac: MacAddr, at_ms: i64, packet_id: u8, centi_c: i16, rssi: i16) -> Advertisement {
    let mut data = vec![0x40, 0x00, packet_id, 0x02];
    data.extend(centi_c.to_le_bytes());
    Advertisement::new(mac, at_ms)
        .with_service_data(0xFCD2, data)
        .with_rssi(rssi)
}

/// An encrypted BTHome advertisement from KEYED with `counter`, 25.06 °C.
fn bthome_encrypted(at_ms: i64, counter: u32) -> Advertisement {
    let key: [u8; 16] = hex::decode(KEY).unwrap().try_into().unwrap();
    let mut nonce = KEYED.octets().to_vec();
    nonce.extend_from_slice(&[0xD2, 0xFC, 0x41]);
    nonce.extend(counter.to_le_bytes());
    let sealed = ccm::seal(&key, &nonce, &[], &[0x02, 0xCA, 0x09]);
    let (ct, mic) = sealed.split_at(sealed.len() - 4);
    let mut data = vec![0x41];
    data.extend_from_slice(ct);
    data.extend(counter.to_le_bytes());
    data.extend_from_slice(mic);
    Advertisement::new(KEYED, at_ms)
        .with_service_data(0xFCD2, data)
        .with_rssi(-50)
}

struct Running {
    readings: mpsc::Receiver<Reading>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Result<(), SourceError>>,
    diagnostics: Diagnostics,
    opened: std::sync::Arc<std::sync::Mutex<Vec<tokio::time::Instant>>>,
}

fn start(sessions: Vec<Session>) -> Running {
    let scanner = ScriptedScanner::new(sessions);
    let opened = scanner.open_times();
    let diagnostics = Diagnostics::new();
    let source = BleSource::new(&config(), Box::new(scanner), diagnostics.clone()).unwrap();
    assert_eq!(source.name(), "ble:scripted");
    let (tx, readings) = mpsc::channel(64);
    let (shutdown, rx) = watch::channel(false);
    let task = tokio::spawn(Box::new(source).run(tx, rx));
    Running {
        readings,
        shutdown,
        task,
        diagnostics,
        opened,
    }
}

impl Running {
    /// Lets the source work through everything scripted (virtual time).
    async fn settle(&self) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    fn drain(&mut self) -> Vec<Reading> {
        let mut out = Vec::new();
        while let Ok(r) = self.readings.try_recv() {
            out.push(r);
        }
        out
    }

    async fn stop(self) {
        self.shutdown.send(true).unwrap();
        let result = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        assert!(
            matches!(result, Ok(Ok(Ok(())))),
            "source stops cleanly on shutdown"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn only_configured_sensors_produce_readings() {
    let mut run = start(vec![Session::Deliver(vec![
        bthome(STRANGER, 1_000, 1, 2_000, -40),
        bthome(CONFIGURED, 2_000, 1, 506, -60),
    ])]);
    run.settle().await;
    let got = run.drain();
    assert_eq!(got.len(), 1);
    assert_eq!(&*got[0].sensor, "rear-ble-1");
    assert_eq!(got[0].quantity, Quantity::Temperature);
    assert_eq!(got[0].value, 5.06);
    assert_eq!(got[0].at_ms, 2_000);
    let snap = run.diagnostics.snapshot();
    assert_eq!(snap.advertisements_seen, 2);
    assert_eq!(snap.advertisements_ignored, 1);
    assert!(!snap.sensors.contains_key("11:22:33:44:55:66"));
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn advertisements_without_measurements_are_ignored_not_rejected() {
    let mut run = start(vec![Session::Deliver(vec![
        // An iBeacon frame from the configured sensor.
        Advertisement::new(CONFIGURED, 1_000).with_manufacturer_data(0x004C, vec![0x02, 0x15]),
        // A corrupt BTHome frame from it: that is a rejection.
        Advertisement::new(CONFIGURED, 2_000).with_service_data(0xFCD2, vec![0x40, 0x02, 0xCA]),
    ])]);
    run.settle().await;
    assert!(run.drain().is_empty());
    let snap = run.diagnostics.snapshot();
    assert_eq!(
        (snap.advertisements_ignored, snap.advertisements_rejected),
        (1, 1)
    );
    assert!(snap.sensors["rear-ble-1"]
        .last_error
        .as_deref()
        .unwrap()
        .contains("cut short"));
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_repeated_advertisement_is_counted_once() {
    let mut run = start(vec![Session::Deliver(vec![
        bthome(CONFIGURED, 1_000, 7, -1_850, -60),
        bthome(CONFIGURED, 1_100, 7, -1_850, -61),
        bthome(CONFIGURED, 1_200, 7, -1_850, -62),
        bthome(CONFIGURED, 61_000, 8, -1_840, -63),
    ])]);
    run.settle().await;
    let values: Vec<f64> = run.drain().iter().map(|r| r.value).collect();
    assert_eq!(values, [-18.5, -18.4]);
    let snap = run.diagnostics.snapshot();
    assert_eq!(snap.advertisements_duplicate, 2);
    assert_eq!(snap.sensors["rear-ble-1"].accepted, 2);
    assert_eq!(snap.sensors["rear-ble-1"].duplicates, 2);
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_encrypted_sensor_refuses_replayed_counters_and_plaintext() {
    let mut run = start(vec![Session::Deliver(vec![
        bthome_encrypted(1_000, 0x0011_2233),
        bthome_encrypted(2_000, 0x0011_2234),
        // A recording of the first advertisement, played back later.
        bthome_encrypted(3_000, 0x0011_2233),
        // Plaintext with the sensor's address: an injection attempt.
        bthome(KEYED, 4_000, 1, 9_999, -30),
        bthome_encrypted(5_000, 0x0011_2235),
    ])]);
    run.settle().await;
    let at: Vec<i64> = run.drain().iter().map(|r| r.at_ms).collect();
    assert_eq!(at, [1_000, 2_000, 5_000]);
    let snap = run.diagnostics.snapshot();
    assert_eq!(snap.advertisements_rejected, 2);
    let s = &snap.sensors["front-ble-enc"];
    assert_eq!((s.accepted, s.rejected), (3, 2));
    assert_eq!(
        s.last_seen_ms,
        Some(5_000),
        "rejected advertisements do not count as seen"
    );
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn rssi_and_last_seen_are_kept_per_sensor() {
    let run = start(vec![Session::Deliver(vec![
        bthome(CONFIGURED, 1_000, 1, 100, -70),
        bthome(CONFIGURED, 9_000, 1, 100, -55),
        bthome_encrypted(5_000, 1),
    ])]);
    run.settle().await;
    let snap = run.diagnostics.snapshot();
    let rear = &snap.sensors["rear-ble-1"];
    assert_eq!(rear.mac, "A4:C1:38:00:00:01");
    assert_eq!((rear.rssi, rear.last_seen_ms), (Some(-55), Some(9_000)));
    let front = &snap.sensors["front-ble-enc"];
    assert_eq!((front.rssi, front.last_seen_ms), (Some(-50), Some(5_000)));
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_missing_or_lost_adapter_is_retried_with_backoff_that_resets_after_data() {
    let no_adapter = || {
        Session::Fail(ScanError::NoAdapter {
            reason: "test".into(),
        })
    };
    let mut run = start(vec![
        no_adapter(),
        no_adapter(),
        no_adapter(),
        // The adapter appears, delivers, and is unplugged.
        Session::Deliver(vec![bthome(CONFIGURED, 1, 1, 100, -60)]),
        // Back, but lost again before anything arrives.
        Session::Deliver(vec![]),
        Session::Deliver(vec![bthome(CONFIGURED, 2, 2, 200, -60)]),
    ]);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let times = run.opened.lock().unwrap().clone();
    let gaps: Vec<u64> = times.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
    assert_eq!(
        gaps,
        [1, 2, 4, 1, 2, 1],
        "1 s, 2 s, 4 s; back to 1 s after data, doubling again without"
    );
    let values: Vec<f64> = run.drain().iter().map(|r| r.value).collect();
    assert_eq!(values, [1.0, 2.0], "readings from both sessions arrive");
    assert!(
        run.diagnostics.snapshot().adapter_up,
        "the last session is still running"
    );
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn backoff_is_capped_at_sixty_seconds_and_never_gives_up() {
    let fails = (0..12).map(|_| Session::Fail(ScanError::Bluetooth("down".into())));
    let run = start(fails.collect());
    tokio::time::sleep(Duration::from_secs(400)).await;
    let times = run.opened.lock().unwrap().clone();
    let gaps: Vec<u64> = times.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
    assert_eq!(gaps, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60, 60]);
    assert!(!run.task.is_finished());
    assert!(!run.diagnostics.snapshot().adapter_up);
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_interrupts_a_backoff_wait() {
    let run = start(vec![
        Session::Fail(ScanError::Bluetooth("down".into())),
        Session::Fail(ScanError::Bluetooth("still down".into())),
    ]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let opened = run.opened.clone();
    let asked = tokio::time::Instant::now();
    run.stop().await;
    // Virtual time: no time passes before the source returns. A wait that
    // ignored shutdown would sleep out the rest of its backoff (0.9 s) and
    // may open the adapter again before looking.
    assert!(
        asked.elapsed() < Duration::from_millis(10),
        "stopped {:?} after being asked",
        asked.elapsed()
    );
    assert_eq!(
        opened.lock().unwrap().len(),
        1,
        "no second open after shutdown"
    );
}

#[tokio::test(start_paused = true)]
async fn a_closed_ingest_ends_the_source_with_an_error() {
    let scanner =
        ScriptedScanner::new([Session::Deliver(vec![bthome(CONFIGURED, 1, 1, 100, -60)])]);
    let source = BleSource::new(&config(), Box::new(scanner), Diagnostics::new()).unwrap();
    let (tx, rx) = mpsc::channel(1);
    drop(rx);
    let (_shutdown, srx) = watch::channel(false);
    let result = Box::new(source).run(tx, srx).await;
    assert!(matches!(result, Err(SourceError::IngestClosed)));
}

#[test]
fn a_bad_configuration_is_refused_with_every_problem() {
    let mut cfg = config();
    cfg.sensors[0].mac = "nope".into();
    cfg.sensors[1].key = Some("00".into());
    let problems = match BleSource::new(
        &cfg,
        Box::new(ScriptedScanner::default()),
        Diagnostics::new(),
    ) {
        Err(p) => p,
        Ok(_) => panic!("bad configuration accepted"),
    };
    assert_eq!(problems.len(), 2, "{problems:?}");
}

#[test]
fn the_production_wiring_names_its_adapter_and_touches_no_radio_until_run() {
    let mut cfg = config();
    cfg.adapter = Some("hci1".into());
    let source = BleSource::with_btleplug(&cfg, Diagnostics::new()).unwrap();
    assert_eq!(source.name(), "ble:btleplug:hci1");
    let snap = source.diagnostics().snapshot();
    assert_eq!(
        snap.sensors.len(),
        2,
        "configured sensors are listed before they are heard"
    );
    assert_eq!(snap.sensors["rear-ble-1"].last_seen_ms, None);
}
