//! sotto-measure's SEV-SNP launch digests against the reference tool, sev-snp-measure 0.0.13
//! (PyPI), on Debian's OVMF images and on sev-snp-measure's own fixtures (the AmdSev one has
//! the SNP_KERNEL_HASHES section Debian's images lack, so it is where kernel, initrd and command
//! line are compared).
//!
//! Needs the tool and the images (`scripts/measure-deps` installs both). Nothing here is skipped:
//! a missing tool or image fails the test with what to run.
//!
//! The tool is found through `SOTTO_SEV_SNP_MEASURE` (the path of its `sev-snp-measure`), or else
//! at `$HOME/.cache/sotto-py/bin/sev-snp-measure`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use sotto_measure::{
    snp_launch_digest, CpuSignature, KernelHashes, SnpError, SnpLaunch, Vmm, DEFAULT_GUEST_FEATURES,
};

/// Debian's images this test compares on (package ovmf, bookworm).
const DEBIAN_IMAGES: &[&str] = &[
    "/usr/share/ovmf/OVMF.fd",
    "/usr/share/OVMF/OVMF_CODE_4M.fd",
    "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
];
/// More of Debian's images, each compared in fewer configurations.
const MORE_DEBIAN_IMAGES: &[&str] = &[
    "/usr/share/OVMF/OVMF_CODE.fd",
    "/usr/share/OVMF/OVMF_CODE.secboot.fd",
];
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

const HOW_TO_INSTALL: &str = "run `bash scripts/measure-deps` (installs Debian's ovmf package and \
     sev-snp-measure 0.0.13 into $HOME/.cache/sotto-py)";

fn tool() -> PathBuf {
    let path = match std::env::var_os("SOTTO_SEV_SNP_MEASURE") {
        Some(p) => PathBuf::from(p),
        None => {
            let home = std::env::var_os("HOME")
                .expect("HOME is not set, and neither is SOTTO_SEV_SNP_MEASURE");
            Path::new(&home).join(".cache/sotto-py/bin/sev-snp-measure")
        }
    };
    let version = Command::new(&path).arg("--version").output();
    match version {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            assert_eq!(
                text.trim(),
                "sev-snp-measure 0.0.13",
                "{} is not sev-snp-measure 0.0.13: {HOW_TO_INSTALL}",
                path.display()
            );
        }
        Ok(out) => panic!(
            "{} --version failed ({}): {HOW_TO_INSTALL}",
            path.display(),
            out.status
        ),
        Err(e) => panic!(
            "cannot run sev-snp-measure at {} ({e}): {HOW_TO_INSTALL}, or point \
             SOTTO_SEV_SNP_MEASURE at it",
            path.display()
        ),
    }
    path
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("cannot read {} ({e}): {HOW_TO_INSTALL}", path.display()))
}

