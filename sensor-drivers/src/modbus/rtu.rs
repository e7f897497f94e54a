//! A small Modbus RTU master over any byte stream (a serial port, or a
//! pseudo-terminal in tests).
//!
//! Design: RTU has no transaction ids, so the only thing that ties a reply to
//! a request is timing. The master therefore (1) keeps the inter-frame gap
//! before every request, (2) accepts a reply only when its CRC, unit,
//! function and byte count all match the request, and (3) after a timeout or
//! a garbled frame waits until the line has been quiet for the drain window,
//! discarding whatever arrives, so that a late reply is never read as the
//! answer to the next request. Frame parsing ([`parse_reply`]) is pure and
//! never panics on any bytes.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::config::{Function, Parity, RtuBusConfig};
use super::error::{Exception, RequestError};

/// Longest valid read reply: unit, function, byte count, 250 data bytes, CRC.
const MAX_REPLY: usize = 255;

/// CRC-16/Modbus (reflected polynomial 0xA001, initial value 0xFFFF). On the
/// wire the low byte comes first.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in bytes {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// The 8-byte read request frame for `function` (0x03 or 0x04).
pub fn read_request(unit: u8, function: Function, address: u16, count: u16) -> [u8; 8] {
    let [ah, al] = address.to_be_bytes();
    let [ch, cl] = count.to_be_bytes();
    let head = [unit, function.code(), ah, al, ch, cl];
    let [crc_lo, crc_hi] = crc16(&head).to_le_bytes();
    [unit, function.code(), ah, al, ch, cl, crc_lo, crc_hi]
}

/// What the bytes received so far say about the reply.
#[derive(Debug, PartialEq)]
pub enum ReplyParse {
    /// Not a whole frame yet: keep reading.
    Incomplete,
    /// The answer to this request.
    Registers(Vec<u16>),
    /// The unit answered this request with an exception.
    Exception(Exception),
    /// A whole frame that is not the answer to this request, or noise.
    Bad(BadReply),
}

/// Why a received frame was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadReply {
    /// The CRC does not match.
    Crc,
    /// CRC fine, but not this request's answer.
    Mismatch(String),
}

impl From<BadReply> for RequestError {
    fn from(bad: BadReply) -> Self {
        match bad {
            BadReply::Crc => RequestError::Crc,
            BadReply::Mismatch(why) => RequestError::Mismatch(why),
        }
    }
}

fn crc_ok(frame: &[u8]) -> bool {
    match frame.split_last_chunk::<2>() {
        Some((body, tail)) => crc16(body).to_le_bytes() == *tail,
        None => false,
    }
}

/// Parses the reply to a read of `count` registers from `unit` with
/// `function`. Never panics, whatever `buf` holds.
pub fn parse_reply(unit: u8, function: Function, count: u16, buf: &[u8]) -> ReplyParse {
    let (Some(&got_unit), Some(&got_fn)) = (buf.first(), buf.get(1)) else {
        return ReplyParse::Incomplete;
    };
    let fc = function.code();
    if got_fn == fc | 0x80 {
        let Some(frame) = buf.get(..5) else {
            return ReplyParse::Incomplete;
        };
        if !crc_ok(frame) {
            return ReplyParse::Bad(BadReply::Crc);
        }
        if got_unit != unit {
            return ReplyParse::Bad(BadReply::Mismatch(format!(
                "exception from unit {got_unit}, expected unit {unit}"
            )));
        }
        return ReplyParse::Exception(Exception::from_code(frame[2]));
    }
    if got_fn != fc {
        // Unknown function: the length cannot be known, so this is noise or
        // another conversation. Wait for enough bytes to be sure it is not a
        // short frame still arriving, then refuse it.
        if buf.len() < 5 {
            return ReplyParse::Incomplete;
        }
        return ReplyParse::Bad(if crc_ok(buf) {
            BadReply::Mismatch(format!("function 0x{got_fn:02X}, expected 0x{fc:02X}"))
        } else {
            BadReply::Crc
        });
    }
    let Some(&byte_count) = buf.get(2) else {
        return ReplyParse::Incomplete;
    };
    let total = 5 + usize::from(byte_count);
    let Some(frame) = buf.get(..total) else {
        return ReplyParse::Incomplete;
    };
    if !crc_ok(frame) {
        return ReplyParse::Bad(BadReply::Crc);
    }
    if got_unit != unit {
        return ReplyParse::Bad(BadReply::Mismatch(format!(
            "reply from unit {got_unit}, expected unit {unit}"
        )));
    }
    if usize::from(byte_count) != 2 * usize::from(count) {
        return ReplyParse::Bad(BadReply::Mismatch(format!(
            "{byte_count} data bytes, expected {} for {count} registers",
            2 * usize::from(count)
        )));
    }
    let data = frame.get(3..total - 2).unwrap_or_default();
    ReplyParse::Registers(
        data.chunks_exact(2)
            .map(|w| u16::from_be_bytes([w[0], w[1]]))
            .collect(),
    )
}

