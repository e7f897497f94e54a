//! Inkbird IBS-TH1 / IBS-TH2, as documented by the open-source decoders
//! (Theengs decoder, Bluetooth-Devices inkbird-ble).
//!
//! The sensor ignores the manufacturer-data convention: its 9 bytes start
//! where the company id belongs. Local name `sps` (with humidity) or `tps`.
//! Layout: temperature int16 LE 0.01 °C, humidity uint16 LE 0.01 %, probe
//! (0 internal, 1 external), 2 check bytes, battery %, sensor type.
//! Humidity 0x0000 (models without a humidity sensor) and 0xFFFF are "not
//! available".

use super::{i16_le, round, u16_le, DecodeError, Decoded, Format};

/// Length of the frame, company-id bytes included.
pub const FRAME_LEN: usize = 9;

/// Decodes the 9-byte frame.
pub fn decode(frame: &[u8]) -> Result<Decoded, DecodeError> {
    let f = Format::InkbirdIbsTh;
    if frame.len() != FRAME_LEN {
        return Err(DecodeError::Length {
            format: f,
            expected: "9 (company id included)",
            got: frame.len(),
        });
    }
    let mut d = Decoded::empty(f);
    d.temperature_c = i16_le(frame, 0).map(|t| round(f64::from(t) * 0.01, 2));
    d.humidity_pct = u16_le(frame, 2)
        .filter(|h| *h != 0 && *h != u16::MAX)
        .map(|h| round(f64::from(h) * 0.01, 2));
    d.battery_pct = frame.get(7).map(|b| f64::from(*b));
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn ibs_th1_vectors() {
        // theengs/decoder tests/BLE/test_ble.cpp, "Inkbird TH1" (name sps):
        // 660a03150010805908 -> 26.62 °C, 53.79 %, 89 %;
        // f009fe1301ca893008 -> 25.44 °C, 51.18 %, 48 % (external probe).
        let d = decode(&hex("660a03150010805908")).unwrap();
        assert_eq!(
            (d.temperature_c, d.humidity_pct, d.battery_pct),
            (Some(26.62), Some(53.79), Some(89.0))
        );
        let d = decode(&hex("f009fe1301ca893008")).unwrap();
        assert_eq!(
            (d.temperature_c, d.humidity_pct, d.battery_pct),
            (Some(25.44), Some(51.18), Some(48.0))
        );
    }

    #[test]
    fn ibs_th2_vectors_negative_and_without_humidity() {
        // Same file, "Inkbird TH2" (name tps): 76fb00000010805908 -> -11.62 °C,
        // no humidity, 89 %; e300bb070093c36406 -> 2.27 °C, 19.79 %, 100 %;
        // "Inkbird P01B" 840affff00a6066008 -> 26.92 °C, no humidity (0xFFFF).
        let d = decode(&hex("76fb00000010805908")).unwrap();
        assert_eq!(
            (d.temperature_c, d.humidity_pct, d.battery_pct),
            (Some(-11.62), None, Some(89.0))
        );
        let d = decode(&hex("e300bb070093c36406")).unwrap();
        assert_eq!((d.temperature_c, d.humidity_pct), (Some(2.27), Some(19.79)));
        let d = decode(&hex("840affff00a6066008")).unwrap();
        assert_eq!((d.temperature_c, d.humidity_pct), (Some(26.92), None));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_or_leave_the_expressible_range(
            data in proptest::collection::vec(any::<u8>(), 0..12),
        ) {
            if let Ok(d) = decode(&data) {
                prop_assert!((-327.68..=327.67).contains(&d.temperature_c.unwrap()));
                if let Some(h) = d.humidity_pct { prop_assert!((0.01..=655.34).contains(&h)); }
                prop_assert!((0.0..=255.0).contains(&d.battery_pct.unwrap()));
            }
        }
    }
}
