//! Tamper evidence for the readings themselves, tied into the audit chain.
//!
//! Hashing every commit would cost the SD card a page per 2 s commit (the
//! state table is not otherwise written in steady state, docs/time.md), so
//! nothing extra is written per commit. Instead, each audit entry (and one
//! made for the purpose at least hourly, `readings_checkpoint`) carries a
//! [`Checkpoint`] of the readings committed since the previous checkpoint:
//! the *span*. Membership in a span needs no batch boundaries: per-sensor
//! seqs are handed out in commit order, so a checkpoint recording each
//! sensor's last seq (`through`) says exactly which readings it covers,
//! whatever their times (a clock stepped back, late readings). The span is
//! hashed in key order, the order a verifier reads the table in, so
//! verification is one streaming pass.
//!
//! Besides the digest a checkpoint holds a *locator*: two sums modulo a
//! prime over a hash of each reading, the second weighted by its position.
//! When exactly one reading of a span was changed, their differences give
//! its position, so `verify` can name it instead of only the span. It is a
//! pointer for an investigator, not evidence: the digest is the evidence.
//!
//! One room: the checkpoint's digest is computed when it is written and when it is verified; both
//! must walk the readings the same way.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The prime (2^61 - 1) the locator sums are taken modulo.
const P: u64 = (1 << 61) - 1;

/// The readings covered by an audit entry: those committed since the
/// previous checkpoint. Stored inside the entry, so the entry's hash covers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Per sensor, the last seq committed when the checkpoint was made:
    /// this and every earlier checkpoint cover all seqs up to it.
    pub through: BTreeMap<String, u64>,
    /// Readings in the span, as found when it was made.
    pub readings: u64,
    /// The time of the oldest reading in the span (ms), if any.
    pub from_ms: Option<i64>,
    /// Hex SHA-256 over the span's readings in key order (see [`SpanHasher`]).
    pub digest: String,
    /// The single-change locator sums (see the module comment).
    pub locator: [u64; 2],
    /// The first checkpoint in a file written by an earlier build: it
    /// records `through` but covers none of the readings up to it, because
    /// hashing a full card at start could outlast the service watchdog.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub baseline: bool,
}

/// One stored reading as the table holds it, with its sensor's name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawReading<'a> {
    pub sensor: &'a str,
    pub at_ms: i64,
    pub seq: u64,
    pub code: u8,
    pub value: f64,
}

impl RawReading<'_> {
    /// The name is hashed rather than the table's sensor index, so that
    /// re-labelling sensors (swapping names in the `sensors` table) shows.
    fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.sensor.len() + 33);
        out.extend_from_slice(&(self.sensor.len() as u32).to_be_bytes());
        out.extend_from_slice(self.sensor.as_bytes());
        out.extend_from_slice(&self.at_ms.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.push(self.code);
        out.extend_from_slice(&self.value.to_bits().to_be_bytes());
        out
    }
}

/// Accumulates one span, fed in key order.
#[derive(Clone)]
pub struct SpanHasher {
    sha: Sha256,
    count: u64,
    sums: [u64; 2],
    from_ms: Option<i64>,
}

impl Default for SpanHasher {
    fn default() -> Self {
        let mut sha = Sha256::new();
        sha.update(b"coldgate.readings/1\n");
        SpanHasher {
            sha,
            count: 0,
            sums: [0, 0],
            from_ms: None,
        }
    }
}

impl SpanHasher {
    pub fn add(&mut self, r: &RawReading) {
        let bytes = r.canonical();
        self.sha.update(&bytes);
        self.count += 1;
        let x = fnv1a(&bytes) % P;
        self.sums[0] = add_mod(self.sums[0], x);
        self.sums[1] = add_mod(self.sums[1], mul_mod(self.count % P, x));
        self.from_ms = Some(self.from_ms.map_or(r.at_ms, |f| f.min(r.at_ms)));
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn finish(self, through: BTreeMap<String, u64>) -> Checkpoint {
        Checkpoint {
            through,
            readings: self.count,
            from_ms: self.from_ms,
            digest: hex::encode(self.sha.finalize()),
            locator: self.sums,
            baseline: false,
        }
    }
}

/// The locator needs a value that changes with the reading, not a
/// cryptographic hash (the digest is the evidence): FNV-1a, cheap beside the
/// SHA-256 every reading already goes through.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn add_mod(a: u64, b: u64) -> u64 {
    ((u128::from(a) + u128::from(b)) % u128::from(P)) as u64
}

