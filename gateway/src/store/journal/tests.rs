use std::os::unix::fs::FileExt;

use proptest::prelude::*;

use super::*;

fn small() -> Options {
    Options {
        segment_size: 4096,
        spares: 2,
    }
}

/// The records a replay handed on: LSN, kind, payload.
type Seen = Vec<(u64, Kind, Vec<u8>)>;

fn open(dir: &Path, options: Options, from: u64) -> (Journal, Replayed, Seen) {
    let mut seen = Vec::new();
    let (journal, replayed) = Journal::open(dir, options, from, real_files(), |r| {
        seen.push((r.lsn, r.kind, r.payload.to_vec()))
    })
    .unwrap();
    (journal, replayed, seen)
}

fn payload(i: u64, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(segment_name(number))
}

/// Overwrites `data` into segment `number` at `offset`, as a crash would.
fn scribble(dir: &Path, number: u64, offset: u64, data: &[u8]) {
    let file = OpenOptions::new()
        .write(true)
        .open(segment_path(dir, number))
        .unwrap();
    file.write_all_at(data, offset).unwrap();
}

#[test]
fn a_synced_batch_replays_in_order_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, replayed, seen) = open(dir.path(), Options::default(), 1);
    assert_eq!(replayed.tail, Tail::Empty);
    assert!(seen.is_empty());
    for i in 1..=50 {
        assert_eq!(journal.append(Kind::Readings, &payload(i, 40)).unwrap(), i);
    }
    journal.sync().unwrap();
    drop(journal);
    let (journal, replayed, seen) = open(dir.path(), Options::default(), 1);
    assert_eq!(replayed.records, 50);
    assert_eq!(replayed.tail, Tail::Clean);
    assert_eq!(journal.next_lsn(), 51);
    let wanted: Vec<_> = (1..=50)
        .map(|i| (i, Kind::Readings, payload(i, 40)))
        .collect();
    assert_eq!(seen, wanted);
}

#[test]
fn replay_begins_at_the_first_lsn_not_folded() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _, _) = open(dir.path(), Options::default(), 1);
    for i in 1..=10 {
        journal.append(Kind::Tick, &payload(i, 8)).unwrap();
    }
    journal.sync().unwrap();
    drop(journal);
    let (_, replayed, seen) = open(dir.path(), Options::default(), 7);
    assert_eq!(replayed.records, 4);
    assert_eq!(
        seen.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![7, 8, 9, 10]
    );
}

#[test]
fn appends_not_synced_are_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _, _) = open(dir.path(), Options::default(), 1);
    journal.append(Kind::Tick, b"synced").unwrap();
    journal.sync().unwrap();
    journal.append(Kind::Tick, b"never synced").unwrap();
    drop(journal);
    let (_, replayed, seen) = open(dir.path(), Options::default(), 1);
    assert_eq!(replayed.records, 1);
    assert_eq!(seen[0].2, b"synced");
}

#[test]
fn a_torn_tail_is_ignored_at_every_cut() {
    let mut record = Vec::new();
    encode(&mut record, 1, 4, Kind::Readings, &payload(4, 100));
    for cut in 1..record.len() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _, _) = open(dir.path(), Options::default(), 1);
        for i in 1..=3 {
            journal.append(Kind::Readings, &payload(i, 100)).unwrap();
        }
        journal.sync().unwrap();
        let (number, offset) = journal.position();
        assert_eq!(number, 1);
        drop(journal);
        scribble(dir.path(), 1, offset, &record[..cut]);
        let (journal, replayed, seen) = open(dir.path(), Options::default(), 1);
        assert_eq!(replayed.records, 3, "cut at {cut}");
        assert!(matches!(replayed.tail, Tail::Torn(_)), "cut at {cut}");
        assert_eq!(journal.next_lsn(), 4);
        assert_eq!(seen.last().unwrap().2, payload(3, 100));
    }
}

#[test]
fn garbage_after_the_tail_is_never_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _, _) = open(dir.path(), Options::default(), 1);
    journal.append(Kind::Event, b"{}").unwrap();
    journal.sync().unwrap();
    let (number, offset) = journal.position();
    drop(journal);
    let garbage: Vec<u8> = (0..3000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    scribble(dir.path(), number, offset, &garbage);
    let (_, replayed, _) = open(dir.path(), Options::default(), 1);
    assert_eq!(replayed.records, 1);
    assert!(
        matches!(replayed.tail, Tail::Torn(_)),
        "{:?}",
        replayed.tail
    );
}

