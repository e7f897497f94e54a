//! From a custody and monitoring record ([`Journey`]) to an EPCISDocument.
//!
//! The record is plain facts (stays, excursions, gaps, each naming its
//! gateway) so that one gateway's database (`super::from_report`) and the
//! fleet's tables over many gateways feed the same mapping and give the same
//! events, with the same ids, for the same facts.

use coldgate_sensor_drivers::Quantity;

use super::document::{
    context, Action, BizStep, DocumentType, EpcisBody, EpcisDocument, EventType, ExcursionDetail,
    GapDetail, Location, MeasurementType, ObjectEvent, QuantityElement, ReportDetail,
    SensorElement, SensorException, SensorMetadata, SensorReport,
};
use super::uri::{self, UriError};
use crate::event::payload::{self, Direction, Item};
use crate::event::{parse_rfc3339, rfc3339};

/// One pallet's stay in one zone of one gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct StayRecord {
    pub gateway_id: String,
    pub zone: String,
    pub sscc: String,
    /// The items of the subject on the pallet (for a lot: that lot's only).
    pub items: Vec<Item>,
    pub loaded_at_ms: i64,
    pub unloaded_at_ms: Option<i64>,
}

/// One excursion that concerned the subject.
#[derive(Debug, Clone, PartialEq)]
pub struct ExcursionRecord {
    pub gateway_id: String,
    pub excursion_id: String,
    pub zone: String,
    pub sensor: String,
    pub quantity: Quantity,
    pub direction: Direction,
    pub limit: f64,
    /// `profile/quantity/index` (empty when the event predates it).
    pub rule_id: String,
    /// As people say it, with the side: `2–8 °C, high`.
    pub rule_name: String,
    pub started_ms: i64,
    /// None while open.
    pub ended_ms: Option<i64>,
    /// Where its span ends in the document: its end, or while open its
    /// last reading.
    pub until_ms: i64,
    /// Time beyond the limit.
    pub duration_ms: i64,
    pub min: f64,
    pub max: f64,
    /// Of the readings beyond the limit (None when the event is missing).
    pub mean: Option<f64>,
    pub allowance_ms: Option<i64>,
    pub freeze: bool,
    /// The pallets it named (`affected`).
    pub ssccs: Vec<String>,
}

impl ExcursionRecord {
    /// The record of a stored `events/excursion` body alone, published at
    /// `at_ms`: what a reader without the gateway's configuration has (the
    /// fleet's copy of every gateway's events). The rule is named from the
    /// event (`high 8 °C`) and the pallets are those it named. None when its
    /// start is no time.
    pub fn from_event(gateway_id: &str, e: &payload::Excursion, at_ms: i64) -> Option<Self> {
        let started_ms = parse_rfc3339(&e.started_at)?;
        let ended_ms = e.ended_at.as_deref().and_then(parse_rfc3339);
        Some(ExcursionRecord {
            gateway_id: gateway_id.to_string(),
            excursion_id: e.excursion_id.clone(),
            zone: e.zone.clone(),
            sensor: e.sensor_id.clone(),
            quantity: e.quantity,
            direction: e.direction,
            limit: e.limit,
            rule_id: e.rule.clone(),
            rule_name: crate::report::event_rule_name(e),
            started_ms,
            ended_ms,
            until_ms: ended_ms.unwrap_or(at_ms).max(started_ms),
            duration_ms: e.duration_s.saturating_mul(1000),
            min: e.min,
            max: e.max,
            mean: Some(e.mean),
            allowance_ms: e.allowance_s.map(|s| s.saturating_mul(1000)),
            freeze: e.freeze,
            ssccs: e.affected.iter().map(|a| a.sscc.clone()).collect(),
        })
    }
}

/// Why a stretch went unwatched (the trip report's causes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapKind {
    SensorSilent,
    GatewayDown,
    GatewayStopped,
    NoReadings,
}

