//! Operator commands arrive over MQTT from outside the box: any payload
//! gets a parsed command or an error message, never a panic.
#![no_main]

use coldgate::command::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err((_, message)) = parse(data) {
        assert!(!message.is_empty(), "an error without a message");
    }
});
