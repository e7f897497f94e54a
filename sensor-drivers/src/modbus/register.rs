//! The register and line types of a Modbus device: what the `[modbus]`
//! configuration and the built-in device profiles both describe. Kept apart
//! so that neither imports the other.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Quantity;

/// Serial parity. RS-485 sensors ship mostly with `none` (8N1), some with `even`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    None,
    Even,
    Odd,
}

/// Which register table to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    /// Holding registers, function 0x03.
    Holding,
    /// Input registers, function 0x04.
    Input,
}

impl Function {
    /// The function code on the wire.
    pub fn code(self) -> u8 {
        match self {
            Function::Holding => 0x03,
            Function::Input => 0x04,
        }
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Function::Holding => "holding",
            Function::Input => "input",
        })
    }
}

/// How the register words encode the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterType {
    I16,
    U16,
    I32,
    U32,
    F32,
}

impl RegisterType {
    /// Registers (16-bit words) this type occupies.
    pub fn words(self) -> u16 {
        match self {
            RegisterType::I16 | RegisterType::U16 => 1,
            RegisterType::I32 | RegisterType::U32 | RegisterType::F32 => 2,
        }
    }
}

/// Word order of a 32-bit value. Bytes inside each word are always big-endian
/// (Modbus); vendors disagree only on which word comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WordOrder {
    /// High word at the lower address ("ABCD").
    Big,
    /// Low word at the lower address ("CDAB", "word swapped").
    Little,
}

/// A raw value that means "not available". An integer matches the register
/// bits (`0x8000` for an `i16` is -32768) or the decoded integer; a float
/// matches the decoded value, and `nan` matches any NaN.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Sentinel {
    Int(i64),
    Float(f64),
}

/// One value read from a unit: `value = raw * scale + offset`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterConfig {
    /// `holding` (0x03) or `input` (0x04). Required.
    pub function: Function,
    /// Register address, 0-based as on the wire: a manual's register 30001,
    /// 40001 or "register 1" (1-based) is usually address 0. Required.
    pub address: u16,
    /// `i16`, `u16`, `i32`, `u32` or `f32`. Required.
    #[serde(rename = "type")]
    pub kind: RegisterType,
    /// For 32-bit types only, and then required: `big` or `little`.
    #[serde(default)]
    pub word_order: Option<WordOrder>,
    /// Multiplier applied to the raw value. Default 1.
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// Added after scaling. Default 0.
    #[serde(default)]
    pub offset: f64,
    /// What the value measures. Required.
    pub quantity: Quantity,
    /// Raw values that mean "not available" and yield no reading. Default none.
    #[serde(default)]
    pub sentinels: Vec<Sentinel>,
}

fn default_scale() -> f64 {
    1.0
}

/// A word given on the command line that is not one of the accepted names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{given}` is not one of: {expected}")]
pub struct UnknownName {
    pub given: String,
    pub expected: &'static str,
}

fn parse_name<T: Copy>(
    s: &str,
    table: &[(&str, T)],
    expected: &'static str,
) -> Result<T, UnknownName> {
    table
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|(_, v)| *v)
        .ok_or_else(|| UnknownName {
            given: s.to_string(),
            expected,
        })
}

/// `holding` or `input`, as the CLI's `--function` takes them.
impl FromStr for Function {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_name(
            s,
            &[("holding", Function::Holding), ("input", Function::Input)],
            "holding, input",
        )
    }
}

/// `i16`, `u16`, `i32`, `u32` or `f32`, as the CLI's `--type` takes them.
impl FromStr for RegisterType {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_name(
            s,
            &[
                ("i16", RegisterType::I16),
                ("u16", RegisterType::U16),
                ("i32", RegisterType::I32),
                ("u32", RegisterType::U32),
                ("f32", RegisterType::F32),
            ],
            "i16, u16, i32, u32, f32",
        )
    }
}

/// `big` or `little`.
impl FromStr for WordOrder {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_name(
            s,
            &[("big", WordOrder::Big), ("little", WordOrder::Little)],
            "big, little",
        )
    }
}

/// `N`/`none`, `E`/`even`, `O`/`odd`, as the CLI's `--parity` takes them.
impl FromStr for Parity {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_name(
            s,
            &[
                ("n", Parity::None),
                ("none", Parity::None),
                ("e", Parity::Even),
                ("even", Parity::Even),
                ("o", Parity::Odd),
                ("odd", Parity::Odd),
            ],
            "N, E, O",
        )
    }
}
