//! `sotto release manifest` and `sotto release sign`: a release statement from the builder's
//! inputs, and release keys' signatures on it (a C2SP signed note whose text is the
//! statement).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use sha2::{Digest, Sha256};
use sotto_release::manifest::{
    ClientBinary, Engine, Gpu, Model, Platforms, Release, SevSnp, Simulated, SnpMeasurement,
    SnpTcb, Statement, Tdx, TdxMeasurement, WebBundle, FORMAT,
};
use sotto_tlog::note::Note;

use super::{keys, AnyError};

#[derive(Args)]
pub struct ManifestArgs {
    /// The release's name.
    #[arg(long, default_value = "sotto")]
    pub name: String,
    /// The release version; an enclave of this build reports it in its manifest.
    #[arg(long)]
    pub version: String,
    /// The source commit it was built from (40 hex digits).
    #[arg(long)]
    pub commit: String,
    /// An accepted SEV-SNP launch: VCPUS:VCPU_TYPE:VMM:MEASUREMENT (repeatable), e.g.
    /// `4:EPYC-v4:qemu:<96 hex digits from sotto release measure snp>`.
    #[arg(long = "snp", value_name = "VCPUS:TYPE:VMM:MEASUREMENT")]
    pub snp: Vec<String>,
    /// The lowest SEV-SNP TCB accepted: BOOTLOADER:TEE:SNP:MICROCODE[:FMC].
    #[arg(long, default_value = "0:0:0:0")]
    pub snp_min_tcb: String,
    /// The SEV-SNP guest policy the enclave is launched with (hex).
    #[arg(long, default_value = "30000")]
    pub snp_policy: String,
    /// The VMPL SEV-SNP reports must come from.
    #[arg(long, default_value_t = 0)]
    pub snp_vmpl: u32,
    /// An accepted TDX launch: PROFILE:MRTD:RTMR0:RTMR1:RTMR2[:RTMR3] (repeatable).
    #[arg(long = "tdx", value_name = "PROFILE:MRTD:RTMR0:RTMR1:RTMR2[:RTMR3]")]
    pub tdx: Vec<String>,
    /// The TD attributes the TD must have (the quote's 8 bytes as hex; default: only SEPT_VE_DISABLE, bit 28).
    #[arg(long, default_value = "0000001000000000")]
    pub tdx_attributes: String,
    /// The lowest TCB evaluation data number accepted in Intel's collateral.
    #[arg(long, default_value_t = 0)]
    pub tdx_min_tcb_evaluation: u32,
    /// An accepted simulated-platform measurement (development releases only; repeatable).
    #[arg(long = "simulated", value_name = "MEASUREMENT")]
    pub simulated: Vec<String>,
    /// A model the release serves, as NAME:SHA256:SIZE (repeatable).
    #[arg(long = "model", value_name = "NAME:SHA256:SIZE")]
    pub models: Vec<String>,
    /// A model file the release serves (hashed here; named after the file; repeatable).
    #[arg(long = "model-file")]
    pub model_files: Vec<PathBuf>,
    /// The inference engine: NAME:VERSION:CONTEXT.
    #[arg(long, value_name = "NAME:VERSION:CONTEXT")]
    pub engine: String,
    /// The release requires an attested NVIDIA GPU.
    #[arg(long)]
    pub gpu_required: bool,
    /// SHA-256 of a GPU reference integrity manifest the GPU must match (repeatable; implies a
    /// GPU in confidential-computing mode).
    #[arg(long = "gpu-rim", value_name = "SHA256")]
    pub gpu_rims: Vec<String>,
    /// The built web client (scripts/web's output) whose files the release lists.
    #[arg(long)]
    pub web_dir: Option<PathBuf>,
    /// A released client binary (hashed here; repeatable).
    #[arg(long = "client")]
    pub clients: Vec<PathBuf>,
    /// Write the statement here (default: standard output).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

fn hex_lower(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

pub fn sha256_file(path: &Path) -> Result<(String, u64), AnyError> {
    let mut f =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(h.finalize()), size))
}

fn parts<'a>(
    value: &'a str,
    n: std::ops::RangeInclusive<usize>,
    what: &str,
) -> Result<Vec<&'a str>, AnyError> {
    let p: Vec<&str> = value.split(':').collect();
    if !n.contains(&p.len()) {
        return Err(format!(
            "--{what} {value:?}: expected {} fields separated by ':'",
            n.start()
        )
        .into());
    }
    Ok(p)
}

fn number<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, AnyError> {
    s.parse()
        .map_err(|_| format!("{what}: {s:?} is not a number").into())
}

/// The web client's files in `dir` and the bundle digest the server serves for them.
fn web_bundle(dir: &Path) -> Result<WebBundle, AnyError> {
    let bundle = sotto_release::bundle::Bundle::load(dir)
        .map_err(|e| format!("web client {}: {e}", dir.display()))?;
    Ok(bundle.release())
}

