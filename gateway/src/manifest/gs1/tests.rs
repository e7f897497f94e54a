//! Unit and property tests of GS1 parsing; example keys are those of the GS1 General
//! Specifications and Digital Link standard, check digits recomputed by hand.
//!
//! One room: every case is a published GS1 example or a property over the same parser, and they
//! share its generators.

use super::*;
use proptest::prelude::*;
use time::macros::date;

const TODAY: Date = date!(2026 - 11 - 29);

fn ok(input: &str) -> Gs1Data {
    match parse_at(input, TODAY) {
        Ok(data) => data,
        Err(e) => panic!("{input:?} should parse, got: {e}"),
    }
}

fn err(input: &str) -> Gs1Error {
    match parse_at(input, TODAY) {
        Ok(data) => panic!("{input:?} should fail, got {data:?}"),
        Err(e) => e,
    }
}

fn full_example() -> Gs1Data {
    Gs1Data {
        gtin: Some("09520123456788".into()),
        lot: Some("ABC123".into()),
        serial: Some("12345".into()),
        expiry: Some(date!(2027 - 12 - 31)),
        ..Gs1Data::default()
    }
}

// --- check digits -----------------------------------------------------------------

#[test]
fn check_digit_of_gs1_example_keys() {
    assert_eq!(check_digit("10614141234567890"), Some(8)); // SSCC 106141412345678908
    assert_eq!(check_digit("0952012345678"), Some(8)); // GTIN 09520123456788
    assert_eq!(check_digit("10614141123456789"), Some(7)); // SSCC 106141411234567897
    assert_eq!(check_digit("9638507"), Some(4)); // GTIN-8 96385074
    assert_eq!(check_digit("400638133393"), Some(1)); // GTIN-13 4006381333931
}

#[test]
fn check_digit_is_none_for_empty_or_non_digit_input() {
    assert_eq!(check_digit(""), None);
    assert_eq!(check_digit("12a4"), None);
    assert_eq!(check_digit("１２"), None);
}

#[test]
fn key_helpers_accept_examples_and_reject_wrong_check_digits_and_lengths() {
    assert!(is_valid_sscc("106141412345678908"));
    assert!(!is_valid_sscc("106141412345678903"));
    assert!(!is_valid_sscc("06141412345678908"));
    assert!(is_valid_gtin("09520123456788"));
    assert!(is_valid_gtin("4006381333931"));
    assert!(is_valid_gtin("036000291452"));
    assert!(is_valid_gtin("96385074"));
    assert!(!is_valid_gtin("09520123456781"));
    assert!(!is_valid_gtin("0952012345678"));
    assert!(!is_valid_gtin(""));
    assert!(!is_valid_gtin("0952012345678é"));
}

// --- bracketed --------------------------------------------------------------------

#[test]
fn bracketed_sscc_parses() {
    let data = ok("(00)106141412345678908");
    assert_eq!(data.sscc.as_deref(), Some("106141412345678908"));
    assert_eq!(data.gtin, None);
}

#[test]
fn bracketed_gtin_lot_expiry_serial_parses() {
    assert_eq!(
        ok("(01)09520123456788(10)ABC123(17)271231(21)12345"),
        full_example()
    );
}

#[test]
fn wrong_sscc_check_digit_says_found_and_expected() {
    let e = err("(00)106141412345678903");
    assert_eq!(e.to_string(), "AI (00) SSCC check digit is 3, expected 8");
}

#[test]
fn wrong_gtin_check_digit_is_rejected() {
    let e = err("(01)09520123456781");
    assert_eq!(e.to_string(), "AI (01) GTIN check digit is 1, expected 8");
}

#[test]
fn wrong_lengths_are_rejected_with_the_length() {
    assert_eq!(
        err("(01)0952012345678").to_string(),
        "AI (01) GTIN has 13 characters, expected 14"
    );
    assert_eq!(
        err("(00)1061414123456789080").to_string(),
        "AI (00) SSCC has 19 characters, expected 18"
    );
    assert_eq!(
        err("(10)ABCDEFGHIJKLMNOPQRSTU").to_string(),
        "AI (10) lot has 21 characters, at most 20 allowed"
    );
    assert_eq!(err("(10)(21)1").to_string(), "AI (10) lot is empty");
}

