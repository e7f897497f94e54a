//! BTHome v2 (<https://bthome.io/format/>, <https://bthome.io/encryption/>).
//!
//! Service data 0xFCD2: one device-information byte, then objects of
//! `id, value` in ascending id order. A receiver must stop at the first id it
//! does not know, because it cannot know that object's length; values before
//! it are kept.

use super::{ccm, i16_le, key16, round, u16_le, DecodeError, Decoded, Format, ReplayCounter};

const FORMAT: Format = Format::Bthome;
/// Device information bit 0: the objects are encrypted.
const INFO_ENCRYPTED: u8 = 0x01;
/// Device information bit 1: the device's MAC address (reversed) follows the
/// information byte. bthome.io now lists this bit as reserved; an earlier
/// revision of v2 defined it, and firmwares that send it exist.
const INFO_MAC_INCLUDED: u8 = 0x02;
/// Counter (4) and MIC (4) that end an encrypted payload.
const CRYPTO_TRAILER: usize = 8;

/// Decodes BTHome service data (the bytes after the UUID).
///
/// `mac` is needed for encrypted advertisements unless the payload includes
/// the MAC; `key` (16 bytes) for encrypted ones.
pub fn decode(
    payload: &[u8],
    mac: Option<[u8; 6]>,
    key: Option<&[u8]>,
) -> Result<Decoded, DecodeError> {
    let (&info, rest) = payload.split_first().ok_or(DecodeError::Length {
        format: FORMAT,
        expected: "at least 1",
        got: 0,
    })?;
    if info >> 5 != 2 {
        return Err(DecodeError::Malformed {
            format: FORMAT,
            reason: "device information byte does not say BTHome version 2",
        });
    }
    let (mac, rest) = if info & INFO_MAC_INCLUDED != 0 {
        let (m, rest) = rest.split_at_checked(6).ok_or(DecodeError::Length {
            format: FORMAT,
            expected: "at least 7 with the MAC included",
            got: payload.len(),
        })?;
        let mut included = [0u8; 6];
        for (dst, src) in included.iter_mut().zip(m.iter().rev()) {
            *dst = *src;
        }
        (Some(included), rest)
    } else {
        (mac, rest)
    };

    if info & INFO_ENCRYPTED == 0 {
        let mut d = Decoded::empty(FORMAT);
        parse_objects(rest, &mut d)?;
        return Ok(d);
    }

    let key = key16(key.ok_or(DecodeError::KeyRequired { format: FORMAT })?)?;
    let mac = mac.ok_or(DecodeError::MacRequired { format: FORMAT })?;
    let split = rest
        .len()
        .checked_sub(CRYPTO_TRAILER)
        .ok_or(DecodeError::Length {
            format: FORMAT,
            expected: "at least 9 when encrypted",
            got: payload.len(),
        })?;
    let (ciphertext, trailer) = rest.split_at(split);
    let (counter, mic) = trailer.split_at(4);
    let mut nonce = [0u8; 13];
    nonce[..6].copy_from_slice(&mac);
    nonce[6..8].copy_from_slice(&super::UUID_BTHOME.to_le_bytes());
    nonce[8] = info;
    nonce[9..].copy_from_slice(counter);
    let sealed: Vec<u8> = ciphertext.iter().chain(mic).copied().collect();
    let plain = ccm::open(&key, &nonce, &[], &sealed)
        .ok_or(DecodeError::Authentication { format: FORMAT })?;

    let mut d = Decoded::empty(FORMAT);
    parse_objects(&plain, &mut d)?;
    let counter = u32::from_le_bytes([counter[0], counter[1], counter[2], counter[3]]);
    d.replay_counter = Some(ReplayCounter::U32(counter));
    Ok(d)
}

