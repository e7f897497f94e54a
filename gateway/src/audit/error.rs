/// Why an audit chain does not verify. Each names the first bad entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("entry {expected} is missing (the next one found is {found}): removed, or entries were reordered")]
    Missing { expected: u64, found: u64 },
    #[error("entry {seq} cannot be decoded: altered")]
    Undecodable { seq: u64 },
    #[error("entry {seq} holds entry {claims}: entries were moved or reordered")]
    Moved { seq: u64, claims: u64 },
    #[error("entry 1 does not start the chain: altered")]
    BadGenesis,
    #[error("entry {seq} was altered and its hash recomputed, or an entry after it was replaced: entry {} does not link to it", .seq + 1)]
    Relinked { seq: u64 },
    #[error("entry {seq} was altered: its hash does not match its content")]
    Altered { seq: u64 },
    #[error("the chain ends at entry {last} but its recorded head is entry {anchored}: entries after {last} were removed")]
    Truncated { last: u64, anchored: u64 },
    #[error("entry {last} does not match the recorded chain head (entry {anchored}): the last entry was altered and rehashed, or the head was changed")]
    HeadMismatch { last: u64, anchored: u64 },
    #[error("the chain has {last} entries but no recorded head: the head was removed")]
    NoAnchor { last: u64 },
}

impl VerifyError {
    /// The first entry found bad (0 when only the head is at fault).
    pub fn entry(&self) -> u64 {
        match *self {
            VerifyError::Missing { expected, .. } => expected,
            VerifyError::Undecodable { seq }
            | VerifyError::Moved { seq, .. }
            | VerifyError::Relinked { seq }
            | VerifyError::Altered { seq } => seq,
            VerifyError::BadGenesis => 1,
            VerifyError::Truncated { last, .. } => last + 1,
            VerifyError::HeadMismatch { last, .. } => last,
            VerifyError::NoAnchor { .. } => 0,
        }
    }
}

/// Why a trail does not reach an anchor (a head held outside the device).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    #[error("the trail ends at entry {last} but the anchor is entry {anchored}: entries after {last} were removed{}", if *.last == 0 { " (the whole trail was wiped)" } else { "" })]
    Short { last: u64, anchored: u64 },
    #[error("entry {seq} does not have the anchored hash: the trail was rewritten at or before entry {seq}")]
    Differs { seq: u64 },
}
