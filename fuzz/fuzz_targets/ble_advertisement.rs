//! BLE advertisements come from anyone in radio range: every decoder must
//! turn arbitrary service and manufacturer data into a reading or an error,
//! never a panic, and never a reading that is not a finite number.
#![no_main]

use arbitrary::Arbitrary;
use coldgate_sensor_drivers::ble::{decode, Advertisement, Format, MacAddr};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    mac: [u8; 6],
    service: Vec<(u16, Vec<u8>)>,
    manufacturer: Vec<(u16, Vec<u8>)>,
    /// Index into `Format::ALL`, or detect when out of range.
    format: u8,
    key: Option<[u8; 16]>,
}

fuzz_target!(|input: Input| {
    let mut adv = Advertisement::new(MacAddr(input.mac), 0);
    for (uuid, data) in input.service {
        adv = adv.with_service_data(uuid, data);
    }
    for (company, data) in input.manufacturer {
        adv = adv.with_manufacturer_data(company, data);
    }
    let format = Format::ALL.get(usize::from(input.format)).copied();
    let key = input.key.as_ref().map(|k| k.as_slice());
    if let Ok(decoded) = decode(&adv, format, Some(input.mac), key) {
        for (quantity, value) in decoded.values() {
            assert!(value.is_finite(), "{quantity:?} decoded to {value}");
        }
    }
});
