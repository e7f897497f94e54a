//! The reading journal (docs/journal.md): an append-only log that makes a
//! batch durable for about one 4 KiB page, where a durable redb commit
//! rewrites about 32 KB.
//!
//! Segments are files of a fixed size, zeroed once when created and then
//! recycled, never grown or truncated: an append changes no size and
//! allocates no block, so `fdatasync` writes the data pages and nothing
//! else. A segment's records end at the first bytes that are not a record
//! of *this* segment (see `record`); replay reads the segments in order of
//! their numbers and hands on the records from an LSN on, stopping at the
//! first segment end it cannot continue from.
//!
//! Three rules keep a stale record from ever being read as the next one:
//! - the checksum covers the segment's number, and a number is never used
//!   twice (a recycled file is renamed to a new one);
//! - every open starts a new segment, so nothing is ever appended behind
//!   bytes a crash may have left half-written (a dropped write followed by
//!   one that landed);
//! - a segment is synced before the next is begun, and at open every
//!   segment read is synced, so a later segment never holds records that a
//!   power cut could leave without the ones before them.
//!
//! One room: the three rules above bind replay, append, roll and recycle
//! together; split, each half would keep only some of them in sight.

pub mod payload;
mod record;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub use record::{decode, encode, encoded_len, Bad, Kind, Record, HEADER};

/// A segment file as the journal uses it: the whole of it read at open,
/// then positioned writes and syncs. Tests put a recorder here.
pub trait SegmentFile: Send {
    fn read_all(&mut self) -> io::Result<Vec<u8>>;
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    fn sync_data(&mut self) -> io::Result<()>;
}

impl SegmentFile for File {
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        let len = self.metadata()?.len();
        let mut out = vec![0; usize::try_from(len).map_err(io::Error::other)?];
        self.read_exact_at(&mut out, 0)?;
        Ok(out)
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.write_all_at(data, offset)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }
}

/// Opens a segment file for reading and writing (it exists).
pub type Opener = Box<dyn Fn(&Path) -> io::Result<Box<dyn SegmentFile>> + Send>;

/// The journal's directory for the database at `db`: beside it, named
/// after it, so a copy of the two together is a copy of the gateway's data.
pub fn dir_beside(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".journal");
    db.with_file_name(name)
}

/// The real files.
pub fn real_files() -> Opener {
    Box::new(|path| {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Box::new(file) as Box<dyn SegmentFile>)
    })
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Records are missing between two that are there: never the work of a
    /// crash (see the module's rules), so the journal refuses to go on
    /// rather than build on a hole.
    #[error(
        "journal {path}: record {expected} is missing, the next one found is {found}; \
         the journal is damaged"
    )]
    Gap {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("a journal record of {len} B does not fit a segment ({max} B at most)")]
    TooLarge { len: usize, max: usize },
    #[error("a journal segment of {0} B is not a whole number of 4 KiB pages of at least one")]
    SegmentSize(u64),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Bytes per segment: a whole number of 4 KiB pages.
    pub segment_size: u64,
    /// Recycled segments kept for reuse; more are deleted.
    pub spares: usize,
}

impl Default for Options {
    /// 4 MiB holds about 50 minutes of readings at 100 values/s, several
    /// fold intervals, so a fold recycles a segment rarely.
    fn default() -> Options {
        Options {
            segment_size: 4 << 20,
            spares: 2,
        }
    }
}

/// Why replay ended where it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// No segment held a record.
    Empty,
    /// The last segment's records end at zeroed space: a clean end.
    Clean,
    /// They end at bytes that are not a record (torn, or garbage): what a
    /// crash leaves; everything before was handed on.
    Torn(Bad),
}

/// What replay found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// Records handed on (at or after the LSN asked for).
    pub records: u64,
    /// The LSN the next append gets.
    pub next_lsn: u64,
    pub tail: Tail,
    /// Segments read.
    pub segments: usize,
}

#[derive(Debug, Clone)]
struct Segment {
    number: u64,
    /// The last LSN it holds, if any.
    last_lsn: Option<u64>,
}

/// The journal's files, as listed at open.
struct Listing {
    segments: Vec<u64>,
    spares: Vec<u64>,
}

fn segment_name(number: u64) -> String {
    format!("{number:016}.seg")
}

fn spare_name(number: u64) -> String {
    format!("spare-{number:016}.seg")
}

const CREATING: &str = "creating.tmp";

fn list(dir: &Path) -> Result<Listing, JournalError> {
    let mut listing = Listing {
        segments: Vec::new(),
        spares: Vec::new(),
    };
    for entry in std::fs::read_dir(dir).map_err(io_at(dir))? {
        let name = entry.map_err(io_at(dir))?.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".seg") else {
            continue;
        };
        if let Some(n) = stem.strip_prefix("spare-") {
            if let Ok(n) = n.parse() {
                listing.spares.push(n);
            }
        } else if let Ok(n) = stem.parse() {
            listing.segments.push(n);
        }
    }
    listing.segments.sort_unstable();
    listing.spares.sort_unstable();
    Ok(listing)
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

