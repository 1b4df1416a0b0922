//! Sealed records: what the server stores for each piece of history.
//!
//! Layout: `format (1 byte) || nonce (24) || XChaCha20-Poly1305 ciphertext`. The plaintext is
//! framed as `length (u32 BE) || data || zeros`, padded to a Padmé size (at least 256 bytes), so
//! the server learns a length class, not a length. The associated data binds the format, the
//! account, the record id, the record kind and the record version: a record the server moves
//! to another id, account or kind, or serves at another version than the one it was written
//! at, fails to open. Detecting an older version served in place of a newer one is the
//! ledger's job (see [`crate::ledger`]).
//!
//! Format 2 is the first whose message records carry the conversation chain
//! ([`crate::chain`]). Format 1 records (messages without a chain) are refused rather than
//! read as unchained: nothing was ever released in format 1, so there is nothing to migrate,
//! and a chain that old records could opt out of would protect nothing.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::keys::framed;
use crate::VaultError;

pub const FORMAT_V2: u8 = 2;
const NONCE_LEN: usize = 24;
const MIN_PADDED: usize = 256;
/// Largest plaintext a record may hold; conversations are split into message records long
/// before this.
pub const MAX_PLAINTEXT: usize = 4 * 1024 * 1024;

/// What a record is; part of the associated data, and implied by the record id's prefix.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// The vault key wrapped by a key-encryption key (a passkey's or the recovery code's).
    Wrap,
    /// A conversation key wrapped by the vault key.
    ConversationKey,
    /// A conversation's title and folder, under its conversation key.
    ConversationHeader,
    /// One message, under its conversation key; written once, never updated.
    Message,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Wrap => "wrap",
            Kind::ConversationKey => "conv-key",
            Kind::ConversationHeader => "conv-header",
            Kind::Message => "msg",
        }
    }
}

/// Where a record lives; every field is bound into the associated data.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    pub account: &'a str,
    pub id: &'a str,
    pub kind: Kind,
    pub version: u64,
}

fn aad(ctx: &Context<'_>) -> Vec<u8> {
    framed(&[
        b"sotto/record",
        &[FORMAT_V2],
        ctx.account.as_bytes(),
        ctx.id.as_bytes(),
        ctx.kind.as_str().as_bytes(),
        &ctx.version.to_be_bytes(),
    ])
}

/// Padmé (Nikitin et al., PETS 2019): rounds up to a size whose low bits are zero, leaking
/// O(log log n) bits of the length with at most 12% overhead.
pub fn padded_len(len: usize) -> usize {
    let len = len.max(MIN_PADDED);
    let e = usize::BITS - 1 - len.leading_zeros();
    let s = u32::BITS - e.leading_zeros();
    let last_bits = e - s;
    let mask = (1usize << last_bits) - 1;
    (len + mask) & !mask
}

pub fn seal(key: &[u8; 32], ctx: &Context<'_>, plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(VaultError::TooLarge(plaintext.len()));
    }
    let mut framed_pt = Zeroizing::new(Vec::with_capacity(padded_len(plaintext.len() + 4)));
    framed_pt.extend_from_slice(&(plaintext.len() as u32).to_be_bytes());
    framed_pt.extend_from_slice(plaintext);
    framed_pt.resize(padded_len(plaintext.len() + 4), 0);

    let mut nonce = [0u8; NONCE_LEN];
    getrandom::getrandom(&mut nonce).map_err(|_| VaultError::Randomness)?;
    let cipher = XChaCha20Poly1305::new(key.into());
    let aad = aad(ctx);
    let ct = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &framed_pt,
                aad: &aad,
            },
        )
        .map_err(|_| VaultError::TooLarge(plaintext.len()))?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(FORMAT_V2);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

pub fn open(
    key: &[u8; 32],
    ctx: &Context<'_>,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let (&format, rest) = sealed.split_first().ok_or(VaultError::Truncated)?;
    if format != FORMAT_V2 {
        return Err(VaultError::UnknownFormat(format));
    }
    if rest.len() < NONCE_LEN + 16 {
        return Err(VaultError::Truncated);
    }
    let (nonce, ct) = rest.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| VaultError::Truncated)?;
    let cipher = XChaCha20Poly1305::new(key.into());
    let aad = aad(ctx);
    let framed_pt = Zeroizing::new(
        cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| VaultError::Authentication {
                id: ctx.id.to_owned(),
            })?,
    );
    let len_bytes: [u8; 4] = framed_pt
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(VaultError::Truncated)?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    let body = framed_pt
        .get(4..4usize.saturating_add(len))
        .ok_or(VaultError::Truncated)?;
    Ok(Zeroizing::new(body.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(id: &'a str) -> Context<'a> {
        Context {
            account: "acct",
            id,
            kind: Kind::Message,
            version: 1,
        }
    }

    #[test]
    fn padme_sizes() {
        assert_eq!(padded_len(0), 256);
        assert_eq!(padded_len(256), 256);
        assert_eq!(padded_len(257), 272);
        assert_eq!(padded_len(1000), 1024);
        assert_eq!(padded_len(1025), 1088);
        for n in [300usize, 5_000, 70_000, 1 << 20] {
            let p = padded_len(n);
            assert!(p >= n && p - n <= n / 8 + 1, "{n} -> {p}");
        }
    }

    #[test]
    fn sizes_leak_only_a_class() {
        let k = [1u8; 32];
        let a = seal(&k, &ctx("a"), b"hi").unwrap();
        let b = seal(&k, &ctx("a"), &[b'x'; 200]).unwrap();
        assert_eq!(a.len(), b.len());
    }

    #[test]
    fn every_context_field_and_every_byte_is_bound() {
        let k = [3u8; 32];
        let c = ctx("m.1");
        let sealed = seal(&k, &c, b"the secret").unwrap();
        assert_eq!(&*open(&k, &c, &sealed).unwrap(), b"the secret");
        let variants = [
            Context {
                account: "other",
                ..c
            },
            Context { id: "m.2", ..c },
            Context {
                kind: Kind::ConversationHeader,
                ..c
            },
            Context { version: 2, ..c },
        ];
        for v in variants {
            assert!(matches!(
                open(&k, &v, &sealed),
                Err(VaultError::Authentication { .. })
            ));
        }
        assert!(open(&[4u8; 32], &c, &sealed).is_err());
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x20;
            assert!(open(&k, &c, &t).is_err(), "flip at {i} accepted");
        }
        assert!(matches!(open(&k, &c, &[]), Err(VaultError::Truncated)));
        let mut format_1 = sealed.clone();
        format_1[0] = 1;
        assert!(matches!(
            open(&k, &c, &format_1),
            Err(VaultError::UnknownFormat(1))
        ));
        assert!(matches!(
            open(&k, &c, &sealed[..30]),
            Err(VaultError::Truncated)
        ));
    }
}