fn mul_mod(a: u64, b: u64) -> u64 {
    ((u128::from(a) * u128::from(b)) % u128::from(P)) as u64
}

fn sub_mod(a: u64, b: u64) -> u64 {
    add_mod(a % P, P - b % P)
}

fn inv_mod(a: u64) -> u64 {
    // Fermat: a^(P-2) mod P.
    let (mut base, mut exp, mut acc) = (a % P, P - 2, 1u64);
    while exp > 0 {
        if exp & 1 == 1 {
            acc = mul_mod(acc, base);
        }
        base = mul_mod(base, base);
        exp >>= 1;
    }
    acc
}

/// The 1-based position in a span of `count` readings of the one reading
/// that changed, if the recorded and recomputed sums say exactly one did.
pub fn locate(recorded: [u64; 2], found: [u64; 2], count: u64) -> Option<u64> {
    let d0 = sub_mod(found[0], recorded[0]);
    if d0 == 0 {
        return None;
    }
    let pos = mul_mod(sub_mod(found[1], recorded[1]), inv_mod(d0));
    (1..=count).contains(&pos).then_some(pos)
}

/// A reading named in a report.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedReading {
    pub sensor: String,
    pub seq: u64,
    pub at_ms: i64,
    pub value: f64,
}

impl NamedReading {
    pub fn of(r: &RawReading) -> NamedReading {
        NamedReading {
            sensor: r.sensor.to_string(),
            seq: r.seq,
            at_ms: r.at_ms,
            value: r.value,
        }
    }
}

impl std::fmt::Display for NamedReading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sensor {} seq {} at {} (value now {})",
            self.sensor,
            self.seq,
            crate::event::rfc3339(self.at_ms),
            self.value
        )
    }
}

/// Why the readings do not match the checkpoints. `entry` is the audit
/// entry whose checkpoint the span belongs to.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReadingsError {
    #[error("reading {reading} was altered: the readings checkpointed by audit entry {entry} no longer match their digest")]
    Altered { entry: u64, reading: NamedReading },
    #[error("the readings checkpointed by audit entry {entry} were altered (more than one, or a time changed); the span starts at {first}")]
    SpanAltered { entry: u64, first: NamedReading },
    #[error("audit entry {entry} checkpointed {recorded} readings but {found} are stored: readings were removed{}", .missing.as_ref().map(|m| format!(", the first {m}")).unwrap_or_default())]
    Removed {
        entry: u64,
        recorded: u64,
        found: u64,
        /// The first missing one, as "sensor S seq N (after ...)".
        missing: Option<String>,
    },
    #[error("audit entry {entry} checkpointed {recorded} readings but {found} are stored: readings were added{}", .added.as_ref().map(|r| format!(", the first {r}")).unwrap_or_default())]
    Added {
        entry: u64,
        recorded: u64,
        found: u64,
        added: Option<NamedReading>,
    },
    #[error("a reading at {at_ms} ms has sensor index {index}, which names no sensor: the sensors table or the reading was altered")]
    Unnamed { at_ms: i64, index: u32 },
}

/// What a successful readings check covered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadingsVerified {
    /// Readings whose span was checked against its digest.
    pub verified: u64,
    /// Spans checked, and the audit entry and time of the first.
    pub spans: u64,
    pub from_entry: Option<u64>,
    pub from_ms: Option<i64>,
    /// Readings of spans partly trimmed (retention, size cap): not checkable.
    pub trimmed_spans: u64,
    pub unverifiable: u64,
    /// Readings written before the file had checkpoints (up to a baseline).
    pub before_checkpoints: u64,
    /// Readings committed after the last checkpoint: not covered yet.
    pub uncovered: u64,
    pub uncovered_from_ms: Option<i64>,
    /// The audit entry of the last checkpoint (0 when there is none).
    pub last_checkpoint: u64,
}

struct Span {
    entry: u64,
    recorded: Checkpoint,
    hasher: SpanHasher,
    first: Option<NamedReading>,
}

