//! The recovery code: 128 random bits a person writes down at sign-up, so that losing every
//! passkey does not lose the history. It is shown once and typed back on a new device.
//!
//! Format: the 16 secret bytes and a 4-byte checksum, in Crockford base32 (no I, L, O, U; case
//! and the look-alikes I/L→1, O→0 forgiven), as eight groups of four characters. The checksum
//! catches typos before any network call. From the secret the client derives three unrelated
//! values: a lookup handle (lets the server find the account without a user name), a sign-in
//! secret (the server stores only its SHA-256), and a key-encryption key bound to the account.
//! With 128 bits of entropy a fast KDF suffices: there is nothing to brute-force.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::keys::{derive, Kek};
use crate::VaultError;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const SECRET_LEN: usize = 16;
const CHECK_LEN: usize = 4;
const CODE_CHARS: usize = (SECRET_LEN + CHECK_LEN) * 8 / 5;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecoveryCodeError {
    #[error("a recovery code has {CODE_CHARS} characters (not counting dashes and spaces); this one has {0}")]
    Length(usize),
    #[error("a recovery code has no character {0:?}")]
    Character(char),
    #[error("the recovery code has a typo: its checksum does not match")]
    Checksum,
}

pub struct RecoveryCode(Zeroizing<[u8; SECRET_LEN]>);

fn checksum(secret: &[u8]) -> [u8; CHECK_LEN] {
    let d = Sha256::new()
        .chain_update(b"sotto/recovery-code/checksum/v1")
        .chain_update(secret)
        .finalize();
    let mut c = [0u8; CHECK_LEN];
    c.copy_from_slice(&d[..CHECK_LEN]);
    c
}

/// Regroups a bit string, most significant bit first, from values of `from` bits into values
/// of `to` bits (both at most 8) passed to `emit`. Leftover bits are dropped: the code's 160
/// bits fill whole bytes and whole base32 characters alike.
fn regroup_bits(values: &[u8], from: u32, to: u32, mut emit: impl FnMut(u8)) {
    let mut acc: u64 = 0;
    let mut bits = 0;
    for &v in values {
        acc = (acc << from) | u64::from(v);
        bits += from;
        while bits >= to {
            bits -= to;
            // Masked to `to` bits, at most 8, so the cast keeps every bit.
            emit(((acc >> bits) & ((1 << to) - 1)) as u8);
        }
    }
}

impl RecoveryCode {
    pub fn generate() -> Result<Self, VaultError> {
        let mut s = Zeroizing::new([0u8; SECRET_LEN]);
        getrandom::getrandom(s.as_mut()).map_err(|_| VaultError::Randomness)?;
        Ok(RecoveryCode(s))
    }

    /// The code to show the user, e.g. `7Q2M-…`; treat it as a secret.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(SECRET_LEN + CHECK_LEN));
        bytes.extend_from_slice(self.0.as_ref());
        bytes.extend_from_slice(&checksum(self.0.as_ref()));
        let mut out = Zeroizing::new(String::with_capacity(CODE_CHARS + CODE_CHARS / 4));
        let mut n = 0;
        regroup_bits(&bytes, 8, 5, |v| {
            if n > 0 && n % 4 == 0 {
                out.push('-');
            }
            out.push(char::from(ALPHABET[usize::from(v)]));
            n += 1;
        });
        out
    }

    pub fn parse(text: &str) -> Result<Self, RecoveryCodeError> {
        let mut values = Zeroizing::new(Vec::with_capacity(CODE_CHARS));
        for c in text.chars() {
            if c == '-' || c.is_whitespace() {
                continue;
            }
            let v = match c.to_ascii_uppercase() {
                'O' => 0,
                'I' | 'L' => 1,
                u => ALPHABET
                    .iter()
                    .position(|&a| char::from(a) == u)
                    .ok_or(RecoveryCodeError::Character(c))?,
            };
            values.push(v as u8);
        }
        if values.len() != CODE_CHARS {
            return Err(RecoveryCodeError::Length(values.len()));
        }
        let mut bytes = Zeroizing::new(Vec::with_capacity(SECRET_LEN + CHECK_LEN));
        regroup_bits(&values, 5, 8, |b| bytes.push(b));
        let (secret, check) = bytes.split_at(SECRET_LEN);
        if checksum(secret) != check {
            return Err(RecoveryCodeError::Checksum);
        }
        let mut s = Zeroizing::new([0u8; SECRET_LEN]);
        s.copy_from_slice(secret);
        Ok(RecoveryCode(s))
    }

    /// Lets the server find the account; reveals nothing about the other derived values.
    pub fn lookup(&self) -> [u8; 32] {
        *derive(self.0.as_ref(), &[b"recovery/lookup"])
    }

    /// Sent to the server at recovery sign-in; the server keeps only [`Self::verifier`].
    pub fn sign_in_secret(&self) -> Zeroizing<[u8; 32]> {
        derive(self.0.as_ref(), &[b"recovery/sign-in"])
    }

    pub fn verifier(&self) -> [u8; 32] {
        Sha256::digest(self.sign_in_secret().as_ref()).into()
    }

    pub fn kek(&self, account: &str) -> Kek {
        Kek(derive(
            self.0.as_ref(),
            &[b"kek/recovery", account.as_bytes()],
        ))
    }
}

/// SHA-256 of a recovery sign-in secret: what the server compares against its stored verifier.
pub fn verifier_of(secret: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_forgives_case_and_lookalikes() {
        let code = RecoveryCode::generate().unwrap();
        let text = code.to_text();
        assert_eq!(text.len(), CODE_CHARS + CODE_CHARS / 4 - 1);
        assert_eq!(text.matches('-').count(), 7);
        let back = RecoveryCode::parse(&text).unwrap();
        assert_eq!(*back.0, *code.0);
        let sloppy: String = text
            .to_lowercase()
            .replace('-', " ")
            .replace('0', "o")
            .replace('1', "l");
        assert_eq!(*RecoveryCode::parse(&sloppy).unwrap().0, *code.0);
    }

    #[test]
    fn every_single_typo_is_caught() {
        let code = RecoveryCode::generate().unwrap();
        let text: Vec<char> = code.to_text().chars().collect();
        for i in 0..text.len() {
            if text[i] == '-' {
                continue;
            }
            for &a in ALPHABET.iter() {
                let a = char::from(a);
                if a == text[i] {
                    continue;
                }
                let mut t = text.clone();
                t[i] = a;
                let t: String = t.into_iter().collect();
                assert_eq!(
                    RecoveryCode::parse(&t).err(),
                    Some(RecoveryCodeError::Checksum),
                    "typo at {i} not caught"
                );
            }
        }
    }

    #[test]
    fn malformed_codes_are_refused_precisely() {
        assert_eq!(
            RecoveryCode::parse("ABCD").err(),
            Some(RecoveryCodeError::Length(4))
        );
        assert_eq!(
            RecoveryCode::parse("ABCU").err(),
            Some(RecoveryCodeError::Character('U'))
        );
        assert_eq!(
            RecoveryCode::parse("").err(),
            Some(RecoveryCodeError::Length(0))
        );
    }

    #[test]
    fn derived_values_are_independent_and_account_bound() {
        let c = RecoveryCode::generate().unwrap();
        assert_ne!(c.lookup(), *c.sign_in_secret());
        assert_eq!(c.verifier(), verifier_of(&c.sign_in_secret()));
        assert_ne!(*c.kek("a").0, *c.kek("b").0);
        assert_ne!(*c.kek("a").0, c.lookup());
        let other = RecoveryCode::generate().unwrap();
        assert_ne!(c.lookup(), other.lookup());
    }
}
