//! c2sp.org/tlog-witness `add-checkpoint`: the request a log sends a witness, and the answers.
//!
//! ```text
//! old <size>
//! <consistency proof hash, base64>   (zero to 63 lines)
//!
//! <checkpoint note>
//! ```

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::merkle::Hash;

/// The most consistency proof lines a request may carry.
pub const MAX_PROOF_LINES: usize = 63;
/// The `Content-Type` of a 409 answer, whose body is the witness's latest size.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("malformed add-checkpoint request: {0}")]
    Malformed(&'static str),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    pub old_size: u64,
    pub proof: Vec<Hash>,
    /// The checkpoint as a signed note, exactly as the log serves it.
    pub checkpoint: Vec<u8>,
}

fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

impl AddCheckpoint {
    pub fn to_body(&self) -> Vec<u8> {
        let mut out = format!("old {}\n", self.old_size);
        for h in &self.proof {
            out.push_str(&B64.encode(h));
            out.push('\n');
        }
        out.push('\n');
        let mut out = out.into_bytes();
        out.extend_from_slice(&self.checkpoint);
        out
    }

    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        let mut rest = body;
        let mut line = || -> Result<&str, RequestError> {
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .ok_or(RequestError::Malformed("a line does not end in a newline"))?;
            let l = std::str::from_utf8(&rest[..end])
                .map_err(|_| RequestError::Malformed("not UTF-8"))?;
            rest = &rest[end + 1..];
            Ok(l)
        };
        let old = line()?
            .strip_prefix("old ")
            .and_then(decimal)
            .ok_or(RequestError::Malformed(
                "the first line is not `old <size>`",
            ))?;
        let mut proof = Vec::new();
        loop {
            let l = line()?;
            if l.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(RequestError::Malformed("more than 63 proof lines"));
            }
            let h: Hash = B64
                .decode(l)
                .ok()
                .and_then(|h| h.try_into().ok())
                .ok_or(RequestError::Malformed("a proof line is not a base64 hash"))?;
            proof.push(h);
        }
        Ok(AddCheckpoint {
            old_size: old,
            proof,
            checkpoint: rest.to_vec(),
        })
    }
}

/// The body of a 409 answer.
pub fn size_body(size: u64) -> String {
    format!("{size}\n")
}

/// Parses the body of a 409 answer.
pub fn parse_size_body(body: &[u8]) -> Option<u64> {
    std::str::from_utf8(body)
        .ok()?
        .strip_suffix('\n')
        .and_then(decimal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let req = AddCheckpoint {
            old_size: 20852014,
            proof: vec![[7; 32], [9; 32]],
            checkpoint: b"o\n1\nAAAA\n\n\xe2\x80\x94 o AAAAAAA=\n".to_vec(),
        };
        let body = req.to_body();
        assert!(body.starts_with(b"old 20852014\nBwcH"));
        assert_eq!(AddCheckpoint::parse(&body).unwrap(), req);
        for bad in [
            &b"old 01\n\nx"[..],
            b"old 1\nnot base64\n\nx",
            b"new 1\n\nx",
            b"old 1\n",
        ] {
            assert!(AddCheckpoint::parse(bad).is_err());
        }
        assert_eq!(parse_size_body(size_body(42).as_bytes()), Some(42));
        assert_eq!(parse_size_body(b"042\n"), None);
    }
}
