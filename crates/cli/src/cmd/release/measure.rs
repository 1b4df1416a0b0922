//! `sotto release measure`: launch measurements recomputed from images (sotto-measure).
//!
//! Files are read here; the computation is sotto-measure's, on bytes.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use sotto_measure::{
    launch_digest, CpuSignature, CpuSignatureError, KernelHashes, Ovmf, SnpError, SnpLaunch, Vmm,
};
use thiserror::Error;

use super::AnyError;

#[derive(Subcommand)]
pub enum MeasureCommand {
    /// Print the AMD SEV-SNP launch digest of a guest booted from an OVMF image.
    ///
    /// Prints the attestation report's MEASUREMENT (96 hex digits) that the guest will have,
    /// as `sev-snp-measure --mode snp` computes it.
    #[command(after_help = SNP_AFTER_HELP)]
    Snp(SnpArgs),
}

const SNP_AFTER_HELP: &str = "\
The digest depends on the OVMF image, the number of vCPUs, the vCPU signature (QEMU only), the \
VMM, the guest features and, for measured direct boot, the kernel, initrd and command line. \
A kernel can only be measured with an OVMF built with an SNP_KERNEL_HASHES section \
(edk2's OvmfPkg/AmdSev build); other images are refused.

Example:
  sotto release measure snp --ovmf OVMF.fd --vcpus 4 --vcpu-type EPYC-Milan";