/// Checks stored readings against the checkpoints of an audit chain that
/// was itself verified. Feed every reading in key order with
/// [`ReadingsVerifier::add`], then call [`ReadingsVerifier::finish`].
pub struct ReadingsVerifier {
    spans: Vec<Span>,
    /// Sensor → its `through` in each span, in span order (0 when absent).
    bounds: HashMap<String, Vec<u64>>,
    oldest_ms: Option<i64>,
    uncovered: u64,
    uncovered_from_ms: Option<i64>,
}

impl ReadingsVerifier {
    /// `checkpoints`: (audit entry seq, checkpoint) in chain order.
    pub fn new(checkpoints: Vec<(u64, Checkpoint)>) -> ReadingsVerifier {
        let n = checkpoints.len();
        let mut bounds: HashMap<String, Vec<u64>> = HashMap::new();
        for (i, (_, c)) in checkpoints.iter().enumerate() {
            for (sensor, through) in &c.through {
                bounds.entry(sensor.clone()).or_insert_with(|| vec![0; n])[i] = *through;
            }
        }
        // A sensor keeps its bound in checkpoints that do not list it.
        for v in bounds.values_mut() {
            for i in 1..v.len() {
                v[i] = v[i].max(v[i - 1]);
            }
        }
        ReadingsVerifier {
            spans: checkpoints
                .into_iter()
                .map(|(entry, recorded)| Span {
                    entry,
                    recorded,
                    hasher: SpanHasher::default(),
                    first: None,
                })
                .collect(),
            bounds,
            oldest_ms: None,
            uncovered: 0,
            uncovered_from_ms: None,
        }
    }

    /// The span (index into the checkpoints) that covers `r`; `None` when
    /// it was committed after the last checkpoint.
    pub fn span_of(&self, r: &RawReading) -> Option<usize> {
        let b = self.bounds.get(r.sensor)?;
        let i = b.partition_point(|through| *through < r.seq);
        (i < b.len()).then_some(i)
    }

    pub fn add(&mut self, r: &RawReading) {
        if self.oldest_ms.is_none() {
            self.oldest_ms = Some(r.at_ms);
        }
        match self.span_of(r) {
            Some(i) => {
                let span = &mut self.spans[i];
                span.hasher.add(r);
                if span.first.is_none() {
                    span.first = Some(NamedReading::of(r));
                }
            }
            None => {
                self.uncovered += 1;
                if self.uncovered_from_ms.is_none() {
                    self.uncovered_from_ms = Some(r.at_ms);
                }
            }
        }
    }

    /// What was verified, or the first span that does not match; name
    /// the reading it points at with [`ReadingsVerifier::explain`] and a
    /// second pass over the table.
    pub fn finish(&mut self) -> Result<ReadingsVerified, Mismatch> {
        let mut v = ReadingsVerified {
            uncovered: self.uncovered,
            uncovered_from_ms: self.uncovered_from_ms,
            last_checkpoint: self.spans.last().map_or(0, |s| s.entry),
            ..ReadingsVerified::default()
        };
        for (i, span) in std::mem::take(&mut self.spans).into_iter().enumerate() {
            let found = span.hasher.count();
            if span.recorded.baseline {
                v.before_checkpoints += found;
                continue;
            }
            let recorded = span.recorded.readings;
            // Trimming removes the oldest readings: a span reaching back to
            // the oldest kept reading may have lost some legitimately.
            let may_be_trimmed = match (span.recorded.from_ms, self.oldest_ms) {
                (Some(from), Some(oldest)) => from <= oldest,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if found < recorded && may_be_trimmed {
                v.trimmed_spans += 1;
                v.unverifiable += found;
                continue;
            }
            let (entry, first) = (span.entry, span.first.clone());
            if found != recorded {
                return Err(Mismatch {
                    span: i,
                    entry,
                    recorded,
                    found,
                    position: None,
                    first,
                });
            }
            let sums = span.hasher.sums;
            let digest = span.hasher.finish(BTreeMap::new()).digest;
            if digest != span.recorded.digest {
                return Err(Mismatch {
                    span: i,
                    entry,
                    recorded,
                    found,
                    position: locate(span.recorded.locator, sums, found),
                    first,
                });
            }
            if found > 0 {
                if v.from_entry.is_none() {
                    v.from_entry = Some(entry);
                    v.from_ms = span.recorded.from_ms;
                }
                v.spans += 1;
                v.verified += found;
            }
        }
        Ok(v)
    }

    /// Starts the second pass that names the reading `m` points at.
    pub fn explain(&self, m: Mismatch) -> Explainer<'_> {
        Explainer {
            verifier: self,
            m,
            seen: 0,
            seqs: HashMap::new(),
            named: None,
        }
    }
}