#[test]
fn characters_outside_set_82_are_rejected() {
    assert_eq!(
        err("(10)AB~1").to_string(),
        "AI (10) lot contains '~' which is outside GS1 character set 82"
    );
    assert!(matches!(
        err("(21)12 45"),
        Gs1Error::Invalid {
            problem: ValueProblem::OutsideCset82 { ch: ' ', .. },
            ..
        }
    ));
    assert!(matches!(
        err("(21)é"),
        Gs1Error::Invalid {
            problem: ValueProblem::OutsideCset82 { ch: 'é', .. },
            ..
        }
    ));
    assert!(matches!(
        err("(01)0952012345678X"),
        Gs1Error::Invalid {
            problem: ValueProblem::NotDigit { ch: 'X', .. },
            ..
        }
    ));
}

#[test]
fn every_set_82_character_is_accepted_in_a_lot() {
    let set: String = (0u8..128)
        .map(char::from)
        .filter(|&c| is_cset82(c))
        .collect();
    assert_eq!(set.chars().count(), 82);
    for chunk in set.as_bytes().chunks(20) {
        let lot = std::str::from_utf8(chunk)
            .unwrap_or_default()
            .replace('(', "\\(");
        let data = ok(&format!("(10){lot}"));
        assert_eq!(data.lot.as_deref(), std::str::from_utf8(chunk).ok());
    }
}

#[test]
fn parenthesis_in_a_lot_is_literal_unless_it_opens_an_ai_or_is_escaped() {
    assert_eq!(ok("(10)A(B)(21)1").lot.as_deref(), Some("A(B)"));
    assert_eq!(ok("(10)X\\(21)Y(21)5").lot.as_deref(), Some("X(21)Y"));
}

#[test]
fn bracketed_syntax_errors_give_the_position() {
    assert_eq!(
        err("(01"),
        Gs1Error::Syntax {
            at: 0,
            reason: "expected '(' then a 2- to 4-digit AI and ')'"
        }
    );
    assert!(matches!(err("(1)5"), Gs1Error::Syntax { at: 0, .. }));
}

#[test]
fn unknown_and_duplicate_ais_are_named() {
    assert_eq!(err("(23)5").to_string(), "unknown or unsupported AI (23)");
    assert_eq!(
        err("(10)A(10)B").to_string(),
        "AI (10) appears more than once"
    );
}

#[test]
fn empty_input_is_an_error() {
    assert_eq!(err(""), Gs1Error::Empty);
    assert_eq!(err(" \r\n"), Gs1Error::Empty);
    assert_eq!(err("]d2"), Gs1Error::Empty);
}

#[test]
fn other_supported_ais_are_kept_in_other() {
    let data = ok("(01)09520123456788(3103)000500(11)260101(91)ABC");
    assert_eq!(data.other.get("3103").map(String::as_str), Some("000500"));
    assert_eq!(data.other.get("11").map(String::as_str), Some("260101"));
    assert_eq!(data.other.get("91").map(String::as_str), Some("ABC"));
    assert!(matches!(err("(11)261301"), Gs1Error::Invalid { ai, .. } if ai == "11"));
}

// --- dates --------------------------------------------------------------------------

#[test]
fn impossible_month_is_named() {
    assert_eq!(
        err("(17)271332").to_string(),
        "AI (17) expiry 271332: month 13 does not exist"
    );
    assert!(err("(17)270015")
        .to_string()
        .contains("month 0 does not exist"));
}

#[test]
fn impossible_days_are_named() {
    assert_eq!(
        err("(17)270431").to_string(),
        "AI (17) expiry 270431: day 31 does not exist in April 2027"
    );
    assert!(err("(17)270230")
        .to_string()
        .contains("day 30 does not exist in February 2027"));
    assert!(err("(17)270229")
        .to_string()
        .contains("day 29 does not exist in February 2027"));
    assert_eq!(ok("(17)280229").expiry, Some(date!(2028 - 02 - 29)));
}

