//! Read-only disks: the [`BlockSource`] trait, a local image, a slice of a
//! disk (a partition), and a bounded block cache with read-ahead over any
//! source that serves whole blocks (an EBS snapshot).

use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::SourceError;

/// What a source has done so far: how much it read from where the disk lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SourceStats {
    /// Blocks fetched from the backing store (for an image: reads made).
    pub blocks_fetched: u64,
    /// Bytes fetched from the backing store.
    pub bytes_fetched: u64,
    /// Blocks that were absent and read as zeros without a fetch.
    pub blocks_absent: u64,
    /// Reads answered from the cache.
    pub cache_hits: u64,
}

/// A read-only disk.
pub trait BlockSource: Send + Sync {
    /// The disk's size in bytes.
    fn size(&self) -> u64;

    /// Fills `buf` with the bytes at `offset`. Reading past the end is
    /// [`SourceError::OutOfRange`].
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError>;

    /// These byte ranges will be read soon, in this order: a source that
    /// fetches remotely may fetch them ahead, in parallel. Only a hint.
    fn will_read(&self, _ranges: &[Range<u64>]) {}

    /// What the source has fetched so far.
    fn stats(&self) -> SourceStats {
        SourceStats::default()
    }
}

impl<T: BlockSource + ?Sized> BlockSource for Arc<T> {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        (**self).read_at(offset, buf)
    }
    fn will_read(&self, ranges: &[Range<u64>]) {
        (**self).will_read(ranges)
    }
    fn stats(&self) -> SourceStats {
        (**self).stats()
    }
}

fn check_range(offset: u64, len: usize, size: u64) -> Result<(), SourceError> {
    let len = len as u64;
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(SourceError::OutOfRange { offset, len, size }),
    }
}

/// A raw disk or partition image in a local file (or a block device).
pub struct ImageFile {
    file: File,
    size: u64,
    reads: AtomicU64,
    bytes: AtomicU64,
}

impl ImageFile {
    /// Opens `path` read-only.
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        let file = File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SourceError::NotFound(format!("{}", path.display())),
            std::io::ErrorKind::PermissionDenied => {
                SourceError::AccessDenied(format!("{}", path.display()))
            }
            _ => SourceError::Other(format!("{}: {e}", path.display())),
        })?;
        let meta = file
            .metadata()
            .map_err(|e| SourceError::Other(format!("{}: {e}", path.display())))?;
        if meta.is_dir() {
            return Err(SourceError::Other(format!(
                "{} is a directory, not a disk image",
                path.display()
            )));
        }
        let mut size = meta.len();
        if size == 0 {
            // A block device reports its size only through a seek to its end.
            use std::io::{Seek, SeekFrom};
            let mut f = &file;
            size = f
                .seek(SeekFrom::End(0))
                .map_err(|e| SourceError::Other(format!("{}: {e}", path.display())))?;
        }
        Ok(Self {
            file,
            size,
            reads: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        })
    }
}

impl BlockSource for ImageFile {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        check_range(offset, buf.len(), self.size)?;
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| SourceError::Other(format!("reading at {offset}: {e}")))?;
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn stats(&self) -> SourceStats {
        SourceStats {
            blocks_fetched: self.reads.load(Ordering::Relaxed),
            bytes_fetched: self.bytes.load(Ordering::Relaxed),
            ..SourceStats::default()
        }
    }
}

/// Bytes in memory as a disk (tests, and small synthetic images).
pub struct MemoryDisk(pub Vec<u8>);

impl BlockSource for MemoryDisk {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        check_range(offset, buf.len(), self.size())?;
        let start = offset as usize;
        buf.copy_from_slice(&self.0[start..start + buf.len()]);
        Ok(())
    }
}

/// A part of a disk: a partition, seen as a disk of its own.
#[derive(Clone)]
pub struct Slice {
    inner: Arc<dyn BlockSource>,
    start: u64,
    len: u64,
}

impl Slice {
    /// The bytes `start..start + len` of `inner`; refused when they do not fit.
    pub fn new(inner: Arc<dyn BlockSource>, start: u64, len: u64) -> Result<Self, SourceError> {
        check_range(start, 0, inner.size())?;
        let len = len.min(inner.size() - start);
        Ok(Self { inner, start, len })
    }

    /// Where the slice starts on its disk.
    pub fn start(&self) -> u64 {
        self.start
    }
}

