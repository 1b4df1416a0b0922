//! The SEV-SNP ATTESTATION_REPORT structure (AMD SEV-SNP Firmware ABI specification, table
//! "ATTESTATION_REPORT Structure"), versions 2, 3 and 5.
//!
//! Trust: none. Parsing only checks the size and the version; every field is as the host
//! delivered it until `crate::verify` has checked the signature over bytes `0..0x2A0`.
//! Reserved bytes are kept so that [`AttestationReport::to_bytes`] reproduces the input exactly.

use serde::Serialize;

/// Size of every report version this crate knows.
pub const REPORT_SIZE: usize = 0x4A0;
/// The report signature covers bytes `0..SIGNED_LEN`.
pub const SIGNED_LEN: usize = 0x2A0;
/// Each of R and S occupies 72 little-endian bytes, of which P-384 uses 48.
pub const SIG_COMPONENT_LEN: usize = 72;
const SIG_RESERVED_LEN: usize = 512 - 2 * SIG_COMPONENT_LEN;
/// SIGNATURE_ALGO value for ECDSA P-384 with SHA-384, the only algorithm AMD defines.
pub const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;
/// Report versions accepted: 2 (original), 3 (adds CPUID identification), 5 (adds
/// mitigation vectors). Version 4 was never published.
pub const SUPPORTED_VERSIONS: [u32; 3] = [2, 3, 5];

/// Why bytes are not an attestation report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("report is {found} bytes, expected exactly {expected}")]
    Length { found: usize, expected: usize },
    #[error("report version {0} is not supported (expected 2, 3 or 5)")]
    UnsupportedVersion(u32),
    #[error("invalid hex: {0}")]
    Hex(String),
}

/// Decodes hex text, ignoring ASCII whitespace (line breaks in captured files).
pub fn parse_hex(text: &str) -> Result<Vec<u8>, ParseError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    hex::decode(compact).map_err(|e| ParseError::Hex(e.to_string()))
}

/// Defines a flags word's bits as `bool` accessors, one `name = bit` per line.
macro_rules! flag_accessors {
    ($($name:ident = $bit:literal;)*) => {
        $(
            pub fn $name(self) -> bool {
                self.0 & (1 << $bit) != 0
            }
        )*
    };
}

/// Defines [`GuestPolicy`]'s flags once: each flag's mask constant, its accessor and its
/// field in [`PolicyBits`], which [`GuestPolicy::decoded`] fills.
macro_rules! guest_policy_flags {
    ($($mask:ident = $bit:literal => $name:ident;)*) => {
        impl GuestPolicy {
            $( pub const $mask: u64 = 1 << $bit; )*

            flag_accessors! { $( $name = $bit; )* }

            /// The decoded bits, for JSON output.
            pub fn decoded(self) -> PolicyBits {
                PolicyBits {
                    raw: self.0,
                    abi_major: self.abi_major(),
                    abi_minor: self.abi_minor(),
                    $( $name: self.$name(), )*
                }
            }
        }

        /// [`GuestPolicy`] decoded.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
        pub struct PolicyBits {
            pub raw: u64,
            pub abi_major: u8,
            pub abi_minor: u8,
            $( pub $name: bool, )*
        }
    };
}

/// The guest policy the guest owner set at launch (bits per the ABI specification).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestPolicy(pub u64);

impl GuestPolicy {
    /// Must be one in every valid policy.
    pub const RESERVED_ONE: u64 = 1 << 17;

    pub fn abi_minor(self) -> u8 {
        self.0.to_le_bytes()[0]
    }
    pub fn abi_major(self) -> u8 {
        self.0.to_le_bytes()[1]
    }
}

guest_policy_flags! {
    SMT = 16 => smt_allowed;
    MIGRATE_MA = 18 => migrate_ma;
    DEBUG = 19 => debug;
    SINGLE_SOCKET = 20 => single_socket;
    CXL_ALLOW = 21 => cxl_allow;
    MEM_AES_256_XTS = 22 => mem_aes_256_xts;
    RAPL_DIS = 23 => rapl_dis;
    CIPHERTEXT_HIDING = 24 => ciphertext_hiding;
    PAGE_SWAP_DISABLE = 25 => page_swap_disable;
}

/// PLATFORM_INFO: how the host platform was configured when the report was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlatformInfo(pub u64);