#[test]
fn day_00_means_the_last_day_of_the_month() {
    assert_eq!(ok("(17)271200").expiry, Some(date!(2027 - 12 - 31)));
    assert_eq!(ok("(17)270400").expiry, Some(date!(2027 - 04 - 30)));
    assert_eq!(ok("(17)270200").expiry, Some(date!(2027 - 02 - 28)));
    assert_eq!(ok("(17)280200").expiry, Some(date!(2028 - 02 - 29)));
    // 2000 is a leap year (divisible by 400); 2100 is not.
    assert_eq!(ok("(17)000200").expiry, Some(date!(2000 - 02 - 29)));
    assert_eq!(
        parse_at("(17)000200", date!(2090 - 01 - 01))
            .ok()
            .and_then(|d| d.expiry),
        Some(date!(2100 - 02 - 28))
    );
}

#[test]
fn century_window_keeps_years_within_49_before_and_50_after_today() {
    assert_eq!(century_window(76, 2026), 2076);
    assert_eq!(century_window(77, 2026), 1977);
    assert_eq!(century_window(26, 2026), 2026);
    assert_eq!(century_window(0, 2026), 2000);
    assert_eq!(century_window(10, 2060), 2110);
    assert_eq!(century_window(11, 2060), 2011);
    assert_eq!(century_window(99, 2000), 1999);
    assert_eq!(century_window(50, 2000), 2050);
    assert_eq!(century_window(51, 2000), 1951);
}

#[test]
fn parse_at_uses_the_given_day_for_the_century() {
    assert_eq!(ok("(17)770101").expiry, Some(date!(1977 - 01 - 01)));
    let later = parse_at("(17)770101", date!(2030 - 01 - 01))
        .ok()
        .and_then(|d| d.expiry);
    assert_eq!(later, Some(date!(2077 - 01 - 01)));
}

// --- raw scanner output ---------------------------------------------------------------

#[test]
fn raw_with_each_gs1_symbology_identifier_parses() {
    for id in ["]C1", "]d2", "]Q3", "]e0", "]J1", ""] {
        let scan = format!("{id}010952012345678810ABC123\u{1d}172712312112345");
        assert_eq!(ok(&scan), full_example(), "{id}");
    }
}

#[test]
fn raw_tolerates_leading_and_trailing_gs_and_newline() {
    let scan =
        "]d2\u{1d}010952012345678821".to_owned() + "12345\u{1d}10ABC123\u{1d}17271231\u{1d}\r\n";
    assert_eq!(ok(&scan), full_example());
}

#[test]
fn raw_fixed_length_field_followed_by_gs_is_accepted() {
    assert_eq!(
        ok("]C101095201234567881727123110ABC123\u{1d}2112345"),
        full_example()
    );
    assert_eq!(
        ok("]C10109520123456788\u{1d}17271231\u{1d}10ABC123\u{1d}2112345"),
        full_example()
    );
}

#[test]
fn raw_variable_field_without_gs_runs_to_the_end_rather_than_guessing() {
    let data = ok("010952012345678810ABC1231727123");
    assert_eq!(data.lot.as_deref(), Some("ABC1231727123"));
    assert_eq!(data.expiry, None);
    let e = err("010952012345678810ABCDEFGHIJKLMNOPQRSTUVWX");
    assert_eq!(
        e.to_string(),
        "AI (10) lot has 24 characters, at most 20 allowed"
    );
}

