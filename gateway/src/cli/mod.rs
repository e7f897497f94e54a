//! The binary's edge: argument parsing, logging, exit codes. Errors become
//! `anyhow` here and nowhere deeper.

/// Every command's output goes through this `println!`, which hands a write
/// error back with `?` instead of panicking as std's does: a reader that
/// stops early (`coldgate lots | head -1`) closes the pipe, and the command
/// then ends quietly (see [`errors::is_closed_pipe`]) with its database
/// closed properly. Defined before the submodules so they all use it.
macro_rules! println {
    () => {
        std::io::Write::write_all(&mut std::io::stdout().lock(), b"\n")?
    };
    ($($arg:tt)*) => {
        std::io::Write::write_fmt(
            &mut std::io::stdout().lock(),
            format_args!("{}\n", format_args!($($arg)*)),
        )?
    };
}

mod api;
mod args;
mod audit;
mod demo;
mod docs;
mod errors;
mod export;
mod probe;
mod report;
mod scan;
mod sensors;
mod uplink;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

pub use errors::EXIT_CONFIG;

/// Where every command that reads the configuration looks unless told.
pub(crate) const DEFAULT_CONFIG: &str = "/etc/coldgate/coldgate.toml";

#[derive(Parser)]
#[command(
    name = "coldgate",
    version,
    about = "Cold-chain witness: sensor readings into redb, excursion events over MQTT."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway daemon.
    Run {
        /// The configuration file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Run the whole path on this machine: a simulated container, an embedded
    /// MQTT broker, and one printed line per published event.
    Demo(demo::DemoArgs),
    /// Check a configuration file and list every problem.
    CheckConfig {
        /// The configuration file.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Decode outside bytes the way the gateway does, for a technician.
    #[command(subcommand)]
    Decode(Decode),
    /// BLE commissioning.
    #[command(subcommand)]
    Ble(Ble),
    /// Modbus commissioning.
    #[command(subcommand)]
    Modbus(Modbus),
    /// Read every configured sensor once and print each value or why there
    /// is none (commissioning; stores nothing, safe beside the daemon).
    Probe(probe::ProbeArgs),
    /// Test the way to the MQTT broker step by step (DNS, TCP, TLS,
    /// CONNACK, the own status published and read back) and say which step
    /// failed and why.
    Uplink(uplink::UplinkArgs),
    /// Mean kinetic temperature of a `time,temperature_c` CSV (file or stdin).
    Mkt {
        /// Activation energy ΔH in kJ/mol.
        #[arg(long, default_value_t = crate::excursion::mkt::DEFAULT_ACTIVATION_ENERGY_KJ_PER_MOL)]
        activation_energy: f64,
        /// The CSV file; standard input if absent.
        file: Option<PathBuf>,
    },
    /// Export readings or events from a database file no daemon is using.
    Export(export::ExportArgs),
    /// The lot exposure ledger (time out of range per rule, MKT, excursions)
    /// as JSON, from a database file no daemon is using.
    Lots {
        /// The database file (not in use by a running daemon).
        #[arg(long)]
        db: PathBuf,
        /// Only lots of this GTIN-14; it must have lots in the database.
        #[arg(long, value_parser = args::gtin)]
        gtin: Option<String>,
        /// Only this lot.
        #[arg(long)]
        lot: Option<String>,
    },
    /// The printable trip report (HTML) of a pallet or a lot, from a
    /// database file no daemon is using.
    Report(report::ReportArgs),
    /// The hash-chained audit trail (starts, stops, configuration changes)
    /// of a database file no daemon is using.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// The running daemon: version, uptime, clock, uplink, outbox, storage
    /// (over its HTTP API).
    Status(api::Conn),
    /// The running daemon's sensors: last values, age, state, battery,
    /// signal, Modbus errors.
    Sensors(api::Conn),
    /// Events the running daemon raised (excursions, doors, sensors, lots).
    Events(api::EventsArgs),
    /// The running daemon's manifest: show, load, unload.
    Manifest(api::ManifestArgs),
    /// Load pallets from a barcode scanner on standard input: the pallet
    /// label, then the zone, one per line.
    Scan(api::ScanArgs),
    /// One lot's exposure ledger from the running daemon.
    Lot(api::LotArgs),
    /// Write the man pages (coldgate.1, coldgate-<command>.1) into a directory.
    Man {
        /// The directory, created if absent.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Print the shell completion script (bash: put it in
    /// /usr/share/bash-completion/completions/coldgate).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Run only the embedded MQTT broker (for trials and tests).
    #[cfg(feature = "demo")]
    Broker {
        /// The TCP port to listen on (127.0.0.1).
        #[arg(long, default_value_t = 1883)]
        port: u16,
    },
}

#[derive(Subcommand)]
enum Decode {
    /// A GS1 barcode: bracketed, raw scanner output, or a Digital Link URI.
    /// Prints sscc, gtin, lot, serial and expiry as JSON.
    Gs1 {
        /// The scanned text (quote it: brackets and GS characters).
        input: String,
    },
    /// A BLE advertisement's service or manufacturer data, as JSON.
    Ble(sensors::DecodeBleArgs),
}

#[derive(Subcommand)]
enum Ble {
    /// List nearby advertisers, with their format where recognised.
    Scan {
        /// How long to listen.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
}

#[derive(Subcommand)]
enum Modbus {
    /// Read registers once and print them raw and decoded.
    Probe(sensors::ProbeArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_filter = match cli.command {
        Command::Demo(_) => "warn,rumqttd=off",
        // A technician's command prints its own messages.
        Command::Status(_)
        | Command::Sensors(_)
        | Command::Events(_)
        | Command::Manifest(_)
        | Command::Scan(_)
        | Command::Lot(_)
        | Command::Probe(_)
        | Command::Uplink(_) => "warn",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(error) if errors::is_closed_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("coldgate: {}", errors::render(&error));
            ExitCode::from(errors::exit_code(&error))
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { config: path } => {
            use crate::daemon::lifecycle;
            let (sha256, config) = lifecycle::load_hashed(&path);
            let config = config?;
            runtime()?.block_on(lifecycle::run(&path, config, sha256))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => {
            runtime()?.block_on(demo::demo(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { config } => {
            let c = crate::daemon::preflight::load(&config)?;
            println!(
                "{}: OK ({} sensors, {} zones, {} profiles)",
                config.display(),
                c.sensors.len(),
                c.zones.len(),
                c.profiles.len()
            );
            if let Some(tls) = &c.mqtt.tls {
                println!(
                    "mqtt: TLS; the broker is verified against {}",
                    crate::publish::tls::trust_summary(tls)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Decode(Decode::Gs1 { input }) => {
            let data = crate::manifest::gs1::parse(&input)
                .with_context(|| format!("cannot decode `{}`", input.escape_debug()))?;
            println!("{}", serde_json::to_string(&data)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Decode(Decode::Ble(args)) => {
            sensors::decode_ble(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ble(Ble::Scan { seconds }) => {
            runtime()?.block_on(sensors::ble_scan(seconds))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Modbus(Modbus::Probe(args)) => {
            runtime()?.block_on(sensors::modbus_probe(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Probe(args) => runtime()?.block_on(probe::probe(args)),
        Command::Uplink(args) => runtime()?.block_on(uplink::uplink(args)),
        Command::Mkt {
            activation_energy,
            file,
        } => {
            use crate::excursion::mkt::mkt_from_csv;
            let value = match &file {
                Some(path) => {
                    let f = std::fs::File::open(path)
                        .with_context(|| format!("cannot open {}", path.display()))?;
                    mkt_from_csv(std::io::BufReader::new(f), activation_energy)
                }
                None => mkt_from_csv(std::io::stdin().lock(), activation_energy),
            }
            .context("cannot compute the mean kinetic temperature")?;
            println!("{value:.2}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(command) => audit::audit(command),
        Command::Man { dir } => docs::man(&dir).map(|()| ExitCode::SUCCESS),
        Command::Completions { shell } => docs::completions(shell).map(|()| ExitCode::SUCCESS),
        Command::Status(conn) => api::run(|| api::status(&conn)),
        Command::Sensors(conn) => api::run(|| api::sensors(&conn)),
        Command::Events(args) => api::run(|| api::events(&args)),
        Command::Manifest(args) => api::run(|| api::manifest(&args)),
        Command::Scan(args) => api::run(|| scan::scan(&args)),
        Command::Lot(args) => api::run(|| api::lot(&args)),
        Command::Export(args) => {
            export::export(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Report(args) => {
            report::report(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Lots { db, gtin, lot } => {
            let store = crate::store::Store::open_existing(&db)?;
            let state = crate::snapshot::load_engine_state(&store)?;
            if let Some(gtin) = &gtin {
                let known: std::collections::BTreeSet<&str> = state
                    .ledger
                    .lots
                    .values()
                    .map(|l| l.gtin.as_str())
                    .collect();
                args::must_exist("GTIN with lots", gtin, known)
                    .with_context(|| format!("--gtin: in {}", db.display()))?;
            }
            for exposure in state.ledger.lots.values().filter(|l| {
                gtin.as_ref().is_none_or(|g| *g == l.gtin)
                    && lot.as_ref().is_none_or(|x| *x == l.lot)
            }) {
                let view = crate::http::lot_view::LotView::from(exposure);
                println!("{}", serde_json::to_string(&view)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "demo")]
        Command::Broker { port } => {
            let port = crate::broker::choose_port(Some(port))?;
            let addr = crate::broker::start(port)?;
            println!("MQTT broker listening on {addr}");
            runtime()?.block_on(shutdown_signal())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Waits for SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests;
