//! The bodies of `events/excursion`, `events/door`, `events/sensor` and
//! `events/lot`: what the engine saw.

use coldgate_sensor_drivers::Quantity;
use serde::{Deserialize, Serialize};

use super::messages::Item;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExcursionPhase {
    Started,
    Ended,
}

/// Which limit was crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Low,
    High,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Low => "low",
            Direction::High => "high",
        }
    }
}

/// `events/excursion`: a value outside a profile's limit for longer than its
/// delay (`started`), and back inside (`ended`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Excursion {
    pub phase: ExcursionPhase,
    /// The same in the `started` and `ended` events of one excursion.
    pub excursion_id: String,
    pub sensor_id: String,
    pub zone: String,
    pub quantity: Quantity,
    pub unit: String,
    pub direction: Direction,
    pub limit: f64,
    /// The limit itself is out of range (`limit` is excluded from the range).
    #[serde(default)]
    pub exclusive: bool,
    pub profile: String,
    /// `profile/quantity/index`: the rule, as the ledger names it (so a
    /// reader never has to recover it by comparing limits).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rule: String,
    /// The rule's cumulative allowance in this direction; `null`: it allows
    /// no time beyond the limit (any excursion needs assessment).
    #[serde(default)]
    pub allowance_s: Option<i64>,
    /// Time beyond the limit is a freeze.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub freeze: bool,
    /// The first reading beyond the limit.
    pub started_at: String,
    /// When the alarm cleared (back inside by more than the hysteresis);
    /// `None` while the excursion is open.
    pub ended_at: Option<String>,
    /// Time beyond the limit (exposure) up to `at`: time inside the
    /// hysteresis band and unmonitored time are not in it.
    pub duration_s: i64,
    /// Unmonitored time (a monitoring gap) while the excursion was open:
    /// neither in range nor beyond the limit.
    #[serde(default)]
    pub unknown_s: i64,
    /// Of the readings beyond the limit.
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Present on `ended` only.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub end: Option<ExcursionEnd>,
    /// The pallets of the profile on board in the zone at some time of the
    /// excursion, with every lot and serial: the products to quarantine.
    pub affected: Vec<Affected>,
}

/// What only an ended excursion knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExcursionEnd {
    /// When the value came back within the limit: the first reading no
    /// longer beyond it after the last one that was (≤ `ended_at`, which
    /// hysteresis may delay).
    pub back_in_range_at: String,
    /// The integral of the distance beyond the limit over time.
    pub degree_minutes: f64,
    /// Mean kinetic temperature of the time beyond the limit (temperature
    /// only), with the profile's ΔH.
    pub mkt: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Affected {
    pub sscc: String,
    pub zone: String,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoorPhase {
    Opened,
    Closed,
}

/// `events/door`: light inside the container over the threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Door {
    pub phase: DoorPhase,
    pub door_id: String,
    pub sensor_id: String,
    pub zone: String,
    pub lux: f64,
    /// The brightest reading while open; on `closed` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lux: Option<f64>,
    pub threshold_lux: f64,
    pub opened_at: String,
    pub closed_at: Option<String>,
    pub duration_s: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorPhase {
    /// A monitoring gap opened: nothing is known from `last_seen_at` on.
    Silent,
    /// The gap closed with a reading at `at`.
    Back,
    /// A value no sensor of this quantity can report (`value`): a fault,
    /// never a reading that is judged.
    Fault,
}

/// Why nothing was observed during a gap. Every cause is unmonitored time:
/// a QA reviewer needs to know which, because a sensor that fell silent and
/// a gateway that was off call for different actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapCause {
    /// The gateway ran, the sensor (or this quantity of it) sent nothing.
    SensorSilent,
    /// The gateway was down and did not stop cleanly (power cut, kill, crash).
    GatewayDown,
    /// The gateway was stopped cleanly and started again later.
    GatewayStopped,
}

/// `events/sensor`: a sensor's quantity silent for longer than its limit,
/// and back; or a physically impossible value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorGap {
    pub phase: SensorPhase,
    pub sensor_id: String,
    pub zone: String,
    /// The silent quantity. Absent from events stored before gaps were
    /// tracked per quantity (they were per sensor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<GapCause>,
    pub last_seen_at: String,
    pub gap_s: i64,
    pub silence_limit_s: Option<i64>,
    /// `fault` only: the impossible value and the range it left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_range: Option<[f64; 2]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LotPhase {
    /// A budget or MKT limit of the lot is used up.
    Exhausted,
    /// A load looked wrong (a code seen twice, a lot past its expiry, …).
    Warning,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LotReason {
    Budget,
    MktStay,
    MktWindow,
    SsccOnBoard,
    SerialOnBoard,
    SerialSeenBefore,
    SerialLotMismatch,
    LotExpiryMismatch,
    LotExpired,
    /// The same GTIN and serial twice in one load.
    SerialDuplicate,
    /// `loaded_at` later than the gateway's clock by more than the skew.
    LoadedAtFuture,
    /// `loaded_at` further in the past than the longest age accepted.
    LoadedAtPast,
}

impl LotReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LotReason::Budget => "budget",
            LotReason::MktStay => "mkt_stay",
            LotReason::MktWindow => "mkt_window",
            LotReason::SsccOnBoard => "sscc_on_board",
            LotReason::SerialOnBoard => "serial_on_board",
            LotReason::SerialSeenBefore => "serial_seen_before",
            LotReason::SerialLotMismatch => "serial_lot_mismatch",
            LotReason::LotExpiryMismatch => "lot_expiry_mismatch",
            LotReason::LotExpired => "lot_expired",
            LotReason::SerialDuplicate => "serial_duplicate",
            LotReason::LoadedAtFuture => "loaded_at_future",
            LotReason::LoadedAtPast => "loaded_at_past",
        }
    }
}

/// `events/lot`. Which fields are present depends on `reason`
/// (docs/schema/lot.json): a flat record, as on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lot {
    pub phase: LotPhase,
    pub reason: LotReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot: Option<String>,
    /// Present (possibly null) where the reason concerns the lot's expiry.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "present_or_null"
    )]
    pub expiry: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The exhausted rule, as the profile names it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "present_or_null"
    )]
    pub rule: Option<Option<String>>,
    /// The exhausted budget's direction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_range_s: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_s: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mkt: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mkt_limit: Option<f64>,
    /// The pallet a warning is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sscc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_sscc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earlier_lot: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "present_or_null"
    )]
    pub earlier_expiry: Option<Option<String>>,
    /// The SSCCs an exhausted lot was on board with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pallets: Option<Vec<String>>,
    /// `loaded_at_*`: the load time the command gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded_at: Option<String>,
    /// `loaded_at_*`: the skew or age it was judged against, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_s: Option<i64>,
}

impl Lot {
    /// A lot event with only its phase and reason; the builder sets the rest.
    pub fn new(phase: LotPhase, reason: LotReason) -> Lot {
        Lot {
            phase,
            reason,
            gtin: None,
            lot: None,
            expiry: None,
            profile: None,
            rule: None,
            direction: None,
            out_of_range_s: None,
            budget_s: None,
            mkt: None,
            mkt_limit: None,
            sscc: None,
            zone: None,
            serial: None,
            other_sscc: None,
            earlier_lot: None,
            earlier_expiry: None,
            pallets: None,
            loaded_at: None,
            limit_s: None,
        }
    }
}

/// A field that is absent (outer `None`), present as `null` (`Some(None)`)
/// or present with a value: serde's `Option` alone folds the first two.
pub(super) mod present_or_null {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize>(
        v: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}
