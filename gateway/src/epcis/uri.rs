//! Identifiers in an EPCIS document: the goods' EPCs as GS1 Digital Link
//! URIs, and coldgate's own identifiers of places and sensors.
//!
//! Why Digital Link and not EPC URNs (`urn:epc:id:sgtin:…`): EPCIS 2.0 and
//! CBV 2.0 accept both, and name the constrained Digital Link form (host
//! `id.gs1.org`, the key and its key qualifiers only) as the one for new
//! JSON-LD documents. More decisive here: an EPC URN splits the key at the
//! end of the GS1 Company Prefix, whose length is not in the key and needs
//! GS1's prefix table; a Digital Link URI is the key as printed, so a
//! gateway offline on a ship can write it without guessing. The URIs are
//! also what `manifest::gs1` already reads from operators' messages.

use sha2::{Digest, Sha256};

use crate::manifest::gs1::{is_valid_gtin, is_valid_sscc};

/// The canonical host of GS1 Digital Link URIs used as identifiers.
const DL_HOST: &str = "https://id.gs1.org";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("SSCC {0} is not 18 digits with a valid check digit")]
    Sscc(String),
    #[error("GTIN {0} is not 8, 12, 13 or 14 digits with a valid check digit")]
    Gtin(String),
    #[error("{what} is empty")]
    Empty { what: &'static str },
}

/// `https://id.gs1.org/00/{sscc}`: a pallet (logistic unit).
pub fn sscc_uri(sscc: &str) -> Result<String, UriError> {
    if !is_valid_sscc(sscc) {
        return Err(UriError::Sscc(sscc.to_string()));
    }
    Ok(format!("{DL_HOST}/00/{sscc}"))
}

/// `https://id.gs1.org/01/{gtin14}/21/{serial}`: one serialised pack (SGTIN).
pub fn sgtin_uri(gtin: &str, serial: &str) -> Result<String, UriError> {
    let gtin = gtin14(gtin)?;
    if serial.is_empty() {
        return Err(UriError::Empty { what: "serial" });
    }
    Ok(format!("{DL_HOST}/01/{gtin}/21/{}", encode(serial)))
}

/// `https://id.gs1.org/01/{gtin14}/10/{lot}`: a lot of a product (LGTIN),
/// the class of packs counted without serials.
pub fn lgtin_uri(gtin: &str, lot: &str) -> Result<String, UriError> {
    let gtin = gtin14(gtin)?;
    if lot.is_empty() {
        return Err(UriError::Empty { what: "lot" });
    }
    Ok(format!("{DL_HOST}/01/{gtin}/10/{}", encode(lot)))
}

/// The zone of a gateway (container compartment) as a `readPoint` and
/// `bizLocation`: `urn:coldgate:location:{gateway}:{zone}`. coldgate knows
/// no GLN for a container; an operator who has one can map these ids to
/// SGLNs in master data (docs/epcis.md).
pub fn zone_location(gateway_id: &str, zone: &str) -> String {
    format!(
        "urn:coldgate:location:{}:{}",
        encode(gateway_id),
        encode(zone)
    )
}

/// The gateway as a whole (where a downtime, concerning every zone, is seen).
pub fn gateway_location(gateway_id: &str) -> String {
    format!("urn:coldgate:location:{}", encode(gateway_id))
}

/// A sensor as `deviceID`: `urn:coldgate:sensor:{gateway}:{sensor}`.
pub fn sensor_device(gateway_id: &str, sensor: &str) -> String {
    format!(
        "urn:coldgate:sensor:{}:{}",
        encode(gateway_id),
        encode(sensor)
    )
}

