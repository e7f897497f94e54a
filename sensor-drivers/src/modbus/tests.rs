//! Tests of the Modbus driver: pure decoding and framing, configuration
//! validation, and polling against real tokio-modbus servers (TCP on
//! localhost, RTU on a pseudo-terminal pair). No mocks of the protocol.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

use super::config::*;
use super::decode::*;
use super::plan::plan_blocks;
use super::rtu::{crc16, parse_reply, read_request, BadReply, ReplyParse};
use super::*;
use crate::{Quantity, Reading, Source, SourceError};

// ---------------------------------------------------------------- decoding

fn reg(kind: RegisterType, word_order: Option<WordOrder>) -> RegisterConfig {
    RegisterConfig {
        function: Function::Holding,
        address: 0,
        kind,
        word_order,
        scale: 1.0,
        offset: 0.0,
        quantity: Quantity::Temperature,
        sentinels: vec![],
    }
}

#[test]
fn sixteen_bit_types_decode_signed_and_unsigned() {
    assert_eq!(
        decode_register(&reg(RegisterType::U16, None), &[0xFFFE]),
        Decoded::Value(65534.0)
    );
    assert_eq!(
        decode_register(&reg(RegisterType::I16, None), &[0xFFFE]),
        Decoded::Value(-2.0)
    );
    assert_eq!(
        decode_register(&reg(RegisterType::I16, None), &[0x00D7]),
        Decoded::Value(215.0)
    );
}

#[test]
fn thirty_two_bit_types_honour_word_order() {
    let big = Some(WordOrder::Big);
    let little = Some(WordOrder::Little);
    // 0x0001_0002 = 65538
    assert_eq!(
        decode_register(&reg(RegisterType::U32, big), &[0x0001, 0x0002]),
        Decoded::Value(65538.0)
    );
    assert_eq!(
        decode_register(&reg(RegisterType::U32, little), &[0x0002, 0x0001]),
        Decoded::Value(65538.0)
    );
    // -2 = 0xFFFF_FFFE
    assert_eq!(
        decode_register(&reg(RegisterType::I32, big), &[0xFFFF, 0xFFFE]),
        Decoded::Value(-2.0)
    );
    assert_eq!(
        decode_register(&reg(RegisterType::I32, little), &[0xFFFE, 0xFFFF]),
        Decoded::Value(-2.0)
    );
    // 21.5f32 = 0x41AC_0000
    assert_eq!(
        decode_register(&reg(RegisterType::F32, big), &[0x41AC, 0x0000]),
        Decoded::Value(21.5)
    );
    assert_eq!(
        decode_register(&reg(RegisterType::F32, little), &[0x0000, 0x41AC]),
        Decoded::Value(21.5)
    );
    // The same words in the other order are a different number: order matters.
    assert_ne!(
        decode_register(&reg(RegisterType::F32, little), &[0x41AC, 0x0000]),
        Decoded::Value(21.5)
    );
}

#[test]
fn tenths_and_hundredths_decode_to_the_nearest_double() {
    let mut r = reg(RegisterType::I16, None);
    r.scale = 0.1;
    assert_eq!(decode_register(&r, &[41]), Decoded::Value(4.1));
    assert_eq!(decode_register(&r, &[215]), Decoded::Value(21.5));
    r.scale = 0.01;
    assert_eq!(
        decode_register(&r, &[(-733i16) as u16]),
        Decoded::Value(-7.33)
    );
    r.scale = 2.5;
    assert_eq!(decode_register(&r, &[4]), Decoded::Value(10.0));
}

#[test]
fn cli_words_parse_to_config_types() {
    assert_eq!("input".parse::<Function>(), Ok(Function::Input));
    assert_eq!("F32".parse::<RegisterType>(), Ok(RegisterType::F32));
    assert_eq!("little".parse::<WordOrder>(), Ok(WordOrder::Little));
    assert_eq!("E".parse::<Parity>(), Ok(Parity::Even));
    let err = "coil".parse::<Function>().unwrap_err().to_string();
    assert!(err.contains("coil") && err.contains("holding"), "{err}");
}

#[test]
fn scale_and_offset_apply_after_decoding() {
    let mut r = reg(RegisterType::I16, None);
    r.scale = 0.1;
    r.offset = -40.0;
    let Decoded::Value(v) = decode_register(&r, &[0xFFF6]) else {
        panic!("no value")
    };
    assert!((v - (-41.0)).abs() < 1e-9, "{v}");
}

