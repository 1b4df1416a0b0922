//! The browser's evidence check, run natively: the same `ChannelCore::finish` (Noise NX
//! message 2, evidence verification, binding) that `bench/web.sh` times in wasm, against the
//! same enclave, so the two medians are comparable.
//!
//! `finish_native ENCLAVE_ADDR POLICY_JSON [RUNS]`; prints `{"native_finish_ms": [...]}`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sotto_channel::frame::{self, Decoder};
use sotto_verify_core::UnixTime;
use sotto_web::channel::ChannelCore;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: finish_native ENCLAVE_ADDR POLICY_JSON [RUNS]";
    let addr = args.next().ok_or(usage)?;
    let policy = args.next().ok_or(usage)?;
    let runs: usize = args.next().map_or(Ok(30), |r| r.parse())?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let mut channel = ChannelCore::new(&policy)?;
        let mut tcp = TcpStream::connect(&addr)?;
        tcp.write_all(&frame::encode(channel.hello())?)?;
        let mut decoder = Decoder::new();
        let mut buf = [0u8; 65536];
        let response = loop {
            if let Some(f) = decoder.next_frame()? {
                break f;
            }
            let n = tcp.read(&mut buf)?;
            if n == 0 {
                return Err("the enclave closed before answering".into());
            }
            decoder.push(&buf[..n]);
        };
        let now = UnixTime(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs());
        let start = Instant::now();
        channel.finish(&response, now)?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    println!("{}", serde_json::json!({ "native_finish_ms": times }));
    Ok(())
}