impl BlockSource for Slice {
    fn size(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        check_range(offset, buf.len(), self.len)?;
        self.inner.read_at(self.start + offset, buf)
    }
    fn will_read(&self, ranges: &[Range<u64>]) {
        let shifted: Vec<Range<u64>> = ranges
            .iter()
            .filter(|r| r.start < self.len)
            .map(|r| self.start + r.start..self.start + r.end.min(self.len))
            .collect();
        self.inner.will_read(&shifted)
    }
    fn stats(&self) -> SourceStats {
        self.inner.stats()
    }
}

/// A store that serves a disk in whole blocks of one size (an EBS snapshot:
/// 524,288 bytes), some of them absent (never written: zeros).
pub trait BlockFetch: Send + Sync {
    /// The block size in bytes.
    fn block_size(&self) -> u64;
    /// The disk's size in bytes.
    fn size(&self) -> u64;
    /// Fetches the blocks `indexes` (distinct, ascending, each within the
    /// disk), as many at once as the store allows. `None` is an absent block.
    /// Every `Some` holds exactly `block_size` bytes.
    #[allow(clippy::type_complexity)]
    fn fetch(&self, indexes: &[u64]) -> Result<Vec<Option<Arc<[u8]>>>, SourceError>;
}

/// How much a [`CachedSource`] keeps and fetches ahead.
#[derive(Debug, Clone, Copy)]
pub struct CacheLimits {
    /// Blocks kept in memory.
    pub capacity: usize,
    /// The most blocks fetched ahead of a sequential read, and the most
    /// blocks of hints fetched in one go.
    pub max_ahead: usize,
    /// The most blocks one source may fetch in all (`None`: no bound).
    pub budget: Option<u64>,
}

impl Default for CacheLimits {
    /// 64 blocks of 512 KiB (32 MiB) kept, up to 16 (8 MiB) fetched ahead.
    fn default() -> Self {
        Self {
            capacity: 64,
            max_ahead: 16,
            budget: None,
        }
    }
}

struct Cached {
    data: Option<Arc<[u8]>>,
    used: u64,
}

struct CacheState {
    blocks: HashMap<u64, Cached>,
    tick: u64,
    /// The last block a read touched, and the read-ahead window now in use.
    last: Option<u64>,
    window: usize,
    /// Blocks the reader said it will read, in order.
    hinted: Vec<u64>,
    stats: SourceStats,
}

/// A bounded cache of whole blocks over a [`BlockFetch`], with read-ahead:
/// blocks the filesystem reader announced ([`BlockSource::will_read`], from
/// a file's extent map) and, for reads that go on block after block, a
/// window that doubles up to [`CacheLimits::max_ahead`]. Missing blocks of
/// one read are fetched in one call, so the store can fetch them in parallel.
pub struct CachedSource<F: BlockFetch> {
    fetch: F,
    limits: CacheLimits,
    state: Mutex<CacheState>,
}

impl<F: BlockFetch> CachedSource<F> {
    pub fn new(fetch: F, limits: CacheLimits) -> Self {
        let limits = CacheLimits {
            capacity: limits.capacity.max(4),
            max_ahead: limits.max_ahead.clamp(1, limits.capacity.max(4) / 2),
            budget: limits.budget,
        };
        Self {
            fetch,
            limits,
            state: Mutex::new(CacheState {
                blocks: HashMap::new(),
                tick: 0,
                last: None,
                window: 1,
                hinted: Vec::new(),
                stats: SourceStats::default(),
            }),
        }
    }

    /// The store underneath.
    pub fn inner(&self) -> &F {
        &self.fetch
    }

    fn blocks(&self) -> u64 {
        self.fetch.size().div_ceil(self.fetch.block_size())
    }