/// Length of an object's value, from the bthome.io object table. `None` for
/// an id this build does not know. Variable-length objects (0x53 text, 0x54
/// raw) are handled by the caller.
fn value_len(id: u8) -> Option<usize> {
    Some(match id {
        // packet id, battery, count, binary sensors (0x0F-0x11, 0x15-0x2D), humidity and
        // moisture in whole percent, button, UV index, temperature sint8,
        // count sint8, channel
        0x00
        | 0x01
        | 0x09
        | 0x0F..=0x11
        | 0x15..=0x2F
        | 0x3A
        | 0x46
        | 0x57
        | 0x58
        | 0x59
        | 0x60 => 1,
        // temperature, humidity, mass, dew point, voltage, pm, co2, tvoc,
        // moisture, dimmer, count, rotation, distance, current, speed,
        // temperature 0.1, volume, flow, voltage 0.1, acceleration, gyroscope,
        // conductivity, count sint16, current sint16, direction, precipitation,
        // rotational speed, device type id
        0x02 | 0x03 | 0x06 | 0x07 | 0x08 | 0x0C | 0x0D | 0x0E | 0x12 | 0x13 | 0x14 | 0x3C
        | 0x3D | 0x3F | 0x40 | 0x41 | 0x43 | 0x44 | 0x45 | 0x47 | 0x48 | 0x49 | 0x4A | 0x51
        | 0x52 | 0x56 | 0x5A | 0x5D | 0x5E | 0x5F | 0x61 | 0xF0 => 2,
        // pressure, illuminance, energy, power, duration, gas, firmware 3-byte
        0x04 | 0x05 | 0x0A | 0x0B | 0x42 | 0x4B | 0xF2 => 3,
        // count uint32, gas, energy, volume, water, timestamp, volume storage,
        // count sint32, power sint32, firmware 4-byte
        0x3E | 0x4C | 0x4D | 0x4E | 0x4F | 0x50 | 0x55 | 0x5B | 0x5C | 0xF1 => 4,
        _ => return None,
    })
}

fn parse_objects(objects: &[u8], d: &mut Decoded) -> Result<(), DecodeError> {
    let truncated = DecodeError::Malformed {
        format: FORMAT,
        reason: "an object is cut short",
    };
    let mut i = 0;
    while let Some(&id) = objects.get(i) {
        let (start, len) = match id {
            0x53 | 0x54 => (
                i + 2,
                usize::from(*objects.get(i + 1).ok_or(truncated.clone())?),
            ),
            _ => match value_len(id) {
                Some(len) => (i + 1, len),
                // The specification: stop at the first unknown object id.
                None => break,
            },
        };
        let v = objects.get(start..start + len).ok_or(truncated.clone())?;
        apply(id, v, d);
        i = start + len;
    }
    Ok(())
}

