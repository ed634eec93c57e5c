//! The mask source of a synthetic subject: the real train subject whose segmentation conditions its generation.
//!
//! Rule (issue 4, "Plan"): the candidates are the real train subjects with the synthetic subject's label (and, with
//! `--per-site`, its site: a federated client conditions only on its own masks). They are ranked by
//! 1. same sex first (when the target's sex is known),
//! 2. then the distance `|Δage| / 10 + |Δbmi| / 5` (a decade of age weighs as much as one WHO BMI class width; a
//!    value the candidate lacks counts 1, a value the target lacks counts 0),
//! 3. then `subject_id`, so ties resolve the same way on every machine.
//!
//! The first-ranked candidate is chosen unless it was the mask source of the previous plan row and another candidate
//! exists; then the second-ranked one is. So the same mask is never used twice in a row while others remain.
//!
//! The search is exact but not a scan: each (site, label, sex) pool sits in a uniform grid over `(age / 10, bmi / 5)`
//! with about two candidates per cell, searched in rings of cells around the target until no unvisited cell can hold a
//! closer candidate. Candidates without age or BMI (rare) are checked one by one, as are all candidates of a target
//! without age or BMI.

use std::cmp::Ordering;
use std::collections::HashMap;

use cmr_core::Sex;
use rayon::prelude::*;

/// Age distance that counts as 1 (years).
pub const AGE_SCALE: f64 = 10.0;
/// BMI distance that counts as 1 (kg/m²).
pub const BMI_SCALE: f64 = 5.0;

/// The columns a mask source is chosen from, one entry per cohort row.
#[derive(Debug, Clone, Copy)]
pub struct Candidates<'a> {
    /// Subject ids (tie-break).
    pub subject_id: &'a [&'a str],
    /// Sites.
    pub site: &'a [&'a str],
    /// Labels.
    pub label: &'a [i32],
    /// Sexes.
    pub sex: &'a [Option<Sex>],
    /// Ages (years).
    pub age: &'a [Option<f64>],
    /// BMIs (kg/m²).
    pub bmi: &'a [Option<f64>],
}

/// The attributes a mask source should match.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target<'a> {
    /// Site (used with `--per-site`).
    pub site: &'a str,
    /// Label (always matched).
    pub label: i32,
    /// Sex (preferred).
    pub sex: Option<Sex>,
    /// Age in years.
    pub age: Option<f64>,
    /// BMI in kg/m².
    pub bmi: Option<f64>,
}

type PoolKey<'a> = (Option<&'a str>, i32, Option<Sex>);

/// Candidate pools by (site with `--per-site`, label, sex).
#[derive(Debug)]
pub struct MaskIndex<'a> {
    cols: Candidates<'a>,
    per_site: bool,
    pools: HashMap<PoolKey<'a>, Pool>,
}

impl<'a> MaskIndex<'a> {
    /// Indexes the candidate `rows` of `cols`; the pools are built in parallel.
    pub fn new(cols: Candidates<'a>, rows: impl IntoIterator<Item = u32>, per_site: bool) -> Self {
        let mut index: HashMap<PoolKey<'a>, usize> = HashMap::new();
        let mut grouped: Vec<Vec<Point>> = Vec::new();
        let mut last: Option<(PoolKey<'a>, usize)> = None;
        for row in rows {
            let i = row as usize;
            let key = (per_site.then_some(cols.site[i]), cols.label[i], cols.sex[i]);
            // Rows arrive grouped by stratum, so the previous row's pool is almost always the right one.
            let pool = match last {
                Some((k, p)) if k == key => p,
                _ => *index.entry(key).or_insert_with(|| {
                    grouped.push(Vec::new());
                    grouped.len() - 1
                }),
            };
            last = Some((key, pool));
            grouped[pool].push(Point::of(row, cols.age[i], cols.bmi[i]));
        }
        let mut pools: Vec<Option<Pool>> = grouped.into_par_iter().map(|points| Some(Pool::new(points))).collect();
        let pools = index.into_iter().map(|(key, p)| (key, pools[p].take().expect("one key per pool"))).collect();
        Self { cols, per_site, pools }
    }

    /// The mask source (a cohort row) for `target`, not `previous` while another candidate exists; `None` when no
    /// candidate has the target's label (and site).
    pub fn choose(&self, target: &Target<'_>, previous: Option<u32>) -> Option<u32> {
        self.ranked(target).map(|ranked| ranked.avoiding(previous))
    }

    /// The two best-ranked candidates for `target` (the second `None` when there is only one); `None` when no
    /// candidate has the target's label (and site). [`TopTwo::avoiding`] then applies the previous-row rule, so the
    /// searches of many targets can run in parallel and the rule after them, in plan order.
    pub fn ranked(&self, target: &Target<'_>) -> Option<TopTwo> {
        let site = self.per_site.then_some(target.site);
        let query = Query::of(target);
        let mut best = Best::default();
        let search = |sex: Option<Sex>, tier: u8, best: &mut Best<'a>| {
            if let Some(pool) = self.pools.get(&(site, target.label, sex)) {
                pool.search(&query, tier, self.cols.subject_id, best);
            }
        };
        let sexes = [Some(Sex::F), Some(Sex::M), None];
        match target.sex {
            Some(sex) => {
                search(Some(sex), 0, &mut best);
                if best.len < 2 {
                    sexes.into_iter().filter(|s| *s != Some(sex)).for_each(|s| search(s, 1, &mut best));
                }
            }
            None => sexes.into_iter().for_each(|s| search(s, 0, &mut best)),
        }
        match best.ranked[..best.len] {
            [] => None,
            [first] => Some(TopTwo { first: first.row, second: None }),
            [first, second] => Some(TopTwo { first: first.row, second: Some(second.row) }),
            _ => unreachable!("best keeps two"),
        }
    }
}

