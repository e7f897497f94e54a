//! The payloads of `Sensor` and `Readings` records: the bytes that make a
//! journalled reading cost about 13 B where a redb row costs 37–74
//! (docs/journal.md, "Kinds and their sizes").
//!
//! A sensor's name is written once, in a `Sensor` record, and readings
//! name it by a 16-bit index after that. A `Readings` record holds one
//! batch: a base time and, per reading, the sensor's index, the quantity's
//! stored code, the milliseconds after the base as a LEB128 varint (at
//! most 3 B within a 2 s batch) and the value's f64 bits, so a replay
//! hands the engine exactly the value it judged. A record's checksum has
//! already passed when these are decoded, but they are still outside
//! bytes (a newer build, a bug): every length is checked, nothing panics.

use coldgate_sensor_drivers::Quantity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the payload ends early")]
    Short,
    #[error("the payload has {0} B after its last field")]
    Trailing(usize),
    #[error("a sensor name of {0} B (255 at most)")]
    NameTooLong(usize),
    #[error("a sensor name that is not UTF-8")]
    NameNotUtf8,
    #[error("{0} readings in one record (65,535 at most)")]
    TooMany(usize),
    #[error("unknown quantity code {0}")]
    Quantity(u8),
    #[error("a time offset that does not fit")]
    Time,
}

/// A reading as journalled: its sensor by index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Journalled {
    pub sensor: u16,
    pub quantity: Quantity,
    pub at_ms: i64,
    pub value: f64,
}

