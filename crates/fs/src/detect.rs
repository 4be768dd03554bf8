//! What a disk or partition holds, from the signatures at their documented
//! offsets: the filesystems Strongroom reads, and the things it does not, so
//! that the answer can say which.

use serde::Serialize;

use crate::error::FsError;
use crate::source::BlockSource;

/// What was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "detail")]
pub enum Content {
    /// ext2, ext3 or ext4 (the name says which).
    Ext(String),
    Xfs,
    Ntfs,
    /// Something Strongroom recognises but cannot read.
    Unsupported(String),
    /// All zeros where any signature would be.
    Unformatted,
    /// No known signature.
    Unknown,
}

impl Content {
    /// Whether a reader exists.
    pub fn readable(&self) -> bool {
        matches!(self, Self::Ext(_) | Self::Xfs | Self::Ntfs)
    }

    /// A short description, for errors and listings.
    pub fn describe(&self) -> String {
        match self {
            Self::Ext(name) => name.clone(),
            Self::Xfs => "xfs".into(),
            Self::Ntfs => "ntfs".into(),
            Self::Unsupported(what) => what.clone(),
            Self::Unformatted => "nothing (unformatted: all zeros)".into(),
            Self::Unknown => "no filesystem Strongroom recognises".into(),
        }
    }
}

/// Bytes read to decide: up to ZFS's first uberblocks (128 KiB + 8 KiB).
const PROBE: u64 = 136 * 1024;

/// Looks at the start of `src`.
pub fn detect(src: &dyn BlockSource) -> Result<Content, FsError> {
    let len = PROBE.min(src.size()) as usize;
    let mut b = vec![0u8; len];
    src.read_at(0, &mut b).map_err(|source| FsError::Source {
        path: "/".into(),
        source,
    })?;
    Ok(detect_bytes(&b))
}

fn at(b: &[u8], offset: usize, magic: &[u8]) -> bool {
    b.len() >= offset + magic.len() && &b[offset..offset + magic.len()] == magic
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// The decision, on the first bytes of a volume.
pub fn detect_bytes(b: &[u8]) -> Content {
    if at(b, 1024 + 56, &[0x53, 0xEF]) && b.len() >= 1024 + 0x64 {
        let compat = le32(b, 1024 + 0x5C);
        let incompat = le32(b, 1024 + 0x60);
        let name = if incompat & 0x40 != 0 || incompat & 0x200 != 0 {
            "ext4"
        } else if compat & 0x4 != 0 {
            "ext3"
        } else {
            "ext2"
        };
        return Content::Ext(name.into());
    }
    if at(b, 0, b"XFSB") {
        return Content::Xfs;
    }
    if at(b, 3, b"NTFS    ") {
        return Content::Ntfs;
    }
    let unsupported = |what: &str| Content::Unsupported(what.to_string());
    if at(b, 0, b"LUKS\xba\xbe") {
        return unsupported("LUKS (an encrypted volume; unlock it and read what it holds)");
    }
    if at(b, 3, b"-FVE-FS-") {
        return unsupported("BitLocker (an encrypted NTFS volume)");
    }
    if (0..4).any(|s| at(b, s * 512, b"LABELONE") && at(b, s * 512 + 24, b"LVM2 001")) {
        return unsupported("an LVM2 physical volume (logical volumes are not read)");
    }
    if at(b, 65536 + 64, b"_BHRfS_M") {
        return unsupported("btrfs");
    }
    if at(b, 4086, b"SWAPSPACE2") || at(b, 4086, b"SWAP-SPACE") {
        return unsupported("Linux swap");
    }
    if b.len() >= 4100 && le32(b, 4096) == 0xa92b_4efc {
        return unsupported("a Linux software RAID member (md)");
    }
    // ZFS: the first uberblock of label 0, at 128 KiB, in either byte order.
    if b.len() >= 128 * 1024 + 8 {
        let magic = u64::from_le_bytes(b[128 * 1024..128 * 1024 + 8].try_into().expect("8"));
        if magic == 0x00ba_b10c || magic.swap_bytes() == 0x00ba_b10c {
            return unsupported("a ZFS pool member");
        }
    }
    if at(b, 3, b"EXFAT   ") {
        return unsupported("exFAT");
    }
    if at(b, 54, b"FAT1") || at(b, 82, b"FAT32") {
        return unsupported("FAT");
    }
    if at(b, 32769, b"CD001") {
        return unsupported("ISO 9660");
    }
    if b.iter().all(|x| *x == 0) {
        return Content::Unformatted;
    }
    Content::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(offset: usize, magic: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 136 * 1024];
        b[offset..offset + magic.len()].copy_from_slice(magic);
        b
    }

    #[test]
    fn each_signature_is_named() {
        assert_eq!(detect_bytes(&with(0, b"XFSB")), Content::Xfs);
        assert_eq!(detect_bytes(&with(3, b"NTFS    ")), Content::Ntfs);
        assert_eq!(
            detect_bytes(&with(1080, &[0x53, 0xEF])),
            Content::Ext("ext2".into())
        );
        let mut ext4 = with(1080, &[0x53, 0xEF]);
        ext4[1024 + 0x60] = 0x40;
        assert_eq!(detect_bytes(&ext4), Content::Ext("ext4".into()));
        let mut lvm = with(512, b"LABELONE");
        lvm[512 + 24..512 + 32].copy_from_slice(b"LVM2 001");
        for (b, what) in [
            (with(0, b"LUKS\xba\xbe"), "LUKS"),
            (lvm, "LVM2"),
            (with(65600, b"_BHRfS_M"), "btrfs"),
            (with(4086, b"SWAPSPACE2"), "swap"),
            (with(128 * 1024, &0x00bab10cu64.to_le_bytes()), "ZFS"),
        ] {
            match detect_bytes(&b) {
                Content::Unsupported(s) => assert!(s.contains(what), "{s} names {what}"),
                other => panic!("{what}: {other:?}"),
            }
        }
        assert_eq!(detect_bytes(&vec![0u8; 136 * 1024]), Content::Unformatted);
        assert_eq!(detect_bytes(&with(100, b"junk")), Content::Unknown);
    }
}