/// How the vCPU is named on the command line.
#[derive(Clone, Copy, Debug)]
enum Cpu {
    Type(&'static str),
    Sig(u32),
    FamilyModelStepping(u32, u32, u32),
    /// None at all (EC2 and GCE do not need one).
    Unnamed,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum VmmKind {
    Qemu,
    Ec2,
    Gce,
}

#[derive(Clone, Debug)]
struct Kernel {
    kernel: PathBuf,
    initrd: Option<PathBuf>,
    append: Option<&'static str>,
}

#[derive(Clone, Debug)]
struct Case {
    image: PathBuf,
    vcpus: u32,
    cpu: Cpu,
    vmm: VmmKind,
    guest_features: Option<u64>,
    kernel: Option<Kernel>,
}

impl Case {
    fn new(image: impl Into<PathBuf>, vcpus: u32, cpu: Cpu, vmm: VmmKind) -> Self {
        Case {
            image: image.into(),
            vcpus,
            cpu,
            vmm,
            guest_features: None,
            kernel: None,
        }
    }

    fn describe(&self) -> String {
        let mut s = format!(
            "--ovmf {} --vcpus {} {:?} --vmm-type {:?}",
            self.image.display(),
            self.vcpus,
            self.cpu,
            self.vmm
        );
        if let Some(f) = self.guest_features {
            s += &format!(" --guest-features {f:#x}");
        }
        if let Some(k) = &self.kernel {
            s += &format!(" {k:?}");
        }
        s
    }

    /// What sev-snp-measure prints: `Ok(hex)`, or `Err(its error output)`.
    fn tool_digest(&self, tool: &Path) -> Result<String, String> {
        let mut cmd = Command::new(tool);
        cmd.args(["--mode", "snp", "--ovmf"])
            .arg(&self.image)
            .args(["--vcpus", &self.vcpus.to_string()]);
        match self.cpu {
            Cpu::Type(t) => {
                cmd.args(["--vcpu-type", t]);
            }
            Cpu::Sig(s) => {
                cmd.args(["--vcpu-sig", &format!("{s:#x}")]);
            }
            Cpu::FamilyModelStepping(f, m, s) => {
                cmd.args(["--vcpu-family", &f.to_string()])
                    .args(["--vcpu-model", &m.to_string()])
                    .args(["--vcpu-stepping", &s.to_string()]);
            }
            Cpu::Unnamed => {}
        }
        // The tool spells them QEMU, ec2, gce.
        let vmm = match self.vmm {
            VmmKind::Qemu => "QEMU",
            VmmKind::Ec2 => "ec2",
            VmmKind::Gce => "gce",
        };
        cmd.args(["--vmm-type", vmm]);
        if let Some(f) = self.guest_features {
            cmd.args(["--guest-features", &format!("{f:#x}")]);
        }
        if let Some(k) = &self.kernel {
            cmd.arg("--kernel").arg(&k.kernel);
            if let Some(i) = &k.initrd {
                cmd.arg("--initrd").arg(i);
            }
            if let Some(a) = k.append {
                cmd.args(["--append", a]);
            }
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", tool.display()));
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    /// What sotto-measure computes.
    fn our_digest(&self) -> Result<String, SnpError> {
        let image = read(&self.image);
        let vcpu_sig = match self.cpu {
            Cpu::Type(t) => Some(CpuSignature::from_vcpu_type(t).unwrap()),
            Cpu::Sig(s) => Some(CpuSignature(s)),
            Cpu::FamilyModelStepping(f, m, s) => {
                Some(CpuSignature::from_family_model_stepping(f, m, s).unwrap())
            }
            Cpu::Unnamed => None,
        };
        let vmm = match self.vmm {
            VmmKind::Qemu => Vmm::Qemu {
                vcpu_sig: vcpu_sig.expect("QEMU needs a vCPU signature"),
            },
            VmmKind::Ec2 => Vmm::Ec2,
            VmmKind::Gce => Vmm::Gce,
        };
        let kernel_hashes = self.kernel.as_ref().map(|k| {
            let initrd = k.initrd.as_deref().map(read).unwrap_or_default();
            KernelHashes::new(&read(&k.kernel), &initrd, k.append.unwrap_or(""))
        });
        let launch = SnpLaunch {
            vcpus: self.vcpus,
            vmm,
            guest_features: self.guest_features.unwrap_or(DEFAULT_GUEST_FEATURES),
            kernel_hashes,
        };
        snp_launch_digest(&image, &launch).map(|d| d.to_hex())
    }
}

/// Runs each case through both, a few at a time; returns how many were compared.
fn compare_all(cases: &[Case]) -> usize {
    let tool = tool();
    for case in cases {
        read(&case.image); // Fail early, and clearly, on a missing image.
    }
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                let theirs = case.tool_digest(&tool);
                let ours = case.our_digest();
                let agree = match (&theirs, &ours) {
                    (Ok(t), Ok(o)) => t == o && o.len() == 96,
                    _ => false,
                };
                if !agree {
                    failures.lock().unwrap().push(format!(
                        "{}\n    sev-snp-measure: {theirs:?}\n    sotto-measure:   {ours:?}",
                        case.describe()
                    ));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} configurations differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    cases.len()
}

const VCPU_COUNTS: &[u32] = &[1, 2, 4, 64];
const SOME_TYPES: &[&str] = &["EPYC", "EPYC-v4", "EPYC-Milan", "EPYC-Genoa"];

#[test]
fn debian_ovmf_images_match_sev_snp_measure() {
    let mut cases = Vec::new();
    for &image in DEBIAN_IMAGES {
        for &vcpus in VCPU_COUNTS {
            for &t in SOME_TYPES {
                cases.push(Case::new(image, vcpus, Cpu::Type(t), VmmKind::Qemu));
            }
            // EC2 and GCE put 0x600 in RDX whatever the vCPU type: named or not, same digest.
            for (named, vmm) in [("EPYC-Milan", VmmKind::Ec2), ("EPYC-Genoa", VmmKind::Gce)] {
                cases.push(Case::new(image, vcpus, Cpu::Type(named), vmm));
                cases.push(Case::new(image, vcpus, Cpu::Unnamed, vmm));
            }
        }
    }
    // Every vCPU type the tool knows.
    for &(name, _) in sotto_measure::VCPU_TYPES {
        cases.push(Case::new(
            DEBIAN_IMAGES[0],
            2,
            Cpu::Type(name),
            VmmKind::Qemu,
        ));
    }
    // The other ways to name a vCPU.
    cases.push(Case::new(
        DEBIAN_IMAGES[0],
        4,
        Cpu::Sig(0x00a1_0f11),
        VmmKind::Qemu,
    ));
    cases.push(Case::new(
        DEBIAN_IMAGES[1],
        3,
        Cpu::FamilyModelStepping(25, 17, 1),
        VmmKind::Qemu,
    ));
    // Guest features other than the default.
    for features in [0x0, 0x21, 0x3f] {
        for vmm in [VmmKind::Qemu, VmmKind::Ec2, VmmKind::Gce] {
            let mut c = Case::new(DEBIAN_IMAGES[0], 2, Cpu::Type("EPYC-Milan"), vmm);
            c.guest_features = Some(features);
            cases.push(c);
        }
    }
    for &image in MORE_DEBIAN_IMAGES {
        cases.push(Case::new(image, 2, Cpu::Type("EPYC-Milan"), VmmKind::Qemu));
        cases.push(Case::new(image, 4, Cpu::Type("EPYC-v4"), VmmKind::Ec2));
        cases.push(Case::new(image, 64, Cpu::Type("EPYC-Genoa"), VmmKind::Gce));
    }
    let n = compare_all(&cases);
    eprintln!("{n} configurations on Debian's OVMF images agree with sev-snp-measure");
}

/// A scratch folder of this test binary's own.
fn scratch() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sotto-measure-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn kernel_hashes_match_sev_snp_measure() {
    let dir = scratch();
    let kernel = dir.join("vmlinuz");
    let initrd = dir.join("initrd.img");
    // Contents that are not all one byte, of sizes that are not whole pages.
    for (path, len, step, modulus) in [(&kernel, 100_003, 31, 251), (&initrd, 54_321, 17, 253)] {
        let bytes: Vec<u8> = (0..len).map(|i: u32| (i * step % modulus) as u8).collect();
        std::fs::write(path, bytes).unwrap();
    }
    let amd_sev = Path::new(FIXTURES).join("ovmf_AmdSev_suffix.bin");
    let x64 = Path::new(FIXTURES).join("ovmf_OvmfX64_suffix.bin");
    let kernels = [
        None,
        Some(Kernel {
            kernel: kernel.clone(),
            initrd: None,
            append: None,
        }),
        Some(Kernel {
            kernel: kernel.clone(),
            initrd: Some(initrd.clone()),
            append: Some("console=ttyS0 root=/dev/vda1 ro"),
        }),
        Some(Kernel {
            kernel: kernel.clone(),
            initrd: None,
            append: Some("quiet"),
        }),
    ];
    let mut cases = Vec::new();
    for vmm in [VmmKind::Qemu, VmmKind::Ec2, VmmKind::Gce] {
        for vcpus in [1, 4] {
            for k in &kernels {
                let mut c = Case::new(&amd_sev, vcpus, Cpu::Type("EPYC-Genoa"), vmm);
                c.kernel = k.clone();
                c.guest_features = Some(0x21);
                cases.push(c);
            }
            cases.push(Case::new(&x64, vcpus, Cpu::Type("EPYC-v4"), vmm));
        }
    }
    let n = compare_all(&cases);
    std::fs::remove_dir_all(&dir).ok();
    eprintln!("{n} configurations on sev-snp-measure's fixtures agree with it");
}

#[test]
fn images_without_kernel_hashes_are_refused_by_both() {
    let tool = tool();
    let dir = scratch();
    let kernel = dir.join("vmlinuz-refused");
    std::fs::write(&kernel, b"not really a kernel").unwrap();
    let x64 = Path::new(FIXTURES).join("ovmf_OvmfX64_suffix.bin");
    for image in [DEBIAN_IMAGES[0], DEBIAN_IMAGES[1], x64.to_str().unwrap()] {
        let mut c = Case::new(image, 1, Cpu::Type("EPYC-v4"), VmmKind::Qemu);
        c.kernel = Some(Kernel {
            kernel: kernel.clone(),
            initrd: None,
            append: Some("ro"),
        });
        let theirs = c.tool_digest(&tool);
        assert!(
            theirs
                .as_ref()
                .is_err_and(|e| e.contains("SNP_KERNEL_HASHES")),
            "sev-snp-measure should refuse {image} with a kernel: {theirs:?}"
        );
        assert_eq!(
            c.our_digest(),
            Err(SnpError::NoKernelHashesSection),
            "{image}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
