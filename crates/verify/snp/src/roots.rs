//! AMD's public SEV-SNP certificate authorities, pinned in the binary.
//!
//! Trust: these constants ARE the trust anchor of the real platform. They are AMD's ARK (root),
//! ASK (signs VCEKs) and ASVK (signs VLEKs) for each product, as served by AMD's key
//! distribution service (kdsintf.amd.com/vcek/v1/<product>/cert_chain and
//! /vlek/v1/<product>/cert_chain). Tests check each intermediate verifies under its ARK,
//! each ARK is self-signed, and the Milan set matches the independently captured chains in
//! the shared test vectors; being constants, those signatures are not recomputed at run time
//! (only the certificates' validity is checked on each verification). Never replace them with
//! certificates the host sends.

use sotto_verify_core::x509::{Cert, CertError};

use crate::{KeyKind, Product};

pub const MILAN_ARK_PEM: &str = include_str!("roots/milan_ark.pem");
pub const MILAN_ASK_PEM: &str = include_str!("roots/milan_ask.pem");
pub const MILAN_ASVK_PEM: &str = include_str!("roots/milan_asvk.pem");
pub const GENOA_ARK_PEM: &str = include_str!("roots/genoa_ark.pem");
pub const GENOA_ASK_PEM: &str = include_str!("roots/genoa_ask.pem");
pub const GENOA_ASVK_PEM: &str = include_str!("roots/genoa_asvk.pem");
pub const TURIN_ARK_PEM: &str = include_str!("roots/turin_ark.pem");
pub const TURIN_ASK_PEM: &str = include_str!("roots/turin_ask.pem");
pub const TURIN_ASVK_PEM: &str = include_str!("roots/turin_asvk.pem");

/// The pinned `(intermediate, ARK)` PEMs for endorsements of `kind` on `product`: the ASK
/// for VCEKs, the ASVK for VLEKs. `None` for products AMD does not sign (the simulated one).
pub fn chain_pem(product: Product, kind: KeyKind) -> Option<(&'static str, &'static str)> {
    let (ark, ask, asvk) = match product {
        Product::Milan => (MILAN_ARK_PEM, MILAN_ASK_PEM, MILAN_ASVK_PEM),
        Product::Genoa => (GENOA_ARK_PEM, GENOA_ASK_PEM, GENOA_ASVK_PEM),
        Product::Turin => (TURIN_ARK_PEM, TURIN_ASK_PEM, TURIN_ASVK_PEM),
        Product::Simulated => return None,
    };
    Some(match kind {
        KeyKind::Vcek => (ask, ark),
        KeyKind::Vlek => (asvk, ark),
    })
}

/// Parses one pinned PEM constant.
pub(crate) fn pinned_cert(pem: &str) -> Result<Cert, CertError> {
    Cert::from_pem_chain(pem.as_bytes())?
        .into_iter()
        .next()
        .ok_or(CertError::EmptyPem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sotto_verify_core::UnixTime;

    #[test]
    fn every_pinned_intermediate_chains_to_its_self_signed_ark() {
        // Inside every certificate's validity (the newest ones start in 2023).
        let at = UnixTime(1_750_000_000);
        for product in [Product::Milan, Product::Genoa, Product::Turin] {
            for kind in [KeyKind::Vcek, KeyKind::Vlek] {
                let (inter, ark) = chain_pem(product, kind).unwrap();
                let inter = pinned_cert(inter).unwrap();
                let ark = pinned_cert(ark).unwrap();
                ark.verify_issued_by(&ark).unwrap();
                inter.verify_issued_by(&ark).unwrap();
                inter.check_validity(at).unwrap();
                ark.check_validity(at).unwrap();
                let want_ark = format!("CN=ARK-{}", product.name());
                assert!(ark.subject().contains(&want_ark), "{}", ark.subject());
                let want_inter = match kind {
                    KeyKind::Vcek => format!("CN=SEV-{}", product.name()),
                    KeyKind::Vlek => format!("CN=SEV-VLEK-{}", product.name()),
                };
                assert!(inter.subject().contains(&want_inter), "{}", inter.subject());
            }
        }
        assert!(chain_pem(Product::Simulated, KeyKind::Vcek).is_none());
    }
}
