//! A stand-in for the kernel's configfs-tsm, for tests only. It follows drivers/virt/coco/tsm.c:
//! instances are made by `mkdir` under the root, every write to `inblob` or `privlevel` bumps
//! `generation`, reading `outblob`/`auxblob` (re)generates the report when the configuration
//! changed since the last read, and the write-only attributes cannot be read. The "firmware"
//! answers with real captured evidence whose REPORT_DATA (and, for SEV-SNP, VMPL) it patches
//! the way the hardware fills them in.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::tsm::TsmFs;

pub const SNP_REPORT: &[u8] =
    include_bytes!("../../../../shared/vectors/sev-snp/trustee-report.bin");
pub const TDX_QUOTE: &[u8] = include_bytes!("../../../../shared/vectors/tdx/tdx_quote");

const EINVAL: i32 = 22;

#[derive(Clone)]
pub enum Firmware {
    /// `sev_guest`: the report, and this certificate table as `auxblob`.
    Snp { auxblob: Vec<u8> },
    /// `tdx_guest`: the quote; no `auxblob` or `privlevel` attribute.
    Tdx,
}

#[derive(Default)]
struct Instance {
    inblob: Option<Vec<u8>>,
    privlevel: u32,
    write_generation: u64,
    read_generation: u64,
    outblob: Option<Vec<u8>>,
    auxblob: Vec<u8>,
    intruded: bool,
}

struct State {
    root: PathBuf,
    root_exists: bool,
    provider: String,
    firmware: Firmware,
    /// Another process writes `inblob` between our write and our read of `outblob`.
    intruder: bool,
    instances: HashMap<PathBuf, Instance>,
    created: usize,
}

/// Cloning shares the state, so a test keeps a handle while the attester owns the other.
#[derive(Clone)]
pub struct FakeTsm(Arc<Mutex<State>>);

impl FakeTsm {
    pub fn new(root: &Path, provider: &str, firmware: Firmware) -> Self {
        FakeTsm(Arc::new(Mutex::new(State {
            root: root.to_path_buf(),
            root_exists: true,
            provider: provider.to_owned(),
            firmware,
            intruder: false,
            instances: HashMap::new(),
            created: 0,
        })))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn without_root(self) -> Self {
        self.state().root_exists = false;
        self
    }

    /// From now on, another writer touches every instance between our write and our read.
    pub fn enable_intruder(&self) {
        self.state().intruder = true;
    }

    pub fn live_instances(&self) -> usize {
        self.state().instances.len()
    }

    pub fn created_instances(&self) -> usize {
        self.state().created
    }
}

fn split(path: &Path) -> io::Result<(PathBuf, &str)> {
    let parent = path.parent().ok_or(io::ErrorKind::NotFound)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or(io::ErrorKind::NotFound)?;
    Ok((parent.to_path_buf(), name))
}

fn generate(firmware: &Firmware, inst: &mut Instance) {
    let mut report_data = inst.inblob.clone().unwrap_or_default();
    report_data.resize(64, 0);
    match firmware {
        Firmware::Snp { auxblob } => {
            let mut report = SNP_REPORT.to_vec();
            report[0x30..0x34].copy_from_slice(&inst.privlevel.to_le_bytes());
            report[0x50..0x90].copy_from_slice(&report_data);
            inst.outblob = Some(report);
            inst.auxblob = auxblob.clone();
        }
        Firmware::Tdx => {
            let mut quote = TDX_QUOTE.to_vec();
            quote[568..632].copy_from_slice(&report_data);
            inst.outblob = Some(quote);
        }
    }
    inst.read_generation = inst.write_generation;
}

impl TsmFs for FakeTsm {
    fn is_dir(&self, path: &Path) -> bool {
        let s = self.state();
        (s.root_exists && path == s.root) || s.instances.contains_key(path)
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        let (parent, _) = split(path)?;
        if !s.root_exists || parent != s.root {
            return Err(io::ErrorKind::NotFound.into());
        }
        if s.instances.contains_key(path) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        s.instances.insert(path.to_path_buf(), Instance::default());
        s.created += 1;
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.state()
            .instances
            .remove(path)
            .map(|_| ())
            .ok_or(io::ErrorKind::NotFound.into())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut s = self.state();
        let (dir, attr) = split(path)?;
        let provider = s.provider.clone();
        let firmware = s.firmware.clone();
        let intruder = s.intruder;
        let inst = s.instances.get_mut(&dir).ok_or(io::ErrorKind::NotFound)?;
        match attr {
            "provider" => Ok(format!("{provider}\n").into_bytes()),
            "generation" => Ok(format!("{}\n", inst.write_generation).into_bytes()),
            "outblob" | "auxblob" => {
                if attr == "auxblob" && matches!(firmware, Firmware::Tdx) {
                    return Err(io::ErrorKind::NotFound.into());
                }
                if inst.inblob.is_none() {
                    return Err(io::Error::from_raw_os_error(EINVAL));
                }
                if intruder && !inst.intruded {
                    inst.intruded = true;
                    inst.inblob = Some(vec![0xEE; 64]);
                    inst.write_generation += 1;
                }
                if inst.outblob.is_none() || inst.read_generation != inst.write_generation {
                    generate(&firmware, inst);
                }
                Ok(if attr == "outblob" {
                    inst.outblob.clone().unwrap_or_default()
                } else {
                    inst.auxblob.clone()
                })
            }
            "inblob" | "privlevel" => Err(io::ErrorKind::PermissionDenied.into()),
            _ => Err(io::ErrorKind::NotFound.into()),
        }
    }

    fn write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut s = self.state();
        let (dir, attr) = split(path)?;
        let is_tdx = matches!(s.firmware, Firmware::Tdx);
        let inst = s.instances.get_mut(&dir).ok_or(io::ErrorKind::NotFound)?;
        match attr {
            "inblob" => {
                if data.len() > 64 {
                    return Err(io::Error::from_raw_os_error(EINVAL));
                }
                inst.inblob = Some(data.to_vec());
            }
            "privlevel" if !is_tdx => {
                let level: u32 = std::str::from_utf8(data)
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                    .filter(|l| *l <= 3)
                    .ok_or(io::Error::from_raw_os_error(EINVAL))?;
                inst.privlevel = level;
            }
            "provider" | "generation" | "outblob" | "auxblob" => {
                return Err(io::ErrorKind::PermissionDenied.into())
            }
            _ => return Err(io::ErrorKind::NotFound.into()),
        }
        inst.write_generation += 1;
        Ok(())
    }
}