impl GapKind {
    pub fn code(self) -> &'static str {
        match self {
            GapKind::SensorSilent => "sensor_silent",
            GapKind::GatewayDown => "gateway_down",
            GapKind::GatewayStopped => "gateway_stopped",
            GapKind::NoReadings => "no_readings",
        }
    }

    fn words(self) -> &'static str {
        match self {
            GapKind::SensorSilent => "the sensor was silent",
            GapKind::GatewayDown => "the gateway was down",
            GapKind::GatewayStopped => "the gateway was stopped",
            GapKind::NoReadings => "no readings were stored",
        }
    }
}

/// A stretch of time a gateway did not watch.
#[derive(Debug, Clone, PartialEq)]
pub struct GapRecord {
    pub gateway_id: String,
    pub kind: GapKind,
    /// None: every zone of the gateway.
    pub zone: Option<String>,
    pub sensor: Option<String>,
    pub quantity: Option<Quantity>,
    pub start_ms: i64,
    /// None while open.
    pub end_ms: Option<i64>,
    /// Where an open gap ends in the document.
    pub until_ms: i64,
}

/// What the document is made from.
#[derive(Debug, Clone, PartialEq)]
pub struct Journey {
    /// `pallet SSCC …` or `lot … of GTIN …`.
    pub subject: String,
    /// Who makes the document (a gateway id, or the fleet).
    pub sender: String,
    pub stays: Vec<StayRecord>,
    pub excursions: Vec<ExcursionRecord>,
    pub gaps: Vec<GapRecord>,
    /// The verdict in the gateway's words, and why.
    pub verdict: Option<String>,
    pub reasons: Vec<String>,
}

/// The goods of some stays as EPCIS sees them: instance EPCs (SSCCs and
/// SGTINs), class entries for packs without serials, and the lots.
#[derive(Default)]
struct Goods {
    epcs: Vec<String>,
    classes: Vec<QuantityElement>,
    lots: Vec<String>,
}

impl Goods {
    fn add(&mut self, stay: &StayRecord) -> Result<(), UriError> {
        push_unique(&mut self.epcs, uri::sscc_uri(&stay.sscc)?);
        for item in &stay.items {
            let lgtin = uri::lgtin_uri(&item.gtin, &item.lot)?;
            for serial in &item.serials {
                push_unique(&mut self.epcs, uri::sgtin_uri(&item.gtin, serial)?);
            }
            if item.serials.is_empty() && !self.classes.iter().any(|c| c.epc_class == lgtin) {
                self.classes.push(QuantityElement {
                    epc_class: lgtin.clone(),
                    quantity: None,
                });
            }
            push_unique(&mut self.lots, lgtin);
        }
        Ok(())
    }
}

fn push_unique(list: &mut Vec<String>, v: String) {
    if !list.contains(&v) {
        list.push(v);
    }
}

