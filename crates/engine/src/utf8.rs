//! Incremental UTF-8 decoding of token pieces.
//!
//! Byte-level tokenizers split multi-byte characters across tokens, so a single token's bytes
//! are often not valid UTF-8 on their own. This holds back an incomplete trailing sequence until
//! the next piece completes it, and turns bytes that can never be valid into U+FFFD, the way a
//! streaming decoder must. Pure: bytes in, text out. Buffers are zeroized on drop because they
//! hold model output.

use zeroize::Zeroizing;

#[derive(Default)]
pub(crate) struct Utf8Stream {
    pending: Zeroizing<Vec<u8>>,
}

impl Utf8Stream {
    /// Appends `bytes` and returns all text that is now complete (possibly empty).
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Zeroizing<String> {
        self.pending.extend_from_slice(bytes);
        let mut out = Zeroizing::new(String::new());
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    return out;
                }
                Err(error) => {
                    let valid = error.valid_up_to();
                    if let Some(Ok(text)) = self.pending.get(..valid).map(std::str::from_utf8) {
                        out.push_str(text);
                    }
                    match error.error_len() {
                        // An incomplete sequence at the end: wait for the next piece.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Ends the stream: a sequence still incomplete can never be completed now.
    pub(crate) fn finish(&mut self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::new());
        if !self.pending.is_empty() {
            out.push(char::REPLACEMENT_CHARACTER);
            self.pending.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multibyte_char_split_across_pieces_comes_out_whole() {
        let mut s = Utf8Stream::default();
        // "€" is E2 82 AC; "😀" is F0 9F 98 80.
        assert_eq!(s.push(b"a\xE2").as_str(), "a");
        assert_eq!(s.push(b"\x82").as_str(), "");
        assert_eq!(s.push(b"\xACb\xF0\x9F").as_str(), "€b");
        assert_eq!(s.push(b"\x98\x80").as_str(), "😀");
        assert_eq!(s.finish().as_str(), "");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut s = Utf8Stream::default();
        assert_eq!(s.push(b"x\xFFy").as_str(), "x\u{FFFD}y");
        // A lead byte followed by a non-continuation byte.
        assert_eq!(s.push(b"\xE2z").as_str(), "\u{FFFD}z");
    }

    #[test]
    fn truncated_sequence_at_end_is_reported_once() {
        let mut s = Utf8Stream::default();
        assert_eq!(s.push(b"ok\xF0\x9F").as_str(), "ok");
        assert_eq!(s.finish().as_str(), "\u{FFFD}");
        assert_eq!(s.finish().as_str(), "");
    }
}
