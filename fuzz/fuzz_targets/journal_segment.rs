//! A journal segment is whatever a power cut left on the disk: torn
//! records, garbage, a recycled segment's old records. Whatever the bytes,
//! replay must not panic, and what it hands on must be exactly records as
//! the writer encodes them, back to back from the start, LSNs one by one;
//! and decoding a record's payload (sensor, readings) never panics.
#![no_main]

use coldgate::store::journal::payload::{decode_readings, decode_sensor};
use coldgate::store::journal::{encode, segment_records, Kind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&number, bytes)) = data.split_first() else {
        return;
    };
    let number = u64::from(number % 4);
    let (records, _why) = segment_records(number, bytes);
    let mut again = Vec::new();
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            assert_eq!(record.lsn, records[i - 1].lsn + 1, "LSNs out of order");
        }
        encode(&mut again, number, record.lsn, record.kind, record.payload);
        match record.kind {
            Kind::Sensor => {
                let _ = decode_sensor(record.payload);
            }
            Kind::Readings => {
                let _ = decode_readings(record.payload);
            }
            _ => {}
        }
    }
    // Payloads are also outside bytes on their own.
    let _ = decode_readings(bytes);
    let _ = decode_sensor(bytes);
    assert_eq!(&bytes[..again.len()], again.as_slice(), "a record is not what the writer writes");
});
