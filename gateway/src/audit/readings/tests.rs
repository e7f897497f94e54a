use super::*;

/// Owned rows as a table would hold them: (at, sensor, seq, value).
type Row = (i64, &'static str, u64, f64);

fn raw(r: &Row) -> RawReading<'static> {
    RawReading {
        sensor: r.1,
        at_ms: r.0,
        seq: r.2,
        code: 0,
        value: r.3,
    }
}

/// Rows in key order (time, then sensor, then seq), as the table yields.
fn sorted(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort_by(|a, b| (a.0, a.1, a.2).partial_cmp(&(b.0, b.1, b.2)).unwrap());
    rows
}

/// The checkpoint a writer would make over `rows` (all committed since
/// `after`), covering up to `through`.
fn checkpoint(rows: &[Row], after: &[(&str, u64)], through: &[(&str, u64)]) -> Checkpoint {
    let after: HashMap<&str, u64> = after.iter().copied().collect();
    let through: BTreeMap<String, u64> = through.iter().map(|(s, t)| (s.to_string(), *t)).collect();
    let mut h = SpanHasher::default();
    for r in sorted(rows.to_vec()) {
        let (a, t) = (after.get(r.1).copied().unwrap_or(0), through[r.1]);
        if r.2 > a && r.2 <= t {
            h.add(&raw(&r));
        }
    }
    h.finish(through)
}

fn verify(
    checkpoints: Vec<(u64, Checkpoint)>,
    rows: &[Row],
) -> Result<ReadingsVerified, ReadingsError> {
    let rows = sorted(rows.to_vec());
    let mut v = ReadingsVerifier::new(checkpoints);
    for r in &rows {
        v.add(&raw(r));
    }
    match v.finish() {
        Ok(ok) => Ok(ok),
        Err(m) => {
            let mut e = v.explain(m);
            for r in &rows {
                e.add(&raw(r));
            }
            Err(e.finish())
        }
    }
}

/// Two sensors, 10 readings each over 10 s, checkpointed after the 5th
/// (entry 2) and the 10th (entry 3) of each.
fn two_spans() -> (Vec<Row>, Vec<(u64, Checkpoint)>) {
    let mut rows = Vec::new();
    for i in 1..=10u64 {
        rows.push((1_000 * i as i64, "a", i, 8.0 + i as f64 / 100.0));
        rows.push((1_000 * i as i64 + 7, "b", i, 4.0 + i as f64 / 10.0));
    }
    let first: Vec<Row> = rows.iter().filter(|r| r.2 <= 5).copied().collect();
    let second: Vec<Row> = rows.iter().filter(|r| r.2 > 5).copied().collect();
    let cps = vec![
        (2, checkpoint(&first, &[], &[("a", 5), ("b", 5)])),
        (
            3,
            checkpoint(&second, &[("a", 5), ("b", 5)], &[("a", 10), ("b", 10)]),
        ),
    ];
    (rows, cps)
}

#[test]
fn untouched_readings_verify_from_the_first_checkpoint() {
    let (rows, cps) = two_spans();
    let v = verify(cps, &rows).unwrap();
    assert_eq!(v.verified, 20);
    assert_eq!(v.spans, 2);
    assert_eq!(v.from_entry, Some(2));
    assert_eq!(v.from_ms, Some(1_000));
    assert_eq!(v.uncovered, 0);
}

