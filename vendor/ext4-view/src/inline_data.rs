// Strongroom's addition to the vendored ext4-view 1.0.0 (see README.md),
// licensed like the rest of the crate: under the Apache License, Version
// 2.0 (LICENSE-APACHE) or the MIT license (LICENSE-MIT), at your option.

//! Inline data (the `DATA_IN_INODE` incompatible feature, created by
//! `mkfs.ext4 -O inline_data`).
//!
//! A small file or directory with [`InodeFlags::INLINE_DATA`] keeps its
//! contents in the inode instead of in data blocks: first in the 60
//! bytes of `i_block` (`Inode::inline_data`), then in the value of the
//! `system.data` extended attribute, which is stored in the inode body
//! after the extra inode fields. `Inode::read` joins the two into
//! `Inode::inline_contents`.
//!
//! * Regular files (and symlinks too long for `i_block` alone): the
//!   data is the start of `inline_contents`, up to the file size. A file
//!   size past the end of the inline data reads as zeros, as in the
//!   kernel. See `File::read_bytes`.
//! * Directories: the first four bytes hold the parent's inode number
//!   (there are no `.` and `..` entries on disk), the other 56 bytes of
//!   `i_block` hold directory entries, and the `system.data` value holds
//!   more entries. See `ReadDir`.
//!
//! The in-inode extended attribute area starts at byte `128 +
//! i_extra_isize` of the inode:
//! * a four-byte magic number, `0xea02_0000`;
//! * entries, each 16 bytes of header then the name, padded to a
//!   multiple of four bytes, ended by four zero bytes. Header:
//!   `e_name_len: u8`, `e_name_index: u8`, `e_value_offs: u16`,
//!   `e_value_inum: u32`, `e_value_size: u32`, `e_hash: u32`;
//! * the values, usually at the end of the inode. `e_value_offs` is
//!   relative to the first entry (just after the magic number).
//!
//! [`InodeFlags::INLINE_DATA`]: crate::inode::InodeFlags::INLINE_DATA

use crate::error::{CorruptKind, Ext4Error};
use crate::inode::InodeIndex;
use crate::util::{read_u16le, read_u32le, usize_from_u32};
use alloc::vec::Vec;

/// Size of the original ext2 inode. `i_extra_isize` is the first field
/// after it.
const GOOD_OLD_INODE_SIZE: usize = 128;

/// Magic number at the start of the in-inode extended attribute area.
const XATTR_MAGIC: u32 = 0xea02_0000;

/// Size of an extended attribute entry without its name.
const XATTR_ENTRY_HEADER_SIZE: usize = 16;

/// Name index of the `system.` prefix used by `system.data`.
const XATTR_INDEX_SYSTEM: u8 = 7;

/// Name of `system.data` without its prefix.
const SYSTEM_DATA_NAME: &[u8] = b"data";

