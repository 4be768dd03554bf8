// Copyright 2024 Google LLC
//
// Licensed under the Apache License, Version 2.0 <LICENSE-APACHE or
// https://www.apache.org/licenses/LICENSE-2.0> or the MIT license
// <LICENSE-MIT or https://opensource.org/licenses/MIT>, at your
// option. This file may not be copied, modified, or distributed
// except according to those terms.

use crate::Ext4;
use crate::block_index::FsBlockIndex;
use crate::checksum::Checksum;
use crate::dir_block::DirBlock;
use crate::dir_entry::DirEntry;
use crate::error::{CorruptKind, Ext4Error};
use crate::inode::{Inode, InodeFlags, InodeIndex};
use crate::iters::file_blocks::FileBlocks;
use crate::path::PathBuf;
use crate::util::read_u32le;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::{self, Debug, Formatter};

/// Iterator over each [`DirEntry`] in a directory inode.
pub struct ReadDir {
    fs: Ext4,

    /// Path of the directory. This is stored in an `Rc` so that it can
    /// be shared with each `DirEntry` without cloning the path data.
    ///
    /// Note that this path may be empty, e.g. if `read_dir` was called
    /// with an inode rather than a path.
    path: Rc<PathBuf>,

    /// Iterator over the blocks of the directory.
    file_blocks: FileBlocks,

    /// Current absolute block index, or `None` if the next block needs
    /// to be fetched.
    block_index: Option<FsBlockIndex>,

    /// Whether this is the first block in the file.
    is_first_block: bool,

    /// The current block's data.
    block: Vec<u8>,

    /// The current byte offset within the block data.
    offset_within_block: usize,

    /// Whether the iterator is done (calls to `Iterator::next` will
    /// return `None`).
    is_done: bool,

    /// Whether the directory has an htree for fast lookups. The
    /// iterator doesn't directly use the htree, but it affects which
    /// blocks have checksums.
    has_htree: bool,

    /// Initial checksum using values from the directory's inode. This
    /// serves as the seed for directory block checksums.
    checksum_base: Checksum,

    /// Inode of the directory. Used for error reporting, and as the
    /// target of the `.` entry of a directory with inline data.
    inode: InodeIndex,

    /// Set if the directory has inline data, which is iterated instead
    /// of blocks.
    inline: Option<InlineDir>,
}

/// Iteration state for a directory with inline data
/// ([`InodeFlags::INLINE_DATA`]).
///
/// Such a directory has no `.` and `..` entries on disk. Its inline
/// data (`Inode::inline_contents`) holds:
/// * bytes 0..4: the parent directory's inode number;
/// * bytes 4..60 (the rest of `i_block`): directory entries;
/// * bytes 60.. (the value of the `system.data` extended attribute):
///   more directory entries.
///
/// Entries have the same format as in a directory block (without the
/// checksum tail), and none spans the two areas.
struct InlineDir {
    /// The directory's inline data.
    contents: Vec<u8>,

    /// Parent directory, the target of the `..` entry.
    parent: InodeIndex,

    /// Whether the `.` entry has been yielded.
    dot_done: bool,

    /// Whether the `..` entry has been yielded.
    dotdot_done: bool,

    /// Byte offset within `contents` of the next entry.
    offset: usize,
}

impl InlineDir {
    /// Start of the entries in `i_block`, after the parent inode number.
    const ENTRIES_START: usize = 4;

    /// Size of `i_block`: the end of the first area of entries, and the
    /// start of the second (the `system.data` value).
    const I_BLOCK_LEN: usize = 60;

    fn new(inode: &Inode) -> Result<Self, Ext4Error> {
        let contents = inode.inline_contents.clone();

        // `Inode::read` always puts the 60 bytes of `i_block` first.
        if contents.len() < Self::I_BLOCK_LEN {
            return Err(CorruptKind::DirEntry(inode.index).into());
        }
        let parent = InodeIndex::new(read_u32le(&contents, 0))
            .ok_or(CorruptKind::DirEntry(inode.index))?;

        Ok(Self {
            contents,
            parent,
            dot_done: false,
            dotdot_done: false,
            offset: Self::ENTRIES_START,
        })
    }
}

impl ReadDir {
    pub(crate) fn new(
        fs: Ext4,
        inode: &Inode,
        path: PathBuf,
    ) -> Result<Self, Ext4Error> {
        let has_htree = inode.flags.contains(InodeFlags::DIRECTORY_HTREE);

        if inode.flags.contains(InodeFlags::DIRECTORY_ENCRYPTED) {
            return Err(Ext4Error::Encrypted);
        }

        let inline = if inode.has_inline_data() {
            Some(InlineDir::new(inode)?)
        } else {
            None
        };

        Ok(Self {
            fs: fs.clone(),
            path: Rc::new(path),
            file_blocks: FileBlocks::new(fs.clone(), inode)?,
            block_index: None,
            is_first_block: true,
            block: vec![0; fs.0.superblock.block_size.to_usize()],
            offset_within_block: 0,
            is_done: false,
            has_htree,
            checksum_base: inode.checksum_base.clone(),
            inode: inode.index,
            inline,
        })
    }

