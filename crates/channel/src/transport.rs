//! The established channel: Noise transport messages carrying application messages.
//!
//! A Noise message holds at most 65,535 bytes, so an application message is split into chunks.
//! Each chunk's plaintext starts with one flag byte (1 = more chunks follow, 0 = last), inside
//! the encryption, so a relay can neither truncate nor splice messages unnoticed. Noise's
//! per-direction nonces already make replayed, dropped or reordered chunks fail to decrypt.

use zeroize::Zeroizing;

use crate::frame::MAX_FRAME;
use crate::ChannelError;

const TAG_LEN: usize = 16;
const CHUNK_DATA: usize = MAX_FRAME - TAG_LEN - 1;
const MORE: u8 = 1;
const LAST: u8 = 0;

/// Largest application message accepted (a whole conversation's context).
pub const MAX_MESSAGE: usize = 8 * 1024 * 1024;

pub struct Session {
    transport: snow::TransportState,
    inbound: Zeroizing<Vec<u8>>,
}

impl Session {
    pub(crate) fn new(transport: snow::TransportState) -> Self {
        Session {
            transport,
            inbound: Zeroizing::new(Vec::new()),
        }
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
        let mut plain = Zeroizing::new(Vec::with_capacity(CHUNK_DATA + 1));
        for (i, chunk) in chunks.into_iter().enumerate() {
            plain.clear();
            plain.push(if i == last { LAST } else { MORE });
            plain.extend_from_slice(chunk);
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
        let (flag, data) = plain[..n]
            .split_first()
            .ok_or(ChannelError::Malformed("empty chunk"))?;
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
