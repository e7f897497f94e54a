//! The configuration file is edited by hand on site: any text gets a config
//! or a list of problems that each name where they are, never a panic.
#![no_main]

use coldgate::config::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(error) = parse(text, "fuzz.toml") {
        for problem in error.problems() {
            assert!(!problem.message.is_empty(), "a problem without a message");
        }
    }
});