/// The best and second-best mask sources of one target (cohort rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopTwo {
    /// The best-ranked candidate.
    pub first: u32,
    /// The second-ranked candidate, if any.
    pub second: Option<u32>,
}

impl TopTwo {
    /// The first candidate, or the second when the first is `previous` (the same mask twice in a row).
    pub fn avoiding(self, previous: Option<u32>) -> u32 {
        match self.second {
            Some(second) if Some(self.first) == previous => second,
            _ => self.first,
        }
    }
}

/// A candidate in scaled coordinates (`NaN` where the value is missing).
#[derive(Debug, Clone, Copy)]
struct Point {
    x: f64,
    y: f64,
    row: u32,
}

impl Point {
    fn of(row: u32, age: Option<f64>, bmi: Option<f64>) -> Self {
        Self { x: age.map_or(f64::NAN, |a| a / AGE_SCALE), y: bmi.map_or(f64::NAN, |b| b / BMI_SCALE), row }
    }

    fn complete(&self) -> bool {
        !self.x.is_nan() && !self.y.is_nan()
    }
}

/// The target in scaled coordinates.
struct Query {
    x: Option<f64>,
    y: Option<f64>,
}

impl Query {
    fn of(t: &Target<'_>) -> Self {
        Self { x: t.age.map(|a| a / AGE_SCALE), y: t.bmi.map(|b| b / BMI_SCALE) }
    }

    fn distance(&self, p: &Point) -> f64 {
        let term = |t: Option<f64>, c: f64| match t {
            None => 0.0,
            Some(_) if c.is_nan() => 1.0,
            Some(t) => (t - c).abs(),
        };
        term(self.x, p.x) + term(self.y, p.y)
    }
}

/// One ranked candidate.
#[derive(Debug, Clone, Copy)]
struct Ranked<'a> {
    tier: u8,
    distance: f64,
    id: &'a str,
    row: u32,
}

impl Ranked<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.tier, self.distance)
            .partial_cmp(&(other.tier, other.distance))
            .unwrap_or(Ordering::Equal)
            .then_with(|| self.id.cmp(other.id))
    }
}

/// The two best-ranked candidates seen so far.
#[derive(Debug, Default)]
struct Best<'a> {
    ranked: [Ranked<'a>; 2],
    len: usize,
}

impl Default for Ranked<'_> {
    fn default() -> Self {
        Self { tier: u8::MAX, distance: f64::INFINITY, id: "", row: 0 }
    }
}

impl<'a> Best<'a> {
    fn offer(&mut self, candidate: Ranked<'a>) {
        if self.len < 2 {
            self.ranked[self.len] = candidate;
            self.len += 1;
        } else if candidate.cmp(&self.ranked[1]) == Ordering::Less {
            self.ranked[1] = candidate;
        } else {
            return;
        }
        if self.len == 2 && self.ranked[1].cmp(&self.ranked[0]) == Ordering::Less {
            self.ranked.swap(0, 1);
        }
    }

