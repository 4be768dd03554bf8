//! Partition tables: GPT (with its backup), MBR (primary and logical
//! partitions), or none (a filesystem on the whole disk).

use serde::Serialize;

use crate::error::{FsError, SourceError};
use crate::source::BlockSource;

const SECTOR: u64 = 512;
/// More entries than any real table has; bounds a damaged header's count.
const MAX_GPT_ENTRIES: u32 = 4096;
/// Logical partitions followed in an MBR's extended partition.
const MAX_LOGICAL: usize = 128;

/// Which kind of table the disk has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    Gpt,
    Mbr,
    None,
}

/// One partition, numbered as Linux numbers them (GPT: the entry's index
/// from 1; MBR: 1-4 primary, 5 on logical).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    pub number: u32,
    /// Byte offset on the disk.
    pub start: u64,
    /// Length in bytes.
    pub size: u64,
    /// The partition type: a GPT type's name or GUID, or the MBR type byte.
    pub kind: String,
    /// The GPT partition name (empty for MBR).
    pub name: String,
}

/// A disk's partition table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    pub kind: TableKind,
    pub partitions: Vec<Partition>,
}

fn read(src: &dyn BlockSource, offset: u64, len: usize) -> Result<Vec<u8>, FsError> {
    let mut buf = vec![0u8; len];
    src.read_at(offset, &mut buf)
        .map_err(|source| FsError::Source {
            path: "partition table".into(),
            source,
        })?;
    Ok(buf)
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Whether sector 0 is a filesystem's boot sector rather than an MBR (NTFS,
/// FAT and exFAT volumes end theirs with 0x55AA too).
fn is_volume_boot_sector(s: &[u8]) -> bool {
    &s[3..11] == b"NTFS    "
        || &s[3..11] == b"EXFAT   "
        || &s[3..11] == b"-FVE-FS-"
        || &s[54..59] == b"FAT12"
        || &s[54..59] == b"FAT16"
        || &s[82..87] == b"FAT32"
}

/// Reads the disk's partition table.
pub fn read_table(src: &dyn BlockSource) -> Result<Table, FsError> {
    let size = src.size();
    if size < 2 * SECTOR {
        return Ok(Table {
            kind: TableKind::None,
            partitions: vec![],
        });
    }
    let mbr = read(src, 0, SECTOR as usize)?;
    if mbr[510] != 0x55 || mbr[511] != 0xAA || is_volume_boot_sector(&mbr) {
        return Ok(Table {
            kind: TableKind::None,
            partitions: vec![],
        });
    }
    let entries: Vec<&[u8]> = (0..4).map(|i| &mbr[446 + 16 * i..462 + 16 * i]).collect();
    if entries.iter().any(|e| e[4] == 0xEE) {
        return read_gpt(src);
    }
    // An MBR: every used entry must be plausible, or this is not one.
    if entries.iter().any(|e| e[0] != 0 && e[0] != 0x80) {
        return Ok(Table {
            kind: TableKind::None,
            partitions: vec![],
        });
    }
    let mut partitions = Vec::new();
    let mut extended = None;
    for (i, e) in entries.iter().enumerate() {
        let (kind, lba, sectors) = (e[4], u64::from(le32(e, 8)), u64::from(le32(e, 12)));
        if kind == 0 || sectors == 0 {
            continue;
        }
        if matches!(kind, 0x05 | 0x0F | 0x85) {
            extended = Some(lba);
            continue;
        }
        partitions.push(Partition {
            number: i as u32 + 1,
            start: lba * SECTOR,
            size: sectors * SECTOR,
            kind: format!("0x{kind:02x}"),
            name: String::new(),
        });
    }
    if let Some(base) = extended {
        // Logical partitions: a chain of extended boot records, each giving
        // one partition (relative to itself) and the next record (relative to
        // the extended partition's start).
        let mut ebr = base;
        let mut seen = Vec::new();
        while partitions.len() < MAX_LOGICAL && !seen.contains(&ebr) && ebr * SECTOR < size {
            seen.push(ebr);
            let s = read(src, ebr * SECTOR, SECTOR as usize)?;
            if s[510] != 0x55 || s[511] != 0xAA {
                break;
            }
            let (kind, rel, sectors) = (
                s[446 + 4],
                u64::from(le32(&s, 454)),
                u64::from(le32(&s, 458)),
            );
            if kind != 0 && sectors != 0 {
                partitions.push(Partition {
                    number: 5 + (seen.len() as u32 - 1),
                    start: (ebr + rel) * SECTOR,
                    size: sectors * SECTOR,
                    kind: format!("0x{kind:02x}"),
                    name: String::new(),
                });
            }
            let next = u64::from(le32(&s, 462 + 8));
            if s[462 + 4] == 0 || next == 0 {
                break;
            }
            ebr = base + next;
        }
    }
    partitions.retain(|p| p.start < size);
    for p in &mut partitions {
        p.size = p.size.min(size - p.start);
    }
    Ok(Table {
        kind: TableKind::Mbr,
        partitions,
    })
}

fn read_gpt(src: &dyn BlockSource) -> Result<Table, FsError> {
    let last_lba = src.size() / SECTOR - 1;
    let mut problems = Vec::new();
    for header_lba in [1, last_lba] {
        match gpt_at(src, header_lba) {
            Ok(partitions) => {
                return Ok(Table {
                    kind: TableKind::Gpt,
                    partitions,
                })
            }
            Err(p) => problems.push(format!("the GPT header at sector {header_lba} {p}")),
        }
    }
    Err(FsError::Corrupt {
        path: "partition table".into(),
        detail: problems.join("; "),
    })
}

fn gpt_at(src: &dyn BlockSource, lba: u64) -> Result<Vec<Partition>, String> {
    let h = read(src, lba * SECTOR, SECTOR as usize).map_err(|e| e.to_string())?;
    if &h[0..8] != b"EFI PART" {
        return Err("has no signature".into());
    }
    let header_size = le32(&h, 12) as usize;
    if !(92..=SECTOR as usize).contains(&header_size) {
        return Err(format!("has an impossible size {header_size}"));
    }
    let mut copy = h[..header_size].to_vec();
    copy[16..20].fill(0);
    if crc32fast::hash(&copy) != le32(&h, 16) {
        return Err("fails its checksum".into());
    }
    let entries_lba = le64(&h, 72);
    let count = le32(&h, 80);
    let entry_size = le32(&h, 84) as usize;
    if count > MAX_GPT_ENTRIES || !(128..=4096).contains(&entry_size) || entry_size % 8 != 0 {
        return Err(format!("has {count} entries of {entry_size} bytes"));
    }
    let bytes = read(
        src,
        entries_lba.saturating_mul(SECTOR),
        count as usize * entry_size,
    )
    .map_err(|_| "points at entries outside the disk".to_string())?;
    if crc32fast::hash(&bytes) != le32(&h, 88) {
        return Err("has entries that fail their checksum".into());
    }
    let size = src.size();
    let mut partitions = Vec::new();
    for (i, e) in bytes.chunks_exact(entry_size).enumerate() {
        let type_guid = &e[0..16];
        if type_guid.iter().all(|b| *b == 0) {
            continue;
        }
        let (first, last) = (le64(e, 32), le64(e, 40));
        if last < first || first.saturating_mul(SECTOR) >= size {
            continue;
        }
        let name: Vec<u16> = (0..36)
            .map(|k| le16(e, 56 + 2 * k))
            .take_while(|c| *c != 0)
            .collect();
        let start = first * SECTOR;
        partitions.push(Partition {
            number: i as u32 + 1,
            start,
            size: (last - first)
                .saturating_add(1)
                .saturating_mul(SECTOR)
                .min(size - start),
            kind: gpt_type_name(type_guid),
            name: String::from_utf16_lossy(&name),
        });
    }
    Ok(partitions)
}

/// A GUID in its usual text form (the first three fields are little-endian).
fn guid(b: &[u8]) -> String {
    format!(
        "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-{}",
        le32(b, 0),
        le16(b, 4),
        le16(b, 6),
        b[8],
        b[9],
        b[10..16]
            .iter()
            .map(|x| format!("{x:02X}"))
            .collect::<String>()
    )
}

fn gpt_type_name(b: &[u8]) -> String {
    let g = guid(b);
    let name = match g.as_str() {
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4" => "linux-filesystem",
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" => "efi-system",
        "21686148-6449-6E6F-744E-656564454649" => "bios-boot",
        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7" => "microsoft-basic-data",
        "E3C9E316-0B5C-4DB8-817D-F92DF00215AE" => "microsoft-reserved",
        "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC" => "windows-recovery",
        "E6D6D379-F507-44C2-A23C-238F2A3DF928" => "linux-lvm",
        "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F" => "linux-swap",
        "CA7D7CCB-63ED-4C53-861C-1742536059CC" => "linux-luks",
        "A19D880F-05FC-4D3B-A006-743F0F84911E" => "linux-raid",
        "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709" => "linux-root-x86-64",
        "B921B045-1DF0-41C3-AF44-4C6F280D3FAE" => "linux-root-arm64",
        "BC13C2FF-59E6-4262-A352-B275FD6F7172" => "linux-extended-boot",
        _ => return g,
    };
    name.to_string()
}

impl From<SourceError> for FsError {
    fn from(source: SourceError) -> Self {
        FsError::Source {
            path: "/".into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemoryDisk;

    fn put32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn an_mbr_with_a_primary_and_a_logical_partition() {
        let mut d = vec![0u8; 1 << 20];
        d[510] = 0x55;
        d[511] = 0xAA;
        // 1: Linux at sector 8, 100 sectors; 2: extended at sector 200.
        d[446 + 4] = 0x83;
        put32(&mut d, 446 + 8, 8);
        put32(&mut d, 446 + 12, 100);
        d[462 + 4] = 0x05;
        put32(&mut d, 462 + 8, 200);
        put32(&mut d, 462 + 12, 1000);
        // The EBR at 200: a partition 10 sectors on, 50 long.
        let e = 200 * 512;
        d[e + 510] = 0x55;
        d[e + 511] = 0xAA;
        d[e + 446 + 4] = 0x83;
        put32(&mut d, e + 446 + 8, 10);
        put32(&mut d, e + 446 + 12, 50);
        let t = read_table(&MemoryDisk(d)).unwrap();
        assert_eq!(t.kind, TableKind::Mbr);
        let got: Vec<(u32, u64, u64)> = t
            .partitions
            .iter()
            .map(|p| (p.number, p.start, p.size))
            .collect();
        assert_eq!(got, vec![(1, 8 * 512, 100 * 512), (5, 210 * 512, 50 * 512)]);
    }

    #[test]
    fn an_ntfs_boot_sector_is_not_an_mbr() {
        let mut d = vec![0u8; 4096];
        d[3..11].copy_from_slice(b"NTFS    ");
        d[510] = 0x55;
        d[511] = 0xAA;
        d[446 + 4] = 0x07;
        assert_eq!(read_table(&MemoryDisk(d)).unwrap().kind, TableKind::None);
    }

    #[test]
    fn a_gpt_with_a_damaged_checksum_is_refused_naming_both_headers() {
        let mut d = vec![0u8; 1 << 20];
        d[510] = 0x55;
        d[511] = 0xAA;
        d[446 + 4] = 0xEE;
        d[512..520].copy_from_slice(b"EFI PART");
        put32(&mut d, 512 + 12, 92);
        let err = read_table(&MemoryDisk(d)).unwrap_err().to_string();
        assert!(err.contains("sector 1 fails its checksum"), "{err}");
        assert!(err.contains("sector 2047 has no signature"), "{err}");
    }
}