/// Reads the journal in `dir` and hands `each` every record from `from`
/// on, in LSN order, without writing anything: what an offline reader
/// (`coldgate report` on a stopped gateway's files) does.
pub fn read(
    dir: &Path,
    from: u64,
    open_file: &Opener,
    mut each: impl FnMut(Record<'_>),
) -> Result<Replayed, JournalError> {
    let (replayed, _) = scan(dir, from, open_file, &mut each, false)?;
    Ok(replayed)
}

fn scan(
    dir: &Path,
    from: u64,
    open_file: &Opener,
    each: &mut dyn FnMut(Record<'_>),
    sync: bool,
) -> Result<(Replayed, Vec<Segment>), JournalError> {
    let listing = match std::fs::metadata(dir) {
        Ok(_) => list(dir)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Listing {
            segments: Vec::new(),
            spares: Vec::new(),
        },
        Err(e) => return Err(io_at(dir)(e)),
    };
    let mut replayed = Replayed {
        records: 0,
        next_lsn: from,
        tail: Tail::Empty,
        segments: 0,
    };
    let mut segments = Vec::new();
    for number in listing.segments {
        let path = dir.join(segment_name(number));
        let mut file = open_file(&path).map_err(io_at(&path))?;
        let bytes = file.read_all().map_err(io_at(&path))?;
        if sync {
            file.sync_data().map_err(io_at(&path))?;
        }
        replayed.segments += 1;
        let (records, end) = segment_records(number, &bytes);
        let last_lsn = records.last().map(|r| r.lsn);
        for record in records {
            if record.lsn > replayed.next_lsn {
                return Err(JournalError::Gap {
                    path,
                    expected: replayed.next_lsn,
                    found: record.lsn,
                });
            }
            if record.lsn == replayed.next_lsn {
                each(record);
                replayed.records += 1;
                replayed.next_lsn += 1;
            }
        }
        // The tail is where the last segment that held records ends; an
        // empty segment after it (a start that appended nothing) adds none.
        if last_lsn.is_some() {
            replayed.tail = match end {
                Bad::Zeros => Tail::Clean,
                bad => Tail::Torn(bad),
            };
        }
        segments.push(Segment { number, last_lsn });
    }
    Ok((replayed, segments))
}

/// The records of one segment's bytes, from its start to the first bytes
/// that are not a record of this life of segment `number`, and why they
/// are not. The parser of outside bytes (fuzzed: `fuzz/journal_segment`).
pub fn segment_records(number: u64, bytes: &[u8]) -> (Vec<Record<'_>>, Bad) {
    let mut records: Vec<Record<'_>> = Vec::new();
    let mut at = 0;
    loop {
        let (record, used) = match decode(number, bytes.get(at..).unwrap_or_default()) {
            Ok(found) => found,
            Err(bad) => return (records, bad),
        };
        // Within a segment's one life LSNs only grow by one; anything else
        // is not a record of this life.
        if records.last().is_some_and(|l| record.lsn != l.lsn + 1) {
            return (records, Bad::OutOfOrder);
        }
        records.push(record);
        at += used;
    }
}

/// The journal, open for appending: one writer.
pub struct Journal {
    dir: PathBuf,
    options: Options,
    open_file: Opener,
    /// Every numbered segment, oldest first; the last is being appended to.
    segments: Vec<Segment>,
    current: Box<dyn SegmentFile>,
    /// Where in the current segment the next bytes go.
    offset: u64,
    /// Records appended but not yet written.
    buffer: Vec<u8>,
    next_lsn: u64,
    /// The highest number any segment or spare has had: the next is above.
    highest: u64,
    spares: Vec<u64>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.dir)
            .field("segments", &self.segments.len())
            .field("next_lsn", &self.next_lsn)
            .finish()
    }
}

impl Journal {
    /// Opens (creating) the journal in `dir`, hands `each` every record from
    /// `from` on (the first LSN not yet folded), and begins a new segment
    /// for what follows.
    pub fn open(
        dir: &Path,
        options: Options,
        from: u64,
        open_file: Opener,
        mut each: impl FnMut(Record<'_>),
    ) -> Result<(Journal, Replayed), JournalError> {
        if options.segment_size < 4096 || options.segment_size % 4096 != 0 {
            return Err(JournalError::SegmentSize(options.segment_size));
        }
        if std::fs::metadata(dir).is_err() {
            std::fs::create_dir_all(dir).map_err(io_at(dir))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        let creating = dir.join(CREATING);
        match std::fs::remove_file(&creating) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_at(&creating)(e)),
            _ => {}
        }
        let (replayed, segments) = scan(dir, from, &open_file, &mut each, true)?;
        let listing = list(dir)?;
        let highest = listing
            .segments
            .iter()
            .chain(&listing.spares)
            .copied()
            .max()
            .unwrap_or(0);
        let mut journal = Journal {
            dir: dir.to_path_buf(),
            options,
            open_file,
            segments,
            // Replaced by the roll below before anything is written.
            current: Box::new(Nowhere),
            offset: 0,
            buffer: Vec::new(),
            next_lsn: replayed.next_lsn,
            highest,
            spares: listing.spares,
        };
        journal.begin_segment()?;
        Ok((journal, replayed))
    }

