//! `coldgate scan`: a keyboard-wedge scanner on standard input loads and
//! moves pallets on the running daemon.
//!
//! Design: the decision what a zone scan means ([`plan`]) is pure and
//! unit-tested; the loop around it only reads lines and talks HTTP. A move
//! is an unload followed by a load, the two commands an operator would send,
//! so each is in the daemon's audit trail and the manifest keeps both stays
//! (one ended, one started) rather than a pallet on board twice.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{json, Value};

use super::api::{ApiError, Client, ScanArgs};
use crate::manifest::gs1;
use crate::manifest::scan::{add_item, looks_like_gs1, plan, OnBoard, Pending, Plan};

/// The open stay of `sscc` on the daemon, if any.
fn on_board(c: &Client, sscc: &str) -> Result<Option<OnBoard>, ApiError> {
    let v = c.get("/api/manifest")?;
    let stay = v["pallets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["sscc"] == sscc && p["unloaded_at"].is_null());
    Ok(stay.map(|p| OnBoard {
        zone: p["zone"].as_str().unwrap_or_default().to_string(),
        items: serde_json::from_value(p["items"].clone()).unwrap_or_default(),
    }))
}

/// Reads a keyboard-wedge scanner on standard input, one label per line:
/// the pallet's label (SSCC, as a GS1 element string or Digital Link; its
/// GTIN (01, or 02 for the contents) and lot, if printed, are the pallet's
/// item), optionally product labels (GTIN + lot, serial) for more items,
/// then the zone, which loads the pallet, or moves it there if it is on
/// board elsewhere. A bad line is reported and the loop goes on.
pub fn scan(a: &ScanArgs) -> anyhow::Result<ExitCode> {
    let c = Client::new(&a.conn)?;
    scan_lines(&c, std::io::stdin().lock(), a.conn.json)
}

fn scan_lines(c: &Client, input: impl BufRead, json: bool) -> anyhow::Result<ExitCode> {
    eprintln!(
        "scan: the pallet label, then the zone (Ctrl-D ends); loading into {}",
        c.base()
    );
    let mut pending: Option<Pending> = None;
    let (mut loaded, mut rejected) = (0u32, 0u32);
    for (n, line) in input.lines().enumerate() {
        let n = n + 1;
        let line = line.context("cannot read standard input")?;
        // CR, LF and blanks are the scanner's framing; a GS is data.
        let line = line.trim_matches(|c| matches!(c, '\r' | '\n' | ' ' | '\t'));
        if line.is_empty() {
            continue;
        }
        if looks_like_gs1(line) {
            let d = match gs1::parse(line) {
                Ok(d) => d,
                Err(e) => {
                    eprintln!(
                        "line {n}: `{}` is not a valid GS1 label: {e}; scan it again",
                        line.escape_debug()
                    );
                    rejected += 1;
                    continue;
                }
            };
            if let Some(sscc) = &d.sscc {
                if let Some(p) = pending.take() {
                    eprintln!(
                        "line {n}: pallet {} was not loaded (no zone scanned); now scanning {sscc}",
                        p.sscc
                    );
                    rejected += 1;
                }
                let mut items = Vec::new();
                add_item(&mut items, &d);
                eprintln!(
                    "pallet {sscc}: now scan {}the zone",
                    if items.is_empty() {
                        "a product label (GTIN + lot), then (or at once, to move a pallet on board) "
                    } else {
                        ""
                    }
                );
                pending = Some(Pending {
                    sscc: sscc.clone(),
                    items,
                });
            } else if d.gtin.is_some() && d.lot.is_some() {
                match pending.as_mut() {
                    Some(p) => {
                        add_item(&mut p.items, &d);
                        eprintln!(
                            "pallet {}: {} item(s); scan the zone",
                            p.sscc,
                            p.items.len()
                        );
                    }
                    None => {
                        eprintln!("line {n}: a product label, but no pallet is being scanned: scan the pallet's SSCC label first");
                        rejected += 1;
                    }
                }
            } else {
                eprintln!(
                    "line {n}: the label has neither an SSCC (00) nor a GTIN (01) with a lot (10)"
                );
                rejected += 1;
            }
            continue;
        }
        // Not a label: a zone.
        let Some(p) = pending.as_ref() else {
            eprintln!("line {n}: `{}` is not a GS1 label and no pallet waits for a zone: scan the pallet label first", line.escape_debug());
            rejected += 1;
            continue;
        };
        let stay = on_board(c, &p.sscc)?;
        let (items, from) = match plan(p, line, stay.as_ref()) {
            Plan::NoItem => {
                eprintln!("line {n}: pallet {} has no item yet: scan a product label (GTIN + lot) before the zone", p.sscc);
                rejected += 1;
                continue;
            }
            Plan::AlreadyThere => {
                eprintln!(
                    "line {n}: pallet {} is already on board in zone {line}; nothing to do",
                    p.sscc
                );
                pending = None;
                continue;
            }
            Plan::Load(items) => (items, None),
            Plan::Move { from, items } => (items, Some(from)),
        };
        // The zone is checked before the old stay ends, so a mistyped zone
        // does not leave the pallet off board.
        if from.is_some() && !zone_known(c, line)? {
            eprintln!(
                "line {n}: pallet {} refused: zone: unknown zone `{line}`; scan the zone again or the next pallet",
                p.sscc
            );
            rejected += 1;
            continue;
        }
        if let Some(from) = &from {
            if let Err(e) = c.post("/api/manifest/unload", &json!({ "sscc": p.sscc })) {
                eprintln!("line {n}: pallet {} cannot leave zone {from}: {e}", p.sscc);
                rejected += 1;
                continue;
            }
        }
        let body = json!({ "sscc": p.sscc, "zone": line, "items": items });
        let mut off_board = false;
        match c.post("/api/manifest/load", &body) {
            Ok(v) => {
                if json {
                    println!(
                        "{}",
                        json!({ "sscc": p.sscc, "zone": line, "from": from, "ok": true, "command_id": v["command_id"], "warnings": v["warnings"] })
                    );
                } else {
                    match &from {
                        Some(from) => {
                            println!("moved pallet {} from zone {from} to zone {line}", p.sscc)
                        }
                        None => println!("loaded pallet {} into zone {line}", p.sscc),
                    }
                    for w in super::api::load_warnings(&v) {
                        eprintln!("line {n}: pallet {}: {w}", p.sscc);
                    }
                }
                loaded += 1;
                pending = None;
            }
            Err(ApiError::Status {
                status: 400 | 422,
                body: answer,
                ..
            }) => {
                let errors: Vec<&str> = answer["errors"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                match &from {
                    // The zone was checked, so this is rare (items the
                    // daemon refuses); the old stay has ended either way.
                    Some(from) => {
                        eprintln!(
                            "line {n}: pallet {} left zone {from} but was refused in zone {line}: {}; it is off board now: scan a zone for it",
                            p.sscc,
                            errors.join("; ")
                        );
                        off_board = true;
                    }
                    None => eprintln!(
                        "line {n}: pallet {} refused: {}; scan the zone again or the next pallet",
                        p.sscc,
                        errors.join("; ")
                    ),
                }
                rejected += 1;
            }
            Err(e) => return Err(e.into()),
        }
        // The next zone scanned loads it with the items it had on board.
        if let (true, Some(p)) = (off_board, pending.as_mut()) {
            p.items = items;
        }
    }
    if let Some(p) = pending {
        eprintln!("pallet {} was not loaded: no zone scanned", p.sscc);
        rejected += 1;
    }
    eprintln!("scan: {loaded} pallet(s) loaded, {rejected} line(s) not used");
    Ok(if rejected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Whether the daemon has a zone of this name. The API has no zone list;
/// the zone chart answers 404 for an unknown zone before drawing anything,
/// and an SVG (not JSON) for a known one.
fn zone_known(c: &Client, zone: &str) -> Result<bool, ApiError> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if zone.is_empty() || !zone.bytes().all(plain) {
        return Ok(false);
    }
    match c.get(&format!("/api/zones/{zone}/chart.svg")) {
        Ok(_) | Err(ApiError::Other { .. }) => Ok(true),
        Err(ApiError::Status { status: 404, .. }) => Ok(false),
        Err(e) => Err(e),
    }
}
