//! The commands about lots that read and write PostgreSQL directly: a
//! lot's journey across legs, its (or a pallet's) EPCIS document, and
//! flagging a lot (recall).

use std::process::ExitCode;

use super::{age, EX_UNAVAILABLE};
use crate::config::Config;
use crate::{custody, worker};

pub(super) async fn lot_cmd(config: Config, lot: String, json: bool) -> ExitCode {
    let client = match worker::pg_connect(&config).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot reach PostgreSQL: {e}");
            return ExitCode::from(EX_UNAVAILABLE);
        }
    };
    let view = match crate::exposure::lot_view(&client, &lot).await {
        Ok(v) => v,
        Err(e) => {
            eprintln!("cannot read lot {lot}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&view).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    println!("lot {}", view.lot);
    for l in &view.legs {
        let until = l
            .unloaded
            .map_or_else(|| "on board".to_string(), |u| u.to_string());
        println!(
            "  leg  {} zone {}  pallet {}  {} .. {}  unmonitored {}",
            l.gateway_id,
            l.zone,
            l.sscc,
            l.loaded,
            until,
            age(l.unmonitored_s)
        );
    }
    println!("  excursions {}", view.excursions);
    for b in &view.budgets {
        let per: Vec<String> = b
            .per_gateway
            .iter()
            .map(|(g, s)| format!("{g} {}", age(*s)))
            .collect();
        println!(
            "  {} {}  {} of {}  ({})",
            b.rule,
            b.direction,
            age(b.total_s),
            b.allowance_s
                .map_or_else(|| "no allowance".to_string(), age),
            per.join(", ")
        );
    }
    println!("  unmonitored {}", age(view.unmonitored_s));
    match (&view.mkt.mkt, &view.mkt.unknown) {
        (Some(m), _) => println!(
            "  MKT over all legs {m:.2} °C ({} monitored, ΔH {} kJ/mol)",
            age(view.mkt.monitored_s),
            view.mkt.activation_energy_j_per_mol.unwrap_or_default() / 1000.0
        ),
        (None, why) => println!(
            "  MKT over all legs unknown ({})",
            why.as_deref().unwrap_or("no figure")
        ),
    }
    println!("  verdict: {}", view.verdict);
    ExitCode::SUCCESS
}

pub(super) async fn epcis_cmd(config: Config, subject: crate::epcis::Subject) -> ExitCode {
    let client = match worker::pg_connect(&config).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot reach PostgreSQL: {e}");
            return ExitCode::from(EX_UNAVAILABLE);
        }
    };
    let doc = match crate::epcis::document(&client, &subject, time::OffsetDateTime::now_utc()).await
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("no EPCIS document: {e}");
            return ExitCode::FAILURE;
        }
    };
    match serde_json::to_string_pretty(&doc) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot write the EPCIS document: {e}");
            ExitCode::FAILURE
        }
    }
}

pub(super) async fn recall_cmd(
    config: Config,
    gtin: Option<String>,
    lot: String,
    reason: String,
) -> ExitCode {
    let mut client = match worker::pg_connect(&config).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot reach PostgreSQL: {e}");
            return ExitCode::from(EX_UNAVAILABLE);
        }
    };
    match custody::recall(&mut client, gtin.as_deref(), &lot, &reason).await {
        Ok(n) => {
            println!("lot {lot} flagged; {n} pallet(s) already seen with it raised an alert");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("recall not stored: {e}");
            ExitCode::FAILURE
        }
    }
}