    /// The LSN the next append gets.
    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// The current segment's number and where its next record goes (after
    /// the records not yet written): for tests and the power-cut harness.
    pub fn position(&self) -> (u64, u64) {
        (
            self.current_number(),
            self.offset + self.buffer.len() as u64,
        )
    }

    /// Numbered segments, the current one included.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Adds a record to the batch; durable once [`Journal::sync`] returned.
    pub fn append(&mut self, kind: Kind, payload: &[u8]) -> Result<u64, JournalError> {
        let size = usize::try_from(self.options.segment_size).unwrap_or(usize::MAX);
        let len = encoded_len(payload.len());
        if len > size {
            return Err(JournalError::TooLarge {
                len: payload.len(),
                max: size - HEADER,
            });
        }
        if self.offset as usize + self.buffer.len() + len > size {
            self.begin_segment()?;
        }
        let lsn = self.next_lsn;
        let number = self.current_number();
        encode(&mut self.buffer, number, lsn, kind, payload);
        self.next_lsn += 1;
        if let Some(segment) = self.segments.last_mut() {
            segment.last_lsn = Some(lsn);
        }
        Ok(lsn)
    }

    /// Writes the batch and makes it durable: one `fdatasync`, none when
    /// nothing was appended.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.write_buffer()?;
        let path = self.current_path();
        self.current.sync_data().map_err(io_at(&path))
    }

    /// Makes the segments whose records are all at or below `folded` (in
    /// redb now) spares, oldest first; never the current one. Returns how
    /// many. Called after the fold's commit returned, so a crash before it
    /// only leaves more to replay.
    pub fn recycle(&mut self, folded: u64) -> Result<usize, JournalError> {
        let mut recycled = 0;
        while self.segments.len() > 1 && self.segments[0].last_lsn.is_none_or(|l| l <= folded) {
            let segment = self.segments.remove(0);
            let from = self.dir.join(segment_name(segment.number));
            if self.spares.len() < self.options.spares {
                let to = self.dir.join(spare_name(segment.number));
                std::fs::rename(&from, &to).map_err(io_at(&from))?;
                self.spares.push(segment.number);
            } else {
                std::fs::remove_file(&from).map_err(io_at(&from))?;
            }
            recycled += 1;
        }
        if recycled > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(recycled)
    }

    fn current_number(&self) -> u64 {
        self.segments.last().map_or(0, |s| s.number)
    }

    fn current_path(&self) -> PathBuf {
        self.dir.join(segment_name(self.current_number()))
    }

    fn write_buffer(&mut self) -> Result<(), JournalError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let path = self.current_path();
        self.current
            .write_at(self.offset, &self.buffer)
            .map_err(io_at(&path))?;
        self.offset += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }

    /// Syncs the current segment (if any) and begins the next: a spare
    /// renamed, or a file zeroed whole, its name durable before a record
    /// goes into it (a record synced into a file whose rename a power cut
    /// undid would be lost).
    fn begin_segment(&mut self) -> Result<(), JournalError> {
        if !self.segments.is_empty() {
            self.write_buffer()?;
            let path = self.current_path();
            self.current.sync_data().map_err(io_at(&path))?;
        }
        let number = self.highest + 1;
        let path = self.dir.join(segment_name(number));
        if let Some(spare) = self.spares.pop() {
            let from = self.dir.join(spare_name(spare));
            std::fs::rename(&from, &path).map_err(io_at(&from))?;
        } else {
            let creating = self.dir.join(CREATING);
            zeroed(&creating, self.options.segment_size)?;
            std::fs::rename(&creating, &path).map_err(io_at(&creating))?;
        }
        sync_dir(&self.dir)?;
        self.current = (self.open_file)(&path).map_err(io_at(&path))?;
        self.highest = number;
        self.offset = 0;
        self.segments.push(Segment {
            number,
            last_lsn: None,
        });
        Ok(())
    }
}

/// Writes a file of `size` zeros and syncs it: every block allocated and
/// written, so appends into it later change no metadata. In 4 KiB writes:
/// the page cache keeps a file's pages in folios as large as the writes
/// that made them (Linux 6.x, ext4), and a later append of 100 B dirties,
/// and makes `fdatasync` write, the whole folio. Zeroed in 64 KiB writes,
/// a segment cost 68 KB a sync instead of 4-7 KB (benches/journal.rs).
fn zeroed(path: &Path, size: u64) -> Result<(), JournalError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(io_at(path))?;
    let chunk = vec![0u8; 4096];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        io::Write::write_all(&mut file, &chunk[..n]).map_err(io_at(path))?;
        left -= n as u64;
    }
    file.sync_all().map_err(io_at(path))
}

/// The placeholder for the current segment before the first is begun.
struct Nowhere;

impl SegmentFile for Nowhere {
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        Ok(Vec::new())
    }
    fn write_at(&mut self, _: u64, _: &[u8]) -> io::Result<()> {
        Err(io::Error::other("no journal segment is open"))
    }
    fn sync_data(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