#[test]
fn sentinels_yield_no_value_instead_of_a_wrong_one() {
    let mut r = reg(RegisterType::I16, None);
    r.sentinels = vec![Sentinel::Int(0x8000), Sentinel::Int(0x7FFF)];
    assert_eq!(decode_register(&r, &[0x8000]), Decoded::Sentinel);
    assert_eq!(decode_register(&r, &[0x7FFF]), Decoded::Sentinel);
    assert_eq!(decode_register(&r, &[0x7FFE]), Decoded::Value(32766.0));
    // A negative sentinel matches the decoded signed value too.
    r.sentinels = vec![Sentinel::Int(-32768)];
    assert_eq!(decode_register(&r, &[0x8000]), Decoded::Sentinel);

    let mut f = reg(RegisterType::F32, Some(WordOrder::Big));
    f.sentinels = vec![Sentinel::Float(f64::NAN), Sentinel::Float(-999.0)];
    assert_eq!(decode_register(&f, &[0x7FC0, 0x0000]), Decoded::Sentinel);
    assert_eq!(
        decode_register(
            &f,
            &(-999.0f32)
                .to_bits()
                .to_be_bytes()
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect::<Vec<_>>()
        ),
        Decoded::Sentinel
    );
    // NaN without a sentinel is still never a reading.
    f.sentinels.clear();
    assert_eq!(decode_register(&f, &[0x7FC0, 0x0000]), Decoded::NotFinite);

    let mut u = reg(RegisterType::U32, Some(WordOrder::Big));
    u.sentinels = vec![Sentinel::Int(0xFFFF_FFFF)];
    assert_eq!(decode_register(&u, &[0xFFFF, 0xFFFF]), Decoded::Sentinel);
}

#[test]
fn short_input_is_reported_not_panicked() {
    assert_eq!(
        decode_register(&reg(RegisterType::U32, Some(WordOrder::Big)), &[1]),
        Decoded::Short
    );
    assert_eq!(
        decode_register(&reg(RegisterType::U16, None), &[]),
        Decoded::Short
    );
}

#[test]
fn decode_words_splits_a_block_into_values() {
    assert_eq!(
        decode_words(&[1, 0xFFFF, 3], RegisterType::I16, None),
        vec![1.0, -1.0, 3.0]
    );
    assert_eq!(
        decode_words(&[0, 1, 0, 2, 9], RegisterType::U32, Some(WordOrder::Big)),
        vec![1.0, 2.0]
    );
}

#[test]
fn contiguous_registers_are_read_in_one_request() {
    let profile = profiles::built_in("xy-md02").unwrap();
    let blocks = plan_blocks(&profile.registers);
    assert_eq!(blocks.len(), 1);
    assert_eq!((blocks[0].address, blocks[0].count), (1, 2));

    let mut regs = vec![
        reg(RegisterType::F32, Some(WordOrder::Big)),
        reg(RegisterType::U16, None),
    ];
    regs[1].address = 2; // right after the float: same block
    let mut far = reg(RegisterType::U16, None);
    far.address = 10; // a hole: another request
    regs.push(far);
    let mut input = reg(RegisterType::U16, None);
    input.function = Function::Input; // another table: another request
    regs.push(input);
    let blocks = plan_blocks(&regs);
    let shape: Vec<_> = blocks
        .iter()
        .map(|b| (b.function, b.address, b.count, b.fields.len()))
        .collect();
    assert_eq!(
        shape,
        vec![
            (Function::Holding, 0, 3, 2),
            (Function::Holding, 10, 1, 1),
            (Function::Input, 0, 1, 1)
        ]
    );
}

// ------------------------------------------------------------------ framing

#[test]
fn crc_matches_the_modbus_reference_frame() {
    // Read 10 holding registers from unit 1 at 0: the classic example frame.
    assert_eq!(
        read_request(1, Function::Holding, 0, 10),
        [0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD]
    );
    assert_eq!(crc16(b"123456789"), 0x4B37);
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = body.to_vec();
    f.extend_from_slice(&crc16(body).to_le_bytes());
    f
}

#[test]
fn reply_is_accepted_only_when_crc_unit_function_and_count_match() {
    let good = frame(&[7, 0x04, 4, 0x00, 0xD7, 0x01, 0xF4]);
    assert_eq!(
        parse_reply(7, Function::Input, 2, &good),
        ReplyParse::Registers(vec![215, 500])
    );
    for n in 0..good.len() {
        assert_eq!(
            parse_reply(7, Function::Input, 2, &good[..n]),
            ReplyParse::Incomplete,
            "prefix {n}"
        );
    }
    let mut bad_crc = good.clone();
    bad_crc[4] ^= 1;
    assert_eq!(
        parse_reply(7, Function::Input, 2, &bad_crc),
        ReplyParse::Bad(BadReply::Crc)
    );
    assert!(matches!(
        parse_reply(8, Function::Input, 2, &good),
        ReplyParse::Bad(BadReply::Mismatch(_))
    ));
    assert!(matches!(
        parse_reply(7, Function::Input, 3, &good),
        ReplyParse::Bad(BadReply::Mismatch(_))
    ));
    assert!(matches!(
        parse_reply(7, Function::Holding, 2, &good),
        ReplyParse::Bad(BadReply::Mismatch(_))
    ));
    let exception = frame(&[7, 0x84, 0x02]);
    assert_eq!(
        parse_reply(7, Function::Input, 2, &exception),
        ReplyParse::Exception(Exception::IllegalDataAddress)
    );
}

