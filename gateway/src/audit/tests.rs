use super::*;

fn record(i: i64) -> AuditRecord {
    AuditRecord {
        at_ms: 1_700_000_000_000 + i,
        kind: AuditKind::ConfigReloaded,
        actor: "signal:SIGHUP".into(),
        details: serde_json::json!({ "sha256": format!("{i:064}"), "n": i }),
    }
}

/// A chain of `n` entries as stored rows, and its head.
fn chain(n: i64) -> (Vec<(u64, Vec<u8>)>, Head) {
    let mut head = Head::default();
    let mut rows = Vec::new();
    for i in 0..n {
        let e = AuditEntry::chained(&head, &record(i));
        head = e.head().unwrap();
        rows.push((e.seq, e.encode()));
    }
    (rows, head)
}

fn entry(rows: &[(u64, Vec<u8>)], seq: u64) -> AuditEntry {
    AuditEntry::decode(&rows[seq as usize - 1].1).unwrap()
}

#[test]
fn an_intact_chain_verifies_with_its_head() {
    let (rows, head) = chain(5);
    let v = verify(rows, Some(head)).unwrap();
    assert_eq!(v.entries, 5);
    assert_eq!(v.head, head);
    assert_eq!(
        verify(Vec::<(u64, Vec<u8>)>::new(), None).unwrap().entries,
        0
    );
}

#[test]
fn a_changed_entry_is_named() {
    let (mut rows, head) = chain(5);
    let mut e = entry(&rows, 3);
    e.details = e.details.replace("\"n\":2", "\"n\":20");
    rows[2].1 = e.encode();
    let err = verify(rows, Some(head)).unwrap_err();
    assert_eq!(err, VerifyError::Altered { seq: 3 });
    assert_eq!(err.entry(), 3);
}

#[test]
fn a_changed_entry_with_its_own_hash_recomputed_is_named_by_the_next_link() {
    let (mut rows, head) = chain(5);
    let mut e = entry(&rows, 3);
    e.actor = "someone else".into();
    let prev = entry(&rows, 2).head().unwrap();
    e.hash = hex::encode(e.compute_hash(&prev.hash));
    rows[2].1 = e.encode();
    let err = verify(rows, Some(head)).unwrap_err();
    assert_eq!(err, VerifyError::Relinked { seq: 3 });
    assert_eq!(err.entry(), 3);
    assert!(err.to_string().contains("entry 3 was altered"), "{err}");
}

#[test]
fn a_removed_middle_entry_is_named() {
    let (mut rows, head) = chain(5);
    rows.remove(2);
    let err = verify(rows, Some(head)).unwrap_err();
    assert_eq!(
        err,
        VerifyError::Missing {
            expected: 3,
            found: 4
        }
    );
    assert_eq!(err.entry(), 3);
}

#[test]
fn a_removed_middle_entry_with_the_rest_renumbered_and_rehashed_breaks_the_link() {
    let (rows, head) = chain(5);
    // Rebuild entries 4 and 5 as 3 and 4 with their own hashes recomputed,
    // keeping their stored prev_hash: entry 3 no longer follows entry 2.
    let mut forged = rows[..2].to_vec();
    for (new_seq, old) in [(3u64, 4u64), (4, 5)] {
        let mut e = entry(&rows, old);
        e.seq = new_seq;
        let prev: [u8; 32] = hex::decode(&e.prev_hash).unwrap().try_into().unwrap();
        e.hash = hex::encode(e.compute_hash(&prev));
        forged.push((new_seq, e.encode()));
    }
    let err = verify(forged, Some(head)).unwrap_err();
    assert_eq!(err, VerifyError::Relinked { seq: 2 });
}

#[test]
fn a_removed_last_entry_is_caught_by_the_recorded_head() {
    let (mut rows, head) = chain(5);
    rows.pop();
    let err = verify(rows.clone(), Some(head)).unwrap_err();
    assert_eq!(
        err,
        VerifyError::Truncated {
            last: 4,
            anchored: 5
        }
    );
    assert_eq!(err.entry(), 5);
    // Without the head a shortened chain is self-consistent: that is why
    // the head is kept, and a missing head is itself reported.
    assert_eq!(
        verify(rows, None).unwrap_err(),
        VerifyError::NoAnchor { last: 4 }
    );
}

#[test]
fn a_last_entry_altered_and_rehashed_is_caught_by_the_recorded_head() {
    let (mut rows, head) = chain(5);
    let mut e = entry(&rows, 5);
    e.details = "{}".into();
    let prev = entry(&rows, 4).head().unwrap();
    e.hash = hex::encode(e.compute_hash(&prev.hash));
    rows[4].1 = e.encode();
    let err = verify(rows, Some(head)).unwrap_err();
    assert_eq!(
        err,
        VerifyError::HeadMismatch {
            last: 5,
            anchored: 5
        }
    );
    assert_eq!(err.entry(), 5);
}

