//! What a batch tells about custody: the manifests and the accepted
//! unloads among its items, read with the gateway's own payload types.

use coldgate::event::payload::{Audit, AuditKind, Manifest};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

use super::Stay;
use crate::ingest::Item;

/// What a batch tells about custody, read from its items.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Observed {
    /// (gateway, at, the SSCCs listed).
    pub manifests: Vec<(String, OffsetDateTime, Vec<String>)>,
    /// Accepted unloads: (gateway, sscc, at).
    pub unloads: Vec<(String, String, OffsetDateTime)>,
    /// Stays as first seen in a manifest (`unloaded` not known yet) with
    /// the manifest's time.
    pub stays: Vec<(Stay, OffsetDateTime)>,
    /// (gateway, sscc, loaded, zone, gtin, lot, expiry, serials).
    pub lots: Vec<PalletLot>,
    /// What could not be read (a `loaded_at` that is not RFC 3339, …).
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PalletLot {
    pub gateway_id: String,
    pub sscc: String,
    pub loaded: OffsetDateTime,
    pub zone: String,
    pub gtin: String,
    pub lot: String,
    pub expiry: Option<Date>,
    pub serials: Vec<String>,
}

fn parse_expiry(e: &str) -> Option<Date> {
    Date::parse(e, time::macros::format_description!("[year]-[month]-[day]")).ok()
}

/// Reads the manifests and unload audit events among `items`.
pub fn observe(items: &[Item]) -> Observed {
    let mut out = Observed::default();
    for item in items {
        match item {
            Item::Manifest {
                gateway,
                at,
                payload,
            } => {
                let m: Manifest = match serde_json::from_value(payload.clone()) {
                    Ok(m) => m,
                    Err(e) => {
                        out.problems.push(format!("manifest of {gateway}: {e}"));
                        continue;
                    }
                };
                out.manifests.push((
                    gateway.clone(),
                    *at,
                    m.pallets.iter().map(|p| p.sscc.clone()).collect(),
                ));
                for p in &m.pallets {
                    let loaded = match OffsetDateTime::parse(&p.loaded_at, &Rfc3339) {
                        Ok(t) => t,
                        Err(e) => {
                            out.problems
                                .push(format!("{gateway} pallet {}: loaded_at: {e}", p.sscc));
                            continue;
                        }
                    };
                    let pallet = Stay {
                        kind: "sscc".into(),
                        code: p.sscc.clone(),
                        gateway_id: gateway.clone(),
                        zone: p.zone.clone(),
                        sscc: p.sscc.clone(),
                        gtin: None,
                        serial: None,
                        lot: None,
                        expiry: None,
                        loaded,
                        unloaded: None,
                        source: "manifest".into(),
                    };
                    for i in &p.items {
                        let expiry = i.expiry.as_deref().and_then(parse_expiry);
                        out.lots.push(PalletLot {
                            gateway_id: gateway.clone(),
                            sscc: p.sscc.clone(),
                            loaded,
                            zone: p.zone.clone(),
                            gtin: i.gtin.clone(),
                            lot: i.lot.clone(),
                            expiry,
                            serials: i.serials.clone(),
                        });
                        for serial in &i.serials {
                            out.stays.push((
                                Stay {
                                    kind: "sgtin".into(),
                                    code: format!("{}/{serial}", i.gtin),
                                    gtin: Some(i.gtin.clone()),
                                    serial: Some(serial.clone()),
                                    lot: Some(i.lot.clone()),
                                    expiry,
                                    ..pallet.clone()
                                },
                                *at,
                            ));
                        }
                    }
                    out.stays.push((pallet, *at));
                }
            }
            Item::Event(e) if e.kind == "audit" => {
                let Ok(a) = serde_json::from_value::<Audit>(e.payload.clone()) else {
                    continue;
                };
                let d = &a.details;
                if a.phase == AuditKind::ManifestCommand
                    && d.get("action").and_then(|v| v.as_str()) == Some("unload")
                    && d.get("accepted").and_then(|v| v.as_bool()) == Some(true)
                {
                    if let Some(sscc) = d.get("sscc").and_then(|v| v.as_str()) {
                        out.unloads
                            .push((e.gateway.clone(), sscc.to_string(), e.at));
                    }
                }
            }
            _ => {}
        }
    }
    out
}
