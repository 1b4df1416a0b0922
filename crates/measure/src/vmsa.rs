//! The VMSA page of each vCPU: its initial register state, encrypted and measured at launch.
//!
//! The layout is the SEV-ES save area (AMD APM vol. 2, table B-4; Linux `struct
//! sev_es_save_area`). The values are the reset state each VMM gives a vCPU; QEMU, EC2 and GCE
//! differ in a few of them (as sev-snp-measure records them).

use crate::cpu::CpuSignature;
use crate::PAGE_SIZE;

/// The hypervisor that launches the guest: it decides a few of the initial register values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vmm {
    /// QEMU/KVM: RDX holds the vCPU's CPUID signature.
    Qemu { vcpu_sig: CpuSignature },
    /// Amazon EC2: RDX is 0x600, some segment attributes and the FPU state differ.
    Ec2,
    /// Google Compute Engine: RDX is 0x600, its own PAT, and the SNP_SEC_MEM pages unmeasured.
    Gce,
}

/// The bootstrap processor's reset vector.
pub(crate) const BSP_EIP: u32 = 0xffff_fff0;

/// The PAT MSR's reset value (AMD APM vol. 2, section A.3).
const DEFAULT_PAT: u64 = 0x0007_0406_0007_0406;

/// Save-area offsets (the fields this computation sets).
mod at {
    pub const ES: usize = 0x000;
    pub const CS: usize = 0x010;
    pub const SS: usize = 0x020;
    pub const DS: usize = 0x030;
    pub const FS: usize = 0x040;
    pub const GS: usize = 0x050;
    pub const GDTR: usize = 0x060;
    pub const LDTR: usize = 0x070;
    pub const IDTR: usize = 0x080;
    pub const TR: usize = 0x090;
    pub const EFER: usize = 0x0d0;
    pub const CR4: usize = 0x148;
    pub const CR0: usize = 0x158;
    pub const DR7: usize = 0x160;
    pub const DR6: usize = 0x168;
    pub const RFLAGS: usize = 0x170;
    pub const RIP: usize = 0x178;
    pub const G_PAT: usize = 0x268;
    pub const RDX: usize = 0x310;
    pub const SEV_FEATURES: usize = 0x3b0;
    pub const XCR0: usize = 0x3e8;
    pub const MXCSR: usize = 0x408;
    pub const X87_FCW: usize = 0x410;
}

/// The values that depend on the VMM.
struct VmmState {
    cs_attrib: u16,
    ss_attrib: u16,
    tr_attrib: u16,
    rdx: u64,
    g_pat: u64,
    mxcsr: u32,
    x87_fcw: u16,
}

impl VmmState {
    fn of(vmm: Vmm, eip: u32) -> Self {
        match vmm {
            Vmm::Qemu { vcpu_sig } => VmmState {
                cs_attrib: 0x9b,
                ss_attrib: 0x93,
                tr_attrib: 0x8b,
                rdx: u64::from(vcpu_sig.0),
                g_pat: DEFAULT_PAT,
                mxcsr: 0x1f80,
                x87_fcw: 0x37f,
            },
            Vmm::Ec2 => VmmState {
                // EC2 leaves the accessed bit clear on the BSP's code segment.
                cs_attrib: if eip == BSP_EIP { 0x9a } else { 0x9b },
                ss_attrib: 0x92,
                tr_attrib: 0x83,
                rdx: 0x600,
                g_pat: DEFAULT_PAT,
                mxcsr: 0,
                x87_fcw: 0,
            },
            Vmm::Gce => VmmState {
                cs_attrib: 0x9b,
                ss_attrib: 0x93,
                tr_attrib: 0x8b,
                rdx: 0x600,
                g_pat: 0x0007_0106,
                mxcsr: 0,
                x87_fcw: 0,
            },
        }
    }
}

struct Page([u8; PAGE_SIZE]);

