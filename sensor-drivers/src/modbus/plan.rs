//! Which requests read a device: contiguous registers of one table are read in
//! one request, because on a 9600-baud bus every request costs a gap, a
//! header, a CRC and the device's turnaround.

use crate::Quantity;

use super::config::{Function, RegisterConfig};
use super::decode::{decode_register, Decoded};

/// The most registers one read request may ask for (Modbus limit).
pub const MAX_WORDS_PER_REQUEST: u16 = 125;

/// One read request and the values it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadBlock {
    pub function: Function,
    /// First register, 0-based.
    pub address: u16,
    /// Registers read.
    pub count: u16,
    /// The values, with their offset (in registers) inside the block.
    pub fields: Vec<(u16, RegisterConfig)>,
}

impl ReadBlock {
    /// Decodes every value of the block from the words the device returned.
    pub fn decode(&self, words: &[u16]) -> Vec<(Quantity, Decoded)> {
        self.fields
            .iter()
            .map(|(offset, reg)| {
                let at = usize::from(*offset);
                let decoded = words
                    .get(at..)
                    .map_or(Decoded::Short, |w| decode_register(reg, w));
                (reg.quantity, decoded)
            })
            .collect()
    }
}

/// Groups registers into as few requests as contiguity allows. Registers are
/// expected to be valid (no overlap); overlapping ones simply share a block.
pub fn plan_blocks(registers: &[RegisterConfig]) -> Vec<ReadBlock> {
    let mut sorted: Vec<&RegisterConfig> = registers.iter().collect();
    sorted.sort_by_key(|r| (r.function, r.address));
    let mut blocks: Vec<ReadBlock> = Vec::new();
    for reg in sorted {
        let words = reg.kind.words();
        let end = u32::from(reg.address) + u32::from(words);
        if let Some(block) = blocks.last_mut() {
            let block_end = u32::from(block.address) + u32::from(block.count);
            let new_count = end.saturating_sub(u32::from(block.address));
            if block.function == reg.function
                && u32::from(reg.address) <= block_end
                && new_count <= u32::from(MAX_WORDS_PER_REQUEST)
            {
                block.count = block
                    .count
                    .max(u16::try_from(new_count).unwrap_or(MAX_WORDS_PER_REQUEST));
                block
                    .fields
                    .push((reg.address - block.address, reg.clone()));
                continue;
            }
        }
        blocks.push(ReadBlock {
            function: reg.function,
            address: reg.address,
            count: words,
            fields: vec![(0, reg.clone())],
        });
    }
    blocks
}
