//! Barcode scanners type whatever the label holds: GS1 element strings,
//! bracketed strings, symbology identifiers and Digital Link URIs all reach
//! the same parser. Anything it accepts must be internally consistent.
#![no_main]

use coldgate::manifest::gs1::{is_valid_gtin, is_valid_sscc, parse_at};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let today = time::macros::date!(2026 - 11 - 29);
    if let Ok(parsed) = parse_at(text, today) {
        if let Some(sscc) = &parsed.sscc {
            assert!(is_valid_sscc(sscc), "accepted SSCC {sscc:?} fails its check digit");
        }
        if let Some(gtin) = &parsed.gtin {
            assert!(is_valid_gtin(gtin), "accepted GTIN {gtin:?} fails its check digit");
        }
        if let Some(gtin) = &parsed.content_gtin {
            assert!(is_valid_gtin(gtin), "accepted content GTIN {gtin:?} fails its check digit");
        }
        if let Some(count) = parsed.count {
            assert!(count <= 99_999_999, "accepted count {count} has more than 8 digits");
        }
    }
});