    /// Fetches `wanted` (plus nothing else) into the cache.
    fn load(&self, state: &mut CacheState, wanted: &[u64]) -> Result<(), SourceError> {
        if wanted.is_empty() {
            return Ok(());
        }
        if let Some(limit) = self.limits.budget {
            if state.stats.blocks_fetched + state.stats.blocks_absent + wanted.len() as u64 > limit
            {
                return Err(SourceError::Budget { limit });
            }
        }
        let got = self.fetch.fetch(wanted)?;
        if got.len() != wanted.len() {
            return Err(SourceError::Other(format!(
                "asked for {} blocks, got {}",
                wanted.len(),
                got.len()
            )));
        }
        let bs = self.fetch.block_size() as usize;
        for (index, data) in wanted.iter().zip(got) {
            match &data {
                Some(d) if d.len() != bs => {
                    return Err(SourceError::Other(format!(
                        "block {index} holds {} bytes, not {bs}",
                        d.len()
                    )))
                }
                Some(d) => {
                    state.stats.blocks_fetched += 1;
                    state.stats.bytes_fetched += d.len() as u64;
                }
                None => state.stats.blocks_absent += 1,
            }
            state.tick += 1;
            let used = state.tick;
            state.blocks.insert(*index, Cached { data, used });
        }
        // Evict the least recently used until within capacity.
        while state.blocks.len() > self.limits.capacity {
            let oldest = state
                .blocks
                .iter()
                .min_by_key(|(_, c)| c.used)
                .map(|(i, _)| *i)
                .expect("not empty");
            state.blocks.remove(&oldest);
        }
        Ok(())
    }
}

impl<F: BlockFetch> BlockSource for CachedSource<F> {
    fn size(&self) -> u64 {
        self.fetch.size()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        check_range(offset, buf.len(), self.size())?;
        if buf.is_empty() {
            return Ok(());
        }
        let bs = self.fetch.block_size();
        let first = offset / bs;
        let last = (offset + buf.len() as u64 - 1) / bs;
        let total = self.blocks();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());

        // Read-ahead: a read that continues the previous one widens the window.
        let sequential = matches!(state.last, Some(l) if first == l || first == l + 1);
        state.window = if sequential {
            (state.window * 2).min(self.limits.max_ahead)
        } else {
            1
        };
        state.last = Some(last);
        // Hints at or before this read are spent.
        state.hinted.retain(|b| *b > last);