impl PlatformInfo {
    flag_accessors! {
        smt_enabled = 0;
        tsme_enabled = 1;
        ecc_enabled = 2;
        rapl_disabled = 3;
        ciphertext_hiding_enabled = 4;
        alias_check_complete = 5;
        tio_enabled = 7;
    }
}

/// Which key the firmware says signed the report (SIGNING_KEY, bits 4:2 at offset 0x48).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigningKey {
    Vcek,
    Vlek,
    /// The report is unsigned (value 7).
    NoKey,
    Reserved(u8),
}

/// The 32-bit word at offset 0x48: AUTHOR_KEY_EN, MASK_CHIP_KEY and SIGNING_KEY.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyInfo(pub u32);

impl KeyInfo {
    pub const VCEK: u32 = 0;
    pub const VLEK: u32 = 1 << 2;

    pub fn author_key_en(self) -> bool {
        self.0 & 1 != 0
    }
    pub fn mask_chip_key(self) -> bool {
        self.0 & 2 != 0
    }
    pub fn signing_key(self) -> SigningKey {
        // The field is three bits wide, so the cast cannot truncate.
        match ((self.0 >> 2) & 0b111) as u8 {
            0 => SigningKey::Vcek,
            1 => SigningKey::Vlek,
            7 => SigningKey::NoKey,
            other => SigningKey::Reserved(other),
        }
    }
}

/// The report's ECDSA signature as stored: R and S little-endian, zero-padded to 72 bytes,
/// followed by reserved bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportSignature {
    pub r: [u8; SIG_COMPONENT_LEN],
    pub s: [u8; SIG_COMPONENT_LEN],
    pub reserved: [u8; SIG_RESERVED_LEN],
}

impl ReportSignature {
    /// R and S as 48-byte big-endian integers, or `None` when the padding above the 48th
    /// byte is not zero (the padding is outside the signed bytes, so it must carry nothing).
    pub fn p384_be(&self) -> Option<([u8; 48], [u8; 48])> {
        Some((le72_to_be48(&self.r)?, le72_to_be48(&self.s)?))
    }

    /// Stores big-endian P-384 R and S in the report's little-endian layout.
    pub fn set_p384_be(&mut self, r: &[u8; 48], s: &[u8; 48]) {
        self.r = be48_to_le72(r);
        self.s = be48_to_le72(s);
    }
}

fn le72_to_be48(le: &[u8; SIG_COMPONENT_LEN]) -> Option<[u8; 48]> {
    let (low, high) = le.split_at(48);
    if high.iter().any(|&b| b != 0) {
        return None;
    }
    let mut be = [0u8; 48];
    for (dst, src) in be.iter_mut().zip(low.iter().rev()) {
        *dst = *src;
    }
    Some(be)
}

fn be48_to_le72(be: &[u8; 48]) -> [u8; SIG_COMPONENT_LEN] {
    let mut le = [0u8; SIG_COMPONENT_LEN];
    for (dst, src) in le.iter_mut().zip(be.iter().rev()) {
        *dst = *src;
    }
    le
}

/// A parsed attestation report. Every field of the ABI layout is public, reserved ones
/// included; TCB fields are kept raw because their layout depends on the product
/// (decode with [`crate::TcbVersion::decode`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestationReport {
    pub version: u32,
    pub guest_svn: u32,
    pub policy: GuestPolicy,
    pub family_id: [u8; 16],
    pub image_id: [u8; 16],
    pub vmpl: u32,
    pub signature_algo: u32,
    pub current_tcb: u64,
    pub platform_info: PlatformInfo,
    pub key_info: KeyInfo,
    pub reserved_04c: u32,
    pub report_data: [u8; 64],
    pub measurement: [u8; 48],
    pub host_data: [u8; 32],
    pub id_key_digest: [u8; 48],
    pub author_key_digest: [u8; 48],
    pub report_id: [u8; 32],
    pub report_id_ma: [u8; 32],
    pub reported_tcb: u64,
    /// CPUID family, model and stepping (version 3 and later; reserved before).
    pub cpuid_fam_id: u8,
    pub cpuid_mod_id: u8,
    pub cpuid_step: u8,
    pub reserved_18b: [u8; 21],
    pub chip_id: [u8; 64],
    pub committed_tcb: u64,
    pub current_build: u8,
    pub current_minor: u8,
    pub current_major: u8,
    pub reserved_1eb: u8,
    pub committed_build: u8,
    pub committed_minor: u8,
    pub committed_major: u8,
    pub reserved_1ef: u8,
    pub launch_tcb: u64,
    /// Mitigation vectors (version 5 and later; reserved before).
    pub launch_mit_vector: u64,
    pub current_mit_vector: u64,
    pub reserved_208: [u8; SIGNED_LEN - 0x208],
    pub signature: ReportSignature,
}