#[derive(Args)]
#[command(group(
    ArgGroup::new("vcpu").args(["vcpu_type", "vcpu_sig", "vcpu_family"])
))]
pub struct SnpArgs {
    /// The OVMF image the guest boots: a whole OVMF.fd, or the OVMF_CODE part of a split
    /// build (the part that ends at 4 GiB).
    #[arg(long, value_name = "FILE")]
    ovmf: PathBuf,
    /// Number of vCPUs (each has a measured VMSA page).
    #[arg(long, value_name = "N")]
    vcpus: u32,
    /// The vCPU model, as QEMU's -cpu names it: EPYC, EPYC-v1..v4, EPYC-IBPB, EPYC-Rome(-v1..v3),
    /// EPYC-Milan(-v1, -v2), EPYC-Genoa(-v1), EPYC-Turin. QEMU needs this, --vcpu-sig or
    /// --vcpu-family; EC2 and GCE ignore it.
    #[arg(long, value_name = "TYPE")]
    vcpu_type: Option<String>,
    /// The vCPU signature (CPUID Fn0000_0001_EAX), 0x-prefixed hex or decimal, instead of
    /// --vcpu-type.
    #[arg(long, value_name = "SIG", value_parser = parse_u32)]
    vcpu_sig: Option<u32>,
    /// The vCPU family, with --vcpu-model and --vcpu-stepping, instead of --vcpu-type.
    #[arg(long, value_name = "FAMILY", requires_all = ["vcpu_model", "vcpu_stepping"])]
    vcpu_family: Option<u32>,
    /// The vCPU model number (with --vcpu-family).
    #[arg(long, value_name = "MODEL", requires = "vcpu_family")]
    vcpu_model: Option<u32>,
    /// The vCPU stepping (with --vcpu-family).
    #[arg(long, value_name = "STEPPING", requires = "vcpu_family")]
    vcpu_stepping: Option<u32>,
    /// The hypervisor that launches the guest: it sets some initial registers (and GCE does not
    /// measure pre-validated memory).
    #[arg(long, value_enum, value_name = "VMM", default_value_t = VmmType::Qemu, ignore_case = true)]
    vmm_type: VmmType,
    /// The guest's SEV features (VMSA SEV_FEATURES), 0x-prefixed hex or decimal; bit 0 is SNP.
    #[arg(long, value_name = "HEX", default_value = "0x1", value_parser = parse_u64)]
    guest_features: u64,
    /// A kernel booted directly (QEMU -kernel): its hash, with the initrd's and the command
    /// line's, is measured in the OVMF image's SNP_KERNEL_HASHES page.
    #[arg(long, value_name = "FILE")]
    kernel: Option<PathBuf>,
    /// The initrd booted with --kernel (QEMU -initrd); none is measured as an empty one.
    #[arg(long, value_name = "FILE", requires = "kernel")]
    initrd: Option<PathBuf>,
    /// The kernel command line (QEMU -append); none is measured as an empty one.
    #[arg(long, value_name = "CMDLINE", requires = "kernel")]
    append: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum VmmType {
    /// QEMU/KVM.
    Qemu,
    /// Amazon EC2.
    Ec2,
    /// Google Compute Engine.
    Gce,
}

#[derive(Debug, Error)]
enum MeasureError {
    #[error("cannot read the {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the OVMF image {} is larger than 4 GiB, below which it must fit", path.display())]
    TooLarge { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Image { path: PathBuf, source: SnpError },
    #[error(transparent)]
    Launch(SnpError),
    #[error(transparent)]
    Cpu(#[from] CpuSignatureError),
    #[error(
        "a QEMU guest's vCPU signature is measured: give --vcpu-type, --vcpu-sig or \
         --vcpu-family/--vcpu-model/--vcpu-stepping"
    )]
    NoVcpu,
}

pub fn run(command: MeasureCommand) -> Result<ExitCode, AnyError> {
    match command {
        MeasureCommand::Snp(args) => {
            println!("{}", snp(&args)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The launch digest, in hex.
fn snp(args: &SnpArgs) -> Result<String, MeasureError> {
    let vmm = vmm(args)?;
    let kernel_hashes = match &args.kernel {
        Some(kernel) => {
            let initrd = match &args.initrd {
                Some(p) => read_file("initrd", p)?,
                None => Vec::new(),
            };
            let kernel = read_file("kernel", kernel)?;
            Some(KernelHashes::new(
                &kernel,
                &initrd,
                args.append.as_deref().unwrap_or(""),
            ))
        }
        None => None,
    };
    let image = read_ovmf(&args.ovmf)?;
    let image_error = |source| match source {
        SnpError::NoVcpus | SnpError::TooManyVcpus(_) => MeasureError::Launch(source),
        source => MeasureError::Image {
            path: args.ovmf.clone(),
            source,
        },
    };
    let ovmf = Ovmf::parse(&image).map_err(|e| image_error(e.into()))?;
    if !ovmf.has_sev_metadata() {
        eprintln!(
            "sotto: warning: {} has no SEV metadata: it was probably not built for SEV-SNP and \
             may not boot as an SNP guest (the digest is computed as sev-snp-measure does)",
            args.ovmf.display()
        );
    }
    let launch = SnpLaunch {
        vcpus: args.vcpus,
        vmm,
        guest_features: args.guest_features,
        kernel_hashes,
    };
    let digest = launch_digest(&ovmf, &launch).map_err(image_error)?;
    Ok(digest.to_hex())
}

/// The VMM, with the vCPU signature QEMU measures.
fn vmm(args: &SnpArgs) -> Result<Vmm, MeasureError> {
    let sig = if let Some(name) = &args.vcpu_type {
        Some(CpuSignature::from_vcpu_type(name)?)
    } else if let Some(sig) = args.vcpu_sig {
        Some(CpuSignature(sig))
    } else if let Some(family) = args.vcpu_family {
        // clap: --vcpu-family requires the other two.
        let (model, stepping) = (
            args.vcpu_model.unwrap_or(0),
            args.vcpu_stepping.unwrap_or(0),
        );
        Some(CpuSignature::from_family_model_stepping(
            family, model, stepping,
        )?)
    } else {
        None
    };
    Ok(match args.vmm_type {
        VmmType::Qemu => Vmm::Qemu {
            vcpu_sig: sig.ok_or(MeasureError::NoVcpu)?,
        },
        VmmType::Ec2 => Vmm::Ec2,
        VmmType::Gce => Vmm::Gce,
    })
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, MeasureError> {
    std::fs::read(path).map_err(|source| MeasureError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

/// Reads an OVMF image, refusing one too large to be one before reading it all.
fn read_ovmf(path: &Path) -> Result<Vec<u8>, MeasureError> {
    const LIMIT: u64 = 1 << 32;
    let read_error = |source| MeasureError::Read {
        what: "OVMF image",
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let mut data = Vec::new();
    file.take(LIMIT + 1)
        .read_to_end(&mut data)
        .map_err(read_error)?;
    if data.len() as u64 > LIMIT {
        return Err(MeasureError::TooLarge {
            path: path.to_owned(),
        });
    }
    Ok(data)
}

/// An integer as sev-snp-measure reads one: 0x-prefixed hex, or decimal.
fn parse_u64(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None if t.len() > 1 && t.starts_with('0') => {
            return Err(format!(
                "{s:?}: write hex with a 0x prefix (a leading 0 is ambiguous)"
            ))
        }
        None => t.parse::<u64>(),
    };
    parsed.map_err(|e| format!("{s:?} is not a 0x-prefixed hex or decimal number: {e}"))
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let v = parse_u64(s)?;
    u32::try_from(v).map_err(|_| format!("{s:?} does not fit in 32 bits"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: MeasureCommand,
    }

    /// `sotto release measure snp` with these words after it.
    fn args(line: &str) -> Result<SnpArgs, clap::Error> {
        let argv = ["measure", "snp"]
            .into_iter()
            .chain(line.split_whitespace());
        Cli::try_parse_from(argv).map(|c| match c.command {
            MeasureCommand::Snp(a) => a,
        })
    }

    #[test]
    fn integers_as_the_tool_reads_them() {
        assert_eq!(parse_u64("0x21"), Ok(0x21));
        assert_eq!(parse_u64("0X1F"), Ok(0x1f));
        assert_eq!(parse_u64("33"), Ok(33));
        assert_eq!(parse_u64("0"), Ok(0));
        for bad in ["021", "0xZZ", ""] {
            assert!(parse_u64(bad).is_err(), "{bad:?}");
        }
        for too_big in ["0x1_0000_0000", "0x100000000"] {
            assert!(parse_u32(too_big).is_err(), "{too_big}");
        }
    }

    #[test]
    fn vcpu_choices() {
        let milan = Vmm::Qemu {
            vcpu_sig: CpuSignature(0x00a0_0f11),
        };
        let a = args("--ovmf x --vcpus 2 --vcpu-type EPYC-Milan").unwrap();
        assert_eq!(vmm(&a).unwrap(), milan);
        let a = args("--ovmf x --vcpus 2 --vcpu-family 25 --vcpu-model 1 --vcpu-stepping 1");
        assert_eq!(vmm(&a.unwrap()).unwrap(), milan);
        let a = args("--ovmf x --vcpus 2 --vcpu-sig 0xa00f11").unwrap();
        assert_eq!(vmm(&a).unwrap(), milan);
        let a = args("--ovmf x --vcpus 2").unwrap();
        assert!(matches!(vmm(&a), Err(MeasureError::NoVcpu)));
        let a = args("--ovmf x --vcpus 2 --vmm-type GCE").unwrap();
        assert_eq!(vmm(&a).unwrap(), Vmm::Gce);
        let a = args("--ovmf x --vcpus 2 --vmm-type ec2 --vcpu-type EPYC").unwrap();
        assert_eq!(vmm(&a).unwrap(), Vmm::Ec2);
        let a = args("--ovmf x --vcpus 1 --vcpu-type epyc").unwrap();
        assert!(matches!(vmm(&a), Err(MeasureError::Cpu(_))));
        for refused in [
            // One way to name the vCPU at a time; the family needs the model and stepping.
            "--ovmf x --vcpus 1 --vcpu-type EPYC --vcpu-sig 1",
            "--ovmf x --vcpus 1 --vcpu-family 25",
            // --initrd and --append only with --kernel.
            "--ovmf x --vcpus 1 --vcpu-sig 1 --append ro",
            "--ovmf x --vcpus 1 --vcpu-sig 1 --initrd i",
            "--ovmf x --vcpus 1 --vcpu-sig 1 --vmm-type kvm",
        ] {
            assert!(args(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn unreadable_and_malformed_images_name_the_file() {
        let a = args("--ovmf /nonexistent/OVMF.fd --vcpus 1 --vcpu-type EPYC").unwrap();
        let e = snp(&a).unwrap_err().to_string();
        let want = "cannot read the OVMF image /nonexistent/OVMF.fd: ";
        assert!(e.starts_with(want), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.fd");
        std::fs::write(&path, [0u8; 4096]).unwrap();
        let a = args(&format!(
            "--ovmf {} --vcpus 1 --vcpu-type EPYC",
            path.display()
        ))
        .unwrap();
        let e = snp(&a).unwrap_err().to_string();
        let want = format!("{}: no OVMF footer table", path.display());
        assert!(e.starts_with(&want), "{e}");
    }

    #[test]
    fn measures_sev_snp_measure_s_fixture_with_a_kernel() {
        // The published value for this fixture (sev-snp-measure's tests/test_guest.py,
        // test_snp_default): kernel and initrd /dev/null, guest features 0x21.
        let fixture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../measure/tests/fixtures/ovmf_AmdSev_suffix.bin"
        );
        let mut a = args(&format!(
            "--ovmf {fixture} --vcpus 1 --vcpu-type EPYC-v4 --guest-features 0x21 \
             --kernel /dev/null --initrd /dev/null"
        ))
        .unwrap();
        a.append = Some("console=ttyS0 loglevel=7".into());
        assert_eq!(
            snp(&a).unwrap(),
            "803f691094946e42068aaa3a8f9e26a5c89f36f7b73ecfb28c653360fe4b3aba7e534442e7e1e17895dfe778d0228977"
        );
    }
}
