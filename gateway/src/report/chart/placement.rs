//! Where chart text goes: time ticks at round times whose labels keep
//! apart, and mark labels in rows where none covers another. Pure
//! functions of pixel sizes, so they are tested without drawing.

/// Average advance of a sans-serif glyph, in ems. There is no font library
/// here (the viewer lays the text out), so widths are estimated on the wide
/// side: DejaVu Sans, Debian's default, averages about 0.6 em.
const EM_ADVANCE: f64 = 0.65;

/// The estimated width of `text` drawn at `font_px`.
pub fn text_width(text: &str, font_px: f64) -> f64 {
    text.chars().count() as f64 * font_px * EM_ADVANCE
}

/// A labelled tick on the time axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeTick {
    pub at_ms: i64,
    pub label: String,
}

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// More time labels than this are more than an eye takes in along one axis.
const MAX_TICKS: usize = 10;
/// The steps people read a clock by; days are UTC midnights.
const TICK_STEPS: [i64; 19] = [
    MINUTE,
    2 * MINUTE,
    5 * MINUTE,
    10 * MINUTE,
    15 * MINUTE,
    30 * MINUTE,
    HOUR,
    2 * HOUR,
    3 * HOUR,
    6 * HOUR,
    12 * HOUR,
    DAY,
    2 * DAY,
    7 * DAY,
    14 * DAY,
    28 * DAY,
    91 * DAY,
    182 * DAY,
    364 * DAY,
];

/// Ticks for `[from_ms, to_ms)` on an axis `axis_px` wide: the finest step
/// of [`TICK_STEPS`] whose labels, centred on their ticks, stay inside the
/// axis and at least two ems apart, at most [`MAX_TICKS`] of them. Labels
/// are `HH:MM` (UTC); where the range passes midnight the first tick and
/// the first of each new day also name the date (`7 Dec 00:00`); steps of
/// a day or more are dates only, with the year when the range passes a new
/// year.
pub fn time_ticks(from_ms: i64, to_ms: i64, axis_px: f64, font_px: f64) -> Vec<TimeTick> {
    if from_ms >= to_ms || axis_px <= 0.0 {
        return Vec::new();
    }
    let span = (to_ms - from_ms) as f64;
    let x = |t: i64| (t - from_ms) as f64 / span * axis_px;
    let passes_midnight = from_ms.div_euclid(DAY) != (to_ms - 1).div_euclid(DAY);
    let passes_new_year = year(from_ms) != year(to_ms - 1);
    let mut best = Vec::new();
    for step in TICK_STEPS {
        // More than one tick per 20 px never fits; skip without labelling.
        if (to_ms - from_ms) / step > (axis_px / 20.0) as i64 + 1 {
            continue;
        }
        let first = from_ms.div_euclid(step) * step
            + if from_ms.rem_euclid(step) == 0 {
                0
            } else {
                step
            };
        let times: Vec<i64> = std::iter::successors(Some(first), |t| t.checked_add(step))
            .take_while(|t| *t < to_ms)
            .collect();
        let ticks = label_ticks(&times, step, passes_midnight, passes_new_year);
        let edges_ok = |t: &TimeTick| {
            let half = text_width(&t.label, font_px) / 2.0;
            x(t.at_ms) - half >= 0.0 && x(t.at_ms) + half <= axis_px
        };
        // Ticks whose labels would hang over an edge are left out, and the
        // rest labelled again (the first kept one may now need the date).
        let kept: Vec<i64> = ticks
            .iter()
            .filter(|t| edges_ok(t))
            .map(|t| t.at_ms)
            .collect();
        let ticks = label_ticks(&kept, step, passes_midnight, passes_new_year);
        let apart = ticks.windows(2).all(|w| {
            let gap = x(w[1].at_ms) - x(w[0].at_ms);
            gap - (text_width(&w[0].label, font_px) + text_width(&w[1].label, font_px)) / 2.0
                >= 2.0 * font_px
        });
        if apart && ticks.len() <= MAX_TICKS && ticks.iter().all(edges_ok) {
            if ticks.len() >= 2 {
                return ticks;
            }
            if best.is_empty() {
                best = ticks;
            }
        }
    }
    best
}

fn year(ms: i64) -> Option<i32> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .map(|t| t.year())
}

