//! Custom firmwares for the Xiaomi LYWSD03MMC and relatives, on service data
//! 0x181A (<https://github.com/pvvx/ATC_MiThermometer#custom-format-all-data-little-endian>,
//! <https://github.com/atc1441/ATC_MiThermometer#advertising-format-of-the-custom-firmware>;
//! encrypted layouts: pvvx/ATC_MiThermometer issue 94 and `custom_beacon.h`).
//!
//! The four layouts differ in length, so the length says which one it is.
//! The encrypted ones (pvvx "bindkey") use AES-CCM with a 4-byte MIC, an
//! 11-byte nonce of the MAC (little-endian) and the advertising-structure
//! head (length, type 0x16, UUID, counter), and one byte 0x11 of associated
//! data.

use super::{
    ccm, i16_be, i16_le, key16, round, u16_be, u16_le, DecodeError, Decoded, Format, ReplayCounter,
};

/// ATC1441: MAC (big-endian), temperature int16 BE 0.1 °C, humidity %, battery %,
/// battery mV uint16 BE, frame counter.
pub const ATC1441_LEN: usize = 13;
/// pvvx: MAC (little-endian), temperature int16 0.01 °C, humidity uint16 0.01 %,
/// battery mV, battery %, measurement counter, flags.
pub const PVVX_LEN: usize = 15;
/// pvvx encrypted: counter, 6 encrypted bytes, MIC.
pub const PVVX_ENCRYPTED_LEN: usize = 11;
/// ATC1441 encrypted: counter, 3 encrypted bytes, MIC.
pub const ATC1441_ENCRYPTED_LEN: usize = 8;
/// Associated data of the pvvx/ATC encrypted beacons.
const AAD: [u8; 1] = [0x11];

fn length(format: Format, expected: &'static str, data: &[u8]) -> DecodeError {
    DecodeError::Length {
        format,
        expected,
        got: data.len(),
    }
}

/// ATC1441 format, 13 bytes.
pub fn decode_atc1441(data: &[u8]) -> Result<Decoded, DecodeError> {
    let f = Format::Atc1441;
    if data.len() != ATC1441_LEN {
        return Err(length(f, "13", data));
    }
    let mut d = Decoded::empty(f);
    d.temperature_c = i16_be(data, 6).map(|t| round(f64::from(t) * 0.1, 1));
    d.humidity_pct = data.get(8).map(|h| f64::from(*h));
    d.battery_pct = data.get(9).map(|b| f64::from(*b));
    d.battery_mv = u16_be(data, 10).map(f64::from);
    d.packet_id = data.get(12).map(|c| u32::from(*c));
    Ok(d)
}

/// pvvx custom format, 15 bytes.
pub fn decode_pvvx(data: &[u8]) -> Result<Decoded, DecodeError> {
    let f = Format::Pvvx;
    if data.len() != PVVX_LEN {
        return Err(length(f, "15", data));
    }
    let mut d = Decoded::empty(f);
    d.temperature_c = i16_le(data, 6).map(|t| round(f64::from(t) * 0.01, 2));
    d.humidity_pct = u16_le(data, 8).map(|h| round(f64::from(h) * 0.01, 2));
    d.battery_mv = u16_le(data, 10).map(f64::from);
    d.battery_pct = data.get(12).map(|b| f64::from(*b));
    d.packet_id = data.get(13).map(|c| u32::from(*c));
    Ok(d)
}

/// Decrypts a pvvx/ATC encrypted payload; returns the counter and plaintext.
fn open(
    format: Format,
    data: &[u8],
    mac: Option<[u8; 6]>,
    key: Option<&[u8]>,
) -> Result<(u8, Vec<u8>), DecodeError> {
    let key = key16(key.ok_or(DecodeError::KeyRequired { format })?)?;
    let mac = mac.ok_or(DecodeError::MacRequired { format })?;
    let (&counter, sealed) = data.split_first().ok_or(DecodeError::Length {
        format,
        expected: "at least 5",
        got: 0,
    })?;
    let mut nonce = [0u8; 11];
    for (dst, src) in nonce[..6].iter_mut().zip(mac.iter().rev()) {
        *dst = *src;
    }
    // The advertising structure's length byte counts type (1), UUID (2) and payload.
    let ad_len = u8::try_from(data.len() + 3).map_err(|_| length(format, "a short frame", data))?;
    nonce[6] = ad_len;
    nonce[7] = 0x16;
    nonce[8..10].copy_from_slice(&super::UUID_ENVIRONMENTAL_SENSING.to_le_bytes());
    nonce[10] = counter;
    let plain =
        ccm::open(&key, &nonce, &AAD, sealed).ok_or(DecodeError::Authentication { format })?;
    Ok((counter, plain))
}

