//! Fuzzes the TDX quote parser: any byte string must parse or be refused with an error, never
//! panic, and a quote that parses must stay within the size bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sotto_verify_tdx::{Quote, MAX_QUOTE_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok(quote) = Quote::parse(data) {
        assert!(data.len() <= MAX_QUOTE_LEN);
        assert!(quote.signed_bytes().len() <= data.len());
        let _ = quote.body.vmid();
        let _ = quote.body.td_id();
    }
});
