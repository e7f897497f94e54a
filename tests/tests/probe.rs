//! `coldgate probe` against a real Modbus TCP server (tokio-modbus) in the
//! test process: one unit answers, one does not. The probe prints the value
//! or the reason per sensor, fails if any sensor gave nothing, and stores
//! nothing (no database file appears).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, Output};
use std::sync::Arc;

use tokio_modbus::prelude::{ExceptionCode, Request, Response, SlaveRequest};

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");

/// Units by id, each with its input registers; an id not in the map never
/// answers (a unit that is unplugged or has another address).
struct Units(HashMap<u8, Vec<u16>>);

type Answer = Pin<Box<dyn Future<Output = Result<Option<Response>, ExceptionCode>> + Send>>;

impl tokio_modbus::server::Service for Units {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Answer;

    fn call(&self, req: Self::Request) -> Self::Future {
        let Some(words) = self.0.get(&req.slave) else {
            return Box::pin(std::future::ready(Ok(None)));
        };
        let result = match req.request {
            Request::ReadInputRegisters(a, n) => words
                .get(usize::from(a)..usize::from(a) + usize::from(n))
                .map(|w| Some(Response::ReadInputRegisters(w.to_vec())))
                .ok_or(ExceptionCode::IllegalDataAddress),
            _ => Err(ExceptionCode::IllegalFunction),
        };
        Box::pin(std::future::ready(result))
    }
}

/// Starts the server on its own runtime thread; it lives until the test
/// process ends.
fn start_server(units: Units) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let server = tokio_modbus::server::tcp::Server::new(listener);
            let units = Arc::new(units);
            let on_connected = |stream, _peer| {
                let units = Arc::clone(&units);
                async move { Ok(Some((units, stream))) }
            };
            let _ = server.serve(&on_connected, |_err| {}).await;
        });
    });
    rx.recv().unwrap()
}

/// A configuration with one Modbus TCP endpoint and a device per
/// `(sensor, unit)`: input register 0 is °C × 100, 1 is %RH × 10.
fn config(dir: &Path, addr: SocketAddr, devices: &[(&str, u8)]) -> PathBuf {
    let mut text = format!(
        r#"gateway_id = "probe-gw"
[storage]
path = "{db}"
[mqtt]
enabled = false
[[profiles]]
id = "refrigerated"
limits = [{{ quantity = "temperature", low = 2.0, high = 8.0 }}]
[[zones]]
id = "rear"
profile = "refrigerated"
[[modbus.tcp]]
host = "127.0.0.1"
port = {port}
timeout = "300ms"
retries = 0
"#,
        db = dir.join("coldgate.redb").display(),
        port = addr.port()
    );
    for (sensor, unit) in devices {
        text.push_str(&format!(
            r#"[[modbus.tcp.devices]]
sensor = "{sensor}"
unit = {unit}
registers = [
  {{ function = "input", address = 0, type = "i16", scale = 0.01, quantity = "temperature" }},
  {{ function = "input", address = 1, type = "u16", scale = 0.1, quantity = "humidity" }},
]
"#
        ));
    }
    for (sensor, _) in devices {
        text.push_str(&format!(
            "[[sensors]]\nid = \"{sensor}\"\nzone = \"rear\"\nkind = \"modbus\"\nquantities = [\"temperature\", \"humidity\"]\n"
        ));
    }
    let path = dir.join("coldgate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn probe(config: &Path) -> (Output, String, String) {
    let out = Command::new(BIN)
        .args(["probe", "--wait", "2s", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let so = String::from_utf8_lossy(&out.stdout).into_owned();
    let se = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, so, se)
}

#[test]
fn probe_prints_each_value_or_the_reason_and_fails_if_a_unit_is_silent() {
    let addr = start_server(Units(HashMap::from([(1, vec![425, 613])])));
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), addr, &[("answering", 1), ("silent", 9)]);
    let (out, so, se) = probe(&cfg);
    assert_eq!(out.status.code(), Some(1), "{so}\n{se}");
    let line = |id: &str| {
        so.lines()
            .find(|l| l.starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("no line for {id}:\n{so}\n{se}"))
            .to_string()
    };
    let answering = line("answering");
    assert!(
        answering.contains("temperature 4.25 °C") && answering.contains("humidity 61.3 %"),
        "{answering}"
    );
    let silent = line("silent");
    assert!(
        silent.contains(&format!(
            "NO VALUE: modbus-tcp:{addr} unit 9: no reply within 300 ms"
        )),
        "{silent}"
    );
    assert!(
        so.contains("probe: 1 of 2 sensor(s) gave a value; nothing was stored"),
        "{so}"
    );
    assert!(
        !dir.path().join("coldgate.redb").exists(),
        "the probe must not create or open the database"
    );
}

#[test]
fn probe_succeeds_when_every_unit_answers() {
    let addr = start_server(Units(HashMap::from([
        (1, vec![425, 613]),
        (2, vec![-150i16 as u16, 800]),
    ])));
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), addr, &[("front", 1), ("back", 2)]);
    let (out, so, se) = probe(&cfg);
    assert_eq!(out.status.code(), Some(0), "{so}\n{se}");
    assert!(so.contains("temperature -1.5 °C"), "{so}");
    assert!(so.contains("probe: 2 of 2 sensor(s) gave a value"), "{so}");
}