/// pvvx encrypted format, 11 bytes: temperature int16 0.01 °C, humidity
/// uint16 0.01 %, battery %, flags.
pub fn decode_pvvx_encrypted(
    data: &[u8],
    mac: Option<[u8; 6]>,
    key: Option<&[u8]>,
) -> Result<Decoded, DecodeError> {
    let f = Format::PvvxEncrypted;
    if data.len() != PVVX_ENCRYPTED_LEN {
        return Err(length(f, "11", data));
    }
    let (counter, p) = open(f, data, mac, key)?;
    let mut d = Decoded::empty(f);
    d.temperature_c = i16_le(&p, 0).map(|t| round(f64::from(t) * 0.01, 2));
    d.humidity_pct = u16_le(&p, 2).map(|h| round(f64::from(h) * 0.01, 2));
    d.battery_pct = p.get(4).map(|b| f64::from(*b));
    d.packet_id = Some(u32::from(counter));
    d.replay_counter = Some(ReplayCounter::U8(counter));
    Ok(d)
}

/// ATC1441 encrypted format, 8 bytes: temperature uint8 in 0.5 °C above
/// -40 °C, humidity uint8 in 0.5 %, battery % in the low 7 bits (bit 7 is the
/// trigger output).
pub fn decode_atc1441_encrypted(
    data: &[u8],
    mac: Option<[u8; 6]>,
    key: Option<&[u8]>,
) -> Result<Decoded, DecodeError> {
    let f = Format::Atc1441Encrypted;
    if data.len() != ATC1441_ENCRYPTED_LEN {
        return Err(length(f, "8", data));
    }
    let (counter, p) = open(f, data, mac, key)?;
    let mut d = Decoded::empty(f);
    d.temperature_c = p.first().map(|t| f64::from(*t) * 0.5 - 40.0);
    d.humidity_pct = p.get(1).map(|h| f64::from(*h) * 0.5);
    d.battery_pct = p.get(2).map(|b| f64::from(*b & 0x7F));
    d.packet_id = Some(u32::from(counter));
    d.replay_counter = Some(ReplayCounter::U8(counter));
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn atc1441_vectors_including_a_negative_temperature() {
        // Service data of "ATC_800021" from theengs/decoder tests/BLE/test_ble.cpp,
        // read per the atc1441 README layout.
        let d = decode_atc1441(&hex("a4c138d5d498 0145 3e 51 0b7b 62")).unwrap();
        assert_eq!(d.temperature_c, Some(32.5));
        assert_eq!(d.humidity_pct, Some(62.0));
        assert_eq!(d.battery_pct, Some(81.0));
        assert_eq!(d.battery_mv, Some(2939.0));
        assert_eq!(d.packet_id, Some(0x62));
        let d = decode_atc1441(&hex("a4c138d5d498 ffd3 3e 51 0b7b 62")).unwrap();
        assert_eq!(d.temperature_c, Some(-4.5));
    }

    #[test]
    fn pvvx_vectors_including_a_negative_temperature() {
        // Service data of "ATC_800021" and "MHO_SAL" from theengs/decoder
        // tests/BLE/test_ble.cpp, read per the pvvx README layout.
        let d = decode_pvvx(&hex("5601cf38c1a4 4008 bd13 470c 64 cc 0f")).unwrap();
        assert_eq!(d.temperature_c, Some(21.12));
        assert_eq!(d.humidity_pct, Some(50.53));
        assert_eq!(d.battery_mv, Some(3143.0));
        assert_eq!(d.battery_pct, Some(100.0));
        assert_eq!(d.packet_id, Some(0xcc));
        let d = decode_pvvx(&hex("5601cf38c1a4 62fd bd13 470c 64 cc 0f")).unwrap();
        assert_eq!(d.temperature_c, Some(-6.7));
        let d = decode_pvvx(&hex("628f5238c1a4 8307 e412 8f0b 64 b4 0f")).unwrap();
        assert_eq!(d.temperature_c, Some(19.23));
        assert_eq!(d.humidity_pct, Some(48.36));
        assert_eq!(d.battery_mv, Some(2959.0));
    }

    const KEY: [u8; 16] = [
        0xb8, 0x5a, 0x3e, 0x02, 0x97, 0x1d, 0x44, 0x6d, 0x18, 0x80, 0x66, 0x61, 0xf5, 0x2e, 0x1c,
        0x70,
    ];
    const MAC: [u8; 6] = [0xA4, 0xC1, 0x38, 0x12, 0x34, 0x56];

    /// Builds an encrypted frame the way the pvvx README describes it; the
    /// README publishes no encrypted example to test against.
    fn seal(counter: u8, plain: &[u8]) -> Vec<u8> {
        let len = 1 + plain.len() + 4;
        let mut nonce: Vec<u8> = MAC.iter().rev().copied().collect();
        nonce.extend_from_slice(&[u8::try_from(len + 3).unwrap(), 0x16, 0x1A, 0x18, counter]);
        let mut frame = vec![counter];
        frame.extend(ccm::seal(&KEY, &nonce, &AAD, plain));
        frame
    }

    #[test]
    fn pvvx_encrypted_round_trips_and_rejects_a_wrong_key() {
        // -12.34 °C, 56.78 %, 87 %, flags 0.
        let frame = seal(7, &hex("2efb 2e16 57 00"));
        let d = decode_pvvx_encrypted(&frame, Some(MAC), Some(&KEY)).unwrap();
        assert_eq!(d.temperature_c, Some(-12.34));
        assert_eq!(d.humidity_pct, Some(56.78));
        assert_eq!(d.battery_pct, Some(87.0));
        assert_eq!(d.replay_counter, Some(ReplayCounter::U8(7)));
        let mut wrong = KEY;
        wrong[3] ^= 0xff;
        assert!(matches!(
            decode_pvvx_encrypted(&frame, Some(MAC), Some(&wrong)),
            Err(DecodeError::Authentication { .. })
        ));
        assert!(matches!(
            decode_pvvx_encrypted(&frame, None, Some(&KEY)),
            Err(DecodeError::MacRequired { .. })
        ));
    }

    #[test]
    fn atc1441_encrypted_round_trips() {
        // 59 -> -10.5 °C, 101 -> 50.5 %, 0xD5 -> 85 % with the trigger bit set.
        let frame = seal(200, &[59, 101, 0xD5]);
        let d = decode_atc1441_encrypted(&frame, Some(MAC), Some(&KEY)).unwrap();
        assert_eq!(d.temperature_c, Some(-10.5));
        assert_eq!(d.humidity_pct, Some(50.5));
        assert_eq!(d.battery_pct, Some(85.0));
        assert_eq!(d.packet_id, Some(200));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_or_leave_the_expressible_range(
            data in proptest::collection::vec(any::<u8>(), 0..20),
            atc in proptest::collection::vec(any::<u8>(), ATC1441_LEN),
            pvvx in proptest::collection::vec(any::<u8>(), PVVX_LEN),
            enc_pvvx in proptest::collection::vec(any::<u8>(), 6),
            enc_atc in proptest::collection::vec(any::<u8>(), 3),
            counter in any::<u8>(),
        ) {
            let _ = decode_atc1441(&data);
            let _ = decode_pvvx(&data);
            let _ = decode_pvvx_encrypted(&data, Some(MAC), Some(&KEY));
            let _ = decode_atc1441_encrypted(&data, Some(MAC), Some(&KEY));

            let d = decode_atc1441(&atc).unwrap();
            prop_assert!((-3276.8..=3276.7).contains(&d.temperature_c.unwrap()));
            prop_assert!((0.0..=255.0).contains(&d.humidity_pct.unwrap()));
            let d = decode_pvvx(&pvvx).unwrap();
            prop_assert!((-327.68..=327.67).contains(&d.temperature_c.unwrap()));
            prop_assert!((0.0..=655.35).contains(&d.humidity_pct.unwrap()));
            let d = decode_pvvx_encrypted(&seal(counter, &enc_pvvx), Some(MAC), Some(&KEY)).unwrap();
            prop_assert!((-327.68..=327.67).contains(&d.temperature_c.unwrap()));
            let d = decode_atc1441_encrypted(&seal(counter, &enc_atc), Some(MAC), Some(&KEY)).unwrap();
            prop_assert!((-40.0..=87.5).contains(&d.temperature_c.unwrap()));
            prop_assert!((0.0..=127.5).contains(&d.humidity_pct.unwrap()));
            prop_assert!((0.0..=127.0).contains(&d.battery_pct.unwrap()));
        }
    }
}