/// The statement `sotto release manifest` writes for these arguments.
pub fn release(args: &ManifestArgs) -> Result<Release, AnyError> {
    let snp = if args.snp.is_empty() {
        None
    } else {
        let mut measurements = Vec::new();
        for s in &args.snp {
            let p = parts(s, 4..=4, "snp")?;
            measurements.push(SnpMeasurement {
                vcpus: number(p[0], "--snp vCPU count")?,
                vcpu_type: p[1].to_string(),
                vmm: p[2].to_string(),
                measurement: hex_lower(p[3]),
            });
        }
        let t = parts(&args.snp_min_tcb, 4..=5, "snp-min-tcb")?;
        let policy = u64::from_str_radix(args.snp_policy.trim_start_matches("0x"), 16)
            .map_err(|_| format!("--snp-policy {:?} is not hex", args.snp_policy))?;
        Some(SevSnp {
            measurements,
            minimum_tcb: SnpTcb {
                bootloader: number(t[0], "--snp-min-tcb")?,
                tee: number(t[1], "--snp-min-tcb")?,
                snp: number(t[2], "--snp-min-tcb")?,
                microcode: number(t[3], "--snp-min-tcb")?,
                fmc: t.get(4).map(|f| number(f, "--snp-min-tcb")).transpose()?,
            },
            vmpl: args.snp_vmpl,
            guest_policy: format!("{policy:016x}"),
        })
    };
    let tdx = if args.tdx.is_empty() {
        None
    } else {
        let mut measurements = Vec::new();
        for s in &args.tdx {
            let p = parts(s, 5..=6, "tdx")?;
            measurements.push(TdxMeasurement {
                profile: p[0].to_string(),
                mrtd: hex_lower(p[1]),
                rtmr0: hex_lower(p[2]),
                rtmr1: hex_lower(p[3]),
                rtmr2: hex_lower(p[4]),
                rtmr3: p.get(5).map(|r| hex_lower(r)),
                mrconfigid: None,
            });
        }
        Some(Tdx {
            measurements,
            td_attributes: hex_lower(&args.tdx_attributes),
            minimum_tcb_evaluation_data_number: args.tdx_min_tcb_evaluation,
        })
    };
    let simulated = (!args.simulated.is_empty()).then(|| Simulated {
        measurements: args.simulated.iter().map(|m| hex_lower(m)).collect(),
    });
    let mut models = Vec::new();
    for m in &args.models {
        let p = parts(m, 3..=3, "model")?;
        models.push(Model {
            name: p[0].to_string(),
            sha256: hex_lower(p[1]),
            size: number(p[2], "--model size")?,
        });
    }
    for f in &args.model_files {
        let (sha256, size) = sha256_file(f)?;
        models.push(Model {
            name: f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha256,
            size,
        });
    }
    let e = parts(&args.engine, 3..=3, "engine")?;
    let gpu = (args.gpu_required || !args.gpu_rims.is_empty()).then(|| Gpu {
        required: args.gpu_required,
        cc_mode: true,
        rim_sha256: args.gpu_rims.iter().map(|r| hex_lower(r)).collect(),
    });
    let mut clients = Vec::new();
    for c in &args.clients {
        let (sha256, _) = sha256_file(c)?;
        clients.push(ClientBinary {
            name: c
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha256,
        });
    }
    Ok(Release {
        format: FORMAT.into(),
        name: args.name.clone(),
        version: args.version.clone(),
        source_commit: hex_lower(&args.commit),
        platforms: Platforms {
            sev_snp: snp,
            tdx,
            simulated,
        },
        models,
        engine: Engine {
            name: e[0].to_string(),
            version: e[1].to_string(),
            context: number(e[2], "--engine context")?,
        },
        gpu,
        web: args.web_dir.as_deref().map(web_bundle).transpose()?,
        clients,
    })
}

/// Writes `bytes` to `path` atomically, or to standard output.
pub fn write_out(path: Option<&Path>, bytes: &[u8]) -> Result<(), AnyError> {
    match path {
        Some(p) => {
            let tmp = p.with_extension("tmp-sotto");
            std::fs::write(&tmp, bytes)
                .and_then(|()| std::fs::rename(&tmp, p))
                .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        }
        None => {
            use std::io::Write;
            std::io::stdout().write_all(bytes)?;
        }
    }
    Ok(())
}

pub fn run(args: ManifestArgs) -> Result<ExitCode, AnyError> {
    let text = Statement::Release(Box::new(release(&args)?)).to_text()?;
    write_out(args.output.as_deref(), text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// Reads a statement or a signed statement; returns the note (possibly unsigned).
pub fn read_statement(path: &Path) -> Result<(Note, Statement), AnyError> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let note = match Note::parse(&bytes) {
        Ok(n) => n,
        Err(_) => {
            let text = String::from_utf8(bytes)
                .map_err(|_| format!("{} is not a statement (not UTF-8)", path.display()))?;
            Note::new(text).map_err(|e| format!("{}: {e}", path.display()))?
        }
    };
    let statement =
        Statement::parse(note.text()).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((note, statement))
}

pub fn sign(key: &Path, input: &Path, output: Option<PathBuf>) -> Result<ExitCode, AnyError> {
    let signer = keys::load(key)?;
    let (mut note, statement) = read_statement(input)?;
    note.add_signature(signer.sign(note.text())?);
    let out = output.unwrap_or_else(|| input.to_path_buf());
    write_out(Some(&out), &note.to_bytes())?;
    let what = match statement {
        Statement::Release(r) => format!("release {} {}", r.name, r.version),
        Statement::Revocation(r) => format!("revocation of {} {}", r.name, r.version),
    };
    eprintln!(
        "signed the {what} as {} ({} signature(s) now) into {}",
        signer.name(),
        note.signatures().len(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