        let mut block = first;
        let mut written = 0usize;
        while block <= last {
            // A batch: the missing blocks of this read, then hinted blocks and
            // the read-ahead window, at most `max_ahead` blocks beyond the read.
            if !state.blocks.contains_key(&block) {
                let mut wanted: Vec<u64> = (block..=last)
                    .filter(|b| !state.blocks.contains_key(b))
                    .take(self.limits.max_ahead.max(1))
                    .collect();
                if wanted.last() == Some(&last) {
                    let room = self.limits.max_ahead.saturating_sub(1);
                    let mut ahead: Vec<u64> = state
                        .hinted
                        .iter()
                        .copied()
                        .filter(|b| !state.blocks.contains_key(b))
                        .take(room)
                        .collect();
                    if sequential && ahead.len() < room {
                        let extra = state.window.min(room - ahead.len());
                        let more: Vec<u64> = (last + 1..total)
                            .filter(|b| !state.blocks.contains_key(b) && !ahead.contains(b))
                            .take(extra)
                            .collect();
                        ahead.extend(more);
                    }
                    wanted.extend(ahead);
                    wanted.sort_unstable();
                    wanted.dedup();
                }
                self.load(&mut state, &wanted)?;
            } else {
                state.stats.cache_hits += 1;
            }
            state.tick += 1;
            let tick = state.tick;
            let cached = state
                .blocks
                .get_mut(&block)
                .ok_or_else(|| SourceError::Other(format!("block {block} was not kept")))?;
            cached.used = tick;
            let block_start = block * bs;
            let from = (offset + written as u64).max(block_start) - block_start;
            let n = ((bs - from) as usize).min(buf.len() - written);
            let dst = &mut buf[written..written + n];
            match &cached.data {
                Some(d) => dst.copy_from_slice(&d[from as usize..from as usize + n]),
                None => dst.fill(0),
            }
            written += n;
            block += 1;
        }
        Ok(())
    }

    fn will_read(&self, ranges: &[Range<u64>]) {
        let bs = self.fetch.block_size();
        let total = self.blocks();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.hinted.clear();
        'outer: for r in ranges {
            if r.end <= r.start {
                continue;
            }
            for b in r.start / bs..=((r.end - 1) / bs).min(total.saturating_sub(1)) {
                if state.hinted.last() != Some(&b) {
                    state.hinted.push(b);
                }
                // Hints are bounded like the cache: more would only be evicted.
                if state.hinted.len() >= self.limits.capacity {
                    break 'outer;
                }
            }
        }
    }

    fn stats(&self) -> SourceStats {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Counting {
        blocks: Vec<Option<Vec<u8>>>,
        calls: AtomicUsize,
        fetched: Mutex<Vec<u64>>,
    }

    impl BlockFetch for Counting {
        fn block_size(&self) -> u64 {
            8
        }
        fn size(&self) -> u64 {
            self.blocks.len() as u64 * 8
        }
        fn fetch(&self, indexes: &[u64]) -> Result<Vec<Option<Arc<[u8]>>>, SourceError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            self.fetched.lock().unwrap().extend_from_slice(indexes);
            Ok(indexes
                .iter()
                .map(|i| self.blocks[*i as usize].clone().map(Arc::from))
                .collect())
        }
    }

    fn disk(n: usize) -> Counting {
        Counting {
            blocks: (0..n)
                .map(|i| (i % 3 != 2).then(|| vec![i as u8; 8]))
                .collect(),
            calls: AtomicUsize::new(0),
            fetched: Mutex::new(Vec::new()),
        }
    }

    fn expected(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                if i % 3 != 2 {
                    vec![i as u8; 8]
                } else {
                    vec![0; 8]
                }
            })
            .collect()
    }

    #[test]
    fn reads_across_blocks_absent_ones_as_zeros() {
        let source = CachedSource::new(disk(10), CacheLimits::default());
        let mut buf = vec![0xff; 30];
        source.read_at(5, &mut buf).unwrap();
        assert_eq!(buf, expected(10)[5..35]);
        let stats = source.stats();
        assert_eq!(stats.blocks_absent, 1, "block 2 is absent");
        assert_eq!(stats.blocks_fetched, 4, "blocks 0, 1, 3 and 4");
    }

    #[test]
    fn a_random_read_fetches_only_its_blocks_and_a_sequential_one_reads_ahead() {
        let source = CachedSource::new(disk(100), CacheLimits::default());
        let mut buf = [0u8; 4];
        source.read_at(50 * 8 + 2, &mut buf).unwrap();
        assert_eq!(*source.inner().fetched.lock().unwrap(), vec![50]);
        // Reading on, block after block: the window opens.
        for b in 51..60 {
            source.read_at(b * 8, &mut buf).unwrap();
        }
        let calls = source.inner().calls.load(Ordering::Relaxed);
        assert!(
            calls < 9,
            "read-ahead batches fetches: {calls} calls for 10 blocks"
        );
        let mut all = vec![0u8; 800];
        source.read_at(0, &mut all).unwrap();
        assert_eq!(all, expected(100));
    }

    #[test]
    fn hints_are_fetched_with_the_next_miss_and_the_cache_stays_bounded() {
        let limits = CacheLimits {
            capacity: 8,
            max_ahead: 4,
            budget: None,
        };
        let source = CachedSource::new(disk(100), limits);
        source.will_read(&[80..88, 16..24, 40..48]);
        let mut buf = [0u8; 1];
        source.read_at(0, &mut buf).unwrap();
        let fetched = source.inner().fetched.lock().unwrap().clone();
        assert_eq!(
            fetched,
            vec![0, 2, 5, 10],
            "the read's block and the hinted ones"
        );
        for b in 0..100 {
            source.read_at(b * 8, &mut buf).unwrap();
        }
        assert!(source.state.lock().unwrap().blocks.len() <= 8);
    }

    #[test]
    fn the_budget_stops_a_read_that_would_fetch_too_much() {
        let limits = CacheLimits {
            capacity: 8,
            max_ahead: 4,
            budget: Some(5),
        };
        let source = CachedSource::new(disk(100), limits);
        let mut buf = vec![0u8; 800];
        let err = source.read_at(0, &mut buf).unwrap_err();
        assert_eq!(err, SourceError::Budget { limit: 5 });
    }

    #[test]
    fn reads_past_the_end_are_refused() {
        let source = CachedSource::new(disk(2), CacheLimits::default());
        let mut buf = [0u8; 4];
        assert!(matches!(
            source.read_at(14, &mut buf),
            Err(SourceError::OutOfRange { offset: 14, .. })
        ));
        let slice = Slice::new(Arc::new(MemoryDisk(vec![7; 100])), 90, 50).unwrap();
        assert_eq!(slice.size(), 10);
        assert!(slice.read_at(8, &mut buf).is_err());
        slice.read_at(6, &mut buf).unwrap();
        assert_eq!(buf, [7; 4]);
    }
}
