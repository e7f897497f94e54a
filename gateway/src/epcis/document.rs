//! The EPCIS 2.0 JSON-LD wire format, as far as coldgate writes it: an
//! `EPCISDocument` of `ObjectEvent`s, some carrying a `sensorElementList`.
//!
//! Every field is typed so that the mapping cannot produce a shape the
//! standard does not have; the names follow the JSON binding of EPCIS 2.0
//! (GS1's `EPCIS-JSON-Schema.json`, copied to `docs/schema/epcis/`).
//! Fields coldgate adds are in its own JSON-LD namespace (`cg:`, see
//! [`CG_NAMESPACE`]), which the standard allows as extensions. Deserialize
//! too, so the fleet and the tests read what a gateway wrote with the same
//! types.

use serde::{Deserialize, Serialize};

/// GS1's JSON-LD context for EPCIS 2.0, the first entry of `@context`.
pub const EPCIS_CONTEXT: &str = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld";

/// The namespace of coldgate's extension fields (`cg:rule`, …). An
/// identifier, never fetched: a URN so that it points at no domain anyone
/// else may own.
pub const CG_NAMESPACE: &str = "urn:coldgate:epcis:";

/// One entry of `@context`: GS1's context by URL, or a prefix map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ContextEntry {
    Url(String),
    Prefixes(std::collections::BTreeMap<String, String>),
}

/// The context every document coldgate writes carries.
pub fn context() -> Vec<ContextEntry> {
    vec![
        ContextEntry::Url(EPCIS_CONTEXT.to_string()),
        ContextEntry::Prefixes([("cg".to_string(), CG_NAMESPACE.to_string())].into()),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DocumentType {
    #[serde(rename = "EPCISDocument")]
    EpcisDocument,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpcisDocument {
    #[serde(rename = "@context")]
    pub context: Vec<ContextEntry>,
    #[serde(rename = "type")]
    pub kind: DocumentType,
    /// `2.0`.
    #[serde(rename = "schemaVersion")]
    pub schema_version: String,
    /// RFC 3339, UTC.
    #[serde(rename = "creationDate")]
    pub creation_date: String,
    /// The party that made the document: the gateway (or the fleet).
    #[serde(rename = "sender", default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    #[serde(rename = "epcisBody")]
    pub body: EpcisBody,
    /// What the document is about, as the trip report names it
    /// (`pallet SSCC …`, `lot … of GTIN …`).
    #[serde(rename = "cg:subject")]
    pub subject: String,
    /// The trip report's verdict in its own words (`Record incomplete`, …):
    /// a reader of the EPCIS events alone would otherwise take the absence of
    /// an alarm for a clean record.
    #[serde(
        rename = "cg:verdict",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub verdict: Option<String>,
    #[serde(rename = "cg:reasons", default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpcisBody {
    #[serde(rename = "eventList")]
    pub event_list: Vec<ObjectEvent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    ObjectEvent,
}

/// EPCIS `action`: coldgate only observes objects that exist already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Action {
    Observe,
}

/// CBV 2.0 business steps, in the bare-word form of the JSON binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BizStep {
    Loading,
    Unloading,
    SensorReporting,
}

/// A `readPoint` or `bizLocation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub id: String,
}

