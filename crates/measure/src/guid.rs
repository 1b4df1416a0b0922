//! EFI GUIDs as they lie in firmware images: the first three fields little-endian, the last
//! eight bytes as written (what Python's `uuid.UUID(...).bytes_le` gives).

use std::fmt;

/// A GUID in its in-image (mixed-endian) byte order.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guid([u8; 16]);

impl Guid {
    /// The GUID of the usual text form, `96b582de-1fb2-45f7-baea-a366c55a082d` (hex digits of
    /// either case). Meant for constants, where a malformed GUID fails the build.
    pub const fn parse(text: &str) -> Self {
        let t = text.as_bytes();
        assert!(
            t.len() == 36 && t[8] == b'-' && t[13] == b'-' && t[18] == b'-' && t[23] == b'-',
            "a GUID is 8-4-4-4-12 hex digits"
        );
        // The sixteen bytes in the order the text writes them.
        let mut written = [0u8; 16];
        let (mut i, mut n) = (0, 0);
        while i < t.len() {
            if t[i] == b'-' {
                i += 1;
                continue;
            }
            written[n] = hex_digit(t[i]) << 4 | hex_digit(t[i + 1]);
            n += 1;
            i += 2;
        }
        let w = written;
        // The first three fields are little-endian in the image.
        Guid([
            w[3], w[2], w[1], w[0], w[5], w[4], w[7], w[6], w[8], w[9], w[10], w[11], w[12], w[13],
            w[14], w[15],
        ])
    }

    /// The GUID whose in-image bytes these are.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Guid(bytes)
    }

    /// The in-image bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

const fn hex_digit(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("a GUID is written in hex digits"),
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            u16::from_le_bytes([b[4], b[5]]),
            u16::from_le_bytes([b[6], b[7]]),
            b[8],
            b[9],
            b[10],
            b[11],
            b[12],
            b[13],
            b[14],
            b[15]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_endian_layout_and_text_form_round_trip() {
        let g = Guid::parse("96B582DE-1fb2-45f7-baea-a366c55a082d");
        assert_eq!(
            g.as_bytes(),
            &[
                0xde, 0x82, 0xb5, 0x96, 0xb2, 0x1f, 0xf7, 0x45, 0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a,
                0x08, 0x2d
            ]
        );
        assert_eq!(g.to_string(), "96b582de-1fb2-45f7-baea-a366c55a082d");
    }
}