    /// Distance a new candidate of `tier` must beat (or tie) to enter.
    fn bound(&self, tier: u8) -> f64 {
        match self.len {
            2 if self.ranked[1].tier == tier => self.ranked[1].distance,
            2 if self.ranked[1].tier < tier => f64::NEG_INFINITY,
            _ => f64::INFINITY,
        }
    }
}

/// The candidates of one pool: complete points bucketed in a uniform grid, incomplete ones apart.
#[derive(Debug)]
struct Pool {
    origin: (f64, f64),
    cell: f64,
    nx: usize,
    ny: usize,
    /// `starts[c]..starts[c + 1]` index `points` of cell `c = j * nx + i`.
    starts: Vec<usize>,
    points: Vec<Point>,
    incomplete: Vec<Point>,
}

impl Pool {
    fn new(all: Vec<Point>) -> Self {
        let (points, incomplete): (Vec<Point>, Vec<Point>) = all.into_iter().partition(Point::complete);
        let min = |f: fn(&Point) -> f64| points.iter().map(f).fold(f64::INFINITY, f64::min);
        let max = |f: fn(&Point) -> f64| points.iter().map(f).fold(f64::NEG_INFINITY, f64::max);
        let origin = (min(|p| p.x), min(|p| p.y));
        let (w, h) = ((max(|p| p.x) - origin.0).max(0.0), (max(|p| p.y) - origin.1).max(0.0));
        // About two points per cell; a degenerate (flat) extent falls back to slicing the long side.
        let cells = (points.len() / 2).max(1) as f64;
        let cell = (w * h / cells).sqrt().max(w.max(h) / cells).max(1e-9);
        let (nx, ny) = ((w / cell) as usize + 1, (h / cell) as usize + 1);
        let mut pool = Self { origin, cell, nx, ny, starts: vec![0; nx * ny + 1], points: Vec::new(), incomplete };
        // Bucket by cell (a counting sort: the order inside a cell does not matter, the search ranks by subject id).
        let cell_of: Vec<usize> = points.iter().map(|p| pool.cell_of(p.x, p.y)).collect();
        for &c in &cell_of {
            pool.starts[c + 1] += 1;
        }
        for c in 0..nx * ny {
            pool.starts[c + 1] += pool.starts[c];
        }
        let mut next = pool.starts.clone();
        let mut bucketed = vec![Point { x: 0.0, y: 0.0, row: 0 }; points.len()];
        for (p, c) in points.into_iter().zip(cell_of) {
            bucketed[next[c]] = p;
            next[c] += 1;
        }
        pool.points = bucketed;
        pool
    }

    fn coords(&self, x: f64, y: f64) -> (usize, usize) {
        let clamp = |v: f64, n: usize| (v.max(0.0) as usize).min(n - 1);
        (clamp((x - self.origin.0) / self.cell, self.nx), clamp((y - self.origin.1) / self.cell, self.ny))
    }

    fn cell_of(&self, x: f64, y: f64) -> usize {
        let (i, j) = self.coords(x, y);
        j * self.nx + i
    }

    fn offer_all<'a>(&self, points: &[Point], query: &Query, tier: u8, ids: &[&'a str], best: &mut Best<'a>) {
        for p in points {
            let distance = query.distance(p);
            if distance <= best.bound(tier) {
                best.offer(Ranked { tier, distance, id: ids[p.row as usize], row: p.row });
            }
        }
    }

    fn search<'a>(&self, query: &Query, tier: u8, ids: &[&'a str], best: &mut Best<'a>) {
        self.offer_all(&self.incomplete, query, tier, ids, best);
        let (Some(x), Some(y)) = (query.x, query.y) else {
            return self.offer_all(&self.points, query, tier, ids, best);
        };
        if self.points.is_empty() {
            return;
        }
        let (ci, cj) = self.coords(x, y);
        let (ci, cj) = (ci as isize, cj as isize);
        for r in 0..=self.nx.max(self.ny) as isize {
            // Every cell of ring r is more than (r − 1) cells away from the target along x or y.
            if (r - 1) as f64 * self.cell >= best.bound(tier) {
                break;
            }
            for (i, j) in ring(ci, cj, r) {
                if (0..self.nx as isize).contains(&i) && (0..self.ny as isize).contains(&j) {
                    let c = j as usize * self.nx + i as usize;
                    self.offer_all(&self.points[self.starts[c]..self.starts[c + 1]], query, tier, ids, best);
                }
            }
        }
    }
}