#[test]
fn a_raw_lot_that_swallowed_its_expiry_is_refused_saying_a_separator_is_missing() {
    let e = err("010952012345678810ABC12317271231");
    assert_eq!(
        e,
        Gs1Error::MissingSeparator {
            ai: "10".into(),
            value: "ABC123".into(),
            next: "17".into(),
            at: 24,
        }
    );
    assert!(
        e.to_string().contains(
            "a GS separator (FNC1) is missing after the variable-length AI (10) `ABC123`"
        ),
        "{e}"
    );
    // Everything the lot swallowed, up to a GS, is looked at.
    assert!(matches!(
        err("]d2010952012345678810ABC123172712312112345\u{1d}"),
        Gs1Error::MissingSeparator { .. }
    ));
    // With its separator the same scan is the full example.
    assert_eq!(
        ok("010952012345678810ABC123\u{1d}172712312112345"),
        full_example()
    );
}

#[test]
fn a_serial_that_swallowed_a_gtin_with_a_valid_check_digit_is_refused() {
    assert!(matches!(
        err("21ABC0109520123456788"),
        Gs1Error::MissingSeparator { ref next, .. } if next == "01"
    ));
    // A wrong check digit is not a GTIN: the serial stays as scanned.
    assert_eq!(
        ok("21ABC0109520123456789").serial.as_deref(),
        Some("ABC0109520123456789")
    );
}

#[test]
fn a_lot_merely_containing_ai_digits_is_kept_as_scanned() {
    // Month 13 is no date, `21X` could be a real lot's text, `1713` is incomplete.
    assert_eq!(ok("10X17991399").lot.as_deref(), Some("X17991399"));
    assert_eq!(ok("10LOT21X").lot.as_deref(), Some("LOT21X"));
    assert_eq!(ok("10B1713").lot.as_deref(), Some("B1713"));
    // A variable-length element first in the tail does not count.
    assert_eq!(ok("10AB3712").lot.as_deref(), Some("AB3712"));
}

#[test]
fn raw_unknown_ai_and_garbage_are_rejected() {
    assert_eq!(
        err("2312345").to_string(),
        "unknown or unsupported AI (2312)"
    );
    assert!(matches!(err("]C1X1"), Gs1Error::Syntax { at: 3, .. }));
    assert!(matches!(
        err("]A0010952012345678"),
        Gs1Error::UnsupportedSymbology { .. }
    ));
    assert!(matches!(
        err("]d1010952012345678"),
        Gs1Error::UnsupportedSymbology { .. }
    ));
    assert!(matches!(err("]"), Gs1Error::UnsupportedSymbology { .. }));
}

#[test]
fn ean_symbology_identifiers_carry_a_bare_gtin() {
    assert_eq!(
        ok("]E04006381333931").gtin.as_deref(),
        Some("04006381333931")
    );
    assert_eq!(ok("]E496385074").gtin.as_deref(), Some("00000096385074"));
    assert!(matches!(
        err("]E04006381333932"),
        Gs1Error::Invalid {
            problem: ValueProblem::CheckDigit {
                found: 2,
                expected: 1,
                ..
            },
            ..
        }
    ));
}

#[test]
fn raw_truncated_fixed_field_reports_its_length() {
    assert_eq!(
        err("]C1000614141").to_string(),
        "AI (00) SSCC has 7 characters, expected 18"
    );
}

// --- GS1 Digital Link -----------------------------------------------------------------

#[test]
fn digital_link_with_qualifiers_and_expiry_query_parses() {
    let uri = "https://id.gs1.org/01/09520123456788/10/ABC123/21/12345?17=271231";
    assert_eq!(ok(uri), full_example());
}

#[test]
fn digital_link_accepts_any_host_path_prefix_fragment_and_other_params() {
    let uri = "HTTP://example.com:8080/a/b/01/c/01/09520123456788/10/ABC123/21/12345/\
               ?linkType=gs1:pip&17=271231#top";
    assert_eq!(ok(uri), full_example());
    assert_eq!(
        ok("]Q1https://x.io/01/09520123456788").gtin.as_deref(),
        Some("09520123456788")
    );
}

#[test]
fn digital_link_sscc_parses() {
    let data = ok("https://example.com/00/106141412345678908");
    assert_eq!(data.sscc.as_deref(), Some("106141412345678908"));
}

