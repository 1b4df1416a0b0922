//! Fuzzes the NVIDIA RIM (SWID tag) parser: any input must parse or be refused, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sotto_verify_nvidia::Rim;

fuzz_target!(|data: &[u8]| {
    if let Ok(rim) = Rim::parse(data) {
        for m in &rim.measurements {
            assert!(m.alternatives.iter().all(|a| a.len() == m.size));
        }
    }
});
