//! AMD's real Milan chain (VCEK -> ASK -> ARK) through [`Cert::verify_chain_to_anchor`]: the
//! role rules a chain must meet (`rules`) and what [`ChainCache`] may save (`cache`).

mod cache;
mod rules;

use sotto_verify_core::x509::{Cert, CertError};
use sotto_verify_core::{ChainCache, UnixTime};

/// Inside the VCEK's validity (2023-04-03 .. 2030-04-03) and the ASK's and ARK's.
const AT: UnixTime = UnixTime(1_748_736_000);

fn read(name: &str) -> Vec<u8> {
    sotto_testkit::read_vector(&format!("sev-snp/{name}"))
}

/// The real chain of the Milan VCEK.
struct Milan {
    vcek: Cert,
    ask: Cert,
    ark: Cert,
}

fn milan() -> Milan {
    let vcek = Cert::from_der(&read("vcek_milan.der")).expect("vcek");
    let mut chain = Cert::from_pem_chain(&read("amd-milan-vcek-chain.pem")).expect("chain");
    let ark = chain.pop().expect("ark");
    let ask = chain.pop().expect("ask");
    Milan { vcek, ask, ark }
}

impl Milan {
    /// VCEK -> ASK -> ARK, the ARK as the anchor, checked at `at`.
    fn verify(&self, at: UnixTime, cache: &mut ChainCache) -> Result<(), CertError> {
        Cert::verify_chain_to_anchor(
            &self.vcek,
            std::slice::from_ref(&self.ask),
            &self.ark,
            at,
            cache,
        )
    }
}
