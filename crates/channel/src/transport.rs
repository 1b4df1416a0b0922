//! The established channel: Noise transport messages carrying application messages, padded.
//!
//! A Noise message holds at most 65,535 bytes, so an application message is split into chunks.
//! Each chunk's plaintext is one flag byte (1 = more chunks follow, 0 = last), the chunk's data
//! length (u16, big-endian), the data and zero padding, all inside the encryption, so a relay
//! can neither truncate nor splice messages unnoticed. Noise's per-direction nonces already make
//! replayed, dropped or reordered chunks fail to decrypt.
//!
//! Padding: every Noise message is padded to the smallest of [`BUCKETS`] that holds it (and a
//! chunk that is not the last fills a whole frame), so what the relay sees of a message is its
//! bucket, never its length: a streamed token, a short answer and a long prompt's last chunk
//! all look alike within a bucket. The cost is at most 4x the bytes of a message and at least
//! 256 bytes per message (docs/BENCHMARKS.md has the measured overhead).

use zeroize::Zeroizing;

use crate::frame::MAX_FRAME;
use crate::ChannelError;

const TAG_LEN: usize = 16;
/// The flag byte and the u16 data length in front of each chunk's data.
const HEADER: usize = 3;
const CHUNK_DATA: usize = MAX_FRAME - TAG_LEN - HEADER;
const MORE: u8 = 1;
const LAST: u8 = 0;

/// The sizes, in bytes on the wire (ciphertext and tag), that every Noise message is padded
/// to. Each is 4x the one before, so padding costs at most 4x; the last is a full frame.
pub const BUCKETS: [usize; 5] = [256, 1024, 4096, 16_384, MAX_FRAME];

/// Largest application message accepted (a whole conversation's context).
pub const MAX_MESSAGE: usize = 8 * 1024 * 1024;

/// Whether messages are padded to [`BUCKETS`]. Off exists only to measure what padding costs
/// and to show, in a test, what it hides; nothing in a deployment turns it off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Padding {
    #[default]
    Buckets,
    Off,
}

impl Padding {
    /// The plaintext length to pad a chunk of `plain` bytes (header included) to.
    fn padded(self, plain: usize) -> usize {
        match self {
            Padding::Off => plain,
            Padding::Buckets => BUCKETS
                .iter()
                .map(|b| b - TAG_LEN)
                .find(|&b| b >= plain)
                .unwrap_or(plain),
        }
    }
}

pub struct Session {
    transport: snow::TransportState,
    inbound: Zeroizing<Vec<u8>>,
    padding: Padding,
}

impl Session {
    pub(crate) fn new(transport: snow::TransportState) -> Self {
        Session {
            transport,
            inbound: Zeroizing::new(Vec::new()),
            padding: Padding::default(),
        }
    }

    /// Changes how this side pads what it sends (the peer reads either).
    pub fn set_padding(&mut self, padding: Padding) {
        self.padding = padding;
    }

    /// Encrypts one application message into one or more Noise messages, each to be sent as
    /// one frame.
    pub fn seal(&mut self, message: &[u8]) -> Result<Vec<Vec<u8>>, ChannelError> {
        if message.len() > MAX_MESSAGE {
            return Err(ChannelError::MessageTooLarge { max: MAX_MESSAGE });
        }
        let mut chunks: Vec<&[u8]> = message.chunks(CHUNK_DATA).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let last = chunks.len() - 1;
        let mut out = Vec::with_capacity(chunks.len());
        let mut plain = Zeroizing::new(Vec::with_capacity(CHUNK_DATA + HEADER));
        for (i, chunk) in chunks.into_iter().enumerate() {
            plain.clear();
            plain.push(if i == last { LAST } else { MORE });
            // CHUNK_DATA < 65,536, so the length always fits.
            plain.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            plain.extend_from_slice(chunk);
            let padded = self.padding.padded(plain.len());
            plain.resize(padded, 0);
            let mut cipher = vec![0u8; plain.len() + TAG_LEN];
            let n = self
                .transport
                .write_message(&plain, &mut cipher)
                .map_err(|e| ChannelError::Handshake(e.to_string()))?;
            cipher.truncate(n);
            out.push(cipher);
        }
        Ok(out)
    }