#[test]
fn a_flipped_byte_in_a_value_names_that_reading() {
    let (mut rows, cps) = two_spans();
    // 8.44 °C becoming 16.88 °C: one bit of the exponent's byte.
    let i = rows.iter().position(|r| r.1 == "a" && r.2 == 7).unwrap();
    let before = rows[i].3;
    rows[i].3 = f64::from_bits(before.to_bits() ^ (0x10 << 48));
    assert_eq!(rows[i].3, before * 2.0);
    let err = verify(cps, &rows).unwrap_err();
    match &err {
        ReadingsError::Altered { entry, reading } => {
            assert_eq!(*entry, 3);
            assert_eq!((reading.sensor.as_str(), reading.seq), ("a", 7));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("sensor a seq 7"), "{err}");
}

#[test]
fn two_altered_readings_name_their_span() {
    let (mut rows, cps) = two_spans();
    rows[0].3 += 1.0;
    rows[3].3 += 1.0;
    match verify(cps, &rows).unwrap_err() {
        ReadingsError::SpanAltered { entry, first } => {
            assert_eq!(entry, 2);
            assert_eq!((first.sensor.as_str(), first.seq), ("a", 1));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_removed_reading_is_named_by_its_seq() {
    let (mut rows, cps) = two_spans();
    rows.retain(|r| !(r.1 == "a" && r.2 == 8));
    let err = verify(cps, &rows).unwrap_err();
    assert!(
        matches!(
            err,
            ReadingsError::Removed {
                entry: 3,
                recorded: 10,
                found: 9,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("sensor a seq 8"), "{err}");
}

#[test]
fn a_forged_repeat_of_a_seq_is_named() {
    let (mut rows, cps) = two_spans();
    rows.push((9_500, "a", 9, 3.0));
    let err = verify(cps, &rows).unwrap_err();
    assert!(
        matches!(
            err,
            ReadingsError::Added {
                entry: 3,
                recorded: 10,
                found: 11,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("sensor a seq 9"), "{err}");
}

#[test]
fn a_span_reaching_back_to_the_oldest_kept_reading_may_be_trimmed() {
    let (mut rows, cps) = two_spans();
    // Retention trimmed everything before 3 s.
    rows.retain(|r| r.0 >= 3_000);
    let v = verify(cps.clone(), &rows).unwrap();
    assert_eq!(v.trimmed_spans, 1);
    assert_eq!(v.unverifiable, 6);
    assert_eq!((v.verified, v.from_entry), (10, Some(3)));
    // Removing from the middle of a later span is not trimming.
    rows.retain(|r| r.0 != 7_000);
    assert!(matches!(
        verify(cps, &rows).unwrap_err(),
        ReadingsError::Removed { entry: 3, .. }
    ));
}

#[test]
fn readings_with_times_before_the_last_checkpoint_belong_to_the_span_that_committed_them() {
    // The clock stepped back an hour after the first checkpoint: the later
    // readings sort before the earlier ones, but their seqs place them.
    let first: Vec<Row> = (1..=3)
        .map(|i| (10_000_000 + i as i64, "a", i, 5.0))
        .collect();
    let late: Vec<Row> = (4..=6)
        .map(|i| (6_400_000 + i as i64, "a", i, 6.0))
        .collect();
    let cps = vec![
        (1, checkpoint(&first, &[], &[("a", 3)])),
        (2, checkpoint(&late, &[("a", 3)], &[("a", 6)])),
    ];
    let mut rows = first.clone();
    rows.extend(&late);
    let v = verify(cps.clone(), &rows).unwrap();
    assert_eq!((v.verified, v.spans), (6, 2));
    rows[4].3 = 7.0;
    match verify(cps, &rows).unwrap_err() {
        ReadingsError::Altered { entry, reading } => assert_eq!((entry, reading.seq), (2, 5)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn readings_after_the_last_checkpoint_are_reported_as_not_covered() {
    let (mut rows, mut cps) = two_spans();
    cps.pop();
    let v = verify(cps, &rows).unwrap();
    assert_eq!(
        (v.verified, v.uncovered, v.uncovered_from_ms),
        (10, 10, Some(6_000))
    );
    // With no checkpoint at all (a wiped trail) nothing is covered.
    rows.truncate(4);
    let v = verify(Vec::new(), &rows).unwrap();
    assert_eq!((v.verified, v.uncovered, v.last_checkpoint), (0, 4, 0));
}

#[test]
fn sensors_relabelled_in_the_sensors_table_break_the_digest() {
    let (rows, cps) = two_spans();
    let swapped: Vec<Row> = rows
        .iter()
        .map(|r| (r.0, if r.1 == "a" { "b" } else { "a" }, r.2, r.3))
        .collect();
    assert!(matches!(
        verify(cps, &swapped).unwrap_err(),
        ReadingsError::SpanAltered { entry: 2, .. }
    ));
}

#[test]
fn the_locator_finds_one_change_and_only_one() {
    let mut h = SpanHasher::default();
    let rows: Vec<Row> = (1..=50).map(|i| (i as i64, "a", i, i as f64)).collect();
    for r in &rows {
        h.add(&raw(r));
    }
    let recorded = h.finish(BTreeMap::new()).locator;
    for changed in [1usize, 17, 50] {
        let mut h = SpanHasher::default();
        for (i, r) in rows.iter().enumerate() {
            let mut r = *r;
            if i + 1 == changed {
                r.3 = -1.0;
            }
            h.add(&raw(&r));
        }
        assert_eq!(locate(recorded, h.sums, 50), Some(changed as u64));
    }
    assert_eq!(locate(recorded, recorded, 50), None);
}

#[test]
fn readings_before_a_baseline_are_reported_as_written_before_checkpoints() {
    let (rows, mut cps) = two_spans();
    // The first checkpoint of a file from an earlier build covers nothing.
    cps[0].1 = SpanHasher::default().finish(cps[0].1.through.clone());
    cps[0].1.baseline = true;
    let v = verify(cps.clone(), &rows).unwrap();
    assert_eq!((v.before_checkpoints, v.verified, v.spans), (10, 10, 1));
    assert_eq!(v.from_entry, Some(3));
    // Without the flag the same checkpoint would claim none of them.
    cps[0].1.baseline = false;
    assert!(matches!(
        verify(cps, &rows).unwrap_err(),
        ReadingsError::Added { entry: 2, .. }
    ));
}