/// The first span that does not match its checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// Index into the checkpoints, and the audit entry holding it.
    pub span: usize,
    pub entry: u64,
    pub recorded: u64,
    pub found: u64,
    /// 1-based, in key order among the span's readings: the one reading
    /// that changed, when the locator says exactly one did.
    pub position: Option<u64>,
    pub first: Option<NamedReading>,
}

/// The second pass over the readings, in key order again: finds the
/// reading at the located position, or the seqs of the span, to say which
/// reading was removed or added.
pub struct Explainer<'a> {
    verifier: &'a ReadingsVerifier,
    m: Mismatch,
    seen: u64,
    /// Per sensor, the span's seqs with one reading of each.
    seqs: HashMap<String, Vec<NamedReading>>,
    named: Option<NamedReading>,
}

impl Explainer<'_> {
    pub fn add(&mut self, r: &RawReading) {
        if self.verifier.span_of(r) != Some(self.m.span) {
            return;
        }
        self.seen += 1;
        if self.m.found == self.m.recorded {
            if Some(self.seen) == self.m.position {
                self.named = Some(NamedReading::of(r));
            }
        } else {
            self.seqs
                .entry(r.sensor.to_string())
                .or_default()
                .push(NamedReading::of(r));
        }
    }

    pub fn finish(self) -> ReadingsError {
        let m = self.m;
        let first = m.first.clone().unwrap_or_else(|| NamedReading {
            sensor: "?".into(),
            seq: 0,
            at_ms: 0,
            value: 0.0,
        });
        if m.found == m.recorded {
            return match self.named {
                Some(reading) => ReadingsError::Altered {
                    entry: m.entry,
                    reading,
                },
                None => ReadingsError::SpanAltered {
                    entry: m.entry,
                    first,
                },
            };
        }
        // Per sensor, the span should hold every seq after the previous
        // checkpoint's bound up to its own: the first gap or repeat.
        let mut missing: Option<(i64, String)> = None;
        let mut repeat: Option<NamedReading> = None;
        let mut seqs = self.seqs;
        for (sensor, rows) in seqs.iter_mut() {
            rows.sort_by(|a, b| a.seq.cmp(&b.seq).then(a.at_ms.cmp(&b.at_ms)));
            let bounds = self.verifier.bounds.get(sensor);
            let lo = match (bounds, m.span) {
                (Some(b), i) if i > 0 => b[i - 1] + 1,
                _ => rows.first().map_or(1, |r| r.seq),
            };
            let mut expect = lo;
            let mut before: Option<&NamedReading> = None;
            for r in rows.iter() {
                if r.seq < expect {
                    if repeat.as_ref().is_none_or(|c| r.at_ms < c.at_ms) {
                        repeat = Some(r.clone());
                    }
                    continue;
                }
                if r.seq > expect {
                    let at = before.map_or(r.at_ms, |b| b.at_ms);
                    if missing.as_ref().is_none_or(|(t, _)| at < *t) {
                        let after = before
                            .map(|b| format!(" (after {b})"))
                            .unwrap_or_else(|| format!(" (before {r})"));
                        missing = Some((at, format!("sensor {sensor} seq {expect}{after}")));
                    }
                }
                expect = r.seq + 1;
                before = Some(r);
            }
            let hi = bounds.map_or(0, |b| b[m.span]);
            if let (true, Some(b)) = (expect <= hi, before) {
                if missing.as_ref().is_none_or(|(t, _)| b.at_ms < *t) {
                    missing = Some((b.at_ms, format!("sensor {sensor} seq {expect} (after {b})")));
                }
            }
        }
        let missing = missing.map(|(_, m)| m);
        if m.found < m.recorded {
            ReadingsError::Removed {
                entry: m.entry,
                recorded: m.recorded,
                found: m.found,
                missing,
            }
        } else {
            ReadingsError::Added {
                entry: m.entry,
                recorded: m.recorded,
                found: m.found,
                added: repeat,
            }
        }
    }
}
