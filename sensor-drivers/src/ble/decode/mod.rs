//! Advertisement decoders: pure functions from bytes to values.
//!
//! One file per format family. Every decoder returns a [`Decoded`] whose
//! fields are `None` when the format did not carry the value *or marks it as
//! not available*: a sentinel is never passed on as a measurement, because a
//! fake 0 °C in a cold-chain record is worse than a gap.

pub mod bthome;
pub(crate) mod ccm;
pub mod govee;
pub mod inkbird;
pub mod ruuvi;
pub mod sensirion;
pub mod xiaomi_custom;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::Quantity;

use super::advertisement::Advertisement;

/// BTHome v2 service data UUID.
pub const UUID_BTHOME: u16 = 0xFCD2;
/// Environmental Sensing service UUID, used by the ATC1441 and pvvx firmwares.
pub const UUID_ENVIRONMENTAL_SENSING: u16 = 0x181A;
/// Ruuvi Innovations company id.
pub const COMPANY_RUUVI: u16 = 0x0499;
/// The id Govee H5072/H5074/H5075 advertise their data under.
pub const COMPANY_GOVEE: u16 = 0xEC88;
/// The id the Govee H5100 family advertises under (it is not Govee's own).
pub const COMPANY_GOVEE_H5100: u16 = 0x0001;
/// Sensirion AG company id.
pub const COMPANY_SENSIRION: u16 = 0x06D5;

/// An advertisement format this crate decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// BTHome v2 on service data 0xFCD2, plain or encrypted.
    Bthome,
    /// Ruuvi data format 5 (RAWv2) on manufacturer data 0x0499.
    RuuviV5,
    /// ATC1441 firmware, 13 bytes on service data 0x181A.
    Atc1441,
    /// ATC1441 layout, encrypted by the pvvx firmware (bindkey), 8 bytes.
    Atc1441Encrypted,
    /// pvvx custom format, 15 bytes on service data 0x181A.
    Pvvx,
    /// pvvx custom format, encrypted (bindkey), 11 bytes.
    PvvxEncrypted,
    /// Govee H5072 / H5075 on manufacturer data 0xEC88.
    GoveeH5075,
    /// Govee H5074 on manufacturer data 0xEC88.
    GoveeH5074,
    /// Govee H5100 / H5101 / H5102 / H5104 / H5105 / H5108 / H5174 / H5177.
    GoveeH5100,
    /// Inkbird IBS-TH1 / IBS-TH2 (the company id field carries the temperature).
    InkbirdIbsTh,
    /// Sensirion SHT4x gadget on manufacturer data 0x06D5.
    SensirionSht4x,
}

impl Format {
    /// Every format, in the order the documentation lists them.
    pub const ALL: [Format; 11] = [
        Format::Bthome,
        Format::RuuviV5,
        Format::Atc1441,
        Format::Atc1441Encrypted,
        Format::Pvvx,
        Format::PvvxEncrypted,
        Format::GoveeH5075,
        Format::GoveeH5074,
        Format::GoveeH5100,
        Format::InkbirdIbsTh,
        Format::SensirionSht4x,
    ];

