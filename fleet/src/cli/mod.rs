//! The command line: the service (`run`), its set-up (`check-config`,
//! `migrate`, `nats-mapping`) and the operator's questions over the HTTP
//! API (`gaps`, `gateway ID`, `status`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::api::{FleetStatus, GapRow, GatewayView};
use crate::config::{Config, ConfigError};
use crate::{custody, migrate, stream, verify, worker};

mod lots;

/// sysexits: the configuration is wrong (systemd does not restart on it,
/// see RestartPreventExitStatus in the unit).
const EX_CONFIG: u8 = 78;
/// sysexits: a server it needs is not there.
const EX_UNAVAILABLE: u8 = 69;

#[derive(Parser)]
#[command(
    name = "coldgate-fleet",
    version,
    about = "Every event of every coldgate gateway, once: NATS JetStream into PostgreSQL"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ApiArgs {
    /// The configuration whose `http.listen` to ask.
    #[arg(long, default_value = "/etc/coldgate-fleet/fleet.toml")]
    config: PathBuf,
    /// Ask this API instead (`http://host:port`).
    #[arg(long)]
    api: Option<String>,
    /// Print the API's JSON answer.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run a worker (and its HTTP API and delivery verification).
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Check the configuration and list every problem.
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
    /// Apply the schema migrations and create or check the stream and its consumers.
    Migrate {
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the `mappings` block for nats-server that partitions by gateway.
    NatsMapping {
        #[arg(long)]
        config: PathBuf,
    },
    /// Open delivery gaps and their age.
    Gaps(ApiArgs),
    /// One gateway's delivery state.
    Gateway {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The fleet's totals and its workers.
    Status(ApiArgs),
    /// A lot's journey: legs, excursions, gaps, totals per rule and the verdict.
    Lot {
        lot: String,
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// A lot's or a pallet's history over every gateway as an EPCIS 2.0
    /// document (JSON-LD) for trading partners (docs/epcis.md).
    Epcis {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, conflicts_with = "sscc", required_unless_present = "sscc")]
        lot: Option<String>,
        #[arg(long)]
        sscc: Option<String>,
    },
    /// Flag a lot: every pallet that carried or will carry it raises a
    /// `recalled` custody alert.
    Recall {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        lot: String,
        /// Only this GTIN's lot; any GTIN's when absent.
        #[arg(long)]
        gtin: Option<String>,
        #[arg(long)]
        reason: String,
    },
}

fn load(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("{e}");
        match e {
            ConfigError::Read { .. } | ConfigError::Invalid { .. } => ExitCode::from(EX_CONFIG),
        }
    })
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::CheckConfig { config } => match load(&config) {
            Ok(_) => {
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::NatsMapping { config } => match load(&config) {
            Ok(c) => {
                println!("mappings = {{");
                for (from, to) in c.nats_mappings() {
                    println!("  \"{from}\": \"{to}\"");
                }
                println!("}}");
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Migrate { config } => match load(&config) {
            Ok(c) => runtime().block_on(migrate_cmd(c)),
            Err(code) => code,
        },
        Command::Lot { lot, config, json } => match load(&config) {
            Ok(c) => runtime().block_on(lots::lot_cmd(c, lot, json)),
            Err(code) => code,
        },
        Command::Epcis { config, lot, sscc } => {
            let subject = match (lot, sscc) {
                (Some(l), _) => crate::epcis::Subject::Lot(l),
                (None, Some(s)) => crate::epcis::Subject::Sscc(s),
                // clap requires one of them.
                (None, None) => return ExitCode::from(EX_CONFIG),
            };
            match load(&config) {
                Ok(c) => runtime().block_on(lots::epcis_cmd(c, subject)),
                Err(code) => code,
            }
        }
        Command::Recall {
            config,
            lot,
            gtin,
            reason,
        } => match load(&config) {
            Ok(c) => runtime().block_on(lots::recall_cmd(c, gtin, lot, reason)),
            Err(code) => code,
        },
        Command::Run { config } => match load(&config) {
            Ok(c) => runtime().block_on(run(c)),
            Err(code) => code,
        },
        Command::Gaps(a) => ask::<Vec<GapRow>>(&a, "/v1/gaps", |gaps| {
            if gaps.is_empty() {
                println!("no open gaps");
            }
            for g in gaps {
                println!(
                    "{}  seq {}..={}  ({} missing)  open {}  since {}{}",
                    g.gateway_id,
                    g.from_seq,
                    g.to_seq,
                    g.to_seq - g.from_seq + 1,
                    age(g.age_s),
                    g.first_seen,
                    if g.alerted { "  ALERTED" } else { "" }
                );
            }
        }),
        Command::Gateway { id, api } => {
            ask::<GatewayView>(&api, &format!("/v1/gateways/{id}"), |g| {
                println!("gateway         {}", g.gateway_id);
                println!("contiguous seq  {}", g.contiguous_seq);
                println!("highest seq     {}", g.highest_seq);
                println!("events          {}", g.events);
                println!("duplicates      {}", g.duplicates);
                println!("seq conflicts   {}", g.seq_conflicts);
                if let Some(s) = &g.last_status {
                    println!(
                        "last status     {} {} outbox {}",
                        s["at"].as_str().unwrap_or("?"),
                        s["state"].as_str().unwrap_or("?"),
                        s["outbox_depth"]
                    );
                }
                for gap in &g.gaps {
                    println!(
                        "gap             {}..={} open {}",
                        gap.from_seq,
                        gap.to_seq,
                        age(gap.age_s)
                    );
                }
            })
        }
        Command::Status(a) => ask::<FleetStatus>(&a, "/v1/status", |s| {
            println!("schema version  {}", s.schema_version);
            println!("gateways        {}", s.gateways);
            println!("events          {}", s.events);
            println!("duplicates      {}", s.duplicates);
            println!(
                "open gaps       {} ({} seqs missing)",
                s.open_gaps, s.missing_seqs
            );
            println!("quarantined     {}", s.quarantined);
            println!("open alerts     {}", s.open_alerts);
            for w in &s.workers {
                println!("worker          {} ({} partitions)", w.worker, w.partitions);
            }
        }),
    }
}

fn age(s: i64) -> String {
    match s {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            std::process::exit(1)
        }
    }
}

fn ask<T: serde::de::DeserializeOwned + serde::Serialize>(
    a: &ApiArgs,
    path: &str,
    print: impl FnOnce(&T),
) -> ExitCode {
    let base = match &a.api {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => match load(&a.config) {
            Ok(c) => format!("http://{}", c.http.listen),
            Err(code) => return code,
        },
    };
    let url = format!("{base}{path}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = match agent.get(&url).call() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot reach the fleet API at {url}: {e}");
            return ExitCode::from(EX_UNAVAILABLE);
        }
    };
    let status = resp.status();
    let body = match resp.body_mut().read_to_string() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{url}: {e}");
            return ExitCode::from(EX_UNAVAILABLE);
        }
    };
    if !status.is_success() {
        eprintln!("{url}: {status}: {body}");
        return ExitCode::FAILURE;
    }
    match serde_json::from_str::<T>(&body) {
        Ok(v) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or(body));
            } else {
                print(&v);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{url}: unexpected answer: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate_cmd(config: Config) -> ExitCode {
    let mut client = match worker::pg_connect(&config).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot reach PostgreSQL: {e}");
            return ExitCode::from(EX_UNAVAILABLE);
        }
    };
    match migrate::migrate(&mut client).await {
        Ok(v) if v.is_empty() => println!("schema up to date"),
        Ok(v) => println!("applied migrations {v:?}"),
        Err(e) => {
            eprintln!("migration failed: {e}");
            return ExitCode::FAILURE;
        }
    }
    let nats = match tokio::time::timeout(Duration::from_secs(15), stream::connect(&config)).await {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(EX_UNAVAILABLE);
        }
        Err(_) => {
            eprintln!("cannot reach NATS at {} within 15 s", config.nats.url);
            return ExitCode::from(EX_UNAVAILABLE);
        }
    };
    let js = async_nats::jetstream::new(nats);
    let s = match stream::ensure_stream(&js, &config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    for p in 0..config.lanes() {
        if let Err(e) = stream::ensure_consumer(&s, &config, p).await {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    }
    println!(
        "stream {} with {} partition consumers and status/manifest consumers ready",
        config.nats.stream, config.nats.partitions
    );
    ExitCode::SUCCESS
}

async fn run(config: Config) -> ExitCode {
    let config = Arc::new(config);
    // The schema must be there: a worker never migrates on its own, so
    // two versions of the binary never race over it.
    let mut backoff = worker::pauses(config.worker.backoff_max);
    let client = loop {
        match worker::pg_connect(&config).await {
            Ok(c) => break c,
            Err(e) => {
                warn!("waiting for PostgreSQL: {e}");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    };
    let latest = migrate::MIGRATIONS.last().map_or(0, |m| m.0);
    match migrate::current(&client).await {
        Ok(v) if v == latest => {}
        Ok(v) => {
            error!("schema version {v}, this binary needs {latest}: run `coldgate-fleet migrate`");
            return ExitCode::from(EX_CONFIG);
        }
        Err(e) => {
            error!("cannot read the schema version: {e}");
            return ExitCode::from(EX_UNAVAILABLE);
        }
    }
    drop(client);

    let listener = match tokio::net::TcpListener::bind(&config.http.listen).await {
        Ok(l) => l,
        Err(e) => {
            error!("cannot listen on {}: {e}", config.http.listen);
            return ExitCode::from(EX_UNAVAILABLE);
        }
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let app = crate::api::router(config.clone());
    let mut api_stop = stop_rx.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = api_stop.changed().await;
            })
            .await;
    });
    tokio::spawn(verify_loop(config.clone(), stop_rx.clone()));
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    error!("cannot watch SIGTERM: {e}");
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        info!("stopping: finishing the batches in hand");
        let _ = stop_tx.send(true);
    });
    match worker::run(config, stop_rx).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::from(EX_UNAVAILABLE)
        }
    }
}

