//! Footprint of a working gateway: 100 sensors — 50 Modbus units polled over
//! TCP from a simulated peer (a separate process), 50 BLE sensors whose BTHome
//! advertisements come through the scanner trait — one reading per sensor
//! every 10 s, MQTT connected to a broker (a separate process).
//!
//! This process is the gateway: the library's `Gateway`, on the same runtime
//! `coldgate run` uses, with a synthetic scanner in place of btleplug (there
//! is no radio here). Its RSS and CPU time are the gateway's; the peer and the
//! broker are not counted.
//!
//! `cargo bench -p coldgate --bench footprint --no-default-features` (the
//! lean daemon the packages ship; its broker is then mosquitto) runs 10 minutes after a 30 s
//! warm-up (`COLDGATE_FOOTPRINT_SECS` changes it; `COLDGATE_FOOTPRINT_CACHE`,
//! e.g. `256KiB`, sets `storage.cache_size`) and prints the peak and
//! final RSS and the CPU share of one core. `scripts/bench` judges them
//! (targets: RSS <= 6.5 MiB, issue 19; CPU <= 0.5 %).

use std::future::Future;
use std::net::TcpStream;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coldgate::config;
use coldgate::daemon::Gateway;
use coldgate_sensor_drivers::ble::Advertisement;
use coldgate_sensor_drivers::ble::{AdvertisementStream, MacAddr, ScanError, Scanner};
use futures::future::BoxFuture;
use futures::StreamExt;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

const UNITS: u8 = 50;
const BLE: u8 = 50;
const EVERY: Duration = Duration::from_secs(10);

/// Every unit answers input registers 1 and 2 like an XY-MD02 (0.1 °C, 0.1 %).
struct Peer;

impl tokio_modbus::server::Service for Peer {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Pin<Box<dyn Future<Output = Result<Option<Response>, ExceptionCode>> + Send>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        let answer = match (req.slave, req.request) {
            (1..=UNITS, Request::ReadInputRegisters(1, 2)) => {
                Ok(Some(Response::ReadInputRegisters(vec![
                    48 + u16::from(req.slave % 7),
                    455,
                ])))
            }
            (1..=UNITS, _) => Err(ExceptionCode::IllegalDataAddress),
            _ => Ok(None),
        };
        Box::pin(std::future::ready(answer))
    }
}

fn serve_peer(port: u16) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("peer port");
        let server = tokio_modbus::server::tcp::Server::new(listener);
        let peer = Arc::new(Peer);
        let on_connected = |stream, _| {
            let peer = Arc::clone(&peer);
            async move { Ok(Some((peer, stream))) }
        };
        let _ = server.serve(&on_connected, |_| {}).await;
    });
}

fn mac(i: u8) -> MacAddr {
    MacAddr([0xA4, 0xC1, 0x38, 0x00, 0x00, i])
}

/// BTHome v2 advertisements (packet id, temperature in 0.01 °C) from `BLE`
/// sensors, each sensor twice per reading interval with the same packet id,
/// as real sensors repeat themselves; the source deduplicates.
struct SyntheticScanner;

impl Scanner for SyntheticScanner {
    fn describe(&self) -> String {
        "synthetic BTHome advertisers".into()
    }

    fn open(&mut self) -> BoxFuture<'_, Result<AdvertisementStream, ScanError>> {
        let gap = EVERY / (u32::from(BLE) * 2);
        let stream = futures::stream::unfold(0u64, move |n| async move {
            tokio::time::sleep(gap).await;
            let sensor = (n % u64::from(BLE)) as u8;
            let round = n / (u64::from(BLE) * 2);
            let centi = 450 + i16::from(sensor) + (round % 10) as i16;
            let mut data = vec![0x40, 0x00, (round % 256) as u8, 0x02];
            data.extend(centi.to_le_bytes());
            let adv = Advertisement::new(mac(sensor), coldgate::event::now_ms())
                .with_service_data(0xFCD2, data)
                .with_rssi(-70);
            Some((adv, n + 1))
        });
        Box::pin(async move { Ok(stream.boxed()) })
    }
}

fn config_text(dir: &std::path::Path, modbus_port: u16, mqtt_port: u16, http_port: u16) -> String {
    let mut t = format!(
        "gateway_id = \"footprint\"\n[storage]\npath = \"{}\"\n[mqtt]\nport = {mqtt_port}\n\
         [http]\nlisten = \"127.0.0.1:{http_port}\"\n\
         [[profiles]]\nid = \"refrigerated\"\nlimits = [{{ quantity = \"temperature\", low = 2.0, high = 8.0, delay = \"5m\" }}]\n\
         [[zones]]\nid = \"hold\"\nprofile = \"refrigerated\"\n\
         [[modbus.tcp]]\nhost = \"127.0.0.1\"\nport = {modbus_port}\n",
        dir.join("footprint.redb").display()
    );
    // To compare redb page cache sizes without editing the default.
    if let Ok(cache) = std::env::var("COLDGATE_FOOTPRINT_CACHE") {
        t = t.replacen("[mqtt]", &format!("cache_size = \"{cache}\"\n[mqtt]"), 1);
    }
    for u in 1..=UNITS {
        t.push_str(&format!(
            "[[modbus.tcp.devices]]\nsensor = \"mb-{u}\"\nunit = {u}\nprofile = \"xy-md02\"\npoll_interval = \"10s\"\n"
        ));
    }
    for i in 0..BLE {
        t.push_str(&format!(
            "[[ble.sensors]]\nsensor = \"ble-{i}\"\nmac = \"{}\"\nformat = \"bthome\"\n",
            mac(i)
        ));
    }
    for u in 1..=UNITS {
        t.push_str(&format!(
            "[[sensors]]\nid = \"mb-{u}\"\nzone = \"hold\"\nkind = \"modbus\"\nquantities = [\"temperature\", \"humidity\"]\n"
        ));
    }
    for i in 0..BLE {
        t.push_str(&format!(
            "[[sensors]]\nid = \"ble-{i}\"\nzone = \"hold\"\nkind = \"ble\"\n"
        ));
    }
    t
}

