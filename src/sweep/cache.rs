//! Data shared between the runs of a sweep: loaded once while any worker uses it.
//!
//! Each worker keeps the data set of its last run; a data set is otherwise held only while a
//! run uses it (a weak reference lets another worker find it). So memory holds at most one data
//! set per worker (plus one being loaded), and a sweep over one data set loads it once.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, Weak};

/// Values by key, kept alive by the workers that use them.
pub struct SharedCache<K, V> {
    inner: Mutex<Inner<K, V>>,
}

struct Inner<K, V> {
    live: HashMap<K, Weak<V>>,
    last: Vec<Option<(K, Arc<V>)>>,
    loads: usize,
}

impl<K: Eq + Hash + Clone, V> SharedCache<K, V> {
    /// A cache for `workers` workers.
    pub fn new(workers: usize) -> Self {
        let inner = Inner { live: HashMap::new(), last: (0..workers.max(1)).map(|_| None).collect(), loads: 0 };
        Self { inner: Mutex::new(inner) }
    }

    /// The value of `key` for `worker`, loaded with `load` when no worker holds it.
    pub fn get<E>(&self, worker: usize, key: &K, load: impl FnOnce() -> Result<V, E>) -> Result<Arc<V>, E> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, v)) = &g.last[worker]
            && k == key
        {
            return Ok(v.clone());
        }
        // drop this worker's previous value first, so that it is freed before a new one loads
        g.last[worker] = None;
        let found = g.live.get(key).and_then(Weak::upgrade);
        let value = match found {
            Some(v) => v,
            None => {
                let v = Arc::new(load()?);
                g.loads += 1;
                g.live.retain(|_, w| w.strong_count() > 0);
                g.live.insert(key.clone(), Arc::downgrade(&v));
                v
            }
        };
        g.last[worker] = Some((key.clone(), value.clone()));
        Ok(value)
    }

    /// How many times a value was loaded.
    pub fn loads(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).loads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_once_per_key_while_held_and_frees_after() {
        let cache = SharedCache::<&str, Vec<u8>>::new(2);
        let a = cache.get(0, &"a", || Ok::<_, ()>(vec![1])).unwrap();
        let a2 =
            cache.get(1, &"a", || -> Result<Vec<u8>, ()> { panic!("held by worker 0: not loaded again") }).unwrap();
        assert!(Arc::ptr_eq(&a, &a2));
        drop((a, a2));
        // worker 0 still keeps "a" as its last value
        cache.get(1, &"a", || -> Result<Vec<u8>, ()> { panic!("kept by worker 0") }).unwrap();
        // both workers move on to "b": "a" is freed, and loading it again is a new load
        let b = cache.get(0, &"b", || Ok::<_, ()>(vec![2])).unwrap();
        let weak_b = Arc::downgrade(&b);
        drop(b);
        cache.get(1, &"b", || -> Result<Vec<u8>, ()> { panic!("kept by worker 0") }).unwrap();
        cache.get(1, &"a", || Ok::<_, ()>(vec![1])).unwrap();
        assert_eq!(cache.loads(), 3);
        assert!(weak_b.upgrade().is_some(), "worker 0 still keeps b");
        assert_eq!(cache.get(0, &"c", || Err::<Vec<u8>, _>("boom")).unwrap_err(), "boom");
        assert!(weak_b.upgrade().is_none(), "b freed once no worker keeps it");
    }
}
