use proptest::prelude::*;
use time::macros::datetime;

use super::*;

fn x(gw: &str, id: &str, duration_s: i64, ended: bool) -> LotExcursion {
    LotExcursion {
        gtin: "09506000134352".into(),
        lot: "L1".into(),
        gateway_id: gw.into(),
        excursion_id: id.into(),
        rule: "refrigerated/temperature/0".into(),
        direction: "high".into(),
        allowance_s: Some(3600),
        freeze: false,
        duration_s,
        unknown_s: 0,
        started_at: datetime!(2026-12-01 08:00 UTC),
        ended_at: ended.then_some(datetime!(2026-12-01 09:00 UTC)),
        mean: 9.0,
    }
}

#[test]
fn two_legs_each_within_budget_that_together_exceed_it_are_exhausted_across_legs() {
    let b = budgets(&[x("A", "e1", 2400, true), x("B", "e2", 2400, true)]);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].total_s, 4800);
    assert!(b[0].exhausted_across_legs());
}

#[test]
fn one_leg_over_budget_alone_is_the_gateway_s_alert_not_the_fleet_s() {
    let b = budgets(&[x("A", "e1", 4000, true), x("B", "e2", 100, true)]);
    assert!(b[0].exhausted());
    assert!(!b[0].exhausted_across_legs());
}

#[test]
fn legs_that_together_reach_the_allowance_exactly_have_used_it_up_as_a_gateway_counts() {
    let b = budgets(&[x("A", "e1", 1800, true), x("B", "e2", 1800, true)]);
    assert!(b[0].exhausted_across_legs());
    let one = budgets(&[x("A", "e1", 3600, true), x("B", "e2", 10, true)]);
    assert!(!one[0].exhausted_across_legs(), "A reached it alone");
}

#[test]
fn a_resent_or_growing_excursion_counts_once_with_its_largest_duration() {
    let b = budgets(&[
        x("A", "e1", 600, false),
        x("A", "e1", 1800, true),
        x("A", "e1", 600, false),
    ]);
    assert_eq!(b[0].total_s, 1800);
}

#[test]
fn the_same_excursion_id_on_two_gateways_is_two_excursions() {
    let b = budgets(&[x("A", "e1", 600, true), x("B", "e1", 600, true)]);
    assert_eq!(b[0].total_s, 1200);
}

#[test]
fn the_same_warm_time_seen_by_several_sensors_of_a_gateway_counts_once() {
    let at = |x: LotExcursion, minute: i64| LotExcursion {
        started_at: datetime!(2026-12-01 08:00 UTC) + time::Duration::minutes(minute),
        ..x
    };
    // Four sensors of one zone, one excursion each, at the same time.
    let four: Vec<LotExcursion> = ["s1", "s2", "s3", "s4"]
        .iter()
        .map(|id| x("A", id, 1620, true))
        .collect();
    let b = budgets(&four);
    assert_eq!((b[0].total_s, b[0].per_gateway["A"]), (1620, 1620));
    // Partly overlapping (10 min apart, 30 min each) and later disjoint.
    let b = budgets(&[
        at(x("A", "e1", 1800, true), 0),
        at(x("A", "e2", 1800, true), 10),
        at(x("A", "e3", 600, true), 120),
        at(x("B", "e4", 1800, true), 5),
    ]);
    assert_eq!(b[0].per_gateway["A"], 2400 + 600);
    assert_eq!(b[0].total_s, 3000 + 1800, "other gateways add up");
}

#[test]
fn a_journey_with_unmonitored_time_is_never_within_profile() {
    assert_eq!(verdict(&[], &[], 60), Verdict::RecordIncomplete);
    assert_eq!(verdict(&[], &[], 0), Verdict::WithinProfile);
    let rows = [x("A", "e1", 600, true)];
    assert_eq!(
        verdict(&budgets(&rows), &rows, 60),
        Verdict::RecordIncomplete
    );
    assert_eq!(
        verdict(&budgets(&rows), &rows, 0),
        Verdict::ExcursionWithinAllowance
    );
}

#[test]
fn an_open_excursion_needs_assessment_and_an_exceeded_allowance_wins() {
    let open = [x("A", "e1", 600, false)];
    assert_eq!(
        verdict(&budgets(&open), &open, 0),
        Verdict::AssessmentRequired
    );
    let over = [x("A", "e1", 3000, true), x("B", "e2", 3000, false)];
    assert_eq!(
        verdict(&budgets(&over), &over, 60),
        Verdict::AllowanceExceeded
    );
}

proptest! {
    #[test]
    fn the_order_of_arrival_does_not_change_the_totals(
        reports in prop::collection::vec(
            (prop::sample::select(vec!["A", "B"]), prop::sample::select(vec!["e1", "e2", "e3"]), 0i64..5000),
            0..16),
        seed in any::<u64>(),
    ) {
        let rows: Vec<LotExcursion> = reports.iter().map(|(g, e, d)| x(g, e, *d, true)).collect();
        let mut shuffled = rows.clone();
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            shuffled.swap(i, (s % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(budgets(&rows), budgets(&shuffled));
    }
}

/// The alert as published against docs/schema/fleet_exposure_alert.json.
#[test]
fn the_fleet_budget_alert_matches_its_published_schema() {
    let schema: serde_json::Value = serde_json::from_str(include_str!(
        "../../../docs/schema/fleet_exposure_alert.json"
    ))
    .unwrap();
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let b = budgets(&[x("A", "e1", 2400, true), x("B", "e2", 2400, true)]);
    let (key, detail) = alert_of(&b[0]);
    let published = crate::custody::published_form(detail, &key);
    let errors: Vec<String> = validator
        .iter_errors(&published)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{published:#}");
}