/// A stable event id from the facts that make an event what it is: a
/// name-based UUID (RFC 9562 version 8, from SHA-256), so re-exporting the
/// same record, on the gateway or by the fleet, yields the same id.
pub fn event_id(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80; // version 8
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 9562 variant
    let x = hex::encode(b);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

/// A GTIN padded to 14 digits, after its check digit is checked (the pad
/// keeps it: leading zeros weigh nothing).
fn gtin14(gtin: &str) -> Result<String, UriError> {
    if !is_valid_gtin(gtin) {
        return Err(UriError::Gtin(gtin.to_string()));
    }
    Ok(format!("{gtin:0>14}"))
}

/// Percent-encodes everything but RFC 3986's unreserved characters, as GS1
/// Digital Link asks of AI values (a serial may hold `/`, `%`, `?`, …,
/// which would otherwise change the path).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::gs1;

    #[test]
    fn the_sscc_of_the_general_specifications_becomes_its_digital_link() {
        // GS1 General Specifications' SSCC example (EPC TDS: urn:epc:id:sscc:0614141.1234567890).
        assert_eq!(
            sscc_uri("106141412345678908").unwrap(),
            "https://id.gs1.org/00/106141412345678908"
        );
    }

    #[test]
    fn an_sscc_with_a_wrong_check_digit_or_length_is_refused() {
        assert_eq!(
            sscc_uri("106141412345678907"),
            Err(UriError::Sscc("106141412345678907".into()))
        );
        assert!(sscc_uri("10614141234567890").is_err());
        assert!(sscc_uri("10614141234567890X").is_err());
    }

    #[test]
    fn sgtins_match_gs1s_published_examples() {
        // GS1's EPCIS 2.0 SensorDataExample13 uses exactly this EPC.
        assert_eq!(
            sgtin_uri("09506000134352", "12345").unwrap(),
            "https://id.gs1.org/01/09506000134352/21/12345"
        );
        // EPC Tag Data Standard: GTIN 80614141123458, serial 6789 is
        // urn:epc:id:sgtin:0614141.812345.6789.
        assert_eq!(
            sgtin_uri("80614141123458", "6789").unwrap(),
            "https://id.gs1.org/01/80614141123458/21/6789"
        );
        // TDS: serial "32a/b" (urn:epc:id:sgtin:0614141.712345.32a%2Fb):
        // the slash is escaped so it cannot end the path segment.
        assert_eq!(
            sgtin_uri("70614141123451", "32a/b").unwrap(),
            "https://id.gs1.org/01/70614141123451/21/32a%2Fb"
        );
    }

    #[test]
    fn a_short_gtin_is_padded_to_fourteen_digits_and_a_bad_check_digit_refused() {
        // GTIN-13 4006381333931 (General Specifications) and GTIN-8 96385074.
        assert_eq!(
            sgtin_uri("4006381333931", "1").unwrap(),
            "https://id.gs1.org/01/04006381333931/21/1"
        );
        assert_eq!(
            lgtin_uri("96385074", "L1").unwrap(),
            "https://id.gs1.org/01/00000096385074/10/L1"
        );
        assert_eq!(
            sgtin_uri("09506000134353", "12345"),
            Err(UriError::Gtin("09506000134353".into()))
        );
        assert!(sgtin_uri("09506000134352", "").is_err());
        assert!(lgtin_uri("09506000134352", "").is_err());
    }

    #[test]
    fn every_uri_reads_back_as_the_same_key_with_the_gs1_parser() {
        // Lots and serials from the whole of character set 82 survive the
        // round trip through the Digital Link parser of `manifest::gs1`.
        for (gtin, value) in [
            ("09520123456788", "ABC123"),
            ("09520123456788", "A(B)/C%D?E&F+G"),
            ("09520123456788", "!\"%&'()*+,-./:;<=>?_"),
        ] {
            let d = gs1::parse(&sgtin_uri(gtin, value).unwrap()).unwrap();
            assert_eq!(
                (d.gtin.as_deref(), d.serial.as_deref()),
                (Some(gtin), Some(value))
            );
            let d = gs1::parse(&lgtin_uri(gtin, value).unwrap()).unwrap();
            assert_eq!(
                (d.gtin.as_deref(), d.lot.as_deref()),
                (Some(gtin), Some(value))
            );
        }
        let d = gs1::parse(&sscc_uri("106141412345678908").unwrap()).unwrap();
        assert_eq!(d.sscc.as_deref(), Some("106141412345678908"));
    }

    #[test]
    fn event_ids_are_stable_distinct_and_shaped_as_version_8_uuids() {
        let a = event_id(&["gw", "load", "106141412345678908"]);
        assert_eq!(a, event_id(&["gw", "load", "106141412345678908"]));
        assert_ne!(a, event_id(&["gw", "unload", "106141412345678908"]));
        assert_ne!(event_id(&["ab", "c"]), event_id(&["a", "bc"]));
        let u = a.strip_prefix("urn:uuid:").unwrap();
        let groups: Vec<usize> = u.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert_eq!(&u[14..15], "8", "version 8");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "variant");
    }

    #[test]
    fn locations_escape_what_would_split_them() {
        assert_eq!(
            zone_location("gw 1", "rear:2"),
            "urn:coldgate:location:gw%201:rear%3A2"
        );
        assert_eq!(gateway_location("gw-1"), "urn:coldgate:location:gw-1");
        assert_eq!(
            sensor_device("gw-1", "rear-1"),
            "urn:coldgate:sensor:gw-1:rear-1"
        );
    }
}
