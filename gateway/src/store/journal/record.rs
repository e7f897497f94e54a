//! One journal record on disk: `len u32 | crc32c u32 | lsn u64 | kind u8 |
//! payload`, little-endian, 17 bytes of header.
//!
//! The checksum covers the segment's number (not stored: it is the file's
//! name), the LSN, the kind and the payload. The number is there because a
//! segment is recycled and because a restart leaves unsynced leftovers
//! behind the tail: a record that was written into a segment in an earlier
//! life, or under another number, fails its checksum in this one, whatever
//! its LSN. The decoder is a parser of outside bytes (a file a power cut
//! may have torn anywhere), so every length is checked before it is used.

use crc::{Crc, CRC_32_ISCSI};

/// CRC-32C: detects every burst error up to 32 bits and is the checksum
/// storage formats use for records of this size.
const CRC32C: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

/// Bytes before the payload.
pub const HEADER: usize = 17;

/// What a record holds. The codes are on disk: never renumber them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A sensor's first reading ever: its index in `Readings` records.
    Sensor,
    /// A batch of readings, compactly coded.
    Readings,
    /// Ingest's timer turn, so replay judges silence at the same instants.
    Tick,
    /// An event and its outbox entry, exactly as published.
    Event,
    /// A PUBACK: the outbox entry it removes.
    Ack,
    /// A clock record or jump.
    Clock,
    /// A manifest command and its answer.
    Command,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Sensor,
        Kind::Readings,
        Kind::Tick,
        Kind::Event,
        Kind::Ack,
        Kind::Clock,
        Kind::Command,
    ];

    pub fn code(self) -> u8 {
        match self {
            Kind::Sensor => 1,
            Kind::Readings => 2,
            Kind::Tick => 3,
            Kind::Event => 4,
            Kind::Ack => 5,
            Kind::Clock => 6,
            Kind::Command => 7,
        }
    }

    pub fn from_code(code: u8) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// A record read back, borrowing its payload from the segment's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub lsn: u64,
    pub kind: Kind,
    pub payload: &'a [u8],
}

/// Why the bytes at an offset are not a record: where replay stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// Fewer bytes left in the segment than the header, or than the length
    /// the header claims.
    Short,
    /// A length of zero with a zero checksum: never-written (zeroed) space,
    /// the ordinary end of a segment's records.
    Zeros,
    /// The checksum does not match: torn, garbage, or from another life of
    /// the segment.
    Checksum,
    /// A good record whose LSN does not follow the one before it in the
    /// segment: not of this life of the segment.
    OutOfOrder,
    /// The checksum matches but the kind is unknown (a newer build's record).
    UnknownKind(u8),
}

fn checksum(segment: u64, lsn: u64, kind: u8, payload: &[u8]) -> u32 {
    let mut digest = CRC32C.digest();
    digest.update(&segment.to_le_bytes());
    digest.update(&lsn.to_le_bytes());
    digest.update(&[kind]);
    digest.update(payload);
    digest.finalize()
}

/// Appends the record's bytes to `out`. The caller keeps payloads below
/// the segment size, so the length always fits a u32.
pub fn encode(out: &mut Vec<u8>, segment: u64, lsn: u64, kind: Kind, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(segment, lsn, kind.code(), payload).to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.push(kind.code());
    out.extend_from_slice(payload);
}

/// The bytes one record takes.
pub fn encoded_len(payload: usize) -> usize {
    HEADER + payload
}

/// Decodes the record at the start of `bytes`, written into segment
/// `segment`: the record and its encoded length, or why there is none.
pub fn decode(segment: u64, bytes: &[u8]) -> Result<(Record<'_>, usize), Bad> {
    let header = bytes.get(..HEADER).ok_or(Bad::Short)?;
    let word = |at: usize| [header[at], header[at + 1], header[at + 2], header[at + 3]];
    let len = u32::from_le_bytes(word(0));
    let crc = u32::from_le_bytes(word(4));
    let mut lsn = [0u8; 8];
    lsn.copy_from_slice(&header[8..16]);
    let lsn = u64::from_le_bytes(lsn);
    let code = header[16];
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| l.checked_add(HEADER))
        .ok_or(Bad::Short)?;
    let payload = bytes.get(HEADER..end).ok_or(Bad::Short)?;
    if checksum(segment, lsn, code, payload) != crc {
        // Told apart only after the checksum failed: an empty record whose
        // checksum happens to be zero is still a record.
        if header.iter().all(|b| *b == 0) {
            return Err(Bad::Zeros);
        }
        return Err(Bad::Checksum);
    }
    let kind = Kind::from_code(code).ok_or(Bad::UnknownKind(code))?;
    Ok((Record { lsn, kind, payload }, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(segment: u64, lsn: u64, kind: Kind, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&mut out, segment, lsn, kind, payload);
        out
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let bytes = one(3, 42, Kind::Event, b"{\"seq\":7}");
        let (record, used) = decode(3, &bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(record.lsn, 42);
        assert_eq!(record.kind, Kind::Event);
        assert_eq!(record.payload, b"{\"seq\":7}");
    }

    #[test]
    fn every_kind_code_reads_back_as_its_kind() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(Kind::from_code(0), None);
    }

    #[test]
    fn every_prefix_of_a_record_is_short() {
        let bytes = one(1, 9, Kind::Readings, &[7u8; 40]);
        for cut in 0..bytes.len() {
            assert_eq!(decode(1, &bytes[..cut]).map(|r| r.1), Err(Bad::Short));
        }
    }

    #[test]
    fn a_record_of_another_segment_fails_its_checksum() {
        let bytes = one(4, 9, Kind::Tick, &1i64.to_le_bytes());
        assert_eq!(decode(5, &bytes).map(|r| r.1), Err(Bad::Checksum));
    }

    #[test]
    fn any_flipped_bit_fails_the_checksum_or_the_length() {
        let bytes = one(2, 77, Kind::Ack, &5u64.to_le_bytes());
        for bit in 0..bytes.len() * 8 {
            let mut broken = bytes.clone();
            broken[bit / 8] ^= 1 << (bit % 8);
            let found = decode(2, &broken);
            assert!(
                matches!(found, Err(Bad::Checksum | Bad::Short)),
                "bit {bit}: {found:?}"
            );
        }
    }

    #[test]
    fn zeroed_space_is_told_from_a_torn_record() {
        assert_eq!(decode(1, &[0u8; 64]).map(|r| r.1), Err(Bad::Zeros));
    }

    #[test]
    fn an_unknown_kind_with_a_good_checksum_is_refused() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&checksum(1, 5, 200, &[]).to_le_bytes());
        bytes.extend_from_slice(&5u64.to_le_bytes());
        bytes.push(200);
        assert_eq!(decode(1, &bytes).map(|r| r.1), Err(Bad::UnknownKind(200)));
    }
}
