//! What can go wrong on one Modbus request, and what a technician should check.
//!
//! Every text here is read by someone standing next to a container with a
//! multimeter, so each says what the failure usually means in the field.

use std::fmt;

use serde::Serialize;

/// A Modbus exception code, named. The device understood the request and
/// refused it: the wiring and serial settings are fine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Exception {
    /// 0x01: the device does not support this function code.
    IllegalFunction,
    /// 0x02: the register range does not exist on this device.
    IllegalDataAddress,
    /// 0x03: the request's count or value is not acceptable to the device.
    IllegalDataValue,
    /// 0x04: the device failed while handling the request.
    ServerDeviceFailure,
    /// 0x05: the device accepted a long-running request.
    Acknowledge,
    /// 0x06: the device is busy.
    ServerDeviceBusy,
    /// 0x08: the device found a memory parity error.
    MemoryParityError,
    /// 0x0A: a Modbus gateway has no path to the target.
    GatewayPathUnavailable,
    /// 0x0B: a Modbus gateway's target did not answer.
    GatewayTargetFailedToRespond,
    /// Any other code.
    Other(u8),
}

impl Exception {
    /// Maps the code byte of an exception reply (the byte after `function | 0x80`).
    pub fn from_code(code: u8) -> Exception {
        match code {
            0x01 => Exception::IllegalFunction,
            0x02 => Exception::IllegalDataAddress,
            0x03 => Exception::IllegalDataValue,
            0x04 => Exception::ServerDeviceFailure,
            0x05 => Exception::Acknowledge,
            0x06 => Exception::ServerDeviceBusy,
            0x08 => Exception::MemoryParityError,
            0x0A => Exception::GatewayPathUnavailable,
            0x0B => Exception::GatewayTargetFailedToRespond,
            other => Exception::Other(other),
        }
    }

    /// The code byte on the wire.
    pub fn code(self) -> u8 {
        match self {
            Exception::IllegalFunction => 0x01,
            Exception::IllegalDataAddress => 0x02,
            Exception::IllegalDataValue => 0x03,
            Exception::ServerDeviceFailure => 0x04,
            Exception::Acknowledge => 0x05,
            Exception::ServerDeviceBusy => 0x06,
            Exception::MemoryParityError => 0x08,
            Exception::GatewayPathUnavailable => 0x0A,
            Exception::GatewayTargetFailedToRespond => 0x0B,
            Exception::Other(code) => code,
        }
    }

    /// What to check when this exception comes back.
    pub fn hint(self) -> &'static str {
        match self {
            Exception::IllegalFunction => {
                "the device does not support this function: try `input` instead of `holding` (or the reverse)"
            }
            Exception::IllegalDataAddress => {
                "no such register on this device: check the register map; addresses here are 0-based on the wire, so a manual's register 30002 or 40002 is address 1"
            }
            Exception::IllegalDataValue => {
                "the device refused the register count: read fewer registers at once"
            }
            Exception::ServerDeviceFailure => "the device reports an internal fault: power-cycle it",
            Exception::Acknowledge | Exception::ServerDeviceBusy => {
                "the device is busy: poll it less often"
            }
            Exception::MemoryParityError => "the device reports a memory fault: replace it",
            Exception::GatewayPathUnavailable | Exception::GatewayTargetFailedToRespond => {
                "a Modbus gateway could not reach the unit behind it: check the gateway's serial side and the unit id"
            }
            Exception::Other(_) => "a vendor-specific exception: see the device manual",
        }
    }
}

impl fmt::Display for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exception::Other(code) => write!(f, "exception 0x{code:02X}"),
            named => write!(f, "{named:?} (exception 0x{:02X})", named.code()),
        }
    }
}

impl From<tokio_modbus::ExceptionCode> for Exception {
    fn from(code: tokio_modbus::ExceptionCode) -> Self {
        Exception::from_code(u8::from(code))
    }
}

/// Why one request to one unit produced no registers. Transient: the poller
/// counts it, retries or backs off, and goes on.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Nothing (or not a whole frame) came back within the timeout.
    #[error("no reply within {timeout_ms} ms: {}", timeout_hint(*over_tcp))]
    Timeout { timeout_ms: u64, over_tcp: bool },
    /// A frame came back whose CRC did not match: noise, a baud/parity
    /// mismatch or two devices talking at once.
    #[error("reply failed its CRC check: check baud rate and parity, termination and cable shielding, and that no two devices share a unit id")]
    Crc,
    /// A frame came back that is not the answer to this request (other
    /// unit, other function, wrong length).
    #[error("reply does not match the request ({0}): another master on the bus, a duplicate unit id, or a late reply")]
    Mismatch(String),
    /// The device answered with an exception.
    #[error("device answered with {exception}: {}", exception.hint())]
    Exception { exception: Exception },
    /// The link itself failed (serial port gone, TCP connection refused or reset).
    #[error("link error: {0}")]
    Io(#[from] std::io::Error),
    /// The TCP endpoint could not be reached.
    #[error("cannot connect to {addr}: {reason}: check the address, port 502, and that the device is powered and on the network")]
    Connect { addr: String, reason: String },
}

fn timeout_hint(over_tcp: bool) -> &'static str {
    if over_tcp {
        "check the unit id (a TCP-to-RTU gateway forwards it to its serial side, where the wiring and baud rate matter) and that the device is powered"
    } else {
        "check the unit id, A/B wiring (swapped?), baud rate and parity, and that the device is powered"
    }
}

impl RequestError {
    /// Whether the link may hold stray bytes after this error, so that it must
    /// be resynchronised before the next request.
    pub fn desynchronises(&self) -> bool {
        !matches!(self, RequestError::Exception { .. })
    }
}

/// Why [`crate::modbus::probe`] failed. The `Display` texts are printed by
/// `coldgate modbus probe` as they are.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The arguments cannot form a valid request.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The serial port could not be opened.
    #[error("cannot open serial port {device}: {reason}: check the device path (ls /dev/serial/by-id/) and that no other program holds it")]
    Open { device: String, reason: String },
    /// The request failed.
    #[error("unit {unit}: {source}")]
    Request {
        unit: u8,
        #[source]
        source: RequestError,
    },
}

impl ProbeError {
    /// The exception, when the device answered with one.
    pub fn exception(&self) -> Option<Exception> {
        match self {
            ProbeError::Request {
                source: RequestError::Exception { exception },
                ..
            } => Some(*exception),
            _ => None,
        }
    }
}
