//! Commissioning commands for sensors: `decode ble`, `ble scan`,
//! `modbus probe`. They use the same decoders as the daemon, so what a
//! technician sees here is what the gateway will record.

use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use coldgate_sensor_drivers::ble::{self, Format, MacAddr};
use coldgate_sensor_drivers::modbus::{
    self, decode_words, Function, Parity, ProbeTarget, RegisterType, RtuBusConfig, WordOrder,
};

#[derive(Args)]
pub struct DecodeBleArgs {
    /// Service data: the 16-bit UUID little-endian, then the data (`D2FC40…`).
    #[arg(
        long,
        conflicts_with = "manufacturer_data",
        required_unless_present = "manufacturer_data"
    )]
    service_data: Option<String>,
    /// Manufacturer data: the company id little-endian, then the data (`9904 05…`).
    #[arg(long)]
    manufacturer_data: Option<String>,
    /// The format, when the bytes do not identify it.
    #[arg(long)]
    format: Option<String>,
    /// The advertiser's MAC (needed by encrypted formats).
    #[arg(long)]
    mac: Option<String>,
    /// The sensor's key, 32 hex digits (encrypted formats).
    #[arg(long)]
    key: Option<String>,
}

pub fn decode_ble(a: DecodeBleArgs) -> anyhow::Result<()> {
    let format = match &a.format {
        Some(f) => Some(
            f.parse::<Format>()
                .map_err(|e| anyhow::anyhow!("--format: {e}"))?,
        ),
        None => None,
    };
    let mac = match &a.mac {
        Some(m) => Some(
            m.parse::<MacAddr>()
                .map_err(|e| anyhow::anyhow!("--mac: {e}"))?
                .0,
        ),
        None => None,
    };
    let key = match &a.key {
        Some(k) => Some(ble::decode::parse_key(k).context("--key")?),
        None => None,
    };
    let decoded = ble::decode_hex(
        a.service_data.as_deref(),
        a.manufacturer_data.as_deref(),
        format,
        mac,
        key.as_ref().map(|k| &k[..]),
    )
    .context("cannot decode the advertisement")?;
    println!("{}", serde_json::to_string(&decoded)?);
    Ok(())
}

pub async fn ble_scan(seconds: u64) -> anyhow::Result<()> {
    let seen = ble::scan(seconds).await?;
    if seen.is_empty() {
        println!("no advertisers heard in {seconds} s");
    }
    println!(
        "{:<17}  {:>5}  {:>6}  {:<16}  name",
        "mac", "rssi", "adverts", "format"
    );
    for s in seen {
        println!(
            "{:<17}  {:>5}  {:>6}  {:<16}  {}",
            s.mac.to_string(),
            s.rssi.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
            s.advertisements,
            s.format
                .map(|f| f.to_string())
                .unwrap_or_else(|| "-".into()),
            s.local_name.unwrap_or_default()
        );
    }
    Ok(())
}

#[derive(Args)]
pub struct ProbeArgs {
    /// A Modbus TCP endpoint, HOST:PORT.
    #[arg(long, conflicts_with = "serial", required_unless_present = "serial")]
    tcp: Option<String>,
    /// A serial device, e.g. /dev/ttyUSB0.
    #[arg(long)]
    serial: Option<String>,
    /// Serial speed in bit/s.
    #[arg(long, default_value_t = 9600)]
    baud: u32,
    /// N, E or O.
    #[arg(long, default_value = "N")]
    parity: String,
    /// Stop bits (1 or 2).
    #[arg(long, default_value_t = 1)]
    stop_bits: u8,
    /// Unit (slave) id, 1–247.
    #[arg(long)]
    unit: u8,
    /// holding (0x03) or input (0x04).
    #[arg(long, default_value = "holding")]
    function: String,
    /// The 0-based address on the wire (a register documented as 30001 or
    /// 40001 is usually address 0).
    #[arg(long)]
    address: u16,
    /// How many consecutive registers to read.
    #[arg(long, default_value_t = 1)]
    count: u16,
    /// Decode as i16, u16, i32, u32 or f32.
    #[arg(long = "type")]
    kind: Option<String>,
    /// Word order of 32-bit types: big (high word first) or little.
    #[arg(long)]
    word_order: Option<String>,
    /// How long to wait for the answer.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

pub async fn modbus_probe(a: ProbeArgs) -> anyhow::Result<()> {
    let target = match (&a.tcp, &a.serial) {
        (Some(addr), None) => {
            let Some((host, port)) = addr.rsplit_once(':') else {
                bail!("--tcp wants HOST:PORT, got `{addr}`");
            };
            let port = port
                .parse()
                .with_context(|| format!("--tcp: `{port}` is not a port"))?;
            ProbeTarget::Tcp {
                host: host.to_string(),
                port,
            }
        }
        (None, Some(device)) => {
            let mut bus = RtuBusConfig::new(device.clone());
            bus.baud = a.baud;
            bus.stop_bits = a.stop_bits;
            bus.parity = a
                .parity
                .parse::<Parity>()
                .map_err(|e| anyhow::anyhow!("--parity: {e}"))?;
            ProbeTarget::Serial(bus)
        }
        _ => bail!("give exactly one of --tcp HOST:PORT and --serial DEV"),
    };
    let function = a
        .function
        .parse::<Function>()
        .map_err(|e| anyhow::anyhow!("--function: {e}"))?;
    // ProbeError's message already carries its cause; no chain to print.
    let words = modbus::probe(&target, a.unit, function, a.address, a.count, a.timeout)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let hex: Vec<String> = words.iter().map(|w| format!("0x{w:04X}")).collect();
    println!(
        "registers {}..{}: {}",
        a.address,
        u32::from(a.address) + u32::from(a.count) - 1,
        hex.join(" ")
    );
    if let Some(kind) = &a.kind {
        let kind = kind
            .parse::<RegisterType>()
            .map_err(|e| anyhow::anyhow!("--type: {e}"))?;
        let order = match &a.word_order {
            Some(o) => Some(
                o.parse::<WordOrder>()
                    .map_err(|e| anyhow::anyhow!("--word-order: {e}"))?,
            ),
            None => None,
        };
        if kind.words() == 2 && order.is_none() {
            bail!(
                "--type {} is 32-bit: give --word-order big or little",
                a.kind.as_deref().unwrap_or("")
            );
        }
        let values = decode_words(&words, kind, order);
        let text: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        println!("as {}: {}", a.kind.as_deref().unwrap_or(""), text.join(" "));
    }
    Ok(())
}