proptest! {
    #[test]
    fn reply_parser_never_panics_on_any_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        unit in any::<u8>(),
        count in 0u16..200,
        holding in any::<bool>(),
    ) {
        let function = if holding { Function::Holding } else { Function::Input };
        let _ = parse_reply(unit, function, count, &bytes);
    }

    #[test]
    fn decoder_never_panics_on_any_words(words in proptest::collection::vec(any::<u16>(), 0..4), k in 0usize..5, little in any::<bool>()) {
        let kinds = [RegisterType::I16, RegisterType::U16, RegisterType::I32, RegisterType::U32, RegisterType::F32];
        let order = Some(if little { WordOrder::Little } else { WordOrder::Big });
        let _ = decode_register(&reg(kinds[k], order), &words);
        let _ = decode_words(&words, kinds[k], order);
    }
}

#[test]
fn exceptions_are_named_with_what_to_check() {
    let e = RequestError::Exception {
        exception: Exception::IllegalDataAddress,
    };
    let text = e.to_string();
    assert!(text.contains("IllegalDataAddress"), "{text}");
    assert!(text.contains("0-based"), "{text}");
    assert!(RequestError::Timeout {
        timeout_ms: 500,
        over_tcp: false
    }
    .to_string()
    .contains("A/B wiring"));
    assert_eq!(
        Exception::from(ExceptionCode::IllegalFunction),
        Exception::IllegalFunction
    );
    assert_eq!(Exception::from_code(0x42), Exception::Other(0x42));
}

// ------------------------------------------------------------ configuration

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Wrapper {
    modbus: ModbusConfig,
}

const EXAMPLE: &str = include_str!("../../../config/modbus-profiles.toml");

#[test]
fn the_shipped_example_loads_and_has_no_problems() {
    let cfg: Wrapper = toml::from_str(EXAMPLE).unwrap();
    assert_eq!(cfg.modbus.validate("modbus"), vec![]);
    assert_eq!(cfg.modbus.rtu[0].timeout, Duration::from_millis(500));
    assert_eq!(cfg.modbus.rtu[0].effective_gap(), Duration::from_millis(5));
    let with_gap = EXAMPLE.replace("# gap = \"5ms\"", "gap = \"12ms\"");
    let cfg2: Wrapper = toml::from_str(&with_gap).unwrap();
    assert_eq!(
        cfg2.modbus.rtu[0].effective_gap(),
        Duration::from_millis(12)
    );
    assert!(cfg.modbus.sources(&HealthMap::new()).is_ok());
}

#[test]
fn unknown_keys_are_refused() {
    let text = "[modbus]\n[[modbus.tcp]]\nhost = \"x\"\n[[modbus.tcp.devices]]\nsensor = \"a\"\nunit = 1\nprofile = \"xy-md02\"\npoll_intervall = \"1s\"\n";
    let err = toml::from_str::<Wrapper>(text).err().unwrap().to_string();
    assert!(err.contains("poll_intervall"), "{err}");
}

fn problems_of(text: &str) -> Vec<ConfigProblem> {
    toml::from_str::<Wrapper>(text)
        .unwrap()
        .modbus
        .validate("modbus")
}

fn has(problems: &[ConfigProblem], path: &str, word: &str) -> bool {
    problems
        .iter()
        .any(|p| p.path == path && p.message.contains(word))
}