#[test]
fn a_later_record_behind_a_torn_one_is_not_replayed() {
    // A disk that dropped one write and kept the next: the record after
    // the hole is whole, but what follows a hole is never handed on.
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _, _) = open(dir.path(), Options::default(), 1);
    journal.append(Kind::Tick, &payload(1, 8)).unwrap();
    journal.sync().unwrap();
    let (_, offset) = journal.position();
    drop(journal);
    let mut two = Vec::new();
    encode(&mut two, 1, 2, Kind::Tick, &payload(2, 8));
    let mut three = Vec::new();
    encode(&mut three, 1, 3, Kind::Tick, &payload(3, 8));
    scribble(dir.path(), 1, offset + two.len() as u64, &three);
    let (journal, replayed, _) = open(dir.path(), Options::default(), 1);
    assert_eq!(replayed.records, 1);
    assert_eq!(journal.next_lsn(), 2);
}

#[test]
fn every_open_begins_a_new_segment_and_the_lsns_go_on() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3u64 {
        let (mut journal, replayed, _) = open(dir.path(), Options::default(), 1);
        assert_eq!(replayed.records, round * 2);
        assert_eq!(journal.position(), (round + 1, 0));
        journal.append(Kind::Tick, b"a").unwrap();
        journal.append(Kind::Tick, b"b").unwrap();
        journal.sync().unwrap();
    }
}

#[test]
fn a_record_behind_the_tail_of_an_earlier_life_is_never_read() {
    // Before a crash, records 2 and 3 were written but only 3 landed. The
    // restart resumes at 2 in a new segment; the stale 3 in the old one
    // must not be read when the new segment's records are replayed.
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _, _) = open(dir.path(), Options::default(), 1);
    journal.append(Kind::Tick, &payload(1, 8)).unwrap();
    journal.sync().unwrap();
    let (_, offset) = journal.position();
    drop(journal);
    let mut two = Vec::new();
    encode(&mut two, 1, 2, Kind::Tick, &payload(2, 8));
    let mut stale = Vec::new();
    encode(&mut stale, 1, 3, Kind::Tick, b"stale");
    scribble(dir.path(), 1, offset + two.len() as u64, &stale);
    let (mut journal, _, _) = open(dir.path(), Options::default(), 1);
    // As long as the lost record 2: appended in place, the stale 3 would
    // follow it exactly.
    assert_eq!(journal.append(Kind::Tick, b"new two!").unwrap(), 2);
    journal.sync().unwrap();
    drop(journal);
    let (journal, _, seen) = open(dir.path(), Options::default(), 1);
    assert_eq!(journal.next_lsn(), 3);
    assert_eq!(seen[1].2, b"new two!");
}

#[test]
fn full_segments_roll_and_recycled_ones_never_replay_their_old_records() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _, _) = open(dir.path(), small(), 1);
    // 217 B a record: 18 to a 4 KiB segment.
    for i in 1..=100 {
        journal.append(Kind::Readings, &payload(i, 200)).unwrap();
        if i % 7 == 0 {
            journal.sync().unwrap();
        }
    }
    journal.sync().unwrap();
    assert_eq!(journal.segment_count(), 6);
    assert_eq!(journal.recycle(60).unwrap(), 3);
    assert_eq!(journal.segment_count(), 3);
    // The spares (two kept, one deleted) are taken by the next rolls, their
    // old records still in them.
    for i in 101..=160 {
        journal.append(Kind::Readings, &payload(i, 200)).unwrap();
    }
    journal.sync().unwrap();
    drop(journal);
    let (_, replayed, seen) = open(dir.path(), small(), 61);
    assert_eq!(replayed.records, 100);
    let wanted: Vec<_> = (61..=160)
        .map(|i| (i, Kind::Readings, payload(i, 200)))
        .collect();
    assert_eq!(seen, wanted);
}

