//! What the directory said, remembered for a while: bounded (least recently used entries
//! go first), each answer with its own lifetime, and one question per key at a time.
//!
//! The last point is what keeps a burst cheap: when fifty connections of one user arrive
//! together, the first asks the directory and the other forty-nine wait for its answer
//! instead of asking too. An answer that must not be kept (the directory did not answer)
//! is handed to those waiting and then forgotten, so the next request asks again.

use std::future::Future;
use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub struct Cache<K, V> {
    slots: Mutex<lru::LruCache<K, Arc<Slot<V>>>>,
}

/// One key's answer, or the question under way.
struct Slot<V> {
    answer: tokio::sync::OnceCell<(V, Option<Instant>)>,
}

impl<K: Hash + Eq + Clone, V: Clone> Cache<K, V> {
    pub fn new(capacity: usize) -> Cache<K, V> {
        Cache {
            slots: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// The answer for `key`: remembered, being fetched by another caller (then awaited),
    /// or fetched now by `fetch`, which returns the answer and how long it holds (`None`:
    /// not kept).
    pub async fn get_or_fetch<F, Fut>(&self, key: K, fetch: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = (V, Option<Duration>)>,
    {
        let slot = {
            let mut slots = self.slots.lock();
            let now = Instant::now();
            let fresh = slots.get(&key).filter(|slot| match slot.answer.get() {
                Some((_, Some(until))) => *until > now,
                Some((_, None)) => false,
                None => true, // being fetched
            });
            match fresh {
                Some(slot) => slot.clone(),
                None => {
                    let slot = Arc::new(Slot {
                        answer: tokio::sync::OnceCell::new(),
                    });
                    slots.put(key.clone(), slot.clone());
                    slot
                }
            }
        };
        let (value, until) = slot
            .answer
            .get_or_init(|| async {
                let (value, keep) = fetch().await;
                (value, keep.map(|ttl| Instant::now() + ttl))
            })
            .await;
        let value = value.clone();
        if until.is_none() {
            // Not to be kept: forget it, unless a newer question took the key meanwhile.
            let mut slots = self.slots.lock();
            if slots.peek(&key).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                slots.pop(&key);
            }
        }
        value
    }

    pub fn len(&self) -> usize {
        self.slots.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch_and_expiry_fetches_again() {
        let cache: Arc<Cache<&str, u32>> = Arc::new(Cache::new(8));
        let fetches = Arc::new(AtomicUsize::new(0));
        let mut waiting = Vec::new();
        for _ in 0..50 {
            let (cache, fetches) = (cache.clone(), fetches.clone());
            waiting.push(tokio::spawn(async move {
                cache
                    .get_or_fetch("alice", || async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        (7, Some(Duration::from_millis(200)))
                    })
                    .await
            }));
        }
        for w in waiting {
            assert_eq!(w.await.unwrap(), 7);
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let again = cache
            .get_or_fetch("alice", || async {
                fetches.fetch_add(1, Ordering::SeqCst);
                (8, Some(Duration::from_secs(60)))
            })
            .await;
        assert_eq!((again, fetches.load(Ordering::SeqCst)), (8, 2));
    }

    #[tokio::test]
    async fn answers_not_to_be_kept_are_asked_again_and_the_size_is_bounded() {
        let cache: Cache<u32, u32> = Cache::new(2);
        assert_eq!(cache.get_or_fetch(1, || async { (1, None) }).await, 1);
        assert_eq!(cache.get_or_fetch(1, || async { (2, None) }).await, 2);
        assert!(cache.is_empty());
        for k in 0..10 {
            cache
                .get_or_fetch(k, || async move { (k, Some(Duration::from_secs(60))) })
                .await;
        }
        assert_eq!(cache.len(), 2);
    }
}
