//! SEV-SNP products and the TCB_VERSION structure, whose byte layout depends on the product.
//!
//! Trust: the raw TCB value comes from a report or a certificate and is only decoded here;
//! whether it is acceptable is decided by the verifier.

use serde::{Deserialize, Serialize};

/// The processor generation a report and its endorsement belong to. It selects the pinned AMD
/// roots and the TCB layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Product {
    Milan,
    /// Genoa and its Siena variant (same roots, same TCB layout).
    Genoa,
    Turin,
    /// The simulated platform of this crate: AMD's Milan/Genoa TCB layout, no AMD root.
    Simulated,
}

impl Product {
    /// Reads the `productName` certificate extension ("Milan-B0", "Genoa", "Siena-A0", ...).
    /// The stepping suffix does not change the roots, so only the family name matters.
    pub fn from_product_name(name: &str) -> Option<Product> {
        let family = name.split('-').next().unwrap_or(name);
        match family {
            "Milan" => Some(Product::Milan),
            "Genoa" | "Siena" => Some(Product::Genoa),
            "Turin" => Some(Product::Turin),
            "Simulated" => Some(Product::Simulated),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Product::Milan => "Milan",
            Product::Genoa => "Genoa",
            Product::Turin => "Turin",
            Product::Simulated => "Simulated",
        }
    }

    /// Turin added the FMC security patch level and moved the other fields.
    pub fn has_fmc(self) -> bool {
        matches!(self, Product::Turin)
    }
}

/// Security patch levels of the platform's firmware components, as a report's or a
/// certificate's TCB_VERSION carries them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcbVersion {
    /// FMC patch level (Turin and later); `None` on products without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fmc: Option<u8>,
    pub bootloader: u8,
    pub tee: u8,
    pub snp: u8,
    pub microcode: u8,
}

impl TcbVersion {
    /// Decodes the little-endian 64-bit TCB_VERSION of `product`.
    pub fn decode(raw: u64, product: Product) -> TcbVersion {
        let b = raw.to_le_bytes();
        if product.has_fmc() {
            TcbVersion {
                fmc: Some(b[0]),
                bootloader: b[1],
                tee: b[2],
                snp: b[3],
                microcode: b[7],
            }
        } else {
            TcbVersion {
                fmc: None,
                bootloader: b[0],
                tee: b[1],
                snp: b[6],
                microcode: b[7],
            }
        }
    }

    /// Encodes into the TCB_VERSION layout of `product` (reserved bytes zero).
    pub fn encode(&self, product: Product) -> u64 {
        let mut b = [0u8; 8];
        if product.has_fmc() {
            b[0] = self.fmc.unwrap_or(0);
            b[1] = self.bootloader;
            b[2] = self.tee;
            b[3] = self.snp;
        } else {
            b[0] = self.bootloader;
            b[1] = self.tee;
            b[6] = self.snp;
        }
        b[7] = self.microcode;
        u64::from_le_bytes(b)
    }

    /// The first component (in the order fmc, bootloader, tee, snp, microcode) that is below
    /// `minimum`, as `(name, self's value, minimum's value)`. A component absent here but
    /// required by `minimum` counts as zero, so a Milan TCB never satisfies an FMC minimum.
    pub fn first_below(&self, minimum: &TcbVersion) -> Option<(&'static str, u8, u8)> {
        let pairs = [
            ("fmc", self.fmc.unwrap_or(0), minimum.fmc.unwrap_or(0)),
            ("bootloader", self.bootloader, minimum.bootloader),
            ("tee", self.tee, minimum.tee),
            ("snp", self.snp, minimum.snp),
            ("microcode", self.microcode, minimum.microcode),
        ];
        pairs.into_iter().find(|&(_, have, min)| have < min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milan_layout_matches_the_real_report() {
        // reported_tcb of report_milan.hex: bootloader 3, tee 0, snp 8, microcode 0x73.
        let raw = u64::from_le_bytes([0x03, 0, 0, 0, 0, 0, 0x08, 0x73]);
        let tcb = TcbVersion::decode(raw, Product::Milan);
        let fields = (tcb.fmc, tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode);
        assert_eq!(fields, (None, 3, 0, 8, 0x73));
        assert_eq!(tcb.encode(Product::Milan), raw);
    }

    #[test]
    fn turin_layout_has_fmc_first() {
        let raw = u64::from_le_bytes([1, 2, 3, 4, 0, 0, 0, 5]);
        let tcb = TcbVersion::decode(raw, Product::Turin);
        let fields = (tcb.fmc, tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode);
        assert_eq!(fields, (Some(1), 2, 3, 4, 5));
        assert_eq!(tcb.encode(Product::Turin), raw);
    }

    #[test]
    fn product_names_with_steppings() {
        assert_eq!(Product::from_product_name("Milan-B0"), Some(Product::Milan));
        assert_eq!(Product::from_product_name("Milan"), Some(Product::Milan));
        assert_eq!(Product::from_product_name("Siena-A0"), Some(Product::Genoa));
        assert_eq!(Product::from_product_name("Turin-C1"), Some(Product::Turin));
        assert_eq!(Product::from_product_name("Bergamo"), None);
    }

    #[test]
    fn minimum_is_componentwise() {
        let have = TcbVersion {
            fmc: None,
            bootloader: 3,
            tee: 0,
            snp: 8,
            microcode: 0x73,
        };
        assert_eq!(have.first_below(&have), None);
        let min = TcbVersion { snp: 9, ..have };
        assert_eq!(have.first_below(&min), Some(("snp", 8, 9)));
        let fmc_min = TcbVersion {
            fmc: Some(1),
            ..TcbVersion::default()
        };
        assert_eq!(have.first_below(&fmc_min), Some(("fmc", 0, 1)));
    }

    #[test]
    fn turin_minimum_compares_fmc_and_every_other_component() {
        let have = TcbVersion::decode(u64::from_le_bytes([1, 2, 3, 4, 0, 0, 0, 5]), Product::Turin);
        assert_eq!(have.first_below(&have), None);
        for (field, min) in [
            (
                "fmc",
                TcbVersion {
                    fmc: Some(2),
                    ..have
                },
            ),
            (
                "bootloader",
                TcbVersion {
                    bootloader: 3,
                    ..have
                },
            ),
            ("tee", TcbVersion { tee: 4, ..have }),
            ("snp", TcbVersion { snp: 5, ..have }),
            (
                "microcode",
                TcbVersion {
                    microcode: 6,
                    ..have
                },
            ),
        ] {
            assert_eq!(have.first_below(&min).map(|(f, _, _)| f), Some(field));
        }
        // A minimum without FMC does not constrain it.
        let no_fmc = TcbVersion { fmc: None, ..have };
        assert_eq!(have.first_below(&no_fmc), None);
    }
}