impl Page {
    fn put(&mut self, at: usize, bytes: &[u8]) {
        self.0[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn u16(&mut self, at: usize, v: u16) {
        self.put(at, &v.to_le_bytes());
    }

    fn u32(&mut self, at: usize, v: u32) {
        self.put(at, &v.to_le_bytes());
    }

    fn u64(&mut self, at: usize, v: u64) {
        self.put(at, &v.to_le_bytes());
    }

    /// A segment register: selector, attributes, limit, base.
    fn segment(&mut self, at: usize, selector: u16, attrib: u16, limit: u32, base: u64) {
        self.u16(at, selector);
        self.u16(at + 2, attrib);
        self.u32(at + 4, limit);
        self.u64(at + 8, base);
    }
}

/// The VMSA page of a vCPU that starts at `eip` (real mode, CS:IP split from it).
pub(crate) fn vmsa_page(eip: u32, guest_features: u64, vmm: Vmm) -> [u8; PAGE_SIZE] {
    let v = VmmState::of(vmm, eip);
    let mut p = Page([0; PAGE_SIZE]);
    p.segment(at::ES, 0, 0x93, 0xffff, 0);
    p.segment(
        at::CS,
        0xf000,
        v.cs_attrib,
        0xffff,
        u64::from(eip & 0xffff_0000),
    );
    p.segment(at::SS, 0, v.ss_attrib, 0xffff, 0);
    p.segment(at::DS, 0, 0x93, 0xffff, 0);
    p.segment(at::FS, 0, 0x93, 0xffff, 0);
    p.segment(at::GS, 0, 0x93, 0xffff, 0);
    p.segment(at::GDTR, 0, 0, 0xffff, 0);
    p.segment(at::LDTR, 0, 0x82, 0xffff, 0);
    p.segment(at::IDTR, 0, 0, 0xffff, 0);
    p.segment(at::TR, 0, v.tr_attrib, 0xffff, 0);
    p.u64(at::EFER, 0x1000); // KVM sets EFER.SVME.
    p.u64(at::CR4, 0x40); // KVM sets CR4.MCE.
    p.u64(at::CR0, 0x10);
    p.u64(at::DR7, 0x400);
    p.u64(at::DR6, 0xffff_0ff0);
    p.u64(at::RFLAGS, 0x2);
    p.u64(at::RIP, u64::from(eip & 0xffff));
    p.u64(at::G_PAT, v.g_pat);
    p.u64(at::RDX, v.rdx);
    p.u64(at::SEV_FEATURES, guest_features);
    p.u64(at::XCR0, 0x1);
    p.u32(at::MXCSR, v.mxcsr);
    p.u16(at::X87_FCW, v.x87_fcw);
    p.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u64_at(p: &[u8; PAGE_SIZE], at: usize) -> u64 {
        u64::from_le_bytes(p[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn qemu_bsp_page() {
        let p = vmsa_page(
            BSP_EIP,
            0x21,
            Vmm::Qemu {
                vcpu_sig: CpuSignature(0x00a0_0f11),
            },
        );
        assert_eq!(
            &p[at::CS..at::CS + 8],
            &[0x00, 0xf0, 0x9b, 0, 0xff, 0xff, 0, 0]
        );
        assert_eq!(u64_at(&p, at::CS + 8), 0xffff_0000);
        assert_eq!(u64_at(&p, at::RIP), 0xfff0);
        assert_eq!(u64_at(&p, at::RDX), 0x00a0_0f11);
        assert_eq!(u64_at(&p, at::SEV_FEATURES), 0x21);
        assert_eq!(u64_at(&p, at::G_PAT), DEFAULT_PAT);
        assert_eq!(&p[at::MXCSR..at::MXCSR + 4], &0x1f80u32.to_le_bytes());
        assert_eq!(&p[at::X87_FCW..at::X87_FCW + 2], &0x37fu16.to_le_bytes());
        assert!(p[0x670..].iter().all(|&b| b == 0));
    }

    #[test]
    fn vmm_differences() {
        let ec2_bsp = vmsa_page(BSP_EIP, 1, Vmm::Ec2);
        let ec2_ap = vmsa_page(0x0080_b004, 1, Vmm::Ec2);
        assert_eq!(ec2_bsp[at::CS + 2], 0x9a);
        assert_eq!(ec2_ap[at::CS + 2], 0x9b);
        assert_eq!(ec2_ap[at::SS + 2], 0x92);
        assert_eq!(ec2_ap[at::TR + 2], 0x83);
        assert_eq!(u64_at(&ec2_ap, at::RDX), 0x600);
        assert_eq!(u64_at(&ec2_ap, at::CS + 8), 0x0080_0000);
        assert_eq!(u64_at(&ec2_ap, at::RIP), 0xb004);
        assert_eq!(u64_at(&ec2_ap, at::MXCSR) & 0xffff_ffff, 0);
        let gce = vmsa_page(BSP_EIP, 1, Vmm::Gce);
        assert_eq!(u64_at(&gce, at::G_PAT), 0x0007_0106);
        assert_eq!(gce[at::CS + 2], 0x9b);
        assert_eq!(u64_at(&gce, at::RDX), 0x600);
    }
}
