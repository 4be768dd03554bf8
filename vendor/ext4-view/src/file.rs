// Copyright 2024 Google LLC
//
// Licensed under the Apache License, Version 2.0 <LICENSE-APACHE or
// https://www.apache.org/licenses/LICENSE-2.0> or the MIT license
// <LICENSE-MIT or https://opensource.org/licenses/MIT>, at your
// option. This file may not be copied, modified, or distributed
// except according to those terms.

use crate::Ext4;
use crate::block_index::FsBlockIndex;
use crate::error::Ext4Error;
use crate::inode::Inode;
use crate::iters::file_blocks::FileBlocks;
use crate::metadata::Metadata;
use crate::path::Path;
use crate::resolve::FollowSymlinks;
use crate::util::usize_from_u32;
use alloc::vec::Vec;
use core::fmt::{self, Debug, Formatter};

#[cfg(feature = "std")]
use std::io::{self, ErrorKind, Read, Seek, SeekFrom};

/// An open file within an [`Ext4`] filesystem.
pub struct File {
    fs: Ext4,
    inode: Inode,
    file_blocks: FileBlocks,

    /// Current byte offset within the file.
    position: u64,

    /// Current block within the file. This is an absolute block index
    /// within the filesystem.
    ///
    /// If `None`, either the next block needs to be fetched from the
    /// `file_blocks` iterator, or the end of the file has been reached.
    block_index: Option<FsBlockIndex>,
}

impl File {
    /// Open the file at `path`.
    pub(crate) fn open(fs: &Ext4, path: Path<'_>) -> Result<Self, Ext4Error> {
        let inode = fs.path_to_inode(path, FollowSymlinks::All)?;

        if inode.metadata.is_dir() {
            return Err(Ext4Error::IsADirectory);
        }
        if !inode.metadata.file_type.is_regular_file() {
            return Err(Ext4Error::IsASpecialFile);
        }

        Self::open_inode(fs, inode)
    }

    /// Open `inode`. Note that unlike `File::open`, this allows any
    /// type of `inode` to be opened, including directories and
    /// symlinks. This is used by `Ext4::read_inode_file`.
    pub(crate) fn open_inode(
        fs: &Ext4,
        inode: Inode,
    ) -> Result<Self, Ext4Error> {
        Ok(Self {
            fs: fs.clone(),
            position: 0,
            file_blocks: FileBlocks::new(fs.clone(), &inode)?,
            inode,
            block_index: None,
        })
    }

    /// Get the file metadata.
    #[must_use]
    pub fn metadata(&self) -> &Metadata {
        &self.inode.metadata
    }

    /// Read bytes from the file into `buf`, returning how many bytes
    /// were read. The number may be smaller than the length of the
    /// input buffer.
    ///
    /// This advances the position of the file by the number of bytes
    /// read, so calling `read_bytes` repeatedly can be used to read the
    /// entire file.
    ///
    /// Returns `Ok(0)` if the end of the file has been reached.
    pub fn read_bytes(
        &mut self,
        mut buf: &mut [u8],
    ) -> Result<usize, Ext4Error> {
        // Nothing to do if output buffer is empty.
        if buf.is_empty() {
            return Ok(0);
        }

        // Nothing to do if already at the end of the file.
        if self.position >= self.inode.metadata.size_in_bytes {
            return Ok(0);
        }

        // Get the number of bytes remaining in the file, starting from
        // the current `position`.
        //
        // OK to unwrap: just checked that `position` is less than the
        // file size.
        let bytes_remaining = self
            .inode
            .metadata
            .size_in_bytes
            .checked_sub(self.position)
            .unwrap();

        // If the the number of bytes remaining is less than the output
        // buffer length, shrink the buffer.
        //
        // If the conversion to `usize` fails, the output buffer is
        // definitely not larger than the remaining bytes to read.
        if let Ok(bytes_remaining) = usize::try_from(bytes_remaining) {
            if buf.len() > bytes_remaining {
                buf = &mut buf[..bytes_remaining];
            }
        }

        // Inline data is read from the inode, not from blocks.
        if self.inode.has_inline_data() {
            return Ok(self.read_inline_bytes(buf));
        }

        let block_size = self.fs.0.superblock.block_size;

        // Get the block to read from.
        let block_index = if let Some(block_index) = self.block_index {
            block_index
        } else {
            // OK to unwrap: already checked that the position is not at
            // the end of the file, so there must be at least one more
            // block to read.
            let block_index = self.file_blocks.next().unwrap()?;

            self.block_index = Some(block_index);

            block_index
        };

        // Byte offset within the current block.
        //
        // OK to unwrap: block size fits in a `u32`, so an offset within
        // the block will as well.
        let offset_within_block: u32 =
            u32::try_from(self.position % block_size.to_nz_u64()).unwrap();

        // OK to unwrap: `offset_within_block` is always less than or
        // equal to the block length.
        //
        // Note that if this block is at the end of the file, the block
        // may extend past the actual number of bytes in the file. This
        // does not matter because the output buffer's length was
        // already capped earlier against the number of bytes remaining
        // in the file.
        let bytes_remaining_in_block: u32 = block_size
            .to_u32()
            .checked_sub(offset_within_block)
            .unwrap();

        // If the output buffer is larger than the number of bytes
        // remaining in the block, shink the buffer.
        if buf.len() > usize_from_u32(bytes_remaining_in_block) {
            buf = &mut buf[..usize_from_u32(bytes_remaining_in_block)];
        }

        // OK to unwrap: the buffer length has been capped so that it
        // cannot be larger than the block size, and the block size fits
        // in a `u32`.
        let buf_len_u32: u32 = buf.len().try_into().unwrap();

        // Read the block data, or zeros if in a hole.
        if block_index == 0 {
            buf.fill(0);
        } else {
            self.fs
                .read_from_block(block_index, offset_within_block, buf)?;
        }

        // OK to unwrap: reads don't extend past a block, so this is at
        // most `block_size`, which always fits in a `u32`.
        let new_offset_within_block: u32 =
            offset_within_block.checked_add(buf_len_u32).unwrap();

        // If the end of this block has been reached, clear
        // `self.block_index` so that the next call fetches a new block
        // from the iterator.
        if new_offset_within_block >= block_size {
            self.block_index = None;
        }

        // OK to unwrap: the buffer length is capped such that this
        // calculation is at most the length of the file, which fits in
        // a `u64`.
        self.position =
            self.position.checked_add(u64::from(buf_len_u32)).unwrap();

        Ok(buf.len())
    }

