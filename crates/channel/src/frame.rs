//! Length-prefixed framing of Noise messages on a byte stream (relay <-> enclave).
//!
//! Each frame is a big-endian u32 length followed by that many bytes. A Noise message is at
//! most 65,535 bytes, so anything longer is refused before it is buffered.

use crate::ChannelError;

/// The largest Noise message (Noise spec, section 3).
pub const MAX_FRAME: usize = 65_535;

pub fn encode(payload: &[u8]) -> Result<Vec<u8>, ChannelError> {
    if payload.len() > MAX_FRAME {
        return Err(ChannelError::FrameTooLarge {
            len: payload.len(),
            max: MAX_FRAME,
        });
    }
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Incremental decoder: push bytes as they arrive, pop whole frames.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed, or an error for a length
    /// over [`MAX_FRAME`] (the stream cannot be trusted after that and must be closed).
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, ChannelError> {
        let Some(header) = self.buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len > MAX_FRAME {
            return Err(ChannelError::FrameTooLarge {
                len,
                max: MAX_FRAME,
            });
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let frame = self.buf[4..4 + len].to_vec();
        self.buf.drain(..4 + len);
        Ok(Some(frame))
    }

    /// Bytes received but not yet part of a complete frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_pushes() {
        let mut d = Decoder::new();
        let mut stream = encode(b"hello").unwrap();
        stream.extend(encode(b"").unwrap());
        stream.extend(encode(&[7u8; 1000]).unwrap());
        for chunk in stream.chunks(3) {
            d.push(chunk);
        }
        assert_eq!(d.next_frame().unwrap().unwrap(), b"hello");
        assert_eq!(d.next_frame().unwrap().unwrap(), b"");
        assert_eq!(d.next_frame().unwrap().unwrap(), vec![7u8; 1000]);
        assert!(d.next_frame().unwrap().is_none());
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn oversized_length_refused_without_buffering() {
        let mut d = Decoder::new();
        d.push(&[0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            d.next_frame(),
            Err(ChannelError::FrameTooLarge { .. })
        ));
        assert!(encode(&vec![0u8; MAX_FRAME + 1]).is_err());
    }
}
