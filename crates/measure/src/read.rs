//! Bounds-checked little-endian reads: `None` past the end, never a panic.

pub(crate) fn array<const N: usize>(data: &[u8], at: usize) -> Option<[u8; N]> {
    let end = at.checked_add(N)?;
    data.get(at..end)?.try_into().ok()
}

pub(crate) fn u16_le(data: &[u8], at: usize) -> Option<u16> {
    array(data, at).map(u16::from_le_bytes)
}

pub(crate) fn u32_le(data: &[u8], at: usize) -> Option<u32> {
    array(data, at).map(u32::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_inside_and_refuses_past_the_end() {
        let d = [1u8, 2, 3, 4, 5];
        assert_eq!(u16_le(&d, 0), Some(0x0201));
        assert_eq!(u32_le(&d, 1), Some(0x0504_0302));
        assert_eq!(u32_le(&d, 2), None);
        assert_eq!(u16_le(&d, usize::MAX), None);
        assert_eq!(array::<0>(&d, 5), Some([]));
        assert_eq!(array::<1>(&d, 5), None);
    }
}
