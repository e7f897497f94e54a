//! Reads one Modbus device once and prints decoded values as JSON lines.
//!
//! Used by `scripts/interop-modbus.sh` to check our side against a pymodbus
//! server. Only the library's public API is used, as the gateway would.
//!
//! ```text
//! modbus_read (--tcp HOST:PORT | --serial DEV [--baud N] [--parity N|E|O] [--stop-bits N])
//!             --unit N [--timeout-ms N]
//!             (--profile NAME
//!              | --function holding|input --address A --count C [--type T] [--word-order big|little])
//! ```

use std::process::ExitCode;
use std::time::Duration;

use coldgate_sensor_drivers::modbus::decode::Decoded;
use coldgate_sensor_drivers::modbus::plan::plan_blocks;
use coldgate_sensor_drivers::modbus::{
    decode_words, probe, profiles, Function, Parity, ProbeTarget, RegisterType, RtuBusConfig,
    WordOrder,
};
use serde_json::json;

struct Args {
    target: ProbeTarget,
    unit: u8,
    timeout: Duration,
    profile: Option<String>,
    function: Function,
    address: u16,
    count: u16,
    kind: RegisterType,
    word_order: Option<WordOrder>,
}

fn parse_args() -> Result<Args, String> {
    let mut raw: Vec<String> = std::env::args().skip(1).collect();
    let mut take = |flag: &str| -> Option<String> {
        let i = raw.iter().position(|a| a == flag)?;
        let value = raw.get(i + 1).cloned();
        raw.drain(i..(i + 2).min(raw.len()));
        value
    };
    fn num<T: std::str::FromStr>(
        flag: &str,
        v: Option<String>,
        default: Option<T>,
    ) -> Result<T, String> {
        match v {
            Some(s) => s.parse().map_err(|_| format!("{flag}: not a number: {s}")),
            None => default.ok_or_else(|| format!("{flag} is required")),
        }
    }
    let tcp = take("--tcp");
    let serial = take("--serial");
    let target = match (tcp, serial) {
        (Some(addr), None) => {
            let (host, port) = addr.rsplit_once(':').ok_or("--tcp wants HOST:PORT")?;
            let port = port
                .parse()
                .map_err(|_| format!("--tcp: bad port {port}"))?;
            ProbeTarget::Tcp {
                host: host.to_string(),
                port,
            }
        }
        (None, Some(device)) => {
            let mut bus = RtuBusConfig::new(device);
            bus.baud = num("--baud", take("--baud"), Some(9600))?;
            bus.stop_bits = num("--stop-bits", take("--stop-bits"), Some(1))?;
            if let Some(p) = take("--parity") {
                bus.parity = p.parse::<Parity>().map_err(|e| format!("--parity: {e}"))?;
            }
            ProbeTarget::Serial(bus)
        }
        _ => return Err("give exactly one of --tcp HOST:PORT and --serial DEV".into()),
    };
    let unit = num("--unit", take("--unit"), None)?;
    let timeout = Duration::from_millis(num("--timeout-ms", take("--timeout-ms"), Some(1000))?);
    let profile = take("--profile");
    let function = match take("--function") {
        Some(f) => f
            .parse::<Function>()
            .map_err(|e| format!("--function: {e}"))?,
        None => Function::Holding,
    };
    let address = num("--address", take("--address"), profile.as_ref().map(|_| 0))?;
    let count = num("--count", take("--count"), Some(1))?;
    let kind = match take("--type") {
        Some(t) => t
            .parse::<RegisterType>()
            .map_err(|e| format!("--type: {e}"))?,
        None => RegisterType::U16,
    };
    let word_order = match take("--word-order") {
        Some(w) => Some(
            w.parse::<WordOrder>()
                .map_err(|e| format!("--word-order: {e}"))?,
        ),
        None => None,
    };
    if let Some(extra) = raw.first() {
        return Err(format!("unknown argument {extra}"));
    }
    Ok(Args {
        target,
        unit,
        timeout,
        profile,
        function,
        address,
        count,
        kind,
        word_order,
    })
}

async fn read(args: &Args) -> Result<(), String> {
    let Some(name) = &args.profile else {
        let words = probe(
            &args.target,
            args.unit,
            args.function,
            args.address,
            args.count,
            args.timeout,
        )
        .await
        .map_err(|e| e.to_string())?;
        let values = decode_words(&words, args.kind, args.word_order);
        println!(
            "{}",
            json!({"unit": args.unit, "function": args.function.to_string(), "address": args.address,
                   "raw": words, "values": values})
        );
        return Ok(());
    };
    let profile =
        profiles::built_in(name).ok_or_else(|| format!("unknown built-in profile {name}"))?;
    for block in plan_blocks(&profile.registers) {
        let words = probe(
            &args.target,
            args.unit,
            block.function,
            block.address,
            block.count,
            args.timeout,
        )
        .await
        .map_err(|e| e.to_string())?;
        for (quantity, decoded) in block.decode(&words) {
            let value = match decoded {
                Decoded::Value(v) => Some(v),
                _ => None,
            };
            println!(
                "{}",
                json!({"unit": args.unit, "quantity": quantity.as_str(), "value": value})
            );
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("modbus_read: {e}");
            return ExitCode::from(2);
        }
    };
    match read(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("modbus_read: {e}");
            ExitCode::FAILURE
        }
    }
}
