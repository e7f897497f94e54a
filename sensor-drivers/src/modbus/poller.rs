//! The polling loop shared by RTU buses and TCP endpoints, and the two
//! [`Source`]s built on it.
//!
//! One task per link. Devices are read in order of when they are due; a
//! unit that fails is retried `retries` times while it was healthy, then gets
//! a single attempt per backoff step (doubling from its poll interval up to
//! `max_backoff`), so a dead unit costs the others at most one timeout (plus
//! the drain window on RTU) each time its backoff expires.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::source::{ReadingSender, Source, SourceError};
use crate::{Backoff, Reading};

use super::config::{
    ConfigProblem, DeviceConfig, Function, ProfileConfig, RtuBusConfig, TcpEndpointConfig,
};
use super::decode::Decoded;
use super::error::RequestError;
use super::health::HealthMap;
use super::plan::{plan_blocks, ReadBlock};
use super::rtu::{open_serial, RtuMaster};
use super::tcp::TcpMaster;

/// One device ready to poll: its register map already cut into requests.
#[derive(Debug, Clone)]
struct DevicePlan {
    sensor: Arc<str>,
    unit: u8,
    interval: Duration,
    blocks: Vec<ReadBlock>,
    next_due: Instant,
    failures: u32,
    /// From the poll interval up to `max_backoff` while it does not answer.
    backoff: Backoff,
}

fn plan_devices(
    devices: &[DeviceConfig],
    profiles: &[ProfileConfig],
    max_backoff: Duration,
) -> Vec<DevicePlan> {
    let now = Instant::now();
    devices
        .iter()
        .filter_map(|d| {
            let registers = d.resolved_registers(profiles)?;
            Some(DevicePlan {
                sensor: Arc::from(d.sensor.as_str()),
                unit: d.unit,
                interval: d.poll_interval,
                blocks: plan_blocks(&registers),
                next_due: now,
                failures: 0,
                backoff: Backoff::new(d.poll_interval, max_backoff),
            })
        })
        .collect()
}

/// The transport under the poller.
enum Link {
    Rtu {
        bus: RtuBusConfig,
        master: Option<Box<RtuMaster<tokio_serial::SerialStream>>>,
    },
    Tcp(TcpMaster),
}

impl Link {
    async fn read(
        &mut self,
        unit: u8,
        function: Function,
        address: u16,
        count: u16,
    ) -> Result<Vec<u16>, RequestError> {
        match self {
            Link::Tcp(master) => master.read(unit, function, address, count).await,
            Link::Rtu { bus, master } => {
                if master.is_none() {
                    let port = open_serial(bus).map_err(|e| RequestError::Io(e.into()))?;
                    info!(device = %bus.device, "Opened Modbus RTU serial port.");
                    *master = Some(Box::new(RtuMaster::new(port, bus)));
                }
                let Some(m) = master.as_mut() else {
                    return Err(RequestError::Io(std::io::Error::other(
                        "serial port not open",
                    )));
                };
                let result = m.read(unit, function, address, count).await;
                if let Err(RequestError::Io(error)) = &result {
                    // The adapter may have been unplugged: reopen on the next request.
                    warn!(device = %bus.device, %error, "Modbus RTU serial port failed; reopening it.");
                    *master = None;
                }
                result
            }
        }
    }

    fn take_late_replies(&mut self) -> u64 {
        match self {
            Link::Rtu {
                master: Some(m), ..
            } => m.take_late_replies(),
            _ => 0,
        }
    }
}

struct Poller {
    name: String,
    link: Link,
    devices: Vec<DevicePlan>,
    retries: u8,
    health: HealthMap,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Poller {
    async fn run(
        mut self,
        readings: ReadingSender,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), SourceError> {
        info!(source = %self.name, devices = self.devices.len(), "Modbus source started.");
        for d in &self.devices {
            let link = self.name.clone();
            let unit = d.unit;
            self.health.update(&d.sensor, |h| {
                h.link = link;
                h.unit = unit;
            });
        }
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let Some(index) = (0..self.devices.len()).min_by_key(|&i| self.devices[i].next_due)
            else {
                // Nothing to poll: wait for shutdown only.
                let _ = shutdown.changed().await;
                return Ok(());
            };
            let due = self.devices[index].next_due;
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return Ok(());
                    }
                    continue;
                }
            }
            let values = self.poll_device(index).await;
            for reading in values {
                readings
                    .send(reading)
                    .await
                    .map_err(|_| SourceError::IngestClosed)?;
            }
        }
    }

    /// Reads every block of one device, updates its health and schedule, and
    /// returns its readings.
    async fn poll_device(&mut self, index: usize) -> Vec<Reading> {
        let Some(device) = self.devices.get(index).cloned() else {
            return Vec::new();
        };
        let attempts = if device.failures == 0 {
            1 + u32::from(self.retries)
        } else {
            1
        };
        let mut readings = Vec::new();
        let mut answered = false;
        let mut failure: Option<RequestError> = None;
        let at_ms = now_ms();
        'blocks: for block in &device.blocks {
            for attempt in 1..=attempts {
                let result = self
                    .link
                    .read(device.unit, block.function, block.address, block.count)
                    .await;
                let late = self.link.take_late_replies();
                if late > 0 {
                    self.health
                        .update(&device.sensor, |h| h.late_replies += late);
                }
                match result {
                    Ok(words) => {
                        answered = true;
                        failure = None;
                        for (quantity, decoded) in block.decode(&words) {
                            match decoded {
                                Decoded::Value(value) => readings.push(Reading::new(
                                    Arc::clone(&device.sensor),
                                    quantity,
                                    value,
                                    at_ms,
                                )),
                                other => {
                                    debug!(sensor = %device.sensor, %quantity, ?other, "Modbus value not available.")
                                }
                            }
                        }
                        continue 'blocks;
                    }
                    Err(error) => {
                        let new_error = self
                            .health
                            .update(&device.sensor, |h| h.record_error(&error));
                        if let RequestError::Exception { .. } = error {
                            // The unit is alive and refuses this block:
                            // retrying will not help. Logged once per change,
                            // not every poll.
                            if new_error {
                                warn!(sensor = %device.sensor, unit = device.unit, function = %block.function, address = block.address, %error, "Modbus unit refused a request.");
                            }
                            continue 'blocks;
                        }
                        debug!(sensor = %device.sensor, unit = device.unit, attempt, %error, "Modbus request failed.");
                        failure = Some(error);
                    }
                }
            }
            // Every attempt failed without an answer: spare the bus the rest.
            break;
        }

        let now = Instant::now();
        let Some(dev) = self.devices.get_mut(index) else {
            return readings;
        };
        match failure {
            None => {
                if dev.failures > 0 {
                    info!(sensor = %dev.sensor, unit = dev.unit, after_failures = dev.failures, "Modbus unit answers again.");
                }
                dev.failures = 0;
                dev.backoff.reset();
                let next = dev.next_due + dev.interval;
                dev.next_due = if next < now { now } else { next };
                self.health.update(&dev.sensor, |h| {
                    h.consecutive_failures = 0;
                    if answered {
                        h.successes += 1;
                        h.last_success_ms = Some(at_ms);
                    }
                });
            }
            Some(error) => {
                dev.failures = dev.failures.saturating_add(1);
                if dev.failures == 1 {
                    warn!(sensor = %dev.sensor, unit = dev.unit, %error, "Modbus unit did not answer.");
                }
                dev.next_due = now + dev.backoff.next_delay();
                let failures = dev.failures;
                self.health
                    .update(&dev.sensor, |h| h.consecutive_failures = failures);
            }
        }
        readings
    }
}