    /// Decrypts one Noise message. Returns the whole application message once its last chunk
    /// has arrived, `None` while more chunks are expected. Any failure is final: the caller
    /// must drop the session.
    pub fn open(
        &mut self,
        noise_message: &[u8],
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ChannelError> {
        if noise_message.len() > MAX_FRAME {
            return Err(ChannelError::FrameTooLarge {
                len: noise_message.len(),
                max: MAX_FRAME,
            });
        }
        let mut plain = Zeroizing::new(vec![0u8; noise_message.len()]);
        let n = self
            .transport
            .read_message(noise_message, &mut plain)
            .map_err(|_| ChannelError::Decrypt)?;
        let ([flag, hi, lo], rest) = plain[..n]
            .split_first_chunk::<HEADER>()
            .ok_or(ChannelError::Malformed("chunk shorter than its header"))?;
        let (data, padding) = rest
            .split_at_checked(usize::from(u16::from_be_bytes([*hi, *lo])))
            .ok_or(ChannelError::Malformed("chunk length past its end"))?;
        if padding.iter().any(|&b| b != 0) {
            return Err(ChannelError::Malformed("chunk padding is not zero"));
        }
        if self.inbound.len() + data.len() > MAX_MESSAGE {
            return Err(ChannelError::MessageTooLarge { max: MAX_MESSAGE });
        }
        self.inbound.extend_from_slice(data);
        match *flag {
            LAST => Ok(Some(std::mem::replace(
                &mut self.inbound,
                Zeroizing::new(Vec::new()),
            ))),
            MORE => Ok(None),
            _ => Err(ChannelError::Malformed("unknown chunk flag")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::session_pair;

    #[test]
    fn every_message_travels_in_a_bucket_and_arrives_whole() {
        let (mut a, mut b) = session_pair();
        for len in [0, 1, 5, 236, 237, 1000, 5000, 65_516, 65_517, 200_000] {
            let message: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let parts = a.seal(&message).unwrap();
            assert!(parts.iter().all(|p| BUCKETS.contains(&p.len())), "{len}");
            let (whole, tail) = parts.split_at(parts.len() - 1);
            assert!(whole.iter().all(|p| p.len() == MAX_FRAME));
            for p in whole {
                assert!(b.open(p).unwrap().is_none());
            }
            assert_eq!(*b.open(&tail[0]).unwrap().unwrap(), message);
        }
    }

    #[test]
    fn unpadded_messages_show_their_length() {
        let (mut a, mut b) = session_pair();
        a.set_padding(Padding::Off);
        for len in [0, 4, 9] {
            let parts = a.seal(&vec![1; len]).unwrap();
            assert_eq!(parts[0].len(), len + HEADER + TAG_LEN);
            assert_eq!(b.open(&parts[0]).unwrap().unwrap().len(), len);
        }
    }

    #[test]
    fn a_chunk_with_a_bad_header_or_padding_is_refused() {
        let (mut a, mut b) = session_pair();
        for (plain, why) in [
            (&[LAST][..], "shorter than its header"),
            (&[LAST, 0, 9, 1, 2][..], "past its end"),
            (&[LAST, 0, 1, 7, 0, 1][..], "padding is not zero"),
            (&[9, 0, 0][..], "unknown chunk flag"),
        ] {
            let mut cipher = vec![0u8; plain.len() + TAG_LEN];
            let n = a.transport.write_message(plain, &mut cipher).unwrap();
            let err = b.open(&cipher[..n]).err().unwrap();
            assert!(err.to_string().contains(why), "{err}");
        }
    }
}
