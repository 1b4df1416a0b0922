//! Fuzzes the collateral parsers: the JSON envelope (hex CRLs, PEM chains, hex signatures) and
//! the signed TCB info / QE identity documents inside it. None may panic on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sotto_verify_tdx::{Collateral, QeIdentity, TcbInfo};

fuzz_target!(|data: &[u8]| {
    let _ = Collateral::from_json(data);
    let _ = TcbInfo::parse(data);
    let _ = QeIdentity::parse(data);
    let _ = sotto_verify_tdx::collateral::parse_utc(&String::from_utf8_lossy(data));
});
