//! The chart drawn: markers, counts, odd inputs, downsampling.

use super::*;
use proptest::prelude::*;

const H: i64 = 3_600_000;

fn spec(series: Vec<Series>, limits: Option<Limits>, marks: Vec<Mark>) -> ChartSpec {
    ChartSpec {
        title: "Zone <A> & B".into(),
        unit: "°C".into(),
        from_ms: 0,
        to_ms: 4 * H,
        width: 800,
        height: 300,
        series,
        limits,
        marks,
    }
}

fn count(svg: &str, needle: &str) -> usize {
    svg.matches(needle).count()
}

fn ramp(n: i64) -> Vec<(i64, f64)> {
    (0..n).map(|i| (i * 60_000, 4.0 + (i % 7) as f64)).collect()
}

#[test]
fn svg_carries_series_marks_and_limits_markers_with_the_right_counts() {
    let svg = render_svg(&spec(
        vec![
            Series {
                label: "zone-a \"front\"".into(),
                points: ramp(30),
            },
            Series {
                label: "zone-b".into(),
                points: ramp(12),
            },
        ],
        Some(Limits {
            low: Some(2.0),
            high: Some(8.0),
        }),
        vec![
            Mark {
                kind: MarkKind::Excursion,
                from_ms: H,
                to_ms: Some(2 * H),
                label: "exc 1".into(),
            },
            Mark {
                kind: MarkKind::Excursion,
                from_ms: 3 * H,
                to_ms: None,
                label: "exc 2".into(),
            },
            Mark {
                kind: MarkKind::Door,
                from_ms: H / 2,
                to_ms: Some(H / 2 + 60_000),
                label: "door".into(),
            },
        ],
    ))
    .unwrap();
    assert!(
        svg.starts_with("<svg class=\"cg-chart\""),
        "{}",
        &svg[..200]
    );
    assert!(svg.contains("data-series-count=\"2\""));
    assert!(svg.contains("data-point-count=\"42\""));
    assert_eq!(count(&svg, "class=\"cg-series\""), 2);
    assert!(svg.contains("data-label=\"zone-a &quot;front&quot;\""));
    assert_eq!(count(&svg, "class=\"cg-mark cg-mark-excursion\""), 2);
    assert_eq!(count(&svg, "class=\"cg-mark cg-mark-door\""), 1);
    assert_eq!(count(&svg, "class=\"cg-limits\""), 1);
    assert_eq!(count(&svg, "<g "), count(&svg, "</g>"), "groups balanced");
    assert!(!svg.contains(MARKER), "markers all replaced");
    // Each series group holds a drawn line.
    for part in svg.split("class=\"cg-series\"").skip(1) {
        let group = &part[..part.find("</g>").unwrap()];
        assert!(group.contains("<polyline"), "{group}");
    }
    assert!(svg.contains("Zone &lt;A&gt; &amp; B"), "title escaped");
    assert!(svg.contains("<text"), "labels are SVG text");
    assert!(svg.trim_end().ends_with("</svg>"));
}

#[test]
fn points_outside_the_range_or_not_finite_are_not_drawn_or_counted() {
    let svg = render_svg(&spec(
        vec![Series {
            label: "s".into(),
            points: vec![
                (-1, 5.0),
                (0, 5.0),
                (H, f64::NAN),
                (2 * H, 6.0),
                (4 * H, 7.0),
            ],
        }],
        None,
        vec![],
    ))
    .unwrap();
    assert!(svg.contains("data-point-count=\"2\""), "{svg}");
    assert_eq!(count(&svg, "cg-limits"), 0);
}

#[test]
fn an_open_sided_limit_shades_to_the_chart_edge() {
    let svg = render_svg(&spec(
        vec![Series {
            label: "s".into(),
            points: ramp(10),
        }],
        Some(Limits {
            low: None,
            high: Some(8.0),
        }),
        vec![],
    ))
    .unwrap();
    assert_eq!(count(&svg, "class=\"cg-limits\""), 1);
    assert!(svg.contains("data-label=\"high 8\""));
}

#[test]
fn no_series_renders_a_no_data_chart_not_an_error() {
    let svg = render_svg(&spec(
        vec![],
        Some(Limits {
            low: Some(2.0),
            high: Some(8.0),
        }),
        vec![],
    ))
    .unwrap();
    assert!(svg.contains("no data in this range"));
    assert!(svg.contains("data-series-count=\"0\""));
    assert!(svg.contains("data-point-count=\"0\""));
    let svg = render_svg(&spec(
        vec![Series {
            label: "s".into(),
            points: vec![],
        }],
        None,
        vec![],
    ))
    .unwrap();
    assert!(svg.contains("no data in this range"));
    assert!(svg.contains("data-series-count=\"1\""));
    let svg = render_svg(&spec(
        vec![Series {
            label: "s".into(),
            points: ramp(3),
        }],
        None,
        vec![],
    ))
    .unwrap();
    assert!(!svg.contains("no data in this range"));
}

#[test]
fn an_empty_time_range_or_silly_size_is_an_error_not_a_panic() {
    let mut s = spec(vec![], None, vec![]);
    s.to_ms = s.from_ms;
    assert!(matches!(render_svg(&s), Err(ChartError::EmptyRange { .. })));
    let mut s = spec(vec![], None, vec![]);
    s.width = 0;
    assert!(matches!(render_svg(&s), Err(ChartError::Size { .. })));
    let mut s = spec(vec![], None, vec![]);
    (s.from_ms, s.to_ms) = (i64::MIN, i64::MAX);
    assert!(matches!(
        render_svg(&s),
        Err(ChartError::RangeTooLong { .. })
    ));
}