#[test]
fn digital_link_pads_short_gtins_to_14_digits() {
    let gtin = |uri: &str| ok(uri).gtin;
    assert_eq!(
        gtin("https://d.example/01/4006381333931").as_deref(),
        Some("04006381333931")
    );
    assert_eq!(
        gtin("https://d.example/01/036000291452").as_deref(),
        Some("00036000291452")
    );
    assert_eq!(
        gtin("https://d.example/01/96385074").as_deref(),
        Some("00000096385074")
    );
    assert!(matches!(
        err("https://d.example/01/9638507"),
        Gs1Error::Invalid {
            problem: ValueProblem::WrongLength { len: 7, .. },
            ..
        }
    ));
}

#[test]
fn digital_link_percent_decodes_lots_and_serials() {
    let data = ok("https://d.example/01/09520123456788/10/A%2FB%25C/21/x%3Dy%26z");
    assert_eq!(data.lot.as_deref(), Some("A/B%C"));
    assert_eq!(data.serial.as_deref(), Some("x=y&z"));
    for bad in ["%G1", "%2", "%+1", "%C3%28"] {
        let e = err(&format!("https://d.example/01/09520123456788/10/{bad}"));
        assert!(
            matches!(e, Gs1Error::DigitalLink(DlProblem::PercentEncoding(_))),
            "{bad}"
        );
    }
    assert!(matches!(
        err("https://d.example/01/09520123456788/10/A%7EB"),
        Gs1Error::Invalid {
            problem: ValueProblem::OutsideCset82 { ch: '~', .. },
            ..
        }
    ));
}

#[test]
fn digital_link_qualifiers_in_the_wrong_order_are_rejected() {
    let e = err("https://d.example/01/09520123456788/21/12345/10/ABC123");
    assert_eq!(
        e,
        Gs1Error::DigitalLink(DlProblem::QualifierOrder {
            ai: "10".into(),
            after: "21".into()
        })
    );
    assert!(matches!(
        err("https://d.example/01/09520123456788/21/1/235/2"),
        Gs1Error::DigitalLink(DlProblem::QualifierOrder { .. })
    ));
    let with_cpv = ok("https://d.example/01/09520123456788/22/V1/10/ABC123");
    assert_eq!(with_cpv.other.get("22").map(String::as_str), Some("V1"));
}

#[test]
fn digital_link_non_qualifiers_in_the_path_are_rejected() {
    assert_eq!(
        err("https://d.example/01/09520123456788/17/271231"),
        Gs1Error::DigitalLink(DlProblem::NotAQualifier {
            ai: "17".into(),
            key: "01"
        })
    );
    assert!(matches!(
        err("https://d.example/00/106141412345678908/10/A"),
        Gs1Error::DigitalLink(DlProblem::NotAQualifier { key: "00", .. })
    ));
}

#[test]
fn digital_link_keys_and_qualifiers_in_the_query_are_rejected() {
    assert!(matches!(
        err("https://d.example/01/09520123456788?10=ABC"),
        Gs1Error::DigitalLink(DlProblem::PathAiInQuery { .. })
    ));
    assert!(matches!(
        err("https://d.example/01/09520123456788?00=106141412345678908"),
        Gs1Error::DigitalLink(DlProblem::PathAiInQuery { .. })
    ));
    assert!(matches!(
        err("https://d.example/01/09520123456788?17=271231&17=281231"),
        Gs1Error::DuplicateAi { .. }
    ));
}

#[test]
fn digital_link_without_key_or_host_is_rejected() {
    assert_eq!(
        err("https://d.example/products/abc"),
        Gs1Error::DigitalLink(DlProblem::NoKey)
    );
    assert_eq!(
        err("https://d.example/01"),
        Gs1Error::DigitalLink(DlProblem::NoKey)
    );
    assert_eq!(
        err("https://d.example"),
        Gs1Error::DigitalLink(DlProblem::NoKey)
    );
    assert_eq!(
        err("https:///01/09520123456788"),
        Gs1Error::DigitalLink(DlProblem::NoHost)
    );
}