    /// The name used in configuration, on the CLI and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Bthome => "bthome",
            Format::RuuviV5 => "ruuvi-v5",
            Format::Atc1441 => "atc1441",
            Format::Atc1441Encrypted => "atc1441-encrypted",
            Format::Pvvx => "pvvx",
            Format::PvvxEncrypted => "pvvx-encrypted",
            Format::GoveeH5075 => "govee-h5075",
            Format::GoveeH5074 => "govee-h5074",
            Format::GoveeH5100 => "govee-h5100",
            Format::InkbirdIbsTh => "inkbird-ibs-th",
            Format::SensirionSht4x => "sensirion-sht4x",
        }
    }

    /// Formats that are always encrypted and so cannot work without a key.
    pub fn requires_key(self) -> bool {
        matches!(self, Format::Atc1441Encrypted | Format::PvvxEncrypted)
    }

    /// Formats that can carry encrypted data, so a configured key makes sense.
    pub fn accepts_key(self) -> bool {
        self.requires_key() || self == Format::Bthome
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A format name this build does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format `{0}` (known: bthome, ruuvi-v5, atc1441, atc1441-encrypted, pvvx, pvvx-encrypted, govee-h5075, govee-h5074, govee-h5100, inkbird-ibs-th, sensirion-sht4x)")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

impl Serialize for Format {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An encryption counter, kept apart from the plain packet id because it is
/// what replay protection compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayCounter {
    /// BTHome: 32 bits; it must strictly increase.
    U32(u32),
    /// pvvx/ATC encrypted: one byte that wraps. "Later" means 1..=127 steps
    /// ahead modulo 256 (serial-number arithmetic, RFC 1982), since a strict
    /// increase would lock the sensor out after 255 advertisements.
    U8(u8),
}

impl ReplayCounter {
    /// Whether `self` was sent after `earlier`. Counters of different widths
    /// never come from the same sensor; they compare as not later.
    pub fn is_after(self, earlier: ReplayCounter) -> bool {
        match (self, earlier) {
            (ReplayCounter::U32(a), ReplayCounter::U32(b)) => a > b,
            (ReplayCounter::U8(a), ReplayCounter::U8(b)) => {
                let step = a.wrapping_sub(b);
                (1..=127).contains(&step)
            }
            _ => false,
        }
    }
}

/// What a decoder read out of one advertisement. Values are in the units of
/// [`Quantity`]; absent means "not sent or marked not available".
///
/// Serializes to the JSON `coldgate decode ble` prints, omitting absent keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decoded {
    pub format: Format,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub humidity_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub illuminance_lux: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub battery_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub battery_mv: Option<f64>,
    /// A counter the sensor changes when the data changes; repeats of the same
    /// advertisement carry the same id and are counted once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packet_id: Option<u32>,
    /// Encryption counter of an authenticated advertisement (not printed).
    #[serde(skip)]
    pub replay_counter: Option<ReplayCounter>,
}

impl Decoded {
    /// A result of `format` with nothing in it yet.
    pub fn empty(format: Format) -> Self {
        Decoded {
            format,
            temperature_c: None,
            humidity_pct: None,
            illuminance_lux: None,
            battery_pct: None,
            battery_mv: None,
            packet_id: None,
            replay_counter: None,
        }
    }

    /// The measurements present, as (quantity, value) pairs.
    pub fn values(&self) -> Vec<(Quantity, f64)> {
        [
            (Quantity::Temperature, self.temperature_c),
            (Quantity::Humidity, self.humidity_pct),
            (Quantity::Illuminance, self.illuminance_lux),
            (Quantity::Battery, self.battery_pct),
            (Quantity::BatteryVoltage, self.battery_mv),
        ]
        .into_iter()
        .filter_map(|(q, v)| v.map(|v| (q, v)))
        .collect()
    }
}