/// The MQTT broker, a separate process either way: `coldgate broker` where
/// this build has the demo's broker, else Debian's mosquitto. The lean build
/// (`--no-default-features`) is the daemon the packages ship, and the one
/// `scripts/steady-state-order` profiles.
fn spawn_broker(port: u16) -> Child {
    let port = port.to_string();
    let mut broker = if cfg!(feature = "demo") {
        let mut c = Command::new(env!("CARGO_BIN_EXE_coldgate"));
        c.args(["broker", "--port", &port]).env("RUST_LOG", "off");
        c
    } else {
        let mut c = Command::new("mosquitto");
        c.args(["-p", &port]);
        c
    };
    broker
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("broker starts (without the demo feature: mosquitto, apt-get install mosquitto)")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn wait_for(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Resident memory of this process, KiB: the total and its two halves that
/// shrink for different reasons. Anonymous pages are the gateway's heap and
/// stacks; file pages are mostly the executable's code and data actually
/// touched, which a smaller or leaner binary reduces.
#[derive(Clone, Copy, Default)]
struct Rss {
    total: u64,
    anon: u64,
    file: u64,
}

/// (resident memory, user+system CPU ticks) of this process.
fn sample() -> (Rss, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let rss = Rss {
        total: kib("VmRSS:"),
        anon: kib("RssAnon:"),
        file: kib("RssFile:"),
    };
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the
    // 12th and stime the 13th of them.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    (
        rss,
        f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0),
    )
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--modbus-peer") {
        let port = args
            .get(i + 1)
            .and_then(|p| p.parse().ok())
            .expect("--modbus-peer PORT");
        serve_peer(port);
        return;
    }
    // `cargo bench` passes --bench; `cargo test --benches` does not: keep that quick.
    let quick = !args.iter().any(|a| a == "--bench");
    let (warmup, secs) = if quick {
        (Duration::from_secs(3), 10)
    } else {
        let secs = std::env::var("COLDGATE_FOOTPRINT_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(600);
        (Duration::from_secs(30), secs)
    };

    let dir = tempfile::tempdir().expect("temp dir");
    let modbus_port = free_port();
    // The peer runs from a copy of this executable: a process of the same
    // file would share its pages with the gateway, which no real Modbus unit
    // does (and which keeps daemon/trim.rs from putting them out of the
    // page cache).
    let peer_exe = dir.path().join("modbus-peer");
    std::fs::copy(std::env::current_exe().expect("own path"), &peer_exe).expect("peer copy");
    let _peer = Kill(
        Command::new(&peer_exe)
            .args(["--modbus-peer", &modbus_port.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("peer starts"),
    );
    let mqtt_port = free_port();
    let _broker = Kill(spawn_broker(mqtt_port));
    wait_for(modbus_port);
    wait_for(mqtt_port);
    let config = config::parse(
        &config_text(dir.path(), modbus_port, mqtt_port, free_port()),
        "footprint",
    )
    .unwrap_or_else(|e| panic!("footprint config: {e}"));

    // The runtime `coldgate run` builds (gateway/src/cli/mod.rs).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let tick = clock_ticks_per_second();
    rt.block_on(async move {
        let gateway = Gateway::start_with_ble_scanner(&config, Vec::new(), Some(Box::new(SyntheticScanner)))
            .expect("gateway starts");
        tokio::time::sleep(warmup).await;
        let readings_before = gateway.store.reading_count().unwrap_or(0);
        let (_, cpu0) = sample();
        let t0 = Instant::now();
        let mut peak = Rss::default();
        while t0.elapsed() < Duration::from_secs(secs) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = sample().0;
            if now.total > peak.total {
                peak = now;
            }
        }
        let (rss, cpu1) = sample();
        let wall = t0.elapsed().as_secs_f64();
        let readings = gateway.store.reading_count().unwrap_or(0) - readings_before;
        let cpu_share = (cpu1 - cpu0) as f64 / tick as f64 / wall * 100.0;
        println!(
            "footprint: 100 sensors (50 Modbus TCP units, 50 BLE), one reading each per 10 s, {secs} s after a {}s warm-up: \
             RSS peak {:.1} MiB (anon {:.1}, file {:.1}), final {:.1} MiB (anon {:.1}, file {:.1}); \
             CPU {cpu_share:.2} % of one core; {readings} readings stored ({:.1}/s)",
            warmup.as_secs(),
            mib(peak.total),
            mib(peak.anon),
            mib(peak.file),
            mib(rss.total),
            mib(rss.anon),
            mib(rss.file),
            readings as f64 / wall
        );
        let _ = gateway.stop().await;
    });
}