// --- serde ------------------------------------------------------------------------------

#[test]
fn serialises_expiry_as_iso_date_and_omits_absent_fields() {
    let json = serde_json::to_value(full_example()).unwrap_or_default();
    assert_eq!(
        json,
        serde_json::json!({"gtin": "09520123456788", "lot": "ABC123", "serial": "12345",
                           "expiry": "2027-12-31"})
    );
    let back: Gs1Data = serde_json::from_value(json).unwrap_or_default();
    assert_eq!(back, full_example());
}

// --- pallet labels: (00) SSCC, (02) content GTIN, (37) count ------------------------------

fn pallet_label() -> Gs1Data {
    Gs1Data {
        sscc: Some("106141412345678908".into()),
        content_gtin: Some("09520123456788".into()),
        count: Some(40),
        lot: Some("ABC123".into()),
        expiry: Some(date!(2027 - 12 - 31)),
        ..Gs1Data::default()
    }
}

#[test]
fn a_pallet_label_gives_its_content_gtin_and_count_in_all_three_forms() {
    let bracketed = "(00)106141412345678908(02)09520123456788(37)40(10)ABC123(17)271231";
    let raw = "]C1001061414123456789080209520123456788\u{1d}3740\u{1d}10ABC123\u{1d}17271231";
    let raw_unprefixed =
        "001061414123456789080209520123456788\u{1d}3740\u{1d}10ABC123\u{1d}17271231";
    let dl =
        "https://id.example.com/00/106141412345678908?02=09520123456788&37=40&10=ABC123&17=271231";
    for input in [bracketed, raw, raw_unprefixed, dl] {
        let data = ok(input);
        assert_eq!(data, pallet_label(), "{input:?}");
        assert!(data.other.is_empty(), "{input:?}: {:?}", data.other);
    }
}

#[test]
fn a_content_gtin_with_a_wrong_check_digit_or_a_count_too_long_is_refused() {
    assert_eq!(
        err("(00)106141412345678908(02)09520123456789(37)40"),
        Gs1Error::Invalid {
            ai: "02".into(),
            problem: ValueProblem::CheckDigit {
                label: "content GTIN",
                found: 9,
                expected: 8
            }
        }
    );
    assert_eq!(
        err("(37)123456789"),
        Gs1Error::Invalid {
            ai: "37".into(),
            problem: ValueProblem::TooLong {
                label: "count of trade items",
                len: 9,
                max: 8
            }
        }
    );
    assert_eq!(ok("(37)99999999").count, Some(99_999_999));
}

#[test]
fn a_pallet_label_serialises_content_gtin_and_count_by_name() {
    let json = serde_json::to_value(pallet_label()).unwrap();
    assert_eq!(json["content_gtin"], "09520123456788");
    assert_eq!(json["count"], 40);
}

// --- properties ---------------------------------------------------------------------------

fn with_check_digit(body: &str) -> String {
    format!("{body}{}", check_digit(body).unwrap_or(0))
}

fn cset82_char() -> impl Strategy<Value = char> {
    proptest::sample::select(
        (0u8..128)
            .map(char::from)
            .filter(|&c| is_cset82(c))
            .collect::<Vec<_>>(),
    )
}