/// Reads fields off the front of a payload.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PayloadError> {
        if self.0.len() < n {
            return Err(PayloadError::Short);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], PayloadError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn varint(&mut self) -> Result<u64, PayloadError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let [byte] = self.array::<1>()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(PayloadError::Time)
    }
    fn end(&self) -> Result<(), PayloadError> {
        match self.0.len() {
            0 => Ok(()),
            n => Err(PayloadError::Trailing(n)),
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The payload of a `Sensor` record: `index u16 | name length u8 | name`.
pub fn encode_sensor(out: &mut Vec<u8>, index: u16, name: &str) -> Result<(), PayloadError> {
    let len = u8::try_from(name.len()).map_err(|_| PayloadError::NameTooLong(name.len()))?;
    out.extend_from_slice(&index.to_le_bytes());
    out.push(len);
    out.extend_from_slice(name.as_bytes());
    Ok(())
}

pub fn decode_sensor(bytes: &[u8]) -> Result<(u16, &str), PayloadError> {
    let mut cursor = Cursor(bytes);
    let index = u16::from_le_bytes(cursor.array()?);
    let [len] = cursor.array()?;
    let name = std::str::from_utf8(cursor.take(usize::from(len))?)
        .map_err(|_| PayloadError::NameNotUtf8)?;
    cursor.end()?;
    Ok((index, name))
}

/// The payload of a `Readings` record: `base time i64 | count u16 |` per
/// reading `sensor u16 | quantity u8 | ms after base (varint) | value f64`.
/// The base is the earliest time, so every offset is positive whatever
/// order the readings came in.
pub fn encode_readings(out: &mut Vec<u8>, readings: &[Journalled]) -> Result<(), PayloadError> {
    let count = u16::try_from(readings.len()).map_err(|_| PayloadError::TooMany(readings.len()))?;
    let base = readings.iter().map(|r| r.at_ms).min().unwrap_or(0);
    out.extend_from_slice(&base.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    for r in readings {
        out.extend_from_slice(&r.sensor.to_le_bytes());
        out.push(r.quantity.code());
        // Never negative: base is the minimum; i128 keeps the difference
        // of any two i64 exact.
        let after = u64::try_from(i128::from(r.at_ms) - i128::from(base))
            .map_err(|_| PayloadError::Time)?;
        put_varint(out, after);
        out.extend_from_slice(&r.value.to_bits().to_le_bytes());
    }
    Ok(())
}

pub fn decode_readings(bytes: &[u8]) -> Result<Vec<Journalled>, PayloadError> {
    let mut cursor = Cursor(bytes);
    let base = i64::from_le_bytes(cursor.array()?);
    let count = u16::from_le_bytes(cursor.array()?);
    let mut out = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let sensor = u16::from_le_bytes(cursor.array()?);
        let [code] = cursor.array()?;
        let quantity = Quantity::from_code(code).ok_or(PayloadError::Quantity(code))?;
        let after = cursor.varint()?;
        let at_ms =
            i64::try_from(i128::from(base) + i128::from(after)).map_err(|_| PayloadError::Time)?;
        let value = f64::from_bits(u64::from_le_bytes(cursor.array()?));
        out.push(Journalled {
            sensor,
            quantity,
            at_ms,
            value,
        });
    }
    cursor.end()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn batch(n: usize) -> Vec<Journalled> {
        (0..n)
            .map(|i| Journalled {
                sensor: (i % 50) as u16,
                quantity: Quantity::ALL[i % Quantity::ALL.len()],
                at_ms: 1_765_000_000_000 + (i as i64 * 2_000) / n as i64,
                value: 4.0 + i as f64 / 7.0,
            })
            .collect()
    }

    #[test]
    fn a_batch_reads_back_as_written() {
        let readings = batch(200);
        let mut bytes = Vec::new();
        encode_readings(&mut bytes, &readings).unwrap();
        assert_eq!(decode_readings(&bytes).unwrap(), readings);
    }

    #[test]
    fn a_reading_of_a_two_second_batch_takes_at_most_14_bytes() {
        // The design's arithmetic (docs/journal.md) counts ~13 B a reading.
        let mut bytes = Vec::new();
        encode_readings(&mut bytes, &batch(200)).unwrap();
        assert!(bytes.len() <= 10 + 200 * 14, "{} B", bytes.len());
    }

    #[test]
    fn readings_out_of_time_order_read_back() {
        let mut readings = batch(5);
        readings.reverse();
        let mut bytes = Vec::new();
        encode_readings(&mut bytes, &readings).unwrap();
        assert_eq!(decode_readings(&bytes).unwrap(), readings);
    }

    #[test]
    fn every_cut_of_a_payload_is_refused() {
        let mut bytes = Vec::new();
        encode_readings(&mut bytes, &batch(3)).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode_readings(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut sensor = Vec::new();
        encode_sensor(&mut sensor, 7, "rear-ble-1").unwrap();
        for cut in 0..sensor.len() {
            assert!(decode_sensor(&sensor[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn bytes_after_the_last_field_are_refused() {
        let mut bytes = Vec::new();
        encode_readings(&mut bytes, &batch(3)).unwrap();
        bytes.push(0);
        assert_eq!(decode_readings(&bytes), Err(PayloadError::Trailing(1)));
        let mut sensor = Vec::new();
        encode_sensor(&mut sensor, 7, "t1").unwrap();
        sensor.push(0);
        assert_eq!(decode_sensor(&sensor), Err(PayloadError::Trailing(1)));
    }

    #[test]
    fn a_sensor_reads_back_by_its_index() {
        let mut bytes = Vec::new();
        encode_sensor(&mut bytes, 513, "rear-ble-1").unwrap();
        assert_eq!(decode_sensor(&bytes).unwrap(), (513, "rear-ble-1"));
        let long = "x".repeat(256);
        assert_eq!(
            encode_sensor(&mut Vec::new(), 1, &long),
            Err(PayloadError::NameTooLong(256))
        );
    }

    proptest! {
        #[test]
        fn any_batch_reads_back_bit_for_bit(
            raw in proptest::collection::vec(
                (any::<u16>(), 0usize..5, any::<i64>(), any::<u64>()), 0..100),
        ) {
            let readings: Vec<Journalled> = raw
                .iter()
                .map(|(sensor, q, at, bits)| Journalled {
                    sensor: *sensor,
                    quantity: Quantity::ALL[*q],
                    at_ms: *at,
                    value: f64::from_bits(*bits),
                })
                .collect();
            let mut bytes = Vec::new();
            encode_readings(&mut bytes, &readings).unwrap();
            let back = decode_readings(&bytes).unwrap();
            prop_assert_eq!(back.len(), readings.len());
            for (a, b) in back.iter().zip(&readings) {
                prop_assert_eq!((a.sensor, a.quantity, a.at_ms), (b.sensor, b.quantity, b.at_ms));
                prop_assert_eq!(a.value.to_bits(), b.value.to_bits());
            }
        }

        #[test]
        fn no_bytes_make_the_decoders_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_readings(&bytes);
            let _ = decode_sensor(&bytes);
        }
    }
}
