//! c2sp.org/tlog-checkpoint: the text a log signs to commit to a tree head.
//!
//! ```text
//! <origin>
//! <tree size, decimal>
//! <root hash, base64>
//! [extension lines]
//! ```

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::merkle::Hash;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    pub extensions: Vec<String>,
}

impl Checkpoint {
    pub fn new(origin: &str, size: u64, root: Hash) -> Self {
        Checkpoint {
            origin: origin.to_string(),
            size,
            root,
            extensions: Vec::new(),
        }
    }

    /// The note text to sign.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for e in &self.extensions {
            out.push_str(e);
            out.push('\n');
        }
        out
    }

    /// Parses a note's text (see [`crate::note::Note::text`]).
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::Malformed("no final newline"))?;
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or(CheckpointError::Malformed("empty origin"))?;
        let size = lines
            .next()
            .ok_or(CheckpointError::Malformed("no tree size"))?;
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(CheckpointError::Malformed(
                "the tree size is not a decimal without leading zeroes",
            ));
        }
        let size: u64 = size
            .parse()
            .map_err(|_| CheckpointError::Malformed("tree size out of range"))?;
        let root = lines
            .next()
            .ok_or(CheckpointError::Malformed("no root hash"))?;
        let root: Hash = B64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or(CheckpointError::Malformed(
                "the root hash is not 32 bytes of base64",
            ))?;
        let extensions: Vec<String> = lines.map(str::to_string).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(CheckpointError::Malformed("empty extension line"));
        }
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
            extensions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let text =
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let c = Checkpoint::parse(text).unwrap();
        assert_eq!(c.size, 20852163);
        assert_eq!(c.to_text(), text);
        for bad in [
            "o\n01\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2\n",
            "\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n",
            "o\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
            "o\n1\n",
        ] {
            assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
        }
        let with_ext = "o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nextra\n";
        assert_eq!(Checkpoint::parse(with_ext).unwrap().extensions, ["extra"]);
    }
}
