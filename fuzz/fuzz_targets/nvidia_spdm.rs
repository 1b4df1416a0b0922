//! Fuzzes the NVIDIA SPDM report parser: any input must parse or be refused, never panic, and
//! whatever parses must expose consistent bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sotto_verify_nvidia::SpdmEvidence;

fuzz_target!(|data: &[u8]| {
    if let Ok(ev) = SpdmEvidence::parse(data) {
        assert_eq!(ev.raw(), data);
        assert_eq!(
            ev.signed_bytes().len() + 96 + ev.trailing_padding(),
            data.len()
        );
        let _ = (ev.driver_version(), ev.vbios_version(), ev.feature_flag());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = SpdmEvidence::parse_hex(text);
    }
});