    /// `read_bytes` for an inode with inline data: copy from
    /// `Inode::inline_contents`. `buf` has already been capped to the
    /// bytes remaining in the file. Bytes past the end of the inline
    /// data (but within the file size, which only a corrupt inode has)
    /// read as zeros, as in the kernel.
    fn read_inline_bytes(&mut self, buf: &mut [u8]) -> usize {
        let contents = &self.inode.inline_contents;
        let available: &[u8] = usize::try_from(self.position)
            .ok()
            .and_then(|position| contents.get(position..))
            .unwrap_or(&[]);
        let copied = available.len().min(buf.len());
        buf[..copied].copy_from_slice(&available[..copied]);
        buf[copied..].fill(0);

        // OK to unwrap: `buf` is no longer than the bytes remaining in
        // the file, so the new position is at most the file size.
        self.position = self
            .position
            .checked_add(u64::try_from(buf.len()).unwrap())
            .unwrap();

        buf.len()
    }

    /// Current position within the file.
    #[must_use]
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Where the file's data is on the device: `(offset in the file, byte
    /// range on the device)`, in file order, adjacent blocks joined, holes
    /// left out; at most `max` ranges. Empty for inline data. One pass over
    /// the file's block map (the extent tree's blocks are read). For
    /// read-ahead by a device that fetches ahead. (Strongroom's change.)
    pub fn disk_ranges(
        &self,
        max: usize,
    ) -> Result<Vec<(u64, core::ops::Range<u64>)>, Ext4Error> {
        let mut out: Vec<(u64, core::ops::Range<u64>)> = Vec::new();
        if self.inode.has_inline_data() {
            return Ok(out);
        }
        let block_size = self.fs.0.superblock.block_size.to_nz_u64().get();
        let blocks = self.inode.metadata.size_in_bytes.div_ceil(block_size);
        let mut iter = FileBlocks::new(self.fs.clone(), &self.inode)?;
        for logical in 0..blocks {
            let Some(block) = iter.next() else { break };
            let block = block?;
            if block == 0 {
                continue;
            }
            let Some(start) = block.checked_mul(block_size) else {
                continue;
            };
            let offset = logical * block_size;
            match out.last_mut() {
                Some((at, r))
                    if r.end == start && *at + (r.end - r.start) == offset =>
                {
                    r.end += block_size;
                }
                _ => {
                    if out.len() == max {
                        break;
                    }
                    out.push((offset, start..start + block_size));
                }
            }
        }
        Ok(out)
    }

    /// Seek from the start of the file to `position`.
    ///
    /// Seeking past the end of the file is allowed.
    pub fn seek_to(&mut self, position: u64) -> Result<(), Ext4Error> {
        // Reset iteration.
        self.file_blocks = FileBlocks::new(self.fs.clone(), &self.inode)?;
        self.block_index = None;

        // Advance the block iterator by the number of whole blocks in
        // `position`. Inline data has no blocks: only `position` counts.
        if !self.inode.has_inline_data() {
            let num_blocks =
                position / self.fs.0.superblock.block_size.to_nz_u64();
            for _ in 0..num_blocks {
                self.file_blocks.next();
            }
        }

        self.position = position;

        Ok(())
    }
}

impl Debug for File {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            // Just show the index from `self.inode`, the full `Inode`
            // output is verbose.
            .field("inode", &self.inode.index)
            .field("position", &self.position)
            // Don't show all fields, as that would make the output less
            // readable.
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "std")]
impl Read for File {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.read_bytes(buf)?)
    }
}

#[cfg(feature = "std")]
impl Seek for File {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let pos = match pos {
            SeekFrom::Start(pos) => pos,
            SeekFrom::End(offset) => {
                // file_size + offset:
                i64::try_from(self.inode.metadata.size_in_bytes)
                    .ok()
                    .and_then(|pos| pos.checked_add(offset))
                    .and_then(|pos| pos.try_into().ok())
                    .ok_or(ErrorKind::InvalidInput)?
            }
            SeekFrom::Current(offset) => {
                // current_pos + offset:
                i64::try_from(self.position)
                    .ok()
                    .and_then(|pos| pos.checked_add(offset))
                    .and_then(|pos| pos.try_into().ok())
                    .ok_or(ErrorKind::InvalidInput)?
            }
        };

        self.seek_to(pos)?;

        Ok(self.position)
    }
}