#[test]
fn reordered_entries_are_named() {
    let (mut rows, head) = chain(5);
    let (a, b) = (rows[1].1.clone(), rows[2].1.clone());
    rows[1].1 = b;
    rows[2].1 = a;
    assert_eq!(
        verify(rows, Some(head)).unwrap_err(),
        VerifyError::Moved { seq: 2, claims: 3 }
    );
}

#[test]
fn garbage_in_an_entry_is_named() {
    let (mut rows, head) = chain(3);
    rows[0].1 = b"not json".to_vec();
    assert_eq!(
        verify(rows, Some(head)).unwrap_err(),
        VerifyError::Undecodable { seq: 1 }
    );
}

#[test]
fn the_head_round_trips_and_rejects_short_bytes() {
    let (_, head) = chain(2);
    assert_eq!(Head::decode(&head.encode()), Some(head));
    assert_eq!(Head::decode(&[0u8; 39]), None);
}

#[test]
fn the_hash_covers_every_field() {
    let base = AuditEntry::chained(&Head::default(), &record(1));
    let prev = GENESIS;
    let h = base.compute_hash(&prev);
    for change in [
        |e: &mut AuditEntry| e.seq += 1,
        |e: &mut AuditEntry| e.at_ms += 1,
        |e: &mut AuditEntry| e.kind.push('x'),
        |e: &mut AuditEntry| e.actor.push('x'),
        |e: &mut AuditEntry| e.details.push(' '),
    ] {
        let mut e = base.clone();
        change(&mut e);
        assert_ne!(e.compute_hash(&prev), h);
    }
    assert_ne!(base.compute_hash(&[1; 32]), h);
}

#[test]
fn the_head_reads_back_from_the_form_an_operator_copies() {
    let (_, head) = chain(3);
    let text = head.to_string();
    assert!(text.starts_with("3:"), "{text}");
    assert_eq!(text.parse::<Head>(), Ok(head));
    assert!("3".parse::<Head>().is_err());
    assert!("x:00".parse::<Head>().is_err());
    assert!(format!("3:{}", "0".repeat(63)).parse::<Head>().is_err());
}

#[test]
fn newest_entries_removed_with_the_head_rewritten_fail_only_against_an_anchor() {
    let (rows, anchor) = chain(5);
    let cut = rows[..3].to_vec();
    let rewritten = entry(&rows, 3).head().unwrap();
    // The file alone is consistent again: the recorded head was rewritten.
    assert_eq!(verify(cut.clone(), Some(rewritten)).unwrap().entries, 3);
    assert_eq!(
        check_anchor(cut.clone(), anchor),
        Err(AnchorError::Short {
            last: 3,
            anchored: 5
        })
    );
    // An older anchor is still reached: the trail only grew since.
    assert_eq!(check_anchor(cut, entry(&rows, 2).head().unwrap()), Ok(()));
    assert_eq!(check_anchor(rows, anchor), Ok(()));
}

#[test]
fn a_wiped_trail_fails_against_an_anchor() {
    let (_, anchor) = chain(2);
    let err = check_anchor(Vec::<(u64, Vec<u8>)>::new(), anchor).unwrap_err();
    assert_eq!(
        err,
        AnchorError::Short {
            last: 0,
            anchored: 2
        }
    );
    assert!(err.to_string().contains("wiped"), "{err}");
}

#[test]
fn a_trail_rebuilt_under_the_anchored_seq_fails_against_the_anchor() {
    let (rows, anchor) = chain(4);
    // Rebuilt from entry 2 with other content: a consistent chain, but
    // entry 4 no longer has the hash a subscriber holds.
    let mut head = entry(&rows, 1).head().unwrap();
    let mut forged = rows[..1].to_vec();
    for i in 1..4 {
        let mut r = record(i);
        r.actor = "someone else".into();
        let e = AuditEntry::chained(&head, &r);
        head = e.head().unwrap();
        forged.push((e.seq, e.encode()));
    }
    assert!(verify(forged.clone(), Some(head)).is_ok());
    assert_eq!(
        check_anchor(forged, anchor),
        Err(AnchorError::Differs { seq: 4 })
    );
}

#[test]
fn entries_without_a_checkpoint_hash_as_before() {
    // A trail written by an earlier build must still verify: an absent
    // checkpoint is left out of the hashed bytes entirely.
    let e = AuditEntry::chained(&Head::default(), &record(1));
    assert!(!String::from_utf8(e.canonical())
        .unwrap()
        .contains("readings"));
    let with = AuditEntry::chained_with(
        &Head::default(),
        &record(1),
        Some(readings::SpanHasher::default().finish(Default::default())),
    );
    assert_ne!(with.hash, e.hash);
    let mut stripped = with.clone();
    stripped.readings = None;
    assert_ne!(hex::encode(stripped.compute_hash(&GENESIS)), with.hash);
}