/// Why an advertisement could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{format}: payload is {got} bytes, expected {expected}")]
    Length {
        format: Format,
        expected: &'static str,
        got: usize,
    },
    #[error("{format}: {reason}")]
    Malformed {
        format: Format,
        reason: &'static str,
    },
    #[error("{format}: the advertisement has no {what}")]
    Missing { format: Format, what: &'static str },
    #[error("{format}: the advertisement is encrypted but no key is configured")]
    KeyRequired { format: Format },
    #[error("{format}: the advertisement is encrypted but the sensor's MAC address is unknown")]
    MacRequired { format: Format },
    #[error("key must be 16 bytes (32 hex digits), got {0} bytes")]
    KeyLength(usize),
    #[error("{format}: authentication failed (wrong key, wrong MAC address or altered data)")]
    Authentication { format: Format },
    #[error("{format}: the sensor has a key but this advertisement is not encrypted; refused")]
    PlaintextRefused { format: Format },
    #[error("no supported format recognised in this advertisement")]
    Unrecognised,
    #[error("bad hex in {what}: {reason}")]
    Hex { what: &'static str, reason: String },
    #[error(transparent)]
    UnknownFormat(#[from] UnknownFormat),
}

/// Parses a 16-byte key given as 32 hex digits.
pub fn parse_key(hex_key: &str) -> Result<[u8; 16], DecodeError> {
    let bytes = hex::decode(hex_key.trim()).map_err(|e| DecodeError::Hex {
        what: "key",
        reason: e.to_string(),
    })?;
    let len = bytes.len();
    bytes.try_into().map_err(|_| DecodeError::KeyLength(len))
}

/// A key slice as the 16 bytes AES-128 needs.
pub(crate) fn key16(key: &[u8]) -> Result<[u8; 16], DecodeError> {
    key.try_into()
        .map_err(|_| DecodeError::KeyLength(key.len()))
}

/// Which format an advertisement is in, when its bytes leave no doubt.
///
/// Service data UUIDs and company ids are registered, so they decide; within
/// 0x181A and 0xEC88 the payload length does. The Govee H5100 family (company
/// id 0x0001, which belongs to someone else) and Inkbird (no company id at
/// all) are recognised only by their local name; otherwise configure them.
pub fn detect(adv: &Advertisement) -> Option<Format> {
    if let Some(d) = adv.service_data.get(&UUID_BTHOME) {
        if d.first().is_some_and(|info| info >> 5 == 2) {
            return Some(Format::Bthome);
        }
    }
    if let Some(d) = adv.service_data.get(&UUID_ENVIRONMENTAL_SENSING) {
        match d.len() {
            xiaomi_custom::ATC1441_LEN => return Some(Format::Atc1441),
            xiaomi_custom::PVVX_LEN => return Some(Format::Pvvx),
            xiaomi_custom::PVVX_ENCRYPTED_LEN => return Some(Format::PvvxEncrypted),
            xiaomi_custom::ATC1441_ENCRYPTED_LEN => return Some(Format::Atc1441Encrypted),
            _ => {}
        }
    }
    if let Some(d) = adv.manufacturer_data.get(&COMPANY_RUUVI) {
        if d.first() == Some(&ruuvi::DATA_FORMAT) {
            return Some(Format::RuuviV5);
        }
    }
    if let Some(d) = adv.manufacturer_data.get(&COMPANY_GOVEE) {
        match d.len() {
            govee::H5075_LEN => return Some(Format::GoveeH5075),
            govee::H5074_LEN => return Some(Format::GoveeH5074),
            _ => {}
        }
    }
    if adv.manufacturer_data.contains_key(&COMPANY_SENSIRION) {
        return Some(Format::SensirionSht4x);
    }
    let name = adv.local_name.as_deref().unwrap_or("");
    if adv.manufacturer_data.contains_key(&COMPANY_GOVEE_H5100)
        && (name.starts_with("GVH51") || name.starts_with("GV51"))
    {
        return Some(Format::GoveeH5100);
    }
    if (name == "sps" || name == "tps") && inkbird_frame(adv).is_some() {
        return Some(Format::InkbirdIbsTh);
    }
    None
}

/// Decodes one advertisement.
///
/// `format` is the configured format, or `None` to [`detect`] it. `mac` is
/// the sensor's address (needed in the nonce of encrypted formats). With a
/// `key`, a plaintext advertisement is refused: otherwise anyone could
/// inject readings for an encrypted sensor by sending unencrypted ones.
pub fn decode(
    adv: &Advertisement,
    format: Option<Format>,
    mac: Option<[u8; 6]>,
    key: Option<&[u8]>,
) -> Result<Decoded, DecodeError> {
    let format = match format {
        Some(f) => f,
        None => detect(adv).ok_or(DecodeError::Unrecognised)?,
    };
    let decoded = match format {
        Format::Bthome => bthome::decode(service(adv, UUID_BTHOME, format)?, mac, key)?,
        Format::RuuviV5 => ruuvi::decode(manufacturer(adv, COMPANY_RUUVI, format)?)?,
        Format::Atc1441 => {
            xiaomi_custom::decode_atc1441(service(adv, UUID_ENVIRONMENTAL_SENSING, format)?)?
        }
        Format::Pvvx => {
            xiaomi_custom::decode_pvvx(service(adv, UUID_ENVIRONMENTAL_SENSING, format)?)?
        }
        Format::Atc1441Encrypted => xiaomi_custom::decode_atc1441_encrypted(
            service(adv, UUID_ENVIRONMENTAL_SENSING, format)?,
            mac,
            key,
        )?,
        Format::PvvxEncrypted => xiaomi_custom::decode_pvvx_encrypted(
            service(adv, UUID_ENVIRONMENTAL_SENSING, format)?,
            mac,
            key,
        )?,
        Format::GoveeH5075 => govee::decode_h5075(manufacturer(adv, COMPANY_GOVEE, format)?)?,
        Format::GoveeH5074 => govee::decode_h5074(manufacturer(adv, COMPANY_GOVEE, format)?)?,
        Format::GoveeH5100 => govee::decode_h5100(manufacturer(adv, COMPANY_GOVEE_H5100, format)?)?,
        Format::InkbirdIbsTh => {
            let frame = inkbird_frame(adv).ok_or(DecodeError::Missing {
                format,
                what: "7-byte manufacturer data",
            })?;
            inkbird::decode(&frame)?
        }
        Format::SensirionSht4x => sensirion::decode(manufacturer(adv, COMPANY_SENSIRION, format)?)?,
    };
    if key.is_some() && decoded.replay_counter.is_none() {
        return Err(DecodeError::PlaintextRefused { format });
    }
    Ok(decoded)
}

/// Decodes the CLI's form: `service_data_hex` is the 16-bit UUID
/// little-endian then the data (`D2FC40…`), `manufacturer_data_hex` the
/// company id little-endian then the data (`9904 05…`). Spaces are ignored.
pub fn decode_hex(
    service_data_hex: Option<&str>,
    manufacturer_data_hex: Option<&str>,
    format: Option<Format>,
    mac: Option<[u8; 6]>,
    key: Option<&[u8]>,
) -> Result<Decoded, DecodeError> {
    let mut adv = Advertisement::default();
    if let Some(h) = service_data_hex {
        let (uuid, data) = split_id(h, "service data")?;
        adv.service_data.insert(uuid, data);
    }
    if let Some(h) = manufacturer_data_hex {
        let (company, data) = split_id(h, "manufacturer data")?;
        adv.manufacturer_data.insert(company, data);
    }
    // Inkbird cannot be recognised without its local name; the CLI user names
    // the format instead.
    decode(&adv, format, mac, key)
}

fn split_id(h: &str, what: &'static str) -> Result<(u16, Vec<u8>), DecodeError> {
    let cleaned: String = h.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = hex::decode(cleaned).map_err(|e| DecodeError::Hex {
        what,
        reason: e.to_string(),
    })?;
    match bytes.as_slice() {
        [lo, hi, rest @ ..] => Ok((u16::from_le_bytes([*lo, *hi]), rest.to_vec())),
        _ => Err(DecodeError::Hex {
            what,
            reason: "needs at least the two id bytes".to_string(),
        }),
    }
}

fn service(adv: &Advertisement, uuid: u16, format: Format) -> Result<&[u8], DecodeError> {
    adv.service_data
        .get(&uuid)
        .map(Vec::as_slice)
        .ok_or(DecodeError::Missing {
            format,
            what: service_what(uuid),
        })
}

fn service_what(uuid: u16) -> &'static str {
    match uuid {
        UUID_BTHOME => "service data 0xFCD2",
        _ => "service data 0x181A",
    }
}

fn manufacturer(adv: &Advertisement, company: u16, format: Format) -> Result<&[u8], DecodeError> {
    adv.manufacturer_data
        .get(&company)
        .map(Vec::as_slice)
        .ok_or(DecodeError::Missing {
            format,
            what: match company {
                COMPANY_RUUVI => "manufacturer data 0x0499",
                COMPANY_GOVEE => "manufacturer data 0xEC88",
                COMPANY_GOVEE_H5100 => "manufacturer data 0x0001",
                _ => "manufacturer data 0x06D5",
            },
        })
}

/// Inkbird puts the temperature where the company id belongs, so the frame is
/// the "company id" bytes followed by the 7 data bytes.
fn inkbird_frame(adv: &Advertisement) -> Option<[u8; inkbird::FRAME_LEN]> {
    inkbird_frame_of(&adv.manufacturer_data)
}

fn inkbird_frame_of(map: &BTreeMap<u16, Vec<u8>>) -> Option<[u8; inkbird::FRAME_LEN]> {
    let (id, data) = map
        .iter()
        .find(|(_, d)| d.len() == inkbird::FRAME_LEN - 2)?;
    let mut frame = [0u8; inkbird::FRAME_LEN];
    frame[..2].copy_from_slice(&id.to_le_bytes());
    frame[2..].copy_from_slice(data);
    Some(frame)
}

/// Little-endian reads that cannot panic; decoders check lengths first and
/// these return `None` rather than trust that.
pub(crate) fn u16_le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

pub(crate) fn i16_le(b: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

pub(crate) fn u16_be(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

pub(crate) fn i16_be(b: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Rounds away binary noise (25.06 rather than 25.060000000000002) so values
/// compare and print as the specification writes them.
pub(crate) fn round(v: f64, decimals: i32) -> f64 {
    let m = 10f64.powi(decimals);
    (v * m).round() / m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>(), Ok(f));
        }
        assert!("bthome2".parse::<Format>().is_err());
    }

    #[test]
    fn json_omits_absent_fields_and_names_the_format() {
        // bthome.io format page example: 0x40 02C409 03BF13 -> 25.00 °C, 50.55 %.
        let d = decode_hex(Some("D2FC4002C40903BF13"), None, None, None, None).unwrap();
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(
            json,
            r#"{"format":"bthome","temperature_c":25.0,"humidity_pct":50.55}"#
        );
    }

    #[test]
    fn cli_hex_takes_the_id_little_endian_and_ignores_spaces() {
        // Ruuvi dataformat 5 "valid data" vector (docs.ruuvi.com, data format 5).
        let d = decode_hex(
            None,
            Some("9904 0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F"),
            None,
            None,
            None,
        )
        .unwrap();
        assert_eq!(d.format, Format::RuuviV5);
        assert_eq!(d.temperature_c, Some(24.3));
        assert!(matches!(
            decode_hex(Some("D2"), None, None, None, None),
            Err(DecodeError::Hex { .. })
        ));
        assert!(matches!(
            decode_hex(Some("zz"), None, None, None, None),
            Err(DecodeError::Hex { .. })
        ));
    }

    #[test]
    fn detection_uses_only_unambiguous_evidence() {
        let mac = super::super::mac::MacAddr::default();
        let govee_h5100 = Advertisement::new(mac, 0)
            .with_manufacturer_data(COMPANY_GOVEE_H5100, hex::decode("010103590e64").unwrap());
        assert_eq!(
            detect(&govee_h5100),
            None,
            "company id 0x0001 alone is not Govee"
        );
        assert_eq!(
            detect(&govee_h5100.clone().with_local_name("GVH5102_1234")),
            Some(Format::GoveeH5100)
        );
        let inkbird = Advertisement::new(mac, 0)
            .with_manufacturer_data(0x0a66, hex::decode("03150010805908").unwrap());
        assert_eq!(detect(&inkbird), None);
        assert_eq!(
            detect(&inkbird.with_local_name("sps")),
            Some(Format::InkbirdIbsTh)
        );
        assert_eq!(
            decode(&Advertisement::new(mac, 0), None, None, None),
            Err(DecodeError::Unrecognised)
        );
    }

    #[test]
    fn the_published_bthome_encryption_example_in_cli_form() {
        // bthome.io/encryption: service data d2fc41e445f3c9962b332211006c7c4519,
        // MAC 5448E68F80A5, key 231d39c1d7cc1ab1aee224cd096db932 -> 25.06 °C, 50.55 %.
        let key = parse_key("231d39c1d7cc1ab1aee224cd096db932").unwrap();
        let mac = [0x54, 0x48, 0xE6, 0x8F, 0x80, 0xA5];
        let d = decode_hex(
            Some("d2fc41e445f3c9962b332211006c7c4519"),
            None,
            None,
            Some(mac),
            Some(&key),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"format":"bthome","temperature_c":25.06,"humidity_pct":50.55}"#
        );
    }

    proptest::proptest! {
        #[test]
        fn any_advertisement_in_any_format_decodes_without_panicking(
            uuid in proptest::prop_oneof![
                proptest::strategy::Just(UUID_BTHOME),
                proptest::strategy::Just(UUID_ENVIRONMENTAL_SENSING),
                proptest::prelude::any::<u16>()
            ],
            service in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..32),
            company in proptest::prop_oneof![
                proptest::strategy::Just(COMPANY_RUUVI),
                proptest::strategy::Just(COMPANY_GOVEE),
                proptest::strategy::Just(COMPANY_GOVEE_H5100),
                proptest::strategy::Just(COMPANY_SENSIRION),
                proptest::prelude::any::<u16>()
            ],
            manufacturer in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..32),
            name in proptest::prop_oneof![
                proptest::strategy::Just("sps"),
                proptest::strategy::Just("GVH5102_1"),
                proptest::strategy::Just("")
            ],
            with_key in proptest::prelude::any::<bool>(),
        ) {
            let adv = Advertisement::new(super::super::mac::MacAddr([1, 2, 3, 4, 5, 6]), 0)
                .with_service_data(uuid, service)
                .with_manufacturer_data(company, manufacturer)
                .with_local_name(name);
            let key = [9u8; 16];
            let key = with_key.then_some(&key[..]);
            for format in std::iter::once(None).chain(Format::ALL.into_iter().map(Some)) {
                if let Ok(d) = decode(&adv, format, Some([1, 2, 3, 4, 5, 6]), key) {
                    for (_, v) in d.values() {
                        proptest::prop_assert!(v.is_finite());
                    }
                }
            }
        }
    }

    #[test]
    fn a_configured_key_refuses_plaintext() {
        let key = [0u8; 16];
        let err = decode_hex(Some("D2FC4002C40903BF13"), None, None, None, Some(&key)).unwrap_err();
        assert_eq!(
            err,
            DecodeError::PlaintextRefused {
                format: Format::Bthome
            }
        );
    }

    #[test]
    fn a_configured_format_that_is_absent_says_what_is_missing() {
        let err = decode_hex(
            Some("D2FC4002C40903BF13"),
            None,
            Some(Format::RuuviV5),
            None,
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("0x0499"), "{err}");
    }

    #[test]
    fn u8_counters_wrap_and_u32_counters_must_increase() {
        assert!(ReplayCounter::U8(1).is_after(ReplayCounter::U8(0)));
        assert!(ReplayCounter::U8(0).is_after(ReplayCounter::U8(255)));
        assert!(!ReplayCounter::U8(5).is_after(ReplayCounter::U8(5)));
        assert!(!ReplayCounter::U8(4).is_after(ReplayCounter::U8(5)));
        assert!(ReplayCounter::U32(6).is_after(ReplayCounter::U32(5)));
        assert!(!ReplayCounter::U32(0).is_after(ReplayCounter::U32(u32::MAX)));
    }

    #[test]
    fn keys_must_be_32_hex_digits() {
        assert!(parse_key("231d39c1d7cc1ab1aee224cd096db932").is_ok());
        assert_eq!(parse_key("231d39"), Err(DecodeError::KeyLength(3)));
        assert!(matches!(parse_key("xyz"), Err(DecodeError::Hex { .. })));
    }
}
