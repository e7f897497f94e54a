//! A Bluetooth device address, written the way people read it off a label.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 48-bit Bluetooth device address in display order: `A4:C1:38:12:34:56`
/// is `[0xA4, 0xC1, 0x38, 0x12, 0x34, 0x56]`.
///
/// Display order is also the order the BTHome nonce uses; formats that put
/// the address on air little-endian (pvvx, BTHome "MAC included") reverse it
/// themselves.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The bytes in display order.
    pub fn octets(self) -> [u8; 6] {
        self.0
    }

    /// The bytes in on-air (little-endian) order.
    pub fn reversed(self) -> [u8; 6] {
        let mut r = self.0;
        r.reverse();
        r
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(b: [u8; 6]) -> Self {
        MacAddr(b)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02X}:{:02X}:{:02X}:{:02X}:{:02X}:{:02X}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a MAC address (expected six hex pairs such as A4:C1:38:12:34:56)")]
pub struct BadMac(pub String);

impl FromStr for MacAddr {
    type Err = BadMac;

    /// Accepts `AA:BB:CC:DD:EE:FF`, `AA-BB-CC-DD-EE-FF` or `AABBCCDDEEFF`,
    /// any letter case, because that is how technicians copy them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadMac(s.to_string());
        let t = s.trim();
        let hex: String = if t.len() == 17 {
            let seps: Vec<char> = t.chars().skip(2).step_by(3).collect();
            let sep = seps.first().copied().ok_or_else(bad)?;
            if !(sep == ':' || sep == '-') || seps.iter().any(|c| *c != sep) {
                return Err(bad());
            }
            t.chars()
                .enumerate()
                .filter(|(i, _)| i % 3 != 2)
                .map(|(_, c)| c)
                .collect()
        } else if t.len() == 12 {
            t.to_string()
        } else {
            return Err(bad());
        };
        let bytes = hex::decode(hex).map_err(|_| bad())?;
        let arr: [u8; 6] = bytes.try_into().map_err(|_| bad())?;
        Ok(MacAddr(arr))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_spellings_technicians_use_and_prints_one() {
        let want = MacAddr([0xA4, 0xC1, 0x38, 0x12, 0x34, 0x5F]);
        for s in [
            "A4:C1:38:12:34:5F",
            "a4:c1:38:12:34:5f",
            "A4-C1-38-12-34-5F",
            "a4c13812345f",
        ] {
            assert_eq!(s.parse::<MacAddr>(), Ok(want), "{s}");
        }
        assert_eq!(want.to_string(), "A4:C1:38:12:34:5F");
        assert_eq!(want.reversed(), [0x5F, 0x34, 0x12, 0x38, 0xC1, 0xA4]);
    }

    #[test]
    fn refuses_malformed_addresses() {
        for s in [
            "",
            "A4:C1:38:12:34",
            "A4:C1:38:12:34:5G",
            "A4:C1-38:12:34:5F",
            "A4C1381234",
            "A4;C1;38;12;34;5F",
        ] {
            assert!(s.parse::<MacAddr>().is_err(), "{s}");
        }
    }
}
