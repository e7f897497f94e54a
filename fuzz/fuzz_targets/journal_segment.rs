//! A journal segment is whatever a power cut left on the disk: torn
//! records, garbage, a recycled segment's old records. Whatever the bytes,
//! replay must not panic, and what it hands on must be exactly records as
//! the writer encodes them, back to back from the start, LSNs one by one.
#![no_main]

use coldgate::store::journal::{encode, segment_records};
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
    }
    assert_eq!(&bytes[..again.len()], again.as_slice(), "a record is not what the writer writes");
});