#[test]
fn values_at_the_ends_of_f64_still_draw_on_a_finite_axis() {
    let svg = render_svg(&spec(
        vec![Series {
            label: "s".into(),
            points: vec![(0, -f64::MAX), (H, f64::MAX), (2 * H, 5.0)],
        }],
        Some(Limits {
            low: Some(f64::MIN),
            high: Some(f64::MAX),
        }),
        vec![],
    ))
    .unwrap();
    assert!(svg.contains("data-point-count=\"3\""));
    assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
}

#[test]
fn a_flat_line_and_extreme_values_still_draw() {
    let svg = render_svg(&spec(
        vec![Series {
            label: "s".into(),
            points: vec![(0, 5.0), (H, 5.0)],
        }],
        None,
        vec![],
    ))
    .unwrap();
    assert!(svg.contains("data-point-count=\"2\""));
    let svg = render_svg(&spec(
        vec![Series {
            label: "s".into(),
            points: vec![(0, -1e12), (H, 1e12)],
        }],
        None,
        vec![Mark {
            kind: MarkKind::Door,
            from_ms: i64::MIN,
            to_ms: Some(i64::MAX),
            label: String::new(),
        }],
    ))
    .unwrap();
    assert_eq!(count(&svg, "cg-mark-door"), 1);
}

#[test]
fn a_tiny_chart_with_many_series_and_marks_still_draws() {
    let mut s = spec(
        (0..12)
            .map(|i| Series {
                label: format!("a rather long sensor name {i}"),
                points: ramp(30),
            })
            .collect(),
        None,
        (0..20)
            .map(|i| Mark {
                kind: MarkKind::Door,
                from_ms: i * 10 * 60_000,
                to_ms: Some(i * 10 * 60_000 + 60_000),
                label: "door".into(),
            })
            .collect(),
    );
    (s.width, s.height) = (MIN_SIZE, MIN_SIZE);
    let svg = render_svg(&s).unwrap();
    assert_eq!(count(&svg, "class=\"cg-series\""), 12);
    assert_eq!(count(&svg, "<g "), count(&svg, "</g>"), "groups balanced");
}

#[test]
fn downsample_keeps_min_and_max_of_each_bucket() {
    // 100 points over 100 minutes, spike up at 37, spike down at 71.
    let mut pts: Vec<(i64, f64)> = (0..100).map(|i| (i * 60_000, 5.0)).collect();
    pts[37].1 = 15.0;
    pts[71].1 = -3.0;
    let out = downsample(&pts, 0, 100 * 60_000, 10);
    assert!(out.len() <= 10);
    assert!(out.contains(&(37 * 60_000, 15.0)), "{out:?}");
    assert!(out.contains(&(71 * 60_000, -3.0)), "{out:?}");
    assert!(out.windows(2).all(|w| w[0].0 < w[1].0));
}

#[test]
fn downsample_edge_cases() {
    assert!(downsample(&[], 0, 10, 5).is_empty());
    assert_eq!(downsample(&[(3, 1.0)], 0, 10, 5), vec![(3, 1.0)]);
    assert_eq!(downsample(&[(3, 1.0)], 0, 10, 1), vec![(3, 1.0)]);
    assert!(downsample(&[(3, 1.0)], 0, 10, 0).is_empty());
    assert!(
        downsample(&[(3, 1.0)], 5, 10, 5).is_empty(),
        "outside the range"
    );
    assert!(
        downsample(&[(10, 1.0)], 0, 10, 5).is_empty(),
        "to_ms is exclusive"
    );
    assert_eq!(
        downsample(&[(1, 1.0), (2, 9.0), (3, 4.0)], 0, 10, 1),
        vec![(2, 9.0)]
    );
    assert!(
        downsample(&[(1, 1.0)], 10, 0, 5).is_empty(),
        "reversed range"
    );
    let unsorted = [(5, 1.0), (1, 2.0), (3, 3.0)];
    assert_eq!(
        downsample(&unsorted, 0, 10, 5),
        vec![(1, 2.0), (3, 3.0), (5, 1.0)]
    );
}

proptest! {
    #[test]
    fn downsample_properties(
        raw in proptest::collection::vec((0i64..1_000_000, -50.0f64..50.0), 0..400),
        from in -10i64..500_000,
        len in 1i64..1_200_000,
        max_points in 0usize..64,
    ) {
        let to = from + len;
        let out = downsample(&raw, from, to, max_points);
        let inside: Vec<(i64, f64)> =
            raw.iter().copied().filter(|(t, _)| *t >= from && *t < to).collect();
        prop_assert!(out.len() <= max_points);
        prop_assert!(out.len() <= inside.len());
        prop_assert!(out.windows(2).all(|w| w[0].0 <= w[1].0));
        for p in &out {
            prop_assert!(inside.contains(p), "{:?} not from the input", p);
        }
        if inside.len() <= max_points {
            prop_assert_eq!(out.len(), inside.len());
        }
        if max_points >= 2 && !inside.is_empty() {
            // The extremes of the whole range survive.
            let min = inside.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
            let max = inside.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
            prop_assert!(out.iter().any(|p| p.1 == min));
            prop_assert!(out.iter().any(|p| p.1 == max));
        }
        if max_points >= 1 && !inside.is_empty() {
            prop_assert!(!out.is_empty());
        }
    }
}
