//! One received advertisement, independent of the Bluetooth stack that heard it.

use std::collections::BTreeMap;

use super::mac::MacAddr;

/// What the scanner hands on: the parts of one BLE advertisement that the
/// decoders need, plus where and when it was heard.
///
/// It is a plain value so tests and the simulator can build one by hand; the
/// btleplug scanner is just one producer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Advertisement {
    /// Sender address in display order.
    pub address: MacAddr,
    /// Received signal strength, dBm, when the stack reports it.
    pub rssi: Option<i16>,
    /// Manufacturer specific data by company id (the two id bytes removed).
    pub manufacturer_data: BTreeMap<u16, Vec<u8>>,
    /// Service data by 16-bit service UUID (the two UUID bytes removed).
    pub service_data: BTreeMap<u16, Vec<u8>>,
    /// Complete or shortened local name.
    pub local_name: Option<String>,
    /// When the gateway heard it: UTC milliseconds since the Unix epoch.
    pub at_ms: i64,
}

impl Advertisement {
    /// An advertisement from `address` heard at `at_ms`, with no payload yet.
    pub fn new(address: MacAddr, at_ms: i64) -> Self {
        Advertisement {
            address,
            at_ms,
            ..Advertisement::default()
        }
    }

    /// Adds service data for a 16-bit UUID.
    pub fn with_service_data(mut self, uuid: u16, data: impl Into<Vec<u8>>) -> Self {
        self.service_data.insert(uuid, data.into());
        self
    }

    /// Adds manufacturer data for a company id.
    pub fn with_manufacturer_data(mut self, company: u16, data: impl Into<Vec<u8>>) -> Self {
        self.manufacturer_data.insert(company, data.into());
        self
    }

    /// Sets the RSSI.
    pub fn with_rssi(mut self, rssi: i16) -> Self {
        self.rssi = Some(rssi);
        self
    }

    /// Sets the local name.
    pub fn with_local_name(mut self, name: impl Into<String>) -> Self {
        self.local_name = Some(name.into());
        self
    }
}