fn cset82_string() -> impl Strategy<Value = String> {
    proptest::collection::vec(cset82_char(), 1..=20).prop_map(|v| v.into_iter().collect())
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

proptest! {
    #[test]
    fn arbitrary_strings_never_panic(s in "\\PC*", prefix in prop::sample::select(
        vec!["", "(", "(01)", "]d2", "]Q1https://h/", "https://h/01/", "https://h/00/1/10/"])) {
        let _ = parse_at(&format!("{prefix}{s}"), TODAY);
    }

    #[test]
    fn arbitrary_bytes_with_gs_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..60),
        gs_at in proptest::collection::vec(0usize..60, 0..5),
        id in prop::sample::select(vec!["", "]C1", "]d2", "(10)"]),
    ) {
        let mut bytes = bytes;
        for at in gs_at {
            bytes.insert(at.min(bytes.len()), 0x1d);
        }
        let s = format!("{id}{}", String::from_utf8_lossy(&bytes));
        let _ = parse_at(&s, TODAY);
    }

    #[test]
    fn digit_soup_never_panics(s in "[0-9\u{1d}]{0,60}") {
        let _ = parse_at(&s, TODAY);
        let _ = parse_at(&format!("]C1{s}"), TODAY);
    }

    #[test]
    fn bracketed_raw_and_digital_link_forms_agree(
        gtin_body in "[0-9]{13}",
        lot in cset82_string(),
        serial in cset82_string(),
        yy in 0u8..100, mm in 1u8..=12, dd in 0u8..=28,
    ) {
        let gtin = with_check_digit(&gtin_body);
        let date = format!("{yy:02}{mm:02}{dd:02}");
        let escape = |s: &str| s.replace('(', "\\(");
        let bracketed = format!("(01){gtin}(10){}(17){date}(21){}", escape(&lot), escape(&serial));
        let raw = format!("]d201{gtin}10{lot}\u{1d}17{date}21{serial}");
        let dl = format!("https://example.com/p/01/{gtin}/10/{}/21/{}?17={date}",
                         percent_encode(&lot), percent_encode(&serial));
        let a = parse_at(&bracketed, TODAY);
        prop_assert!(a.is_ok(), "{bracketed:?}: {a:?}");
        prop_assert_eq!(&a, &parse_at(&raw, TODAY));
        prop_assert_eq!(&a, &parse_at(&dl, TODAY));
        let data = a.unwrap_or_default();
        prop_assert_eq!(data.lot.as_deref(), Some(lot.as_str()));
        prop_assert_eq!(data.serial.as_deref(), Some(serial.as_str()));
    }

    #[test]
    fn pallet_label_forms_agree(
        sscc_body in "[0-9]{17}",
        gtin_body in "[0-9]{13}",
        count in 1u32..100_000_000,
        lot in cset82_string(),
        yy in 0u8..100, mm in 1u8..=12, dd in 0u8..=28,
    ) {
        let sscc = with_check_digit(&sscc_body);
        let gtin = with_check_digit(&gtin_body);
        let date = format!("{yy:02}{mm:02}{dd:02}");
        let bracketed = format!("(00){sscc}(02){gtin}(37){count}(10){}(17){date}", lot.replace('(', "\\("));
        let raw = format!("00{sscc}02{gtin}37{count}\u{1d}10{lot}\u{1d}17{date}");
        let dl = format!("https://example.com/00/{sscc}?02={gtin}&37={count}&10={}&17={date}",
                         percent_encode(&lot));
        let a = parse_at(&bracketed, TODAY);
        prop_assert!(a.is_ok(), "{bracketed:?}: {a:?}");
        prop_assert_eq!(&a, &parse_at(&raw, TODAY));
        prop_assert_eq!(&a, &parse_at(&dl, TODAY));
        let data = a.unwrap_or_default();
        prop_assert_eq!(data.sscc.as_deref(), Some(sscc.as_str()));
        prop_assert_eq!(data.content_gtin.as_deref(), Some(gtin.as_str()));
        prop_assert_eq!(data.count, Some(count));
        prop_assert_eq!(data.lot.as_deref(), Some(lot.as_str()));
    }

    #[test]
    fn check_digit_makes_any_body_valid(body in "[0-9]{17}") {
        prop_assert!(is_valid_sscc(&with_check_digit(&body)));
    }
}

#[test]
fn a_fuzzed_scan_of_digit_runs_and_separators_is_answered_without_blowing_up() {
    // Found by the gs1 fuzz target: looking for swallowed elements used to
    // look again inside what it looked at, which took minutes on 532 bytes.
    let bytes = include_bytes!("slow-scan.bin");
    let text = String::from_utf8_lossy(bytes);
    let _ = parse(&text);
}
