//! The post-quantum half of the channel's key agreement: ML-KEM-768 (FIPS 203).
//!
//! The client puts a fresh encapsulation key in its hello; the enclave encapsulates a secret to
//! it and sends the ciphertext in front of its Noise answer. Both derive the Noise pre-shared
//! key of `NXpsk2` from that secret, so the transport keys depend on X25519 (ee, es) *and* on
//! ML-KEM: a recording stays sealed unless both are broken. The same way Rosenpass feeds a
//! post-quantum secret into WireGuard's PSK slot, this keeps the whole handshake in one audited
//! Noise implementation. The KEM keys are ephemeral (one pair per handshake), so the
//! post-quantum half is forward secret too; the enclave's identity is still its X25519 static
//! key, which the evidence commits to.

use ml_kem::array::Array;
use ml_kem::kem::{Decapsulate, DecapsulationKey, Encapsulate, EncapsulationKey};
use ml_kem::{EncodedSizeUser, KemCore, MlKem768, MlKem768Params};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::ChannelError;

/// Bytes of an ML-KEM-768 encapsulation key (FIPS 203, table 3).
pub const PUBLIC_LEN: usize = 1184;
/// Bytes of an ML-KEM-768 ciphertext.
pub const CIPHERTEXT_LEN: usize = 1088;

/// Binds the derived key to this protocol, the ciphertext and the encapsulation key, as the
/// X-Wing combiner does, so no other transcript can yield the same key.
const LABEL: &[u8] = b"sotto/channel/v3 ml-kem-768 psk\0";

/// The Noise pre-shared key both sides derive.
pub(crate) type Psk = Zeroizing<[u8; 32]>;

/// The client's half: the decapsulation key stays here (it zeroizes on drop), the encoded
/// encapsulation key goes into the hello.
pub(crate) struct KemSecret {
    decapsulation: DecapsulationKey<MlKem768Params>,
    public: [u8; PUBLIC_LEN],
}

impl KemSecret {
    pub(crate) fn generate() -> Self {
        let (decapsulation, encapsulation) = MlKem768::generate(&mut rand_core::OsRng);
        let mut public = [0u8; PUBLIC_LEN];
        public.copy_from_slice(&encapsulation.as_bytes());
        KemSecret {
            decapsulation,
            public,
        }
    }

    pub(crate) fn public(&self) -> &[u8; PUBLIC_LEN] {
        &self.public
    }

    /// The key the enclave derived, from its ciphertext. ML-KEM rejects implicitly: a
    /// tampered ciphertext yields an unrelated key, which makes the Noise answer fail to
    /// decrypt.
    pub(crate) fn decapsulate(
        &self,
        ciphertext: &[u8; CIPHERTEXT_LEN],
    ) -> Result<Psk, ChannelError> {
        let shared = self
            .decapsulation
            .decapsulate(&Array::from(*ciphertext))
            .map_err(|()| ChannelError::Handshake("ML-KEM decapsulation failed".into()))?;
        Ok(derive(&shared, ciphertext, &self.public))
    }
}

/// The enclave's half: a ciphertext for the client's encapsulation key, and the key it hides.
pub(crate) fn encapsulate(
    public: &[u8; PUBLIC_LEN],
) -> Result<([u8; CIPHERTEXT_LEN], Psk), ChannelError> {
    let key = EncapsulationKey::<MlKem768Params>::from_bytes(&Array::from(*public));
    let (ciphertext, shared) = key
        .encapsulate(&mut rand_core::OsRng)
        .map_err(|()| ChannelError::Handshake("ML-KEM encapsulation failed".into()))?;
    let mut out = [0u8; CIPHERTEXT_LEN];
    out.copy_from_slice(&ciphertext);
    let psk = derive(&shared, &out, public);
    Ok((out, psk))
}

fn derive(shared: &[u8], ciphertext: &[u8], public: &[u8]) -> Psk {
    let mut h = Sha256::new();
    h.update(LABEL);
    h.update(shared);
    h.update(ciphertext);
    h.update(public);
    Zeroizing::new(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_derive_one_key_and_a_changed_ciphertext_another() {
        let client = KemSecret::generate();
        let (mut ciphertext, enclave) = encapsulate(client.public()).unwrap();
        assert_eq!(*client.decapsulate(&ciphertext).unwrap(), *enclave);
        ciphertext[7] ^= 1;
        assert_ne!(*client.decapsulate(&ciphertext).unwrap(), *enclave);
        let other = KemSecret::generate();
        let (_, again) = encapsulate(client.public()).unwrap();
        assert_ne!(*again, *enclave, "every encapsulation hides a fresh secret");
        assert_ne!(other.public(), client.public());
    }
}