fn label_ticks(times: &[i64], step: i64, passes_midnight: bool, with_year: bool) -> Vec<TimeTick> {
    let mut previous_day = None;
    times
        .iter()
        .map(|&at_ms| {
            let day = at_ms.div_euclid(DAY);
            let dated = step >= DAY || (passes_midnight && previous_day != Some(day));
            previous_day = Some(day);
            TimeTick {
                at_ms,
                label: tick_label(at_ms, step >= DAY, dated, with_year),
            }
        })
        .collect()
}

fn tick_label(ms: i64, date_only: bool, dated: bool, with_year: bool) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return ms.to_string();
    };
    let month = &format!("{}", t.month())[..3];
    let date = if !with_year {
        format!("{} {month}", t.day())
    } else {
        format!("{} {month} {}", t.day(), t.year())
    };
    match (date_only, dated) {
        (true, _) => date,
        (false, true) => format!("{date} {:02}:{:02}", t.hour(), t.minute()),
        (false, false) => format!("{:02}:{:02}", t.hour(), t.minute()),
    }
}

/// Where a label goes: its left edge and its row (0 next to the data).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placed {
    pub x: f64,
    pub lane: usize,
}

/// Places labels of `(anchor, width)` in rows between `left` and `right`:
/// each starts at its anchor (pulled inside when it would run past the
/// right edge) in the first of `lanes` rows where it keeps `gap` from the
/// labels already there, taken in the order of their anchors. A label that
/// fits in no row gets None: a missing label can be looked up in the
/// table, one printed over another cannot be read at all.
pub fn place_labels(
    labels: &[(f64, f64)],
    left: f64,
    right: f64,
    lanes: usize,
    gap: f64,
) -> Vec<Option<Placed>> {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|a, b| labels[*a].0.total_cmp(&labels[*b].0));
    let mut lane_end = vec![f64::NEG_INFINITY; lanes];
    let mut out = vec![None; labels.len()];
    for i in order {
        let (anchor, width) = labels[i];
        if !(anchor.is_finite() && width.is_finite()) || width > right - left {
            continue;
        }
        let x = anchor.min(right - width).max(left);
        if let Some(lane) = lane_end.iter().position(|end| x >= end + gap) {
            lane_end[lane] = x + width;
            out[i] = Some(Placed { x, lane });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(rfc3339: &str) -> i64 {
        crate::event::parse_rfc3339(rfc3339).unwrap()
    }

    fn labels(ticks: &[TimeTick]) -> Vec<&str> {
        ticks.iter().map(|t| t.label.as_str()).collect()
    }

    #[test]
    fn ticks_of_three_hours_on_a_wide_chart_fall_on_half_hours() {
        let ticks = time_ticks(
            at("2026-12-07T00:07:13Z"),
            at("2026-12-07T03:07:13Z"),
            760.0,
            14.0,
        );
        assert!(ticks.len() >= 5, "{ticks:?}");
        assert!(
            ticks.iter().all(|t| t.at_ms % (30 * MINUTE) == 0),
            "{ticks:?}"
        );
        assert_eq!(ticks[0].label, "00:30");
    }

    #[test]
    fn ticks_of_three_hours_on_a_phone_are_fewer_and_on_the_hour() {
        let ticks = time_ticks(
            at("2026-12-07T00:07:13Z"),
            at("2026-12-07T03:07:13Z"),
            280.0,
            13.0,
        );
        assert!((2..=4).contains(&ticks.len()), "{ticks:?}");
        assert!(ticks.iter().all(|t| t.at_ms % HOUR == 0), "{ticks:?}");
    }

    #[test]
    fn a_range_past_midnight_names_the_date_at_its_first_tick_and_at_each_new_day() {
        let ticks = time_ticks(
            at("2026-12-06T20:00:00Z"),
            at("2026-12-07T04:00:00Z"),
            760.0,
            14.0,
        );
        let l = labels(&ticks);
        assert!(l[0].starts_with("6 Dec "), "{l:?}");
        assert!(l.contains(&"7 Dec 00:00"), "{l:?}");
        let dated = l.iter().filter(|l| l.contains("Dec")).count();
        assert_eq!(dated, 2, "only the first and the new day: {l:?}");
    }

    #[test]
    fn a_range_within_one_day_has_times_only() {
        let ticks = time_ticks(
            at("2026-12-07T08:00:00Z"),
            at("2026-12-07T20:00:00Z"),
            760.0,
            14.0,
        );
        assert!(ticks.iter().all(|t| !t.label.contains("Dec")), "{ticks:?}");
        assert!(ticks.iter().all(|t| t.at_ms % HOUR == 0), "{ticks:?}");
    }

    #[test]
    fn a_week_is_ticked_by_date_at_utc_midnights() {
        let ticks = time_ticks(
            at("2026-12-01T05:00:00Z"),
            at("2026-12-08T05:00:00Z"),
            760.0,
            14.0,
        );
        assert!(ticks.iter().all(|t| t.at_ms % DAY == 0), "{ticks:?}");
        assert_eq!(ticks[0].label, "2 Dec");
    }

    #[test]
    fn labels_that_would_overlap_go_to_separate_rows() {
        let placed = place_labels(
            &[(100.0, 80.0), (100.0, 80.0), (150.0, 40.0), (200.0, 30.0)],
            50.0,
            500.0,
            3,
            8.0,
        );
        let p: Vec<Placed> = placed.into_iter().map(Option::unwrap).collect();
        assert_eq!((p[0].x, p[0].lane), (100.0, 0));
        assert_eq!((p[1].x, p[1].lane), (100.0, 1));
        assert_eq!(p[2].lane, 2);
        assert_eq!(
            (p[3].x, p[3].lane),
            (200.0, 0),
            "after the first, in its row"
        );
    }

    #[test]
    fn a_label_that_fits_in_no_row_is_left_out_rather_than_printed_over_another() {
        let placed = place_labels(
            &[(100.0, 80.0), (110.0, 80.0), (120.0, 80.0)],
            0.0,
            500.0,
            2,
            8.0,
        );
        assert!(placed[0].is_some() && placed[1].is_some());
        assert_eq!(placed[2], None);
        assert_eq!(
            place_labels(&[(10.0, 600.0)], 0.0, 500.0, 3, 8.0),
            vec![None],
            "wider than the chart"
        );
    }

    #[test]
    fn a_label_near_the_right_edge_is_pulled_inside() {
        let placed = place_labels(&[(480.0, 60.0)], 0.0, 500.0, 1, 8.0);
        assert_eq!(placed, vec![Some(Placed { x: 440.0, lane: 0 })]);
    }

    proptest! {
        #[test]
        fn placed_labels_never_overlap_and_stay_between_the_edges(
            labels in proptest::collection::vec((-50.0f64..600.0, 1.0f64..200.0), 0..30),
            lanes in 0usize..4,
        ) {
            let placed = place_labels(&labels, 0.0, 500.0, lanes, 6.0);
            prop_assert_eq!(placed.len(), labels.len());
            let boxes: Vec<(f64, f64, usize)> = placed
                .iter()
                .zip(&labels)
                .filter_map(|(p, (_, w))| p.map(|p| (p.x, p.x + w, p.lane)))
                .collect();
            for (i, a) in boxes.iter().enumerate() {
                prop_assert!(a.0 >= 0.0 && a.1 <= 500.0 && a.2 < lanes, "{:?}", a);
                for b in &boxes[i + 1..] {
                    prop_assert!(a.2 != b.2 || a.1 + 6.0 <= b.0 || b.1 + 6.0 <= a.0, "{:?} {:?}", a, b);
                }
            }
        }

        #[test]
        fn tick_labels_never_crowd_or_hang_over_the_axis(
            from in 1_500_000_000_000i64..1_900_000_000_000,
            len in 60_000i64..(400 * DAY),
            axis in 150.0f64..2000.0,
            font in 11.0f64..16.0,
        ) {
            let ticks = time_ticks(from, from + len, axis, font);
            let x = |t: i64| (t - from) as f64 / len as f64 * axis;
            prop_assert!(ticks.len() <= MAX_TICKS);
            for t in &ticks {
                prop_assert!(t.at_ms >= from && t.at_ms < from + len);
                let half = text_width(&t.label, font) / 2.0;
                prop_assert!(x(t.at_ms) - half >= 0.0 && x(t.at_ms) + half <= axis, "{:?}", t);
                prop_assert!(t.at_ms % MINUTE == 0, "{:?}", t);
            }
            for w in ticks.windows(2) {
                let room = x(w[1].at_ms) - x(w[0].at_ms);
                let need =
                    (text_width(&w[0].label, font) + text_width(&w[1].label, font)) / 2.0 + 2.0 * font;
                prop_assert!(room >= need - 1e-6, "{:?}", w);
            }
            // A step of the clock: all ticks equally apart.
            let steps: std::collections::BTreeSet<i64> = ticks.windows(2).map(|w| w[1].at_ms - w[0].at_ms).collect();
            prop_assert!(steps.len() <= 1 || ticks.windows(2).all(|w| (w[1].at_ms - w[0].at_ms) % steps.first().copied().unwrap_or(1) == 0));
        }
    }
}