/// The EPCIS document of a journey, made at `now_ms`. Events are in time
/// order: loads and unloads of every stay, an `ALARM_CONDITION` report per
/// excursion and an `ERROR_CONDITION` report per monitoring gap, each
/// naming the goods of the subject that were there.
pub fn to_document(journey: &Journey, now_ms: i64) -> Result<EpcisDocument, UriError> {
    let mut events: Vec<(i64, u8, ObjectEvent)> = Vec::new();
    for s in &journey.stays {
        let mut goods = Goods::default();
        goods.add(s)?;
        let place = uri::zone_location(&s.gateway_id, &s.zone);
        let loaded = rfc3339(s.loaded_at_ms);
        events.push((
            s.loaded_at_ms,
            0,
            ObjectEvent {
                event_id: uri::event_id(&[&s.gateway_id, "load", &s.sscc, &s.zone, &loaded]),
                biz_step: BizStep::Loading,
                // Where the goods are now: this zone.
                biz_location: Some(Location { id: place.clone() }),
                lots: goods.lots.clone(),
                quantity_list: goods.classes.clone(),
                ..object_event(s.loaded_at_ms, goods.epcs.clone(), &place)
            },
        ));
        if let Some(u) = s.unloaded_at_ms {
            events.push((
                u,
                3,
                ObjectEvent {
                    event_id: uri::event_id(&[
                        &s.gateway_id,
                        "unload",
                        &s.sscc,
                        &s.zone,
                        &loaded,
                        &rfc3339(u),
                    ]),
                    biz_step: BizStep::Unloading,
                    // Where they went is not known here: no bizLocation.
                    biz_location: None,
                    quantity_list: goods.classes,
                    ..object_event(u, goods.epcs, &place)
                },
            ));
        }
    }

    for x in &journey.excursions {
        let mut goods = Goods::default();
        for s in journey.stays.iter().filter(|s| {
            s.gateway_id == x.gateway_id
                && s.zone == x.zone
                && x.ssccs.contains(&s.sscc)
                && overlaps(s, x.started_ms, x.until_ms)
        }) {
            goods.add(s)?;
        }
        if goods.epcs.is_empty() {
            // Named the subject (a lot's ledger) but no stay of it here:
            // still reported, against the lot as a class.
            for s in journey.stays.iter().filter(|s| x.ssccs.contains(&s.sscc)) {
                goods.add(s)?;
            }
        }
        let (kind, uom) = measurement(x.quantity);
        let place = uri::zone_location(&x.gateway_id, &x.zone);
        let ongoing = x.ended_ms.is_none();
        let string_value = format!(
            "excursion {}: {} for {} beyond the limit{}{}",
            x.excursion_id,
            x.rule_name,
            crate::report::format_duration(x.duration_ms),
            if x.freeze { ", a freeze" } else { "" },
            if ongoing { ", still open" } else { "" },
        );
        let report = SensorReport {
            kind,
            exception: SensorException::AlarmCondition,
            uom: Some(uom.to_string()),
            min_value: Some(x.min),
            max_value: Some(x.max),
            mean_value: x.mean,
            string_value,
            detail: ReportDetail::Excursion(ExcursionDetail {
                excursion_id: x.excursion_id.clone(),
                rule: x.rule_name.clone(),
                rule_id: x.rule_id.clone(),
                direction: x.direction.as_str().to_string(),
                limit: x.limit,
                duration_s: x.duration_ms / 1000,
                allowance_s: x.allowance_ms.map(|a| a / 1000),
                ongoing,
                freeze: x.freeze,
            }),
        };
        events.push((
            x.until_ms,
            1,
            ObjectEvent {
                event_id: uri::event_id(&[
                    &x.gateway_id,
                    "excursion",
                    &x.excursion_id,
                    &rfc3339(x.until_ms),
                    &journey.subject,
                ]),
                biz_step: BizStep::SensorReporting,
                biz_location: Some(Location { id: place.clone() }),
                quantity_list: goods.classes,
                sensor_element_list: vec![SensorElement {
                    sensor_metadata: SensorMetadata {
                        device_id: Some(uri::sensor_device(&x.gateway_id, &x.sensor)),
                        start_time: rfc3339(x.started_ms),
                        end_time: rfc3339(x.until_ms),
                    },
                    sensor_report: vec![report],
                }],
                ..object_event(x.until_ms, goods.epcs, &place)
            },
        ));
    }

    for g in &journey.gaps {
        let mut goods = Goods::default();
        for s in journey.stays.iter().filter(|s| {
            s.gateway_id == g.gateway_id
                && g.zone.as_ref().is_none_or(|z| *z == s.zone)
                && overlaps(s, g.start_ms, g.until_ms)
        }) {
            goods.add(s)?;
        }
        let place = match &g.zone {
            Some(z) => uri::zone_location(&g.gateway_id, z),
            None => uri::gateway_location(&g.gateway_id),
        };
        let (kind, _) = measurement(g.quantity.unwrap_or(Quantity::Temperature));
        let ongoing = g.end_ms.is_none();
        let length_ms = (g.until_ms - g.start_ms).max(0);
        let string_value = format!(
            "monitoring gap: {} for {}{}; nothing is known of this time",
            g.kind.words(),
            crate::report::format_duration(length_ms),
            if ongoing { ", still open" } else { "" },
        );
        events.push((
            g.until_ms,
            2,
            ObjectEvent {
                event_id: uri::event_id(&[
                    &g.gateway_id,
                    "gap",
                    g.kind.code(),
                    g.zone.as_deref().unwrap_or(""),
                    g.sensor.as_deref().unwrap_or(""),
                    &rfc3339(g.start_ms),
                    &rfc3339(g.until_ms),
                    &journey.subject,
                ]),
                biz_step: BizStep::SensorReporting,
                biz_location: g.zone.as_ref().map(|_| Location { id: place.clone() }),
                quantity_list: goods.classes,
                sensor_element_list: vec![SensorElement {
                    sensor_metadata: SensorMetadata {
                        device_id: g
                            .sensor
                            .as_deref()
                            .map(|s| uri::sensor_device(&g.gateway_id, s)),
                        start_time: rfc3339(g.start_ms),
                        end_time: rfc3339(g.until_ms),
                    },
                    sensor_report: vec![SensorReport {
                        kind,
                        exception: SensorException::ErrorCondition,
                        uom: None,
                        min_value: None,
                        max_value: None,
                        mean_value: None,
                        string_value,
                        detail: ReportDetail::Gap(GapDetail {
                            cause: g.kind.code().to_string(),
                            gap_s: length_ms / 1000,
                            ongoing,
                        }),
                    }],
                }],
                ..object_event(g.until_ms, goods.epcs, &place)
            },
        ));
    }

    // Time order; at one instant loads first and unloads last, so a reader
    // sees the goods on board when their reports come.
    events.sort_by_key(|e| (e.0, e.1));
    Ok(EpcisDocument {
        context: context(),
        kind: DocumentType::EpcisDocument,
        schema_version: "2.0".to_string(),
        creation_date: rfc3339(now_ms),
        sender: Some(journey.sender.clone()),
        body: EpcisBody {
            event_list: events.into_iter().map(|(_, _, e)| e).collect(),
        },
        subject: journey.subject.clone(),
        verdict: journey.verdict.clone(),
        reasons: journey.reasons.clone(),
    })
}