/// Reads fixed-size fields in order. The input length is checked before any read, so a
/// failed read is unreachable; it still reports an error instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], ParseError> {
        let end = self.pos.checked_add(N);
        let field = end
            .and_then(|end| self.bytes.get(self.pos..end))
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or(ParseError::Length {
                found: self.bytes.len(),
                expected: REPORT_SIZE,
            })?;
        self.pos += N;
        Ok(field)
    }
    fn u8(&mut self) -> Result<u8, ParseError> {
        Ok(self.array::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, ParseError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, ParseError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

impl AttestationReport {
    /// Parses exactly [`REPORT_SIZE`] bytes of a version 2, 3 or 5 report.
    pub fn parse(bytes: &[u8]) -> Result<AttestationReport, ParseError> {
        if bytes.len() != REPORT_SIZE {
            return Err(ParseError::Length {
                found: bytes.len(),
                expected: REPORT_SIZE,
            });
        }
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u32()?;
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(ParseError::UnsupportedVersion(version));
        }
        Ok(AttestationReport {
            version,
            guest_svn: r.u32()?,
            policy: GuestPolicy(r.u64()?),
            family_id: r.array()?,
            image_id: r.array()?,
            vmpl: r.u32()?,
            signature_algo: r.u32()?,
            current_tcb: r.u64()?,
            platform_info: PlatformInfo(r.u64()?),
            key_info: KeyInfo(r.u32()?),
            reserved_04c: r.u32()?,
            report_data: r.array()?,
            measurement: r.array()?,
            host_data: r.array()?,
            id_key_digest: r.array()?,
            author_key_digest: r.array()?,
            report_id: r.array()?,
            report_id_ma: r.array()?,
            reported_tcb: r.u64()?,
            cpuid_fam_id: r.u8()?,
            cpuid_mod_id: r.u8()?,
            cpuid_step: r.u8()?,
            reserved_18b: r.array()?,
            chip_id: r.array()?,
            committed_tcb: r.u64()?,
            current_build: r.u8()?,
            current_minor: r.u8()?,
            current_major: r.u8()?,
            reserved_1eb: r.u8()?,
            committed_build: r.u8()?,
            committed_minor: r.u8()?,
            committed_major: r.u8()?,
            reserved_1ef: r.u8()?,
            launch_tcb: r.u64()?,
            launch_mit_vector: r.u64()?,
            current_mit_vector: r.u64()?,
            reserved_208: r.array()?,
            signature: ReportSignature {
                r: r.array()?,
                s: r.array()?,
                reserved: r.array()?,
            },
        })
    }

    /// Serializes back to the ABI layout; `parse(b)?.to_bytes() == b` for every valid `b`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(REPORT_SIZE);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.guest_svn.to_le_bytes());
        out.extend_from_slice(&self.policy.0.to_le_bytes());
        out.extend_from_slice(&self.family_id);
        out.extend_from_slice(&self.image_id);
        out.extend_from_slice(&self.vmpl.to_le_bytes());
        out.extend_from_slice(&self.signature_algo.to_le_bytes());
        out.extend_from_slice(&self.current_tcb.to_le_bytes());
        out.extend_from_slice(&self.platform_info.0.to_le_bytes());
        out.extend_from_slice(&self.key_info.0.to_le_bytes());
        out.extend_from_slice(&self.reserved_04c.to_le_bytes());
        out.extend_from_slice(&self.report_data);
        out.extend_from_slice(&self.measurement);
        out.extend_from_slice(&self.host_data);
        out.extend_from_slice(&self.id_key_digest);
        out.extend_from_slice(&self.author_key_digest);
        out.extend_from_slice(&self.report_id);
        out.extend_from_slice(&self.report_id_ma);
        out.extend_from_slice(&self.reported_tcb.to_le_bytes());
        out.extend_from_slice(&[self.cpuid_fam_id, self.cpuid_mod_id, self.cpuid_step]);
        out.extend_from_slice(&self.reserved_18b);
        out.extend_from_slice(&self.chip_id);
        out.extend_from_slice(&self.committed_tcb.to_le_bytes());
        out.extend_from_slice(&[
            self.current_build,
            self.current_minor,
            self.current_major,
            self.reserved_1eb,
            self.committed_build,
            self.committed_minor,
            self.committed_major,
            self.reserved_1ef,
        ]);
        out.extend_from_slice(&self.launch_tcb.to_le_bytes());
        out.extend_from_slice(&self.launch_mit_vector.to_le_bytes());
        out.extend_from_slice(&self.current_mit_vector.to_le_bytes());
        out.extend_from_slice(&self.reserved_208);
        out.extend_from_slice(&self.signature.r);
        out.extend_from_slice(&self.signature.s);
        out.extend_from_slice(&self.signature.reserved);
        out
    }

    /// CPUID family, model and stepping, present from version 3 on.
    pub fn cpuid(&self) -> Option<(u8, u8, u8)> {
        (self.version >= 3).then_some((self.cpuid_fam_id, self.cpuid_mod_id, self.cpuid_step))
    }

    /// Launch and current mitigation vectors, present from version 5 on.
    pub fn mit_vectors(&self) -> Option<(u64, u64)> {
        (self.version >= 5).then_some((self.launch_mit_vector, self.current_mit_vector))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_zeroed() -> Vec<u8> {
        let mut bytes = vec![0u8; REPORT_SIZE];
        bytes[0] = 2;
        bytes
    }

    #[test]
    fn field_offsets_follow_the_abi_table() {
        let mut bytes = v2_zeroed();
        bytes[0] = 5;
        bytes[0x30] = 3; // VMPL
        bytes[0x48] = 0b100; // SIGNING_KEY = VLEK
        bytes[0x50] = 0xAA; // REPORT_DATA[0]
        bytes[0x90] = 0xBB; // MEASUREMENT[0]
        bytes[0x180] = 7; // REPORTED_TCB low byte
        bytes[0x188] = 0x19; // CPUID_FAM_ID
        bytes[0x1A0] = 0xCC; // CHIP_ID[0]
        bytes[0x1F8] = 9; // LAUNCH_MIT_VECTOR
        bytes[0x200] = 10; // CURRENT_MIT_VECTOR
        bytes[0x2A0] = 0x11; // R, least significant byte
        bytes[0x2E8] = 0x22; // S, least significant byte
        let r = AttestationReport::parse(&bytes).unwrap();
        assert_eq!(r.version, 5);
        assert_eq!(r.vmpl, 3);
        assert_eq!(r.key_info.signing_key(), SigningKey::Vlek);
        assert_eq!(r.report_data[0], 0xAA);
        assert_eq!(r.measurement[0], 0xBB);
        assert_eq!(r.reported_tcb, 7);
        assert_eq!(r.cpuid(), Some((0x19, 0, 0)));
        assert_eq!(r.chip_id[0], 0xCC);
        assert_eq!(r.mit_vectors(), Some((9, 10)));
        let (rr, ss) = r.signature.p384_be().unwrap();
        assert_eq!((rr[47], ss[47]), (0x11, 0x22));
        assert_eq!(r.to_bytes(), bytes);
    }

    #[test]
    fn length_and_version_are_checked() {
        assert_eq!(
            AttestationReport::parse(&[0u8; 10]),
            Err(ParseError::Length {
                found: 10,
                expected: REPORT_SIZE
            })
        );
        let mut bytes = v2_zeroed();
        bytes[0] = 4;
        assert_eq!(
            AttestationReport::parse(&bytes),
            Err(ParseError::UnsupportedVersion(4))
        );
    }

    #[test]
    fn signature_padding_must_be_zero() {
        let mut bytes = v2_zeroed();
        bytes[0x2A0 + 60] = 1;
        let r = AttestationReport::parse(&bytes).unwrap();
        assert_eq!(r.signature.p384_be(), None);
    }

    #[test]
    fn hex_tolerates_whitespace() {
        assert_eq!(
            parse_hex("0a 0B\n\tff\r\n").unwrap(),
            vec![0x0a, 0x0b, 0xff]
        );
        assert!(matches!(parse_hex("0g"), Err(ParseError::Hex(_))));
    }

    #[test]
    fn policy_bits() {
        let p = GuestPolicy(0x30000 | GuestPolicy::DEBUG);
        assert!(p.debug());
        assert!(!GuestPolicy(0x30000).debug());
        assert!(GuestPolicy(0x30000).smt_allowed());
        assert!(GuestPolicy(GuestPolicy::MIGRATE_MA).migrate_ma());
        assert_eq!(GuestPolicy(0x0000_0000_0003_1f00).abi_major(), 0x1f);
    }
}
