//! CPU time per poll cycle of 50 Modbus units on one link.
//!
//! Runs the real sources against in-process tokio-modbus servers, on one
//! current-thread runtime so that the calling thread's CPU time
//! (`/proc/thread-self/schedstat`, Linux) is the whole cost: our poller AND
//! the simulated devices. Wall time comes from `std::time::Instant`.
//!
//! - TCP: 50 units behind one endpoint on localhost, polled back to back.
//! - RTU: 50 units on a pseudo-terminal; wall time is dominated by the 5 ms
//!   inter-frame gap, CPU time is what the gateway pays.
//!
//! `cargo bench -p coldgate-sensor-drivers --bench modbus_poll`

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coldgate_sensor_drivers::modbus::{
    DeviceConfig, HealthMap, RtuBusConfig, RtuSource, TcpEndpointConfig, TcpSource,
};
use coldgate_sensor_drivers::Source;
use tokio::sync::{mpsc, watch};
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

const UNITS: u8 = 50;
/// Readings per cycle: the xy-md02 profile gives temperature and humidity.
const PER_CYCLE: usize = UNITS as usize * 2;

/// Every unit answers input registers 1 and 2 like an XY-MD02.
struct Sim;

impl tokio_modbus::server::Service for Sim {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Pin<Box<dyn Future<Output = Result<Option<Response>, ExceptionCode>> + Send>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        let answer = match (req.slave, req.request) {
            (1..=UNITS, Request::ReadInputRegisters(1, 2)) => {
                Ok(Some(Response::ReadInputRegisters(vec![215, 455])))
            }
            (1..=UNITS, _) => Err(ExceptionCode::IllegalDataAddress),
            _ => Ok(None),
        };
        Box::pin(std::future::ready(answer))
    }
}

fn devices(interval: Duration) -> Vec<DeviceConfig> {
    (1..=UNITS)
        .map(|u| {
            let mut d = DeviceConfig::with_profile(format!("s{u}"), u, "xy-md02");
            d.poll_interval = interval;
            d
        })
        .collect()
}

/// CPU time of this thread, nanoseconds; `None` off Linux.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Runs `source` until `cycles` full cycles after a warm-up cycle; returns
/// (wall, cpu) per cycle.
async fn measure(source: Box<dyn Source>, cycles: usize) -> (Duration, Option<Duration>) {
    let (tx, mut rx) = mpsc::channel(4096);
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(source.run(tx, shutdown));
    for _ in 0..PER_CYCLE {
        rx.recv().await.expect("source stopped during warm-up");
    }
    let (t0, c0) = (Instant::now(), thread_cpu_ns());
    for _ in 0..cycles * PER_CYCLE {
        rx.recv().await.expect("source stopped");
    }
    let (wall, c1) = (t0.elapsed(), thread_cpu_ns());
    let _ = stop.send(true);
    let _ = task.await;
    let n = u32::try_from(cycles).unwrap_or(u32::MAX);
    let cpu = c0
        .zip(c1)
        .map(|(a, b)| Duration::from_nanos(b.saturating_sub(a)) / n);
    (wall / n, cpu)
}

fn report(name: &str, cycles: usize, (wall, cpu): (Duration, Option<Duration>)) {
    let cpu = cpu.map_or("n/a".to_string(), |c| {
        format!("{:.3} ms", c.as_secs_f64() * 1e3)
    });
    println!(
        "modbus_poll/{name}: {UNITS} units, {cycles} cycles: wall {:.3} ms/cycle, CPU {cpu}/cycle (poller + simulated devices)",
        wall.as_secs_f64() * 1e3
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        // TCP: back to back (1 ms interval, always due).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio_modbus::server::tcp::Server::new(listener);
        let tcp_server = tokio::spawn(async move {
            let sim = Arc::new(Sim);
            let on_connected = |stream, _| {
                let sim = Arc::clone(&sim);
                async move { Ok(Some((sim, stream))) }
            };
            let _ = server.serve(&on_connected, |_| {}).await;
        });
        let mut endpoint = TcpEndpointConfig::new(addr.ip().to_string(), addr.port());
        endpoint.devices = devices(Duration::from_millis(1));
        let source = TcpSource::new(endpoint, &[], HealthMap::new()).expect("valid config");
        let cycles = 200;
        report("tcp", cycles, measure(Box::new(source), cycles).await);
        tcp_server.abort();

        // RTU over a pty: the real master with the default 5 ms gap.
        let (ours, theirs) = tokio_serial::SerialStream::pair().expect("pty pair");
        let rtu_server = tokio::spawn(async move {
            let _ = tokio_modbus::server::rtu::Server::new(theirs)
                .serve_forever(Sim)
                .await;
        });
        let mut bus = RtuBusConfig::new("pty-bench");
        bus.baud = 115_200;
        bus.devices = devices(Duration::from_millis(1));
        let source = RtuSource::new(bus, &[], HealthMap::new())
            .expect("valid config")
            .with_port(ours);
        let cycles = 10;
        report("rtu", cycles, measure(Box::new(source), cycles).await);
        rtu_server.abort();
    });
}