    fn next_impl(&mut self) -> Result<Option<DirEntry>, Ext4Error> {
        if self.inline.is_some() {
            return self.next_inline_impl();
        }

        // Get the block index, or get the next one if not set.
        let block_index = if let Some(block_index) = self.block_index {
            block_index
        } else {
            match self.file_blocks.next() {
                Some(Ok(block_index)) => {
                    self.block_index = Some(block_index);
                    self.offset_within_block = 0;

                    block_index
                }
                Some(Err(err)) => return Err(err),
                None => {
                    self.is_done = true;
                    return Ok(None);
                }
            }
        };

        // If a block has been fully processed, move to the next block
        // on the next iteration.
        let block_size = self.fs.0.superblock.block_size;
        if self.offset_within_block >= block_size {
            self.is_first_block = false;
            self.block_index = None;
            return Ok(None);
        }

        // If at the start of a new block, read it and verify the checksum.
        if self.offset_within_block == 0 {
            DirBlock {
                fs: &self.fs,
                dir_inode: self.inode,
                block_index,
                is_first: self.is_first_block,
                has_htree: self.has_htree,
                checksum_base: self.checksum_base.clone(),
            }
            .read(&mut self.block)?;
        }

        let (entry, entry_size) = DirEntry::from_bytes(
            self.fs.clone(),
            &self.block[self.offset_within_block..],
            self.inode,
            self.path.clone(),
        )?;

        self.offset_within_block = self
            .offset_within_block
            .checked_add(entry_size.get())
            .ok_or(CorruptKind::DirEntry(self.inode))?;

        Ok(entry)
    }

    /// `next_impl` for a directory with inline data: `.`, `..`, then
    /// the entries in `i_block`, then those in the `system.data` value.
    fn next_inline_impl(&mut self) -> Result<Option<DirEntry>, Ext4Error> {
        // OK to unwrap: only called if `inline` is set.
        let inline = self.inline.as_mut().unwrap();

        if !inline.dot_done {
            inline.dot_done = true;
            return Ok(Some(DirEntry::new_inline_dot(
                self.fs.clone(),
                false,
                self.inode,
                self.path.clone(),
            )));
        }
        if !inline.dotdot_done {
            inline.dotdot_done = true;
            return Ok(Some(DirEntry::new_inline_dot(
                self.fs.clone(),
                true,
                inline.parent,
                self.path.clone(),
            )));
        }

        // End of the area that holds the next entry.
        let area_end = if inline.offset < InlineDir::I_BLOCK_LEN {
            InlineDir::I_BLOCK_LEN
        } else {
            inline.contents.len()
        };
        if inline.offset >= area_end {
            self.is_done = true;
            return Ok(None);
        }

        // OK to index: `offset < area_end <= contents.len()`.
        let (entry, entry_size) = DirEntry::from_bytes(
            self.fs.clone(),
            &inline.contents[inline.offset..area_end],
            self.inode,
            self.path.clone(),
        )?;

        // The entry must end within its area.
        inline.offset = inline
            .offset
            .checked_add(entry_size.get())
            .filter(|end| *end <= area_end)
            .ok_or(CorruptKind::DirEntry(self.inode))?;

        Ok(entry)
    }
}

impl Debug for ReadDir {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        // Only include the path field. This matches the Debug impl for
        // `std::fs::ReadDir`.
        write!(f, r#"ReadDir("{:?}")"#, self.path)
    }
}

// In pseudocode, here's what the iterator is doing:
//
// for block in file {
//   verify_checksum(block);
//   for dir_entry in block {
//     yield dir_entry;
//   }
// }
impl_result_iter!(ReadDir, DirEntry);

#[cfg(feature = "std")]
#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::load_test_disk1;

    #[test]
    fn test_read_dir() {
        let fs = load_test_disk1();
        let root_inode = fs.read_root_inode().unwrap();
        let root_path = crate::PathBuf::new("/");

        // Use the iterator to get all DirEntries in the root directory.
        let entries: Vec<_> = ReadDir::new(fs, &root_inode, root_path)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();

        // Check for a few expected entries.
        assert!(entries.iter().any(|e| e.file_name() == "."));
        assert!(entries.iter().any(|e| e.file_name() == ".."));
        assert!(entries.iter().any(|e| e.file_name() == "empty_file"));
        assert!(entries.iter().any(|e| e.file_name() == "empty_dir"));

        // Check for something that does not exist.
        assert!(!entries.iter().any(|e| e.file_name() == "does_not_exist"));
    }
}