/// Get the value of the `system.data` extended attribute from `data`,
/// the raw bytes of the inode (`inode_size` bytes from the inode table).
///
/// Every offset and size is checked against `data`. Errors:
/// * `CorruptKind::InlineDataMissing` if the inode has no extended
///   attribute area (no room for one, or no magic number) or no
///   `system.data` entry.
/// * `CorruptKind::InlineDataXattr` if `i_extra_isize` is invalid, an
///   entry runs past the end of the inode, or the `system.data` value
///   is not in the inode.
pub(crate) fn read_system_data_xattr(
    inode: InodeIndex,
    data: &[u8],
) -> Result<Vec<u8>, Ext4Error> {
    let missing = || Ext4Error::from(CorruptKind::InlineDataMissing(inode));
    let invalid = || Ext4Error::from(CorruptKind::InlineDataXattr(inode));

    // Bytes after the original 128-byte inode: `i_extra_isize`, the
    // extra fields it counts, then the extended attribute area. A
    // 128-byte inode has none of them.
    let extra = data.get(GOOD_OLD_INODE_SIZE..).ok_or_else(missing)?;
    if extra.len() < 2 {
        return Err(missing());
    }
    let extra_isize = usize::from(read_u16le(extra, 0));
    if extra_isize % 4 != 0 {
        return Err(invalid());
    }
    let area = extra.get(extra_isize..).ok_or_else(invalid)?;

    // Without the magic number, the inode has no extended attributes.
    if area.len() < 4 || read_u32le(area, 0) != XATTR_MAGIC {
        return Err(missing());
    }
    // Entries start after the magic number. Value offsets are relative
    // to the first entry.
    let entries = &area[4..];

    let mut offset: usize = 0;
    loop {
        let entry = entries.get(offset..).ok_or_else(invalid)?;

        // Four zero bytes end the list.
        if entry.len() < 4 {
            return Err(invalid());
        }
        if read_u32le(entry, 0) == 0 {
            return Err(missing());
        }

        if entry.len() < XATTR_ENTRY_HEADER_SIZE {
            return Err(invalid());
        }
        let name_len = entry[0];
        let name_index = entry[1];
        let value_offset = usize::from(read_u16le(entry, 2));
        let value_inum = read_u32le(entry, 4);
        let value_size = usize_from_u32(read_u32le(entry, 8));

        // OK to unwrap: at most 16 + 255.
        let name_end = XATTR_ENTRY_HEADER_SIZE
            .checked_add(usize::from(name_len))
            .unwrap();
        let name = entry
            .get(XATTR_ENTRY_HEADER_SIZE..name_end)
            .ok_or_else(invalid)?;

        if name_index == XATTR_INDEX_SYSTEM && name == SYSTEM_DATA_NAME {
            // A value in a separate inode (`EA_INODE`) is not valid for
            // `system.data`.
            if value_inum != 0 {
                return Err(invalid());
            }
            // The offset of an empty value does not matter.
            if value_size == 0 {
                return Ok(Vec::new());
            }
            let value_end =
                value_offset.checked_add(value_size).ok_or_else(invalid)?;
            let value =
                entries.get(value_offset..value_end).ok_or_else(invalid)?;
            return Ok(value.to_vec());
        }

        // Entries are padded to a multiple of four bytes. `offset`
        // grows by at least 16 each time, so the loop ends.
        //
        // OK to unwrap: `name_end` is at most 271, and `offset` is
        // within `entries`, which is no longer than an inode.
        let entry_len = name_end.checked_add(3).unwrap() & !3;
        offset = offset.checked_add(entry_len).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INODE_SIZE: usize = 256;
    const EXTRA_ISIZE: u16 = 32;

    /// Offset of the first entry in the inodes made by `make_inode`.
    const FIRST_ENTRY: usize = 128 + 32 + 4;

    fn inode_index() -> InodeIndex {
        InodeIndex::new(12).unwrap()
    }

    /// Name index, name and value of an extended attribute.
    type Xattr<'a> = (u8, &'a [u8], &'a [u8]);

    /// Make a 256-byte inode whose extended attribute area holds
    /// `xattrs`, laid out as the kernel and mke2fs do: entries from the
    /// start of the area, values packed at the end of the inode.
    fn make_inode(xattrs: &[Xattr<'_>]) -> Vec<u8> {
        let mut data = vec![0; INODE_SIZE];
        data[0x80..0x82].copy_from_slice(&EXTRA_ISIZE.to_le_bytes());
        data[160..164].copy_from_slice(&XATTR_MAGIC.to_le_bytes());

        let mut entry = FIRST_ENTRY;
        let mut value_end = INODE_SIZE;
        for &(index, name, value) in xattrs {
            let value_start = (value_end - value.len()) & !3;
            data[value_start..value_start + value.len()].copy_from_slice(value);
            value_end = value_start;

            data[entry] = u8::try_from(name.len()).unwrap();
            data[entry + 1] = index;
            let value_offs = u16::try_from(value_start - FIRST_ENTRY).unwrap();
            data[entry + 2..entry + 4]
                .copy_from_slice(&value_offs.to_le_bytes());
            let value_size = u32::try_from(value.len()).unwrap();
            data[entry + 8..entry + 12]
                .copy_from_slice(&value_size.to_le_bytes());
            data[entry + 16..entry + 16 + name.len()].copy_from_slice(name);
            entry += (16 + name.len() + 3) & !3;
        }
        assert!(entry + 4 <= value_end, "xattrs do not fit");
        data
    }

    fn read(data: &[u8]) -> Result<Vec<u8>, Ext4Error> {
        read_system_data_xattr(inode_index(), data)
    }

    #[test]
    fn test_system_data() {
        let value: Vec<u8> = (0..68).collect();
        let data = make_inode(&[(7, b"data".as_slice(), value.as_slice())]);
        assert_eq!(read(&data).unwrap(), value);

        // Empty value, as for a file of at most 60 bytes.
        let data = make_inode(&[(7, b"data".as_slice(), b"".as_slice())]);
        assert!(read(&data).unwrap().is_empty());

        // After other attributes: `user.data` (index 1) and `system.dat`.
        let data = make_inode(&[
            (1, b"data".as_slice(), b"user".as_slice()),
            (7, b"dat".as_slice(), b"other".as_slice()),
            (7, b"data".as_slice(), b"inline".as_slice()),
        ]);
        assert_eq!(read(&data).unwrap(), b"inline");
    }

    #[test]
    fn test_system_data_missing() {
        let missing = CorruptKind::InlineDataMissing(inode_index());

        // No extended attributes.
        let data = make_inode(&[]);
        assert_eq!(read(&data).unwrap_err(), missing);

        // Others only.
        let data = make_inode(&[(1, b"data".as_slice(), b"user".as_slice())]);
        assert_eq!(read(&data).unwrap_err(), missing);

        // No magic number.
        let mut data =
            make_inode(&[(7, b"data".as_slice(), b"inline".as_slice())]);
        data[160] = 1;
        assert_eq!(read(&data).unwrap_err(), missing);

        // 128-byte inode.
        assert_eq!(read(&[0; 128]).unwrap_err(), missing);

        // No room for the magic number.
        let mut data = make_inode(&[]);
        data[0x80..0x82].copy_from_slice(&128u16.to_le_bytes());
        assert_eq!(read(&data).unwrap_err(), missing);
    }

    #[test]
    fn test_system_data_invalid() {
        let invalid = CorruptKind::InlineDataXattr(inode_index());
        let good = make_inode(&[(7, b"data".as_slice(), b"inline".as_slice())]);

        // `i_extra_isize` past the end of the inode, or not aligned.
        let mut data = good.clone();
        data[0x80..0x82].copy_from_slice(&132u16.to_le_bytes());
        assert_eq!(read(&data).unwrap_err(), invalid);
        let mut data = good.clone();
        data[0x80..0x82].copy_from_slice(&30u16.to_le_bytes());
        assert_eq!(read(&data).unwrap_err(), invalid);

        // Value past the end of the inode.
        let mut data = good.clone();
        data[FIRST_ENTRY + 8..FIRST_ENTRY + 12]
            .copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(read(&data).unwrap_err(), invalid);
        let mut data = good.clone();
        data[FIRST_ENTRY + 2..FIRST_ENTRY + 4]
            .copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(read(&data).unwrap_err(), invalid);
        let mut data = good.clone();
        data[FIRST_ENTRY + 8..FIRST_ENTRY + 12]
            .copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(read(&data).unwrap_err(), invalid);

        // Value in an EA inode.
        let mut data = good.clone();
        data[FIRST_ENTRY + 4] = 5;
        assert_eq!(read(&data).unwrap_err(), invalid);

        // Name past the end of the inode: the area is moved to the last
        // 20 bytes, with one entry header and a 255-byte name.
        let mut data = make_inode(&[]);
        let extra_isize = u16::try_from(INODE_SIZE - 128 - 20).unwrap();
        data[0x80..0x82].copy_from_slice(&extra_isize.to_le_bytes());
        data[INODE_SIZE - 20..INODE_SIZE - 16]
            .copy_from_slice(&XATTR_MAGIC.to_le_bytes());
        data[INODE_SIZE - 16] = 255;
        data[INODE_SIZE - 15] = 7;
        assert_eq!(read(&data).unwrap_err(), invalid);

        // Entries without the four zero bytes that end them: 20-byte
        // entries (`user.` index, one-byte names) up to the end.
        let mut data = good.clone();
        data[FIRST_ENTRY..].fill(1);
        assert_eq!(read(&data).unwrap_err(), invalid);
    }

    /// Corrupting any byte of the inode gives a value or an error, never
    /// a panic.
    #[test]
    fn test_system_data_no_panic() {
        let value: Vec<u8> = (0..40).collect();
        let good = make_inode(&[
            (1, b"x".as_slice(), b"y".as_slice()),
            (7, b"data".as_slice(), value.as_slice()),
        ]);
        for i in 0..INODE_SIZE {
            for byte in [0, 1, 3, 4, 7, 0x7f, 0x80, 0xff] {
                let mut data = good.clone();
                data[i] = byte;
                let _ = read(&data);
                let _ = read(&data[..i]);
            }
        }
    }
}