/// Opens the serial port of a bus with its settings.
pub fn open_serial(bus: &RtuBusConfig) -> Result<tokio_serial::SerialStream, tokio_serial::Error> {
    let data_bits = match bus.data_bits {
        5 => tokio_serial::DataBits::Five,
        6 => tokio_serial::DataBits::Six,
        7 => tokio_serial::DataBits::Seven,
        _ => tokio_serial::DataBits::Eight,
    };
    let builder = tokio_serial::new(&bus.device, bus.baud)
        .data_bits(data_bits)
        .parity(match bus.parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Even => tokio_serial::Parity::Even,
            Parity::Odd => tokio_serial::Parity::Odd,
        })
        .stop_bits(if bus.stop_bits == 2 {
            tokio_serial::StopBits::Two
        } else {
            tokio_serial::StopBits::One
        })
        .flow_control(tokio_serial::FlowControl::None);
    tokio_serial::SerialStream::open(&builder)
}

/// The master's side of one RS-485 bus. Requests are strictly one at a time:
/// `read` takes `&mut self`.
#[derive(Debug)]
pub struct RtuMaster<T> {
    port: T,
    timeout: Duration,
    gap: Duration,
    drain: Duration,
    char_time: Duration,
    /// When the line was last busy (our frame sent, or a byte received).
    last_activity: Instant,
    /// Drain events that discarded bytes since [`Self::take_late_replies`].
    late_replies: u64,
}

impl<T: AsyncRead + AsyncWrite + Unpin> RtuMaster<T> {
    /// A master with the bus's timeout, gap and drain window.
    pub fn new(port: T, bus: &RtuBusConfig) -> Self {
        RtuMaster {
            port,
            timeout: bus.timeout,
            gap: bus.effective_gap(),
            drain: bus.drain,
            char_time: bus.char_time(),
            last_activity: Instant::now(),
            late_replies: 0,
        }
    }

    /// How many times stray bytes (late replies, noise) were discarded since
    /// the last call.
    pub fn take_late_replies(&mut self) -> u64 {
        std::mem::take(&mut self.late_replies)
    }

    /// Reads `count` registers from `unit`.
    pub async fn read(
        &mut self,
        unit: u8,
        function: Function,
        address: u16,
        count: u16,
    ) -> Result<Vec<u16>, RequestError> {
        tokio::time::sleep_until(self.last_activity + self.gap).await;
        // Anything already waiting is not an answer to a request not yet sent.
        if self.discard_pending() > 0 {
            self.late_replies += 1;
            tokio::time::sleep(self.gap).await;
        }
        let frame = read_request(unit, function, address, count);
        self.port.write_all(&frame).await?;
        self.port.flush().await?;
        let tx_time = self.char_time * 8;
        self.last_activity = Instant::now() + tx_time;
        let deadline = self.last_activity + self.timeout;

        let mut buf: Vec<u8> = Vec::with_capacity(MAX_REPLY);
        let mut chunk = [0u8; MAX_REPLY];
        loop {
            let n = match tokio::time::timeout_at(deadline, self.port.read(&mut chunk)).await {
                Err(_) => {
                    self.resync().await;
                    return Err(RequestError::Timeout {
                        timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
                        over_tcp: false,
                    });
                }
                Ok(Ok(0)) => {
                    return Err(RequestError::Io(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "serial port closed",
                    )))
                }
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(RequestError::Io(e)),
            };
            self.last_activity = Instant::now();
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            match parse_reply(unit, function, count, &buf) {
                ReplyParse::Incomplete if buf.len() < MAX_REPLY => continue,
                ReplyParse::Incomplete => {
                    self.resync().await;
                    return Err(RequestError::Crc);
                }
                ReplyParse::Registers(words) => return Ok(words),
                ReplyParse::Exception(exception) => {
                    return Err(RequestError::Exception { exception })
                }
                ReplyParse::Bad(bad) => {
                    self.resync().await;
                    return Err(bad.into());
                }
            }
        }
    }

    /// Reads and drops whatever is already buffered, without waiting.
    fn discard_pending(&mut self) -> usize {
        let mut discarded = 0;
        let mut chunk = [0u8; MAX_REPLY];
        loop {
            let read = self.port.read(&mut chunk);
            match futures::FutureExt::now_or_never(read) {
                Some(Ok(n)) if n > 0 => discarded += n,
                _ => return discarded,
            }
        }
    }

    /// Waits until the line has been quiet for the drain window, discarding
    /// every byte, so that a late reply cannot be taken for the next answer.
    /// Bounded, so that a babbling device cannot stall the bus forever.
    async fn resync(&mut self) {
        if self.drain.is_zero() {
            return;
        }
        let hard_stop = Instant::now() + self.timeout + self.drain * 4;
        let mut discarded = 0usize;
        let mut chunk = [0u8; MAX_REPLY];
        loop {
            match tokio::time::timeout(self.drain, self.port.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => {
                    discarded += n;
                    self.last_activity = Instant::now();
                }
                Ok(_) => break,
                Err(_) => break,
            }
            if Instant::now() >= hard_stop {
                break;
            }
        }
        if discarded > 0 {
            self.late_replies += 1;
        }
        self.last_activity = Instant::now();
    }
}
