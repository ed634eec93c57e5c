//! Memorisation check (issue 6, item 7): is a generated image a copy of a training image? Each generated image is
//! matched to its most similar training image by normalised cross-correlation (NCC), and the fraction of generated
//! images whose best match exceeds a threshold is reported (the nearest-neighbour test of Carlini et al. 2023,
//! "Extracting Training Data from Diffusion Models", <https://arxiv.org/abs/2301.13188>, with NCC as the distance).
//!
//! NCC is the Pearson correlation of the pixels: `ncc(x, y) = ⟨x − x̄, y − ȳ⟩ / (‖x − x̄‖ ‖y − ȳ‖)`, in [−1, 1] and
//! blind to brightness and contrast (`ncc(a·x + b, y) = ncc(x, y)` for `a > 0`). The references are stored once as
//! zero-mean unit-norm rows, so matching a batch of queries is one matrix product. Convention: a constant image has
//! no direction, its normalised copy is all zeros, and its NCC with anything is 0.

use candle_core::{Device, Tensor};

/// Queries matched per matrix product: bounds the score block (`QUERY_BLOCK × references` floats) held at once.
const QUERY_BLOCK: usize = 256;

/// Training images prepared for nearest-neighbour search by NCC.
#[derive(Debug, Clone)]
pub struct NccIndex {
    /// Zero-mean unit-norm references, `(references, pixels)`, f32.
    references: Tensor,
    pixels: usize,
}

impl NccIndex {
    /// Indexes `images` (each flattened, all of one length).
    ///
    /// # Panics
    /// If `images` is empty, an image is empty, or lengths differ (programming errors: the caller's images come from
    /// one tensor layout).
    pub fn new(images: Vec<Vec<f32>>) -> Self {
        assert!(!images.is_empty(), "NccIndex needs at least one reference image");
        let pixels = images[0].len();
        assert!(pixels > 0, "NccIndex: reference images are empty");
        let mut flat = Vec::with_capacity(images.len() * pixels);
        for (i, image) in images.iter().enumerate() {
            assert_eq!(image.len(), pixels, "reference {i} has {} pixels, reference 0 has {pixels}", image.len());
            flat.extend(centred(image, 1.0));
        }
        let references = Tensor::from_vec(flat, (images.len(), pixels), &Device::Cpu).expect("length checked");
        Self { references, pixels }
    }

    /// Index and NCC of the reference most similar to `query` (the lowest index on ties).
    ///
    /// ```
    /// use cmr_diffusion::evaluation::memorisation::NccIndex;
    /// let index = NccIndex::new(vec![vec![0.0, 1.0, 0.0, 1.0], vec![0.0, 0.0, 1.0, 1.0]]);
    /// let (i, ncc) = index.nearest(&[0.2, 0.2, 0.6, 0.6]); // 0.4 · reference 1 + 0.2
    /// assert_eq!(i, 1);
    /// assert!((ncc - 1.0).abs() < 1e-6);
    /// ```
    ///
    /// # Panics
    /// If `query` does not have the references' length.
    pub fn nearest(&self, query: &[f32]) -> (usize, f64) {
        self.nearest_many(std::slice::from_ref(&query))[0]
    }

    /// [`NccIndex::nearest`] of every query, in order, through one matrix product per block of queries (use this
    /// for many queries: one query at a time reads the whole index from memory per query). Measured: 1,000 queries
    /// against 5,000 references of 64×64 in ~3 s (test build, 2 shared cores); one query by [`NccIndex::nearest`]
    /// ~20 ms.
    ///
    /// # Panics
    /// If a query does not have the references' length.
    pub fn nearest_many<Q: AsRef<[f32]>>(&self, queries: &[Q]) -> Vec<(usize, f64)> {
        let mut out = Vec::with_capacity(queries.len());
        for (b, block) in queries.chunks(QUERY_BLOCK).enumerate() {
            let mut flat = Vec::with_capacity(block.len() * self.pixels);
            for (i, query) in block.iter().enumerate() {
                let query = query.as_ref();
                let n = b * QUERY_BLOCK + i;
                assert_eq!(
                    query.len(),
                    self.pixels,
                    "query {n} has {} pixels, references {}",
                    query.len(),
                    self.pixels
                );
                flat.extend(centred(query, 1.0));
            }
            let scores = Tensor::from_vec(flat, (block.len(), self.pixels), &Device::Cpu)
                .and_then(|q| q.matmul(&self.references.t()?))
                .and_then(|s| s.to_vec2::<f32>())
                .expect("shapes checked above"); // (queries, references)
            out.extend(scores.iter().map(|row| {
                let mut best = (0, row[0]);
                for (j, &s) in row.iter().enumerate().skip(1) {
                    if s > best.1 {
                        best = (j, s);
                    }
                }
                (best.0, f64::from(best.1))
            }));
        }
        out
    }
}

/// Fraction of `queries` whose nearest reference has NCC ≥ `threshold`.
///
/// # Panics
/// If `queries` is empty or a query does not have the references' length.
pub fn memorised_fraction(index: &NccIndex, queries: &[Vec<f32>], threshold: f64) -> f64 {
    assert!(!queries.is_empty(), "memorised_fraction needs at least one query");
    let hits = index.nearest_many(queries).iter().filter(|(_, ncc)| *ncc >= threshold).count();
    hits as f64 / queries.len() as f64
}

/// `norm · (x − x̄) / ‖x − x̄‖`, computed in f64; all zeros for a constant `x`. `norm = 1` gives the unit vectors
/// whose dot product is the NCC; `norm = √len` gives values of mean 0 and standard deviation 1.
pub(crate) fn centred(x: &[f32], norm: f64) -> Vec<f32> {
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / x.len() as f64;
    let length = x.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>().sqrt();
    let scale = if length > 0.0 { norm / length } else { 0.0 };
    x.iter().map(|&v| ((f64::from(v) - mean) * scale) as f32).collect()
}