#[test]
fn a_missing_segment_is_refused_as_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _, _) = open(dir.path(), small(), 1);
    for i in 1..=60 {
        journal.append(Kind::Readings, &payload(i, 200)).unwrap();
    }
    journal.sync().unwrap();
    drop(journal);
    std::fs::remove_file(segment_path(dir.path(), 2)).unwrap();
    let found = Journal::open(dir.path(), small(), 1, real_files(), |_| {});
    assert!(
        matches!(
            found,
            Err(JournalError::Gap {
                expected: 19,
                found: 37,
                ..
            })
        ),
        "{found:?}"
    );
}

#[test]
fn a_record_larger_than_a_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _, _) = open(dir.path(), small(), 1);
    let found = journal.append(Kind::Event, &[0; 4096]);
    assert!(matches!(found, Err(JournalError::TooLarge { .. })));
    journal.append(Kind::Event, &[1; 4096 - HEADER]).unwrap();
}

#[test]
fn a_segment_size_off_the_page_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        segment_size: 5000,
        spares: 1,
    };
    let found = Journal::open(dir.path(), options, 1, real_files(), |_| {});
    assert!(matches!(found, Err(JournalError::SegmentSize(5000))));
}

/// What a crash did to the bytes after the last sync.
#[derive(Debug, Clone)]
enum Damage {
    /// Cut at this many bytes after the synced end, the rest as it was.
    Cut(usize),
    /// Garbage of this seed from this many bytes on.
    Garbage(usize, u64),
    /// Each 512-byte sector after the synced end kept or zeroed.
    Sectors(Vec<bool>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0usize..6000).prop_map(Damage::Cut),
        (0usize..6000, any::<u64>()).prop_map(|(at, seed)| Damage::Garbage(at, seed)),
        proptest::collection::vec(any::<bool>(), 1..16).prop_map(Damage::Sectors),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Replay over any damage after the last sync hands on exactly a
    /// prefix of what was appended, at least everything synced.
    #[test]
    fn replay_over_a_damaged_tail_gives_a_prefix_holding_every_synced_record(
        sizes in proptest::collection::vec(0usize..600, 1..60),
        synced_share in 0usize..=100,
        damage in damage(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _, _) = open(dir.path(), small(), 1);
        let synced = sizes.len() * synced_share / 100;
        for (i, size) in sizes[..synced].iter().enumerate() {
            journal.append(Kind::Readings, &payload(i as u64 + 1, *size)).unwrap();
        }
        journal.sync().unwrap();
        let (number, end) = journal.position();
        for (i, size) in sizes.iter().enumerate().skip(synced) {
            journal.append(Kind::Readings, &payload(i as u64 + 1, *size)).unwrap();
        }
        // A roll synced the segment it left: the last sync was then there.
        let (last, _) = journal.position();
        let (number, end) = if last == number { (number, end) } else { (last, 0) };
        journal.sync().unwrap();
        drop(journal);
        // Damage only the segment of the last sync, from its synced end:
        // no later segment was begun after it.
        let path = segment_path(dir.path(), number);
        let mut bytes = std::fs::read(&path).unwrap();
        let start = end as usize;
        match damage {
            Damage::Cut(at) => {
                let at = (start + at).min(bytes.len());
                bytes[at..].iter_mut().for_each(|b| *b = 0);
            }
            Damage::Garbage(at, seed) => {
                let at = (start + at).min(bytes.len());
                let mut x = seed | 1;
                for b in &mut bytes[at..] {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    *b = x as u8;
                }
            }
            Damage::Sectors(kept) => {
                let first = start / 512;
                for (k, keep) in kept.iter().enumerate() {
                    let from = ((first + k) * 512).max(start).min(bytes.len());
                    let to = ((first + k + 1) * 512).min(bytes.len());
                    if !keep {
                        bytes[from..to].iter_mut().for_each(|b| *b = 0);
                    }
                }
            }
        }
        std::fs::write(&path, &bytes).unwrap();
        let (_, replayed, seen) = open(dir.path(), small(), 1);
        prop_assert!(seen.len() >= synced, "{} of {} synced records", seen.len(), synced);
        prop_assert!(seen.len() <= sizes.len());
        prop_assert_eq!(replayed.records as usize, seen.len());
        for (i, (lsn, kind, bytes)) in seen.iter().enumerate() {
            prop_assert_eq!(*lsn, i as u64 + 1);
            prop_assert_eq!(*kind, Kind::Readings);
            prop_assert_eq!(bytes, &payload(i as u64 + 1, sizes[i]));
        }
    }
}
