//! Writes the seed corpus of the `channel_frames` target: real encodings, made by the channel's
//! own encoders from the real attestation vectors, so the fuzzer starts from inputs that parse
//! instead of having to discover postcard and JSON layouts by chance.
//!
//! Usage: `channel_seeds <vectors-dir> <corpus-dir>` (run by `scripts/fuzz seed`).

use std::fs;
use std::path::{Path, PathBuf};

use sotto_channel::frame;
use sotto_channel::manifest::{EngineManifest, Manifest, ModelManifest, MANIFEST_FORMAT};
use sotto_channel::messages::{
    ClientMessage, ErrorKind, GenParams, Role, ServerMessage, Stats, WireMessage,
};
use sotto_channel::{AttestationPayload, ClientHandshake, ServerHandshake, StaticKey};
use sotto_verify::{CpuEvidence, Evidence, GpuEvidence};
use zeroize::Zeroizing;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let mut args = std::env::args_os().skip(1);
    let (Some(vectors), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: channel_seeds <vectors-dir> <corpus-dir>".into());
    };
    let vectors = PathBuf::from(vectors);
    let out = PathBuf::from(out);
    fs::create_dir_all(&out)?;
    let write = |name: &str, bytes: &[u8]| fs::write(out.join(name), bytes);

    let snp = CpuEvidence::SevSnp {
        report: fs::read(vectors.join("sev-snp/trustee-report.bin"))?,
        endorsement_der: fs::read(vectors.join("sev-snp/trustee-vcek.der"))?,
        chain_der: Vec::new(),
    };
    let tdx = CpuEvidence::Tdx {
        quote: fs::read(vectors.join("tdx/tdx_quote"))?,
        collateral_json: fs::read(vectors.join("tdx/tdx_quote_collateral.json"))?,
    };
    let gpu = GpuEvidence {
        spdm_request_response: hex_file(&vectors.join("nvidia/hopperAttestationReport.txt"))?,
        cert_chain_der: Vec::new(),
    };

    let plain = manifest("sev-snp", None);
    let with_gpu = manifest(
        "tdx",
        Some(hex::encode(sotto_verify::gpu_evidence_digest(&gpu))),
    );
    write("manifest_snp.json", &plain.to_bytes())?;
    write("manifest_tdx_gpu.json", &with_gpu.to_bytes())?;

    let snp_payload = AttestationPayload {
        manifest: plain.to_bytes(),
        evidence: Evidence {
            cpu: snp,
            gpu: None,
        },
    }
    .encode()?;
    let tdx_payload = AttestationPayload {
        manifest: with_gpu.to_bytes(),
        evidence: Evidence {
            cpu: tdx,
            gpu: Some(gpu),
        },
    }
    .encode()?;
    write("payload_snp.postcard", &snp_payload)?;
    write("payload_tdx_gpu.postcard", &tdx_payload)?;

    let chat = ClientMessage::Chat {
        messages: vec![
            WireMessage {
                role: Role::System,
                content: Zeroizing::new("You are a helpful assistant.".into()),
            },
            WireMessage {
                role: Role::User,
                content: Zeroizing::new("Why is the sky blue?".into()),
            },
        ],
        params: GenParams {
            seed: Some(42),
            ..GenParams::default()
        },
    }
    .encode();
    let token = ServerMessage::Token(Zeroizing::new("Rayleigh".into())).encode();
    let done = ServerMessage::Done(Stats {
        prompt_tokens: 31,
        generated_tokens: 128,
        time_to_first_token_ms: 84.5,
        generation_ms: 2_310.25,
    })
    .encode();
    let error = ServerMessage::Error {
        kind: ErrorKind::ContextExceeded,
        message: "the conversation exceeds the context window".into(),
    }
    .encode();
    write("client_chat.postcard", &chat)?;
    write("server_token.postcard", &token)?;
    write("server_done.postcard", &done)?;
    write("server_error.postcard", &error)?;

    // A whole relay stream as the enclave sees and sends it: hello, answer, then messages.
    let key = StaticKey::generate()?;
    let (_, hello) = ClientHandshake::start()?;
    let (reply, _) = ServerHandshake::respond(&key, &hello.0, &snp_payload)?;
    write("handshake_reply.noise", &reply)?;
    let mut stream = Vec::new();
    for piece in [hello.0.as_slice(), &reply, &chat, &token, &done] {
        stream.extend(frame::encode(piece)?);
    }
    write("stream.frames", &stream)?;
    Ok(())
}

fn manifest(platform: &str, gpu_evidence_sha256: Option<String>) -> Manifest {
    Manifest {
        format: MANIFEST_FORMAT,
        release: "0.1.0".into(),
        platform: platform.into(),
        model: ModelManifest {
            // A synthetic model: only the shape of the manifest matters to the parser.
            name: "model.gguf".into(),
            sha256: "0123456789abcdef".repeat(4),
            size: 491_400_032,
        },
        engine: EngineManifest {
            name: "llama.cpp (llama-cpp-2)".into(),
            version: "0.1.160".into(),
            context: 4096,
        },
        gpu_evidence_sha256,
    }
}

fn hex_file(path: &Path) -> Result<Vec<u8>, Error> {
    let text = fs::read_to_string(path)?;
    Ok(hex::decode(text.trim())?)
}
