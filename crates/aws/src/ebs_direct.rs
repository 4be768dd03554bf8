//! An EBS snapshot as a read-only disk, through the EBS direct APIs.
//!
//! `ListSnapshotBlocks` tells which 524,288-byte blocks the snapshot holds
//! (a block never written is absent and reads as zeros, with no fetch) and
//! gives each a token; `GetSnapshotBlock` fetches one, and its SHA-256 is
//! checked against the checksum AWS sends. Blocks are listed lazily, one page
//! (up to 10,000 listed blocks) from the first block a read needs, so a
//! 16 TiB volume costs only the pages its files touch. Blocks are fetched in
//! parallel, at most [`EbsSnapshot::CONCURRENCY`] at a time and at most
//! [`EbsSnapshot::MAX_RATE`] a second (the GetSnapshotBlock quota is per
//! account and region); throttling is retried by the SDK's standard retries.
//! Encrypted snapshots read the same way, given `kms:Decrypt` on their key.
//!
//! [`EbsSnapshot`] implements `strongroom_fs::BlockFetch`; wrap it in a
//! `CachedSource` for the cache and read-ahead. Its reads block on the tokio
//! runtime whose handle it holds: use it from a blocking thread
//! (`spawn_blocking`), never from async code.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_ebs::error::ProvideErrorMetadata;
use aws_smithy_types::base64;
use futures::stream::{self, StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use strongroom_fs::{BlockFetch, SourceError};
use tokio::runtime::Handle;

/// The only block size of the EBS direct APIs.
pub const BLOCK_SIZE: u64 = 524_288;

/// Listed blocks per `ListSnapshotBlocks` page (the API's maximum).
const PAGE: i32 = 10_000;

struct Listing {
    /// Block index -> token, for the listed ranges.
    tokens: BTreeMap<u64, String>,
    /// Ranges of block indexes whose listing is known (`start..end`).
    covered: Vec<(u64, u64)>,
}

/// One snapshot, readable block by block.
pub struct EbsSnapshot {
    client: aws_sdk_ebs::Client,
    snapshot_id: String,
    size: u64,
    handle: Handle,
    listing: Mutex<Listing>,
    /// The earliest time the next request may start (rate limit).
    next_slot: Arc<tokio::sync::Mutex<Instant>>,
    calls: std::sync::atomic::AtomicU64,
}

fn source_error(err: impl ProvideErrorMetadata + std::fmt::Display, what: &str) -> SourceError {
    let code = err.code().unwrap_or("").to_string();
    let message = format!(
        "{what}: {} ({})",
        err.message().unwrap_or("no message"),
        if code.is_empty() {
            "no error code"
        } else {
            &code
        }
    );
    match crate::error::classify(&code) {
        strongroom_core::ErrorKind::NotFound => SourceError::NotFound(message),
        strongroom_core::ErrorKind::AccessDenied => SourceError::AccessDenied(message),
        strongroom_core::ErrorKind::Throttled => SourceError::Throttled(message),
        _ => SourceError::Other(message),
    }
}

fn sdk_error<E>(err: aws_sdk_ebs::error::SdkError<E>, what: &str) -> SourceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match err {
        aws_sdk_ebs::error::SdkError::ServiceError(se) => source_error(se.into_err(), what),
        other => SourceError::Other(format!("{what}: {}", crate::clients::causes(&other))),
    }
}

impl EbsSnapshot {
    /// Requests in flight at once.
    pub const CONCURRENCY: usize = 16;
    /// Requests started per second, at most.
    pub const MAX_RATE: u32 = 500;

    /// Opens `snapshot_id` with `client` (of the snapshot's region and an
    /// account that may read it): lists its first page, which gives its size.
    pub async fn open(client: aws_sdk_ebs::Client, snapshot_id: &str) -> Result<Self, SourceError> {
        let first = client
            .list_snapshot_blocks()
            .snapshot_id(snapshot_id)
            .max_results(PAGE)
            .send()
            .await
            .map_err(|e| sdk_error(e, &format!("listing the blocks of {snapshot_id}")))?;
        let block_size = first.block_size().unwrap_or(0);
        if u64::try_from(block_size).ok() != Some(BLOCK_SIZE) {
            return Err(SourceError::Other(format!(
                "{snapshot_id}: the EBS direct API answered a block size of {block_size}, not {BLOCK_SIZE}"
            )));
        }
        let gib = first.volume_size().unwrap_or(0);
        if !(1..=65_536).contains(&gib) {
            return Err(SourceError::Other(format!(
                "{snapshot_id}: the EBS direct API answered a volume size of {gib} GiB"
            )));
        }
        let size = gib as u64 * (1 << 30);
        let snapshot = Self {
            client,
            snapshot_id: snapshot_id.to_string(),
            size,
            handle: Handle::current(),
            listing: Mutex::new(Listing {
                tokens: BTreeMap::new(),
                covered: Vec::new(),
            }),
            next_slot: Arc::new(tokio::sync::Mutex::new(Instant::now())),
            calls: std::sync::atomic::AtomicU64::new(1),
        };
        if first.blocks().is_empty() && first.next_token().is_some() {
            // An empty first page says nothing of block 0 yet.
            snapshot.list_from(0).await?;
        } else {
            snapshot.record_page(0, first.blocks(), first.next_token().is_some());
        }
        Ok(snapshot)
    }

    /// The snapshot's id.
    pub fn id(&self) -> &str {
        &self.snapshot_id
    }

    /// API calls made so far (listings and block fetches).
    pub fn calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn total_blocks(&self) -> u64 {
        self.size / BLOCK_SIZE
    }