#[test]
fn validation_reports_every_problem_with_its_key_path() {
    let text = r#"
[[modbus.rtu]]
device = "/dev/ttyUSB0"
timeout = "0s"

[[modbus.rtu.devices]]
sensor = "front"
unit = 1
profile = "xy-md02"

[[modbus.rtu.devices]]
sensor = "rear"
unit = 2
profile = "xy-md02"
poll_interval = "0s"

[[modbus.rtu.devices]]
sensor = "door"
unit = 0
profile = "lux-u32"

[[modbus.tcp]]
host = "10.0.0.5"

[[modbus.tcp.devices]]
sensor = "reefer"
unit = 1
profile = "no-such-profile"

[[modbus.tcp.devices]]
sensor = "front"
unit = 2
registers = [
  { function = "holding", address = 0, type = "u16", quantity = "temperature" },
  { function = "holding", address = 1, type = "u32", word_order = "big", quantity = "humidity" },
  { function = "holding", address = 2, type = "u16", quantity = "battery" },
  { function = "input", address = 2, type = "u16", quantity = "battery" },
]

[[modbus.profiles]]
name = "my-float"
registers = [{ function = "input", address = 0, type = "f32", quantity = "temperature" }]
"#;
    let problems = problems_of(text);
    let show = problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        has(
            &problems,
            "modbus.rtu[0].devices[2].unit",
            "outside 1..=247"
        ),
        "{show}"
    );
    assert!(has(&problems, "modbus.rtu[0].timeout", "above 0"), "{show}");
    assert!(
        has(
            &problems,
            "modbus.rtu[0].devices[1].poll_interval",
            "above 0"
        ),
        "{show}"
    );
    assert!(
        has(
            &problems,
            "modbus.tcp[0].devices[0].profile",
            "no-such-profile"
        ),
        "{show}"
    );
    assert!(
        has(
            &problems,
            "modbus.tcp[0].devices[1].registers[2].address",
            "overlap registers[1]"
        ),
        "{show}"
    );
    assert!(
        has(
            &problems,
            "modbus.tcp[0].devices[1].sensor",
            "already used by modbus.rtu[0].devices[0]"
        ),
        "{show}"
    );
    assert!(
        has(
            &problems,
            "modbus.profiles[0].registers[0].word_order",
            "word_order"
        ),
        "{show}"
    );
    // Same address in the input table does not overlap the holding one.
    assert!(
        !problems.iter().any(|p| p.path.contains("registers[3]")),
        "{show}"
    );
    assert_eq!(problems.len(), 7, "{show}");
}

#[test]
fn device_needs_exactly_one_of_profile_and_registers() {
    let mut d = DeviceConfig::with_profile("a", 1, "xy-md02");
    d.registers = Some(vec![reg(RegisterType::U16, None)]);
    assert!(has(&d.validate("x", &[]), "x", "not both"));
    d.profile = None;
    d.registers = None;
    assert!(has(&d.validate("x", &[]), "x", "set `profile`"));
}

#[test]
fn user_profiles_may_not_shadow_built_ins_or_repeat() {
    let text = r#"
[[modbus.profiles]]
name = "xy-md02"
registers = [{ function = "input", address = 0, type = "u16", quantity = "temperature" }]
[[modbus.profiles]]
name = "mine"
registers = [{ function = "input", address = 0, type = "u16", quantity = "temperature" }]
[[modbus.profiles]]
name = "mine"
registers = [{ function = "input", address = 0, type = "u16", quantity = "temperature" }]
"#;
    let problems = problems_of(text);
    assert!(has(&problems, "modbus.profiles[0].name", "built-in"));
    assert!(has(&problems, "modbus.profiles[2].name", "twice"));
}

#[test]
fn default_gap_is_three_and_a_half_characters_but_at_least_five_ms() {
    let mut bus = RtuBusConfig::new("/dev/null");
    assert_eq!(bus.effective_gap(), Duration::from_millis(5)); // 9600 8N1: 4.0 ms -> 5 ms
    bus.baud = 1200; // 10 bits / 1200 * 3.5 = 29.2 ms
    let gap = bus.effective_gap();
    assert!(
        gap > Duration::from_millis(29) && gap < Duration::from_millis(30),
        "{gap:?}"
    );
}

// ------------------------------------------------- a real tokio-modbus peer

/// One simulated unit. Its `calls` counter is shared between clones, so the
/// server sees every request the unit got.
#[derive(Clone, Default)]
struct SimUnit {
    input: BTreeMap<u16, u16>,
    holding: BTreeMap<u16, u16>,
    /// Never answers.
    silent: bool,
    /// The first `late_requests` requests are answered after `late_by`, with
    /// every register replaced by `stale`: a reply that must never be used.
    late_requests: usize,
    late_by: Duration,
    stale: u16,
    calls: Arc<AtomicUsize>,
}

impl SimUnit {
    /// An XY-MD02-like unit: input 1 = temperature x10, input 2 = humidity x10.
    fn xy(temp_tenths: i16, rh_tenths: u16) -> Self {
        SimUnit {
            input: BTreeMap::from([(1, temp_tenths as u16), (2, rh_tenths)]),
            ..SimUnit::default()
        }
    }
}

#[derive(Clone, Default)]
struct Sim {
    units: HashMap<u8, SimUnit>,
}

fn table_read(
    table: &BTreeMap<u16, u16>,
    address: u16,
    count: u16,
) -> Result<Vec<u16>, ExceptionCode> {
    (0..count)
        .map(|i| {
            table
                .get(&address.wrapping_add(i))
                .copied()
                .ok_or(ExceptionCode::IllegalDataAddress)
        })
        .collect()
}

type SimFuture = Pin<Box<dyn Future<Output = Result<Option<Response>, ExceptionCode>> + Send>>;

impl tokio_modbus::server::Service for Sim {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = SimFuture;