/// Stores the objects this gateway uses; the first of each quantity wins
/// (a second temperature is another probe, "temperature_2" in BTHome terms).
fn apply(id: u8, v: &[u8], d: &mut Decoded) {
    fn set(slot: &mut Option<f64>, value: Option<f64>) {
        if slot.is_none() {
            *slot = value;
        }
    }
    let u24 = |v: &[u8]| -> Option<f64> {
        Some(f64::from(u32::from_le_bytes([
            *v.first()?,
            *v.get(1)?,
            *v.get(2)?,
            0,
        ])))
    };
    match id {
        0x00 if d.packet_id.is_none() => d.packet_id = v.first().map(|b| u32::from(*b)),
        0x01 => set(&mut d.battery_pct, v.first().map(|b| f64::from(*b))),
        0x02 => set(
            &mut d.temperature_c,
            i16_le(v, 0).map(|t| round(f64::from(t) * 0.01, 2)),
        ),
        0x45 => set(
            &mut d.temperature_c,
            i16_le(v, 0).map(|t| round(f64::from(t) * 0.1, 1)),
        ),
        0x57 => set(&mut d.temperature_c, v.first().map(|b| f64::from(*b as i8))),
        0x58 => set(
            &mut d.temperature_c,
            v.first().map(|b| round(f64::from(*b as i8) * 0.35, 2)),
        ),
        0x03 => set(
            &mut d.humidity_pct,
            u16_le(v, 0).map(|h| round(f64::from(h) * 0.01, 2)),
        ),
        0x2E => set(&mut d.humidity_pct, v.first().map(|b| f64::from(*b))),
        0x05 => set(&mut d.illuminance_lux, u24(v).map(|l| round(l * 0.01, 2))),
        // Voltage in volts on air; millivolts here.
        0x0C => set(&mut d.battery_mv, u16_le(v, 0).map(f64::from)),
        0x4A => set(
            &mut d.battery_mv,
            u16_le(v, 0).map(|x| f64::from(x) * 100.0),
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn the_format_page_example_decodes() {
        // bthome.io/format: service data D2FC 40 02C409 03BF13 -> 25.00 °C, 50.55 %.
        let d = decode(&hex("40 02C409 03BF13"), None, None).unwrap();
        assert_eq!(d.temperature_c, Some(25.0));
        assert_eq!(d.humidity_pct, Some(50.55));
        assert_eq!(d.replay_counter, None);
    }

    #[test]
    fn every_temperature_humidity_light_battery_and_voltage_object_of_the_table() {
        // Examples from the bthome.io/format object table, each behind 0x40.
        type Field = fn(&Decoded) -> Option<f64>;
        let cases: &[(&str, Field, f64)] = &[
            ("0161", |d| d.battery_pct, 97.0),
            ("02CA09", |d| d.temperature_c, 25.06),
            ("451101", |d| d.temperature_c, 27.3),
            ("57EA", |d| d.temperature_c, -22.0),
            ("58EA", |d| d.temperature_c, -7.7),
            ("03BF13", |d| d.humidity_pct, 50.55),
            ("2E23", |d| d.humidity_pct, 35.0),
            ("05138A14", |d| d.illuminance_lux, 13460.67),
            ("0C020C", |d| d.battery_mv, 3074.0),
            ("4A020C", |d| d.battery_mv, 307_400.0),
        ];
        for (obj, field, want) in cases {
            let d = decode(&hex(&format!("40{obj}")), None, None).unwrap();
            assert_eq!(field(&d), Some(*want), "object {obj}");
        }
        // Packet id example "0009" -> 9.
        assert_eq!(
            decode(&hex("40 0009"), None, None).unwrap().packet_id,
            Some(9)
        );
    }

    #[test]
    fn objects_this_gateway_does_not_use_are_skipped_by_their_length() {
        // bthome-ble issue #118 payload: packet id 63, battery 94 %, 21.78 °C,
        // 60.60 %, 2.947 V.
        let d = decode(&hex("40 003F 015E 028208 03AC17 0C830B"), None, None).unwrap();
        assert_eq!(d.packet_id, Some(63));
        assert_eq!(d.battery_pct, Some(94.0));
        assert_eq!(d.temperature_c, Some(21.78));
        assert_eq!(d.humidity_pct, Some(60.6));
        assert_eq!(d.battery_mv, Some(2947.0));
        // Pressure (0x04, 3 bytes) and text (0x53, length-prefixed) before humidity.
        let d = decode(
            &hex("40 02CA09 04138A01 530C48656C6C6F20576F726C6421 2E23"),
            None,
            None,
        )
        .unwrap();
        assert_eq!(d.temperature_c, Some(25.06));
        assert_eq!(d.humidity_pct, Some(35.0));
    }

    #[test]
    fn an_unknown_object_id_ends_the_parse_and_keeps_what_came_before() {
        let d = decode(&hex("40 02CA09 FE0102 03BF13"), None, None).unwrap();
        assert_eq!(d.temperature_c, Some(25.06));
        assert_eq!(d.humidity_pct, None);
    }

    #[test]
    fn a_cut_object_or_a_wrong_version_is_an_error() {
        assert!(matches!(
            decode(&hex("40 02CA"), None, None),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            decode(&hex("20 02CA09"), None, None),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            decode(&[], None, None),
            Err(DecodeError::Length { .. })
        ));
    }

    const KEY: &str = "231d39c1d7cc1ab1aee224cd096db932";
    const MAC: [u8; 6] = [0x54, 0x48, 0xE6, 0x8F, 0x80, 0xA5];

    #[test]
    fn the_published_encryption_example_decrypts() {
        // bthome.io/encryption: key 231d39c1d7cc1ab1aee224cd096db932, MAC
        // 5448E68F80A5, service data d2fc41e445f3c9962b332211006c7c4519
        // decrypts to 02ca09 03bf13 with counter 0x00112233.
        let key = hex(KEY);
        let d = decode(
            &hex("41e445f3c9962b332211006c7c4519"),
            Some(MAC),
            Some(&key),
        )
        .unwrap();
        assert_eq!(d.temperature_c, Some(25.06));
        assert_eq!(d.humidity_pct, Some(50.55));
        assert_eq!(d.replay_counter, Some(ReplayCounter::U32(0x0011_2233)));
    }

    #[test]
    fn a_wrong_key_mac_or_altered_byte_fails_authentication() {
        let good = hex("41e445f3c9962b332211006c7c4519");
        let key = hex(KEY);
        let mut other_key = key.clone();
        other_key[0] ^= 1;
        assert_eq!(
            decode(&good, Some(MAC), Some(&other_key)),
            Err(DecodeError::Authentication { format: FORMAT })
        );
        let mut other_mac = MAC;
        other_mac[5] ^= 1;
        assert!(decode(&good, Some(other_mac), Some(&key)).is_err());
        let mut altered = good.clone();
        altered[2] ^= 0x80;
        assert!(decode(&altered, Some(MAC), Some(&key)).is_err());
        assert_eq!(
            decode(&good, None, Some(&key)),
            Err(DecodeError::MacRequired { format: FORMAT })
        );
        assert_eq!(
            decode(&good, Some(MAC), None),
            Err(DecodeError::KeyRequired { format: FORMAT })
        );
        assert_eq!(
            decode(&good, Some(MAC), Some(&key[..8])),
            Err(DecodeError::KeyLength(8))
        );
    }

    #[test]
    fn the_mac_included_variant_uses_the_included_mac() {
        // No published example: built from the encryption example's inputs with
        // the MAC carried (reversed) after the information byte 0x43.
        let key: [u8; 16] = hex(KEY).try_into().unwrap();
        let info = 0x43;
        let counter = [0x01, 0x00, 0x00, 0x00];
        let mut nonce = Vec::from(MAC);
        nonce.extend_from_slice(&[0xD2, 0xFC, info]);
        nonce.extend_from_slice(&counter);
        let sealed = ccm::seal(&key, &nonce, &[], &hex("02CA09 03BF13"));
        let (ct, mic) = sealed.split_at(sealed.len() - 4);
        let mut payload = vec![info];
        payload.extend(MAC.iter().rev());
        payload.extend_from_slice(ct);
        payload.extend_from_slice(&counter);
        payload.extend_from_slice(mic);
        // The advertiser's own (random) address is irrelevant.
        let d = decode(&payload, Some([0; 6]), Some(&key)).unwrap();
        assert_eq!(d.temperature_c, Some(25.06));
        assert_eq!(d.replay_counter, Some(ReplayCounter::U32(1)));
        // Unencrypted with MAC included: 0x42, reversed MAC, objects.
        let mut plain = vec![0x42];
        plain.extend(MAC.iter().rev());
        plain.extend(hex("02CA09"));
        assert_eq!(
            decode(&plain, None, None).unwrap().temperature_c,
            Some(25.06)
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_or_leave_the_expressible_range(
            body in proptest::collection::vec(any::<u8>(), 0..40),
            info in prop_oneof![Just(0x40u8), Just(0x42u8), any::<u8>()],
        ) {
            let mut payload = vec![info];
            payload.extend(body);
            if let Ok(d) = decode(&payload, None, None) {
                if let Some(t) = d.temperature_c { prop_assert!((-3276.8..=3276.7).contains(&t)); }
                if let Some(h) = d.humidity_pct { prop_assert!((0.0..=655.35).contains(&h)); }
                if let Some(l) = d.illuminance_lux { prop_assert!((0.0..=167_772.15).contains(&l)); }
                if let Some(b) = d.battery_pct { prop_assert!((0.0..=255.0).contains(&b)); }
                if let Some(v) = d.battery_mv { prop_assert!((0.0..=6_553_500.0).contains(&v)); }
                if let Some(p) = d.packet_id { prop_assert!(p <= 255); }
            }
            let key = [7u8; 16];
            let _ = decode(&payload, Some(MAC), Some(&key));
        }
    }
}
