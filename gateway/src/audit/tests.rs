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
