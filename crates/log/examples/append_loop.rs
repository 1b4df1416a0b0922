//! A crash-test subject for `crates/log/tests/log.rs`: opens (or creates) the log in a directory
//! and appends to it forever, in batches of 1..=300 entries of varying length, printing
//! `opened <size>` once and `appended <size>` after each append has returned (so is durable),
//! flushing stdout each time. The test SIGKILLs it at random instants and checks what is left.
//!
//! Usage: `append_loop <dir> <64 hex digits: the log key's seed> [origin]`
//!
//! Entry `i` of the log is always [`entry`]`(i)`, whichever process appended it, so a checker
//! can tell a lost or mangled entry from a right one; the test has its own copy of the function.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use sotto_log::Log;
use sotto_tlog::note::{Signer, TYPE_ED25519};

/// The log's entry number `i`: `entry <i>:` and 0..=1000 filler bytes, the length and filler
/// varying with `i`.
fn entry(i: u64) -> Vec<u8> {
    let mut e = format!("entry {i}:").into_bytes();
    let len = (i.wrapping_mul(2_654_435_761) >> 8) % 1001;
    e.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, len as usize));
    e
}

/// How many entries the append that starts at `size` adds: often one (many rewrites of the
/// partial tiles at the right edge), otherwise up to 300 (bundles and tiles completed at once).
fn batch(size: u64) -> u64 {
    let h = size.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
    match h % 4 {
        0 => 1,
        1 => 1 + h % 8,
        _ => 1 + h % 300,
    }
}

fn parse_seed(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(seed)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(seed)) = (args.get(1), args.get(2).and_then(|s| parse_seed(s))) else {
        eprintln!("usage: append_loop <dir> <64 hex digits: the log key's seed> [origin]");
        return ExitCode::from(2);
    };
    let origin = args
        .get(3)
        .map_or("example.com/append-loop", String::as_str);
    let signer = match Signer::from_seed(origin, TYPE_ED25519, &seed) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("append_loop: {e}");
            return ExitCode::from(2);
        }
    };
    let mut log = match Log::open_or_create(Path::new(dir), &signer) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("append_loop: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "opened {}", log.size()).and_then(|_| out.flush());
    loop {
        let size = log.size();
        let new: Vec<Vec<u8>> = (size..size + batch(size)).map(entry).collect();
        if let Err(e) = log.append(&signer, &new) {
            eprintln!("append_loop: {e}");
            return ExitCode::FAILURE;
        }
        if writeln!(out, "appended {}", log.size())
            .and_then(|_| out.flush())
            .is_err()
        {
            // Nobody is listening any more.
            return ExitCode::SUCCESS;
        }
    }
}