    fn record_page(&self, start: u64, blocks: &[aws_sdk_ebs::types::Block], more: bool) {
        let mut listing = self.listing.lock().unwrap_or_else(|p| p.into_inner());
        let mut last = start;
        for b in blocks {
            if let (Some(i), Some(t)) = (b.block_index(), b.block_token()) {
                if let Ok(i) = u64::try_from(i) {
                    listing.tokens.insert(i, t.to_string());
                    last = last.max(i);
                }
            }
        }
        // Without a next page the listing is complete to the end; with one,
        // up to the last block listed.
        let end = if more { last + 1 } else { self.total_blocks() };
        listing.covered.push((start, end.max(start + 1)));
    }

    fn is_covered(&self, index: u64) -> bool {
        let listing = self.listing.lock().unwrap_or_else(|p| p.into_inner());
        listing
            .covered
            .iter()
            .any(|(s, e)| (*s..*e).contains(&index))
    }

    /// Lists from block `start`. A page may hold no blocks and still have
    /// a next one (the API reference: "the response might be empty" with a
    /// `NextToken`): pages are followed until one lists a block or none is
    /// left, so a block is never taken for absent before its page came.
    async fn list_from(&self, start: u64) -> Result<(), SourceError> {
        let first = i32::try_from(start).map_err(|_| {
            SourceError::Other(format!(
                "block {start} is beyond the EBS direct API's indexes"
            ))
        })?;
        let mut token: Option<String> = None;
        // Bounded: a page lists at least one block or moves on.
        for _ in 0..10_000 {
            self.calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let page = self
                .client
                .list_snapshot_blocks()
                .snapshot_id(&self.snapshot_id)
                .starting_block_index(first)
                .set_next_token(token.clone())
                .max_results(PAGE)
                .send()
                .await
                .map_err(|e| {
                    sdk_error(e, &format!("listing the blocks of {}", self.snapshot_id))
                })?;
            let next = page.next_token().map(str::to_owned);
            if !page.blocks().is_empty() || next.is_none() {
                self.record_page(start, page.blocks(), next.is_some());
                return Ok(());
            }
            token = next;
        }
        Err(SourceError::Other(format!(
            "listing the blocks of {} from block {start}: 10,000 empty pages",
            self.snapshot_id
        )))
    }

    async fn wait_for_slot(&self) {
        let mut next = self.next_slot.lock().await;
        let now = Instant::now();
        if *next > now {
            tokio::time::sleep(*next - now).await;
        }
        *next = Instant::now().max(*next) + Duration::from_secs(1) / Self::MAX_RATE;
    }

    async fn get(&self, index: u64, token: String) -> Result<Arc<[u8]>, SourceError> {
        self.wait_for_slot().await;
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let what = format!("block {index} of {}", self.snapshot_id);
        let out = self
            .client
            .get_snapshot_block()
            .snapshot_id(&self.snapshot_id)
            .block_index(index as i32)
            .block_token(token)
            .send()
            .await
            .map_err(|e| sdk_error(e, &format!("fetching {what}")))?;
        let expected = out.checksum().map(str::to_string);
        let algorithm = out.checksum_algorithm().map(|a| a.as_str().to_string());
        let data = out
            .block_data
            .collect()
            .await
            .map_err(|e| SourceError::Other(format!("reading {what}: {e}")))?
            .into_bytes();
        if data.len() as u64 != BLOCK_SIZE {
            return Err(SourceError::Checksum {
                block: index,
                detail: format!("{} bytes arrived, not {BLOCK_SIZE}", data.len()),
            });
        }
        match (algorithm.as_deref(), expected) {
            (Some("SHA256"), Some(expected)) => {
                let got = base64::encode(Sha256::digest(&data));
                if got != expected {
                    return Err(SourceError::Checksum {
                        block: index,
                        detail: format!("SHA-256 {got}, the API said {expected}"),
                    });
                }
            }
            (algorithm, expected) => {
                return Err(SourceError::Checksum {
                    block: index,
                    detail: format!(
                        "no SHA-256 to check (algorithm {algorithm:?}, checksum {expected:?})"
                    ),
                })
            }
        }
        Ok(Arc::from(data.as_ref()))
    }

    async fn fetch_async(&self, indexes: &[u64]) -> Result<Vec<Option<Arc<[u8]>>>, SourceError> {
        for &i in indexes {
            if i >= self.total_blocks() {
                return Err(SourceError::OutOfRange {
                    offset: i * BLOCK_SIZE,
                    len: BLOCK_SIZE,
                    size: self.size,
                });
            }
            if !self.is_covered(i) {
                self.list_from(i).await?;
            }
        }
        let tokens: Vec<Option<String>> = {
            let listing = self.listing.lock().unwrap_or_else(|p| p.into_inner());
            indexes
                .iter()
                .map(|i| listing.tokens.get(i).cloned())
                .collect()
        };
        stream::iter(indexes.iter().zip(tokens))
            .map(|(&index, token)| async move {
                match token {
                    None => Ok(None),
                    Some(token) => self.get(index, token).await.map(Some),
                }
            })
            .buffered(Self::CONCURRENCY)
            .try_collect()
            .await
    }
}

impl BlockFetch for EbsSnapshot {
    fn block_size(&self) -> u64 {
        BLOCK_SIZE
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn fetch(&self, indexes: &[u64]) -> Result<Vec<Option<Arc<[u8]>>>, SourceError> {
        self.handle.block_on(self.fetch_async(indexes))
    }
}