/// A class-level entry (`epcClass`, a lot as an LGTIN) for goods without
/// serials: their count is unknown to the gateway, so `quantity` is absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantityElement {
    #[serde(rename = "epcClass")]
    pub epc_class: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectEvent {
    #[serde(rename = "type")]
    pub kind: EventType,
    /// A stable `urn:uuid:` derived from what the event says (see
    /// `map::event_id`), so the same stay exported twice, or by the gateway
    /// and by the fleet, has the same id and a receiver can drop the copy.
    #[serde(rename = "eventID")]
    pub event_id: String,
    /// RFC 3339, UTC.
    #[serde(rename = "eventTime")]
    pub event_time: String,
    /// Always `+00:00`: the gateway records UTC and knows nothing of the
    /// local time where the container stood.
    #[serde(rename = "eventTimeZoneOffset")]
    pub event_time_zone_offset: String,
    #[serde(rename = "epcList")]
    pub epc_list: Vec<String>,
    #[serde(
        rename = "quantityList",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub quantity_list: Vec<QuantityElement>,
    pub action: Action,
    #[serde(rename = "bizStep")]
    pub biz_step: BizStep,
    #[serde(rename = "readPoint")]
    pub read_point: Location,
    #[serde(
        rename = "bizLocation",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub biz_location: Option<Location>,
    #[serde(
        rename = "sensorElementList",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub sensor_element_list: Vec<SensorElement>,
    /// On loads: the lots (LGTIN URIs) of the pallet, serialised or not, so
    /// a reader of an SGTIN knows its lot without the manifest.
    #[serde(rename = "cg:lots", default, skip_serializing_if = "Vec::is_empty")]
    pub lots: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorElement {
    #[serde(rename = "sensorMetadata")]
    pub sensor_metadata: SensorMetadata,
    #[serde(rename = "sensorReport")]
    pub sensor_report: Vec<SensorReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorMetadata {
    /// The sensor, when one is concerned (none when the gateway was down).
    #[serde(rename = "deviceID", default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The span the report covers: the excursion or the gap.
    #[serde(rename = "startTime")]
    pub start_time: String,
    #[serde(rename = "endTime")]
    pub end_time: String,
}

/// CBV 2.0 measurement types (the short form the schema takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MeasurementType {
    Temperature,
    RelativeHumidity,
    Illuminance,
    Dimensionless,
    Voltage,
}

/// CBV 2.0 sensor alert types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SensorException {
    /// A value beyond a limit: an excursion.
    AlarmCondition,
    /// The device could not observe: a monitoring gap.
    ErrorCondition,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorReport {
    #[serde(rename = "type")]
    pub kind: MeasurementType,
    pub exception: SensorException,
    /// UN/CEFACT code (`CEL`); absent on a gap, which has no values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uom: Option<String>,
    #[serde(rename = "minValue", default, skip_serializing_if = "Option::is_none")]
    pub min_value: Option<f64>,
    #[serde(rename = "maxValue", default, skip_serializing_if = "Option::is_none")]
    pub max_value: Option<f64>,
    #[serde(rename = "meanValue", default, skip_serializing_if = "Option::is_none")]
    pub mean_value: Option<f64>,
    /// One sentence a person reads: what happened, by the gateway's words.
    #[serde(rename = "stringValue")]
    pub string_value: String,
    #[serde(flatten)]
    pub detail: ReportDetail,
}

/// coldgate's fields of a sensor report, by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReportDetail {
    Excursion(ExcursionDetail),
    Gap(GapDetail),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExcursionDetail {
    #[serde(rename = "cg:excursionId")]
    pub excursion_id: String,
    /// The rule as people say it, with the side broken: `2–8 °C, high`.
    #[serde(rename = "cg:rule")]
    pub rule: String,
    /// The ledger's name of the rule: `profile/quantity/index`.
    #[serde(
        rename = "cg:ruleId",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub rule_id: String,
    #[serde(rename = "cg:direction")]
    pub direction: String,
    #[serde(rename = "cg:limit")]
    pub limit: f64,
    /// Time beyond the limit, seconds (not the alarm's span).
    #[serde(rename = "cg:durationSeconds")]
    pub duration_s: i64,
    /// The rule's allowance on that side; absent: the rule allows none.
    #[serde(
        rename = "cg:allowanceSeconds",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub allowance_s: Option<i64>,
    /// Still open when exported: `endTime` is its last reading.
    #[serde(rename = "cg:ongoing")]
    pub ongoing: bool,
    #[serde(rename = "cg:freeze")]
    pub freeze: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GapDetail {
    /// `sensor_silent`, `gateway_down`, `gateway_stopped`, `no_readings`.
    #[serde(rename = "cg:gapCause")]
    pub cause: String,
    /// Unmonitored time, seconds.
    #[serde(rename = "cg:gapSeconds")]
    pub gap_s: i64,
    /// Still open when exported: `endTime` is the time the export is as of.
    #[serde(rename = "cg:ongoing")]
    pub ongoing: bool,
}