/// One RS-485 bus: a [`Source`] that polls its units one request at a time.
pub struct RtuSource {
    bus: RtuBusConfig,
    devices: Vec<DevicePlan>,
    health: HealthMap,
    port: Option<tokio_serial::SerialStream>,
}

impl RtuSource {
    /// A source for `bus`; refuses a configuration with problems.
    pub fn new(
        bus: RtuBusConfig,
        profiles: &[ProfileConfig],
        health: HealthMap,
    ) -> Result<Self, Vec<ConfigProblem>> {
        let problems = bus.validate(&format!("modbus.rtu({})", bus.device), profiles);
        if !problems.is_empty() {
            return Err(problems);
        }
        let devices = plan_devices(&bus.devices, profiles, bus.max_backoff);
        Ok(RtuSource {
            bus,
            devices,
            health,
            port: None,
        })
    }

    /// Uses an already open port instead of opening `bus.device` (tests use a
    /// pseudo-terminal). If it fails the source falls back to `bus.device`.
    pub fn with_port(mut self, port: tokio_serial::SerialStream) -> Self {
        self.port = Some(port);
        self
    }
}

impl Source for RtuSource {
    fn name(&self) -> String {
        format!("modbus-rtu:{}", self.bus.device)
    }

    fn run(
        self: Box<Self>,
        readings: ReadingSender,
        shutdown: watch::Receiver<bool>,
    ) -> Pin<Box<dyn Future<Output = Result<(), SourceError>> + Send>> {
        let name = self.name();
        let RtuSource {
            bus,
            devices,
            health,
            port,
        } = *self;
        let master = port.map(|p| Box::new(RtuMaster::new(p, &bus)));
        let poller = Poller {
            name,
            retries: bus.retries,
            link: Link::Rtu { bus, master },
            devices,
            health,
        };
        Box::pin(poller.run(readings, shutdown))
    }
}

/// One Modbus TCP endpoint: a [`Source`] that polls the units behind it over
/// one connection, reconnecting by itself.
pub struct TcpSource {
    endpoint: TcpEndpointConfig,
    devices: Vec<DevicePlan>,
    health: HealthMap,
}

impl TcpSource {
    /// A source for `endpoint`; refuses a configuration with problems.
    pub fn new(
        endpoint: TcpEndpointConfig,
        profiles: &[ProfileConfig],
        health: HealthMap,
    ) -> Result<Self, Vec<ConfigProblem>> {
        let path = format!("modbus.tcp({}:{})", endpoint.host, endpoint.port);
        let problems = endpoint.validate(&path, profiles);
        if !problems.is_empty() {
            return Err(problems);
        }
        let devices = plan_devices(&endpoint.devices, profiles, endpoint.max_backoff);
        Ok(TcpSource {
            endpoint,
            devices,
            health,
        })
    }
}

impl Source for TcpSource {
    fn name(&self) -> String {
        format!("modbus-tcp:{}:{}", self.endpoint.host, self.endpoint.port)
    }

    fn run(
        self: Box<Self>,
        readings: ReadingSender,
        shutdown: watch::Receiver<bool>,
    ) -> Pin<Box<dyn Future<Output = Result<(), SourceError>> + Send>> {
        let name = self.name();
        let TcpSource {
            endpoint,
            devices,
            health,
        } = *self;
        let poller = Poller {
            name,
            retries: endpoint.retries,
            link: Link::Tcp(TcpMaster::new(
                endpoint.host,
                endpoint.port,
                endpoint.timeout,
            )),
            devices,
            health,
        };
        Box::pin(poller.run(readings, shutdown))
    }
}