/// The cells at Chebyshev distance exactly `r` from `(ci, cj)`.
fn ring(ci: isize, cj: isize, r: isize) -> impl Iterator<Item = (isize, isize)> {
    let rows = (ci - r..=ci + r).flat_map(move |i| [(i, cj - r), (i, cj + r)]);
    let columns = (cj - r + 1..cj + r).flat_map(move |j| [(ci - r, j), (ci + r, j)]);
    let single = (r == 0).then_some((ci, cj));
    single.into_iter().chain(if r == 0 { None } else { Some(rows.chain(columns)) }.into_iter().flatten())
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    /// The rule applied by sorting every candidate.
    fn brute_force(cols: &Candidates<'_>, target: &Target<'_>, previous: Option<u32>) -> Option<u32> {
        let query = Query::of(target);
        let mut ranked: Vec<Ranked<'_>> = (0..cols.label.len() as u32)
            .filter(|&r| cols.label[r as usize] == target.label)
            .map(|row| {
                let i = row as usize;
                let tier = u8::from(target.sex.is_some() && cols.sex[i] != target.sex);
                let distance = query.distance(&Point::of(row, cols.age[i], cols.bmi[i]));
                Ranked { tier, distance, id: cols.subject_id[i], row }
            })
            .collect();
        ranked.sort_by(Ranked::cmp);
        match ranked.as_slice() {
            [] => None,
            [first, second, ..] if Some(first.row) == previous => Some(second.row),
            [first, ..] => Some(first.row),
        }
    }

    fn maybe(rng: &mut impl Rng, p: f64, range: std::ops::Range<f64>, whole: bool) -> Option<f64> {
        let v: f64 = rng.random_range(range);
        rng.random_bool(p).then_some(if whole { v.floor() } else { v })
    }

    #[test]
    fn grid_search_equals_brute_force() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for n in [1usize, 2, 3, 17, 400] {
            let ids: Vec<String> = (0..n).map(|i| format!("s{:03}", rng.random_range(0..1000) + i * 1000)).collect();
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let site = vec!["a"; n];
            let label: Vec<i32> = (0..n).map(|_| rng.random_range(0..2)).collect();
            let sex: Vec<Option<Sex>> = (0..n)
                .map(|_| if rng.random_bool(0.1) { None } else { Some([Sex::F, Sex::M][rng.random_range(0..2)]) })
                .collect();
            // Integer ages make exact distance ties, which the subject id must break.
            let age: Vec<Option<f64>> = (0..n).map(|_| maybe(&mut rng, 0.95, 20.0..90.0, true)).collect();
            let bmi: Vec<Option<f64>> = (0..n).map(|_| maybe(&mut rng, 0.95, 16.0..40.0, false)).collect();
            let cols = Candidates { subject_id: &ids, site: &site, label: &label, sex: &sex, age: &age, bmi: &bmi };
            let index = MaskIndex::new(cols, 0..n as u32, false);
            for _ in 0..300 {
                let target = Target {
                    site: "a",
                    label: rng.random_range(0..2),
                    sex: [Some(Sex::F), Some(Sex::M), None][rng.random_range(0..3)],
                    age: maybe(&mut rng, 0.9, 10.0..100.0, false),
                    bmi: maybe(&mut rng, 0.9, 12.0..45.0, false),
                };
                let previous = brute_force(&cols, &target, None);
                assert_eq!(index.choose(&target, None), previous, "{target:?}");
                assert_eq!(index.choose(&target, previous), brute_force(&cols, &target, previous), "{target:?}");
            }
        }
    }

    #[test]
    fn per_site_pools_keep_masks_at_their_site() {
        let ids = ["a:1", "b:1"];
        let cols = Candidates {
            subject_id: &ids,
            site: &["a", "b"],
            label: &[1, 1],
            sex: &[Some(Sex::F), Some(Sex::F)],
            age: &[Some(50.0), Some(60.0)],
            bmi: &[Some(25.0), Some(25.0)],
        };
        let target = Target { site: "a", label: 1, sex: Some(Sex::F), age: Some(60.0), bmi: Some(25.0) };
        assert_eq!(MaskIndex::new(cols, 0..2, false).choose(&target, None), Some(1));
        assert_eq!(MaskIndex::new(cols, 0..2, true).choose(&target, None), Some(0));
        // The only candidate at the site is used again rather than none.
        assert_eq!(MaskIndex::new(cols, 0..2, true).choose(&target, Some(0)), Some(0));
    }
}
