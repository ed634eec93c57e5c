//! Independent items processed on all cores, with results (and the first error) in item order, so the output of a
//! stage does not depend on the number of threads.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Applies `f` to every item on all available cores and returns the results in item order.
///
/// `progress(done, total)` is called once with `done = 0` and then once per finished item, `done` rising by one per
/// call (counted and reported under one lock, so a progress bar never steps back).
///
/// On failure the error of the lowest failing index is returned: workers take items in order and stop taking new ones
/// after a failure, so every item before a failed one has been processed and the reported error is deterministic.
pub fn map_in_order<T: Sync, R: Send, E: Send>(
    items: &[T],
    progress: &(dyn Fn(usize, usize) + Sync),
    f: impl Fn(&T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E> {
    let total = items.len();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, total.max(1));
    let (next, done, failed) = (AtomicUsize::new(0), Mutex::new(0), AtomicBool::new(false));
    progress(0, total);
    let mut results: Vec<(usize, Result<R, E>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            break;
                        }
                        let result = f(&items[i]);
                        failed.fetch_or(result.is_err(), Ordering::Relaxed);
                        out.push((i, result));
                        let mut done = done.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                        *done += 1;
                        progress(*done, total);
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_item_order_and_the_lowest_failure_is_reported() {
        let items: Vec<usize> = (0..50).collect();
        let calls = AtomicUsize::new(0);
        let out: Result<Vec<usize>, String> = map_in_order(&items, &|_, _| {}, |&i| {
            calls.fetch_add(1, Ordering::Relaxed);
            Ok(i * 2)
        });
        assert_eq!(out.unwrap(), items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(calls.load(Ordering::Relaxed), 50);
        for _ in 0..20 {
            let err =
                map_in_order(&items, &|_, _| {}, |&i| if i == 7 || i == 30 { Err(format!("item {i}")) } else { Ok(i) });
            assert_eq!(err.unwrap_err(), "item 7");
        }
    }

    #[test]
    fn progress_reports_rise_by_one_from_zero_to_the_total() {
        let items: Vec<u64> = (0..400).collect();
        let reports = Mutex::new(Vec::new());
        let out: Result<Vec<u64>, String> =
            map_in_order(&items, &|done, total| reports.lock().unwrap().push((done, total)), |&i| {
                Ok((0..i * 50).fold(i, |acc, k| acc.wrapping_mul(31).wrapping_add(k)))
            });
        assert_eq!(out.unwrap().len(), 400);
        let expected: Vec<(usize, usize)> = (0..=400).map(|done| (done, 400)).collect();
        assert_eq!(reports.into_inner().unwrap(), expected);
    }

    #[test]
    fn no_items_report_zero_of_zero() {
        let reports = Mutex::new(Vec::new());
        let out: Result<Vec<()>, String> =
            map_in_order(&[] as &[u8], &|d, t| reports.lock().unwrap().push((d, t)), |_| Ok(()));
        assert!(out.unwrap().is_empty());
        assert_eq!(reports.into_inner().unwrap(), [(0, 0)]);
    }
}
