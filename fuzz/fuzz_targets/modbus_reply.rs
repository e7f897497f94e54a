//! RS-485 is a shared, noisy wire: the RTU reply parser must classify any
//! bytes (noise, another unit's answer, a truncated frame) without panicking,
//! and every register it hands on must be decodable as every type.
#![no_main]

use arbitrary::Arbitrary;
use coldgate_sensor_drivers::modbus::config::{Function, RegisterType, WordOrder};
use coldgate_sensor_drivers::modbus::decode::decode_raw;
use coldgate_sensor_drivers::modbus::rtu::{parse_reply, ReplyParse};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    unit: u8,
    input_registers: bool,
    count: u16,
    frame: Vec<u8>,
}

const TYPES: [RegisterType; 5] = [
    RegisterType::I16,
    RegisterType::U16,
    RegisterType::I32,
    RegisterType::U32,
    RegisterType::F32,
];

fuzz_target!(|input: Input| {
    let function = if input.input_registers {
        Function::Input
    } else {
        Function::Holding
    };
    if let ReplyParse::Registers(words) = parse_reply(input.unit, function, input.count, &input.frame)
    {
        assert_eq!(words.len(), usize::from(input.count), "reply length");
        for start in 0..words.len() {
            for kind in TYPES {
                for order in [None, Some(WordOrder::Big), Some(WordOrder::Little)] {
                    let raw = decode_raw(kind, order, &words[start..]);
                    if words.len() - start >= usize::from(kind.words()) {
                        assert!(raw.is_some(), "{kind:?} from enough words");
                    }
                }
            }
        }
    }
});