    fn call(&self, req: Self::Request) -> Self::Future {
        let Some(unit) = self.units.get(&req.slave) else {
            return Box::pin(std::future::ready(Ok(None)));
        };
        let n = unit.calls.fetch_add(1, Ordering::SeqCst);
        if unit.silent {
            return Box::pin(std::future::ready(Ok(None)));
        }
        let late = n < unit.late_requests;
        let stale = unit.stale;
        let restale = |words: Vec<u16>| {
            if late {
                words.iter().map(|_| stale).collect()
            } else {
                words
            }
        };
        let result = match req.request {
            Request::ReadInputRegisters(a, c) => {
                table_read(&unit.input, a, c).map(|w| Response::ReadInputRegisters(restale(w)))
            }
            Request::ReadHoldingRegisters(a, c) => {
                table_read(&unit.holding, a, c).map(|w| Response::ReadHoldingRegisters(restale(w)))
            }
            _ => Err(ExceptionCode::IllegalFunction),
        };
        let delay = if late { unit.late_by } else { Duration::ZERO };
        Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            result.map(Some)
        })
    }
}

/// Starts a tokio-modbus TCP server; `addr` port 0 picks a free port.
async fn start_tcp(addr: SocketAddr, sim: Sim) -> (SocketAddr, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let local = listener.local_addr().unwrap();
    let server = tokio_modbus::server::tcp::Server::new(listener);
    let sim = Arc::new(sim);
    let handle = tokio::spawn(async move {
        let on_connected = |stream, _peer| {
            let sim = Arc::clone(&sim);
            async move { Ok(Some((sim, stream))) }
        };
        let _ = server.serve(&on_connected, |_err| {}).await;
    });
    (local, handle)
}

/// Starts a tokio-modbus RTU server on one end of a pty pair; returns the other end.
fn start_rtu(sim: Sim) -> (tokio_serial::SerialStream, JoinHandle<()>) {
    let (ours, theirs) = tokio_serial::SerialStream::pair().unwrap();
    let server = tokio_modbus::server::rtu::Server::new(theirs);
    let handle = tokio::spawn(async move {
        let _ = server.serve_forever(sim).await;
    });
    (ours, handle)
}

struct Running {
    rx: mpsc::Receiver<Reading>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), SourceError>>,
}

fn run(source: Box<dyn Source>) -> Running {
    let (tx, rx) = mpsc::channel(1024);
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(source.run(tx, shutdown));
    Running { rx, stop, task }
}

impl Running {
    /// Every reading received during `d`, with the instant it arrived.
    async fn collect(&mut self, d: Duration) -> Vec<(Instant, Reading)> {
        let end = Instant::now() + d;
        let mut out = Vec::new();
        while let Ok(Some(r)) = tokio::time::timeout_at(end, self.rx.recv()).await {
            out.push((Instant::now(), r));
        }
        out
    }

    async fn shutdown(self) {
        self.stop.send(true).unwrap();
        let result = tokio::time::timeout(Duration::from_secs(2), self.task).await;
        assert!(
            matches!(result, Ok(Ok(Ok(())))),
            "source did not stop cleanly"
        );
    }
}

fn xy_device(sensor: &str, unit: u8, interval_ms: u64) -> DeviceConfig {
    let mut d = DeviceConfig::with_profile(sensor, unit, "xy-md02");
    d.poll_interval = Duration::from_millis(interval_ms);
    d
}