async fn verify_loop(config: Arc<Config>, mut stop: watch::Receiver<bool>) {
    let nats = match stream::connect(&config).await {
        Ok(n) => n,
        Err(e) => {
            error!("delivery verification has no NATS: {e}");
            return;
        }
    };
    let mut pg = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(config.verify.interval) => {}
            _ = stop.changed() => return,
        }
        let client = match pg.take() {
            Some(c) => c,
            None => match worker::pg_connect(&config).await {
                Ok(c) => c,
                Err(_) => continue,
            },
        };
        let mut client = client;
        match verify::round(&mut client, &config).await {
            Ok((alerts, replays)) => {
                for a in &alerts {
                    warn!(
                        gateway = %a.gateway_id,
                        "delivery gap {}..={} open {} s with an empty outbox",
                        a.from_seq, a.to_seq, a.age_s
                    );
                }
                for r in &replays {
                    info!(gateway = %r.gateway_id, "replay of {}..={} requested", r.from_seq, r.to_seq);
                }
                if let Err(e) = verify::announce(&nats, &config, &alerts, &replays).await {
                    warn!("alerts stored, not published: {e}");
                }
                pg = Some(client);
            }
            Err(e) => warn!("delivery verification round failed: {e}"),
        }
        if let Some(client) = pg.as_mut() {
            if let Err(e) = custody::publish_pending(client, &nats).await {
                warn!("custody alerts stored, not published yet: {e}");
                pg = None;
            }
        }
    }
}