fn object_event(at_ms: i64, epcs: Vec<String>, read_point: &str) -> ObjectEvent {
    ObjectEvent {
        kind: EventType::ObjectEvent,
        event_id: String::new(),
        event_time: rfc3339(at_ms),
        event_time_zone_offset: "+00:00".to_string(),
        epc_list: epcs,
        quantity_list: Vec::new(),
        action: Action::Observe,
        biz_step: BizStep::SensorReporting,
        read_point: Location {
            id: read_point.to_string(),
        },
        biz_location: None,
        sensor_element_list: Vec::new(),
        lots: Vec::new(),
    }
}

fn overlaps(s: &StayRecord, from_ms: i64, to_ms: i64) -> bool {
    s.loaded_at_ms <= to_ms && s.unloaded_at_ms.is_none_or(|u| u >= from_ms)
}

/// CBV measurement type and UN/CEFACT unit of a quantity.
pub fn measurement(q: Quantity) -> (MeasurementType, &'static str) {
    let kind = match q {
        Quantity::Temperature => MeasurementType::Temperature,
        Quantity::Humidity => MeasurementType::RelativeHumidity,
        Quantity::Illuminance => MeasurementType::Illuminance,
        Quantity::Battery => MeasurementType::Dimensionless,
        Quantity::BatteryVoltage => MeasurementType::Voltage,
    };
    (kind, q.unit())
}