fn values_of(readings: &[(Instant, Reading)], sensor: &str, q: Quantity) -> Vec<f64> {
    readings
        .iter()
        .filter(|(_, r)| &*r.sensor == sensor && r.quantity == q)
        .map(|(_, r)| r.value)
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

fn rtu_bus(timeout_ms: u64, drain_ms: u64, devices: Vec<DeviceConfig>) -> RtuBusConfig {
    let mut bus = RtuBusConfig::new("pty-under-test");
    bus.baud = 115_200;
    bus.timeout = Duration::from_millis(timeout_ms);
    bus.drain = Duration::from_millis(drain_ms);
    bus.max_backoff = Duration::from_millis(400);
    bus.devices = devices;
    bus
}

#[tokio::test]
async fn rtu_bus_polls_several_units_and_each_reading_carries_its_sensor() {
    let sim = Sim {
        units: HashMap::from([
            (1, SimUnit::xy(41, 501)),
            (2, SimUnit::xy(-52, 602)),
            (3, SimUnit::xy(63, 703)),
        ]),
    };
    let (port, server) = start_rtu(sim);
    let bus = rtu_bus(
        200,
        50,
        vec![
            xy_device("s1", 1, 100),
            xy_device("s2", 2, 100),
            xy_device("s3", 3, 100),
        ],
    );
    let health = HealthMap::new();
    let source = RtuSource::new(bus, &[], health.clone())
        .unwrap()
        .with_port(port);
    let mut running = run(Box::new(source));
    let readings = running.collect(Duration::from_millis(700)).await;
    running.shutdown().await;
    server.abort();

    for (sensor, t, h) in [("s1", 4.1, 50.1), ("s2", -5.2, 60.2), ("s3", 6.3, 70.3)] {
        let temps = values_of(&readings, sensor, Quantity::Temperature);
        let hums = values_of(&readings, sensor, Quantity::Humidity);
        assert!(temps.len() >= 3, "{sensor}: {temps:?}");
        assert!(temps.iter().all(|v| close(*v, t)), "{sensor}: {temps:?}");
        assert!(
            hums.iter().all(|v| close(*v, h)) && hums.len() == temps.len(),
            "{sensor}: {hums:?}"
        );
        let hl = health.get(sensor).unwrap();
        assert_eq!(
            (
                hl.timeouts,
                hl.crc_errors,
                hl.framing_errors,
                hl.consecutive_failures
            ),
            (0, 0, 0, 0),
            "{hl:?}"
        );
        assert!(hl.last_success_ms.is_some());
    }
}

#[tokio::test]
async fn rtu_silent_unit_does_not_starve_the_others() {
    let silent = SimUnit {
        silent: true,
        ..SimUnit::xy(0, 0)
    };
    let sim = Sim {
        units: HashMap::from([
            (1, SimUnit::xy(41, 501)),
            (2, silent.clone()),
            (3, SimUnit::xy(63, 703)),
        ]),
    };
    let (port, server) = start_rtu(sim);
    let interval = 200;
    let (timeout, drain) = (100, 50);
    let bus = rtu_bus(
        timeout,
        drain,
        vec![
            xy_device("s1", 1, interval),
            xy_device("dead", 2, interval),
            xy_device("s3", 3, interval),
        ],
    );
    let health = HealthMap::new();
    let source = RtuSource::new(bus, &[], health.clone())
        .unwrap()
        .with_port(port);
    let mut running = run(Box::new(source));
    let readings = running.collect(Duration::from_millis(2500)).await;
    running.shutdown().await;
    server.abort();

    // A healthy unit is read every interval, delayed at most by one timeout
    // (plus drain) of the dead unit; 250 ms of slack for a loaded CI machine.
    let bound = Duration::from_millis(interval + timeout + drain + 250);
    for sensor in ["s1", "s3"] {
        let times: Vec<Instant> = readings
            .iter()
            .filter(|(_, r)| &*r.sensor == sensor && r.quantity == Quantity::Temperature)
            .map(|(t, _)| *t)
            .collect();
        assert!(
            times.len() >= 9,
            "{sensor}: only {} readings in 2.5 s",
            times.len()
        );
        let worst = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert!(worst <= bound, "{sensor}: worst gap {worst:?} > {bound:?}");
    }
    assert!(values_of(&readings, "dead", Quantity::Temperature).is_empty());
    let dead = health.get("dead").unwrap();
    assert!(
        dead.timeouts >= 2 && dead.consecutive_failures >= 2 && dead.last_success_ms.is_none(),
        "{dead:?}"
    );
    // Backoff: far fewer attempts than the 12 polls (x2 with retry) a healthy unit gets.
    let attempts = silent.calls.load(Ordering::SeqCst);
    assert!(attempts <= 7, "dead unit was asked {attempts} times");
}

#[tokio::test]
async fn rtu_late_reply_is_drained_and_never_taken_for_the_next_answer() {
    // Unit 1 answers its first request 120 ms after our 200 ms timeout, with
    // a stale value (99.9 degrees). Without the drain, our retry would be
    // sent at once and that late reply read as its answer. Checked: with
    // `RtuMaster::resync` returning early this test fails with
    // "stale reply used: [99.9, 21.5, ...]".
    let late = SimUnit {
        late_requests: 1,
        late_by: Duration::from_millis(320),
        stale: 999,
        ..SimUnit::xy(215, 455)
    };
    let sim = Sim {
        units: HashMap::from([(1, late), (2, SimUnit::xy(-30, 800))]),
    };
    let (port, server) = start_rtu(sim);
    let bus = rtu_bus(
        200,
        200,
        vec![xy_device("late", 1, 150), xy_device("other", 2, 150)],
    );
    let health = HealthMap::new();
    let source = RtuSource::new(bus, &[], health.clone())
        .unwrap()
        .with_port(port);
    let mut running = run(Box::new(source));
    let readings = running.collect(Duration::from_millis(1500)).await;
    running.shutdown().await;
    server.abort();

    let temps = values_of(&readings, "late", Quantity::Temperature);
    assert!(
        !temps.is_empty(),
        "the late unit must be read once it answers in time"
    );
    assert!(
        temps.iter().all(|v| close(*v, 21.5)),
        "stale reply used: {temps:?}"
    );
    let others = values_of(&readings, "other", Quantity::Temperature);
    assert!(
        !others.is_empty() && others.iter().all(|v| close(*v, -3.0)),
        "{others:?}"
    );
    let h = health.get("late").unwrap();
    assert!(h.timeouts >= 1 && h.late_replies >= 1, "{h:?}");
}

#[tokio::test]
async fn rtu_garbled_reply_is_refused_counted_and_the_retry_answered() {
    // A scripted peer (not tokio-modbus: it must misbehave on purpose) whose
    // first reply has a broken CRC.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (ours, mut theirs) = tokio_serial::SerialStream::pair().unwrap();
    let peer = tokio::spawn(async move {
        let mut answered = 0usize;
        let mut request = [0u8; 8];
        while theirs.read_exact(&mut request).await.is_ok() {
            let mut reply = frame(&[request[0], 0x04, 4, 0x00, 0xD7, 0x01, 0xC7]);
            if answered == 0 {
                let last = reply.len() - 1;
                reply[last] ^= 0xFF;
            }
            answered += 1;
            if theirs.write_all(&reply).await.is_err() {
                break;
            }
        }
    });
    let bus = rtu_bus(200, 50, vec![xy_device("noisy", 1, 100)]);
    let health = HealthMap::new();
    let source = RtuSource::new(bus, &[], health.clone())
        .unwrap()
        .with_port(ours);
    let mut running = run(Box::new(source));
    let readings = running.collect(Duration::from_millis(450)).await;
    running.shutdown().await;
    peer.abort();

    let temps = values_of(&readings, "noisy", Quantity::Temperature);
    assert!(
        temps.len() >= 2 && temps.iter().all(|v| close(*v, 21.5)),
        "{temps:?}"
    );
    assert!(close(
        values_of(&readings, "noisy", Quantity::Humidity)[0],
        45.5
    ));
    let h = health.get("noisy").unwrap();
    assert_eq!((h.crc_errors, h.consecutive_failures), (1, 0), "{h:?}");
}

#[tokio::test]
async fn rtu_exception_replies_are_named_in_health() {
    let sim = Sim {
        units: HashMap::from([(1, SimUnit::xy(41, 501))]),
    };
    let (port, server) = start_rtu(sim);
    // Holding register 1 does not exist on this unit: IllegalDataAddress.
    let mut device = xy_device("wrong-table", 1, 100);
    device.profile = None;
    device.registers = Some(vec![RegisterConfig {
        function: Function::Holding,
        address: 1,
        ..reg(RegisterType::I16, None)
    }]);
    let bus = rtu_bus(200, 50, vec![device]);
    let health = HealthMap::new();
    let source = RtuSource::new(bus, &[], health.clone())
        .unwrap()
        .with_port(port);
    let mut running = run(Box::new(source));
    let readings = running.collect(Duration::from_millis(350)).await;
    running.shutdown().await;
    server.abort();

    assert!(readings.is_empty());
    let h = health.get("wrong-table").unwrap();
    assert!(h.exceptions >= 2 && h.timeouts == 0, "{h:?}");
    let last = h.last_error.unwrap();
    assert!(
        last.contains("IllegalDataAddress") && last.contains("0-based"),
        "{last}"
    );
}

fn tcp_endpoint(addr: SocketAddr, devices: Vec<DeviceConfig>) -> TcpEndpointConfig {
    let mut e = TcpEndpointConfig::new(addr.ip().to_string(), addr.port());
    e.timeout = Duration::from_millis(200);
    e.max_backoff = Duration::from_millis(300);
    e.devices = devices;
    e
}

#[tokio::test]
async fn tcp_endpoint_polls_several_units_and_survives_a_server_restart() {
    let first = Sim {
        units: HashMap::from([(1, SimUnit::xy(40, 500)), (2, SimUnit::xy(80, 600))]),
    };
    let (addr, server) = start_tcp("127.0.0.1:0".parse().unwrap(), first).await;
    let endpoint = tcp_endpoint(addr, vec![xy_device("t1", 1, 100), xy_device("t2", 2, 100)]);
    let health = HealthMap::new();
    let source = TcpSource::new(endpoint, &[], health.clone()).unwrap();
    let mut running = run(Box::new(source));

    let before = running.collect(Duration::from_millis(400)).await;
    assert!(values_of(&before, "t1", Quantity::Temperature)
        .iter()
        .any(|v| close(*v, 4.0)));
    assert!(values_of(&before, "t2", Quantity::Temperature)
        .iter()
        .any(|v| close(*v, 8.0)));

    // Power-cycle the device: the server and its connections disappear.
    server.abort();
    let _ = server.await;
    let during = running.collect(Duration::from_millis(500)).await;
    assert!(during.is_empty(), "{during:?}");
    assert!(health.get("t1").unwrap().consecutive_failures >= 1);

    // It comes back on the same port with new values; the same source reads it.
    let second = Sim {
        units: HashMap::from([(1, SimUnit::xy(45, 500)), (2, SimUnit::xy(85, 600))]),
    };
    let (_, server) = start_tcp(addr, second).await;
    let after = running.collect(Duration::from_millis(1500)).await;
    running.shutdown().await;
    server.abort();
    assert!(
        values_of(&after, "t1", Quantity::Temperature)
            .iter()
            .any(|v| close(*v, 4.5)),
        "{after:?}"
    );
    assert!(
        values_of(&after, "t2", Quantity::Temperature)
            .iter()
            .any(|v| close(*v, 8.5)),
        "{after:?}"
    );
    let h = health.get("t1").unwrap();
    assert_eq!(h.consecutive_failures, 0, "{h:?}");
    assert!(h.link_errors + h.timeouts >= 1, "{h:?}");
}

#[tokio::test]
async fn tcp_silent_unit_times_out_and_the_others_keep_their_interval() {
    let silent = SimUnit {
        silent: true,
        ..SimUnit::default()
    };
    let sim = Sim {
        units: HashMap::from([(1, SimUnit::xy(40, 500)), (2, silent)]),
    };
    let (addr, server) = start_tcp("127.0.0.1:0".parse().unwrap(), sim).await;
    let endpoint = tcp_endpoint(
        addr,
        vec![xy_device("t1", 1, 150), xy_device("quiet", 2, 150)],
    );
    let health = HealthMap::new();
    let mut running = run(Box::new(
        TcpSource::new(endpoint, &[], health.clone()).unwrap(),
    ));
    let readings = running.collect(Duration::from_millis(1500)).await;
    running.shutdown().await;
    server.abort();
    let n = values_of(&readings, "t1", Quantity::Temperature).len();
    assert!(n >= 6, "t1 read only {n} times");
    assert!(health.get("quiet").unwrap().timeouts >= 1);
}

#[tokio::test]
async fn source_stops_with_ingest_closed_when_the_receiver_is_gone() {
    let sim = Sim {
        units: HashMap::from([(1, SimUnit::xy(40, 500))]),
    };
    let (addr, server) = start_tcp("127.0.0.1:0".parse().unwrap(), sim).await;
    let endpoint = tcp_endpoint(addr, vec![xy_device("t1", 1, 50)]);
    let running = run(Box::new(
        TcpSource::new(endpoint, &[], HealthMap::new()).unwrap(),
    ));
    drop(running.rx);
    let result = tokio::time::timeout(Duration::from_secs(2), running.task).await;
    server.abort();
    assert!(
        matches!(result, Ok(Ok(Err(SourceError::IngestClosed)))),
        "{result:?}"
    );
}

#[test]
fn invalid_configuration_builds_no_sources() {
    let mut cfg = ModbusConfig::default();
    let mut bus = RtuBusConfig::new("/dev/ttyUSB0");
    bus.devices = vec![DeviceConfig::with_profile("a", 0, "xy-md02")];
    cfg.rtu.push(bus);
    let Err(problems) = cfg.sources(&HealthMap::new()) else {
        panic!("built sources from unit 0")
    };
    assert_eq!(problems[0].path, "modbus.rtu[0].devices[0].unit");
}

#[tokio::test]
async fn probe_returns_registers_and_names_exceptions_and_timeouts() {
    let sim = Sim {
        units: HashMap::from([
            (1, SimUnit::xy(215, 455)),
            (
                2,
                SimUnit {
                    silent: true,
                    ..SimUnit::default()
                },
            ),
        ]),
    };
    let (addr, server) = start_tcp("127.0.0.1:0".parse().unwrap(), sim).await;
    let target = ProbeTarget::Tcp {
        host: addr.ip().to_string(),
        port: addr.port(),
    };
    let t = Duration::from_millis(200);

    let words = probe(&target, 1, Function::Input, 1, 2, t).await.unwrap();
    assert_eq!(words, vec![215, 455]);
    assert_eq!(
        decode_words(&words, RegisterType::I16, None),
        vec![215.0, 455.0]
    );

    let err = probe(&target, 1, Function::Input, 0, 2, t)
        .await
        .unwrap_err();
    assert_eq!(err.exception(), Some(Exception::IllegalDataAddress));
    assert!(
        err.to_string().contains("off by one") || err.to_string().contains("0-based"),
        "{err}"
    );

    let err = probe(&target, 2, Function::Input, 1, 2, t)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("unit 2") && text.contains("no reply") && text.contains("unit id"),
        "{text}"
    );

    assert!(matches!(
        probe(&target, 0, Function::Input, 1, 2, t).await,
        Err(ProbeError::Invalid(_))
    ));
    assert!(matches!(
        probe(&target, 1, Function::Input, 65535, 2, t).await,
        Err(ProbeError::Invalid(_))
    ));
    server.abort();
}
