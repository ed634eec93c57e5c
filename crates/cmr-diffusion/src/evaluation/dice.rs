//! Dice overlap per cardiac structure between two label maps in the project's codes (DESIGN.md, "Labels":
//! 1 LV blood pool, 2 LV myocardium, 3 RV blood pool), and the running means the evaluation report is made of.
//!
//! `Dice(A, B) = 2·|A ∩ B| / (|A| + |B|)` for the pixels of one label. When the structure is absent from both maps
//! the ratio is 0/0: it is *undefined* (`None`) and left out of every mean, as nnU-Net's evaluation does
//! (`nnunetv2/evaluation/evaluate_predictions.py`, NaN for an empty reference and prediction). A structure that only
//! one map has scores 0.
//!
//! ```
//! use cmr_diffusion::evaluation::dice::{dice, Structure};
//! let truth = [0, 1, 1, 2, 3, 0];
//! let pred = [0, 1, 0, 2, 2, 0];
//! assert_eq!(dice(&pred, &truth, Structure::Lv), Some(2.0 / 3.0));
//! assert_eq!(dice(&pred, &truth, Structure::Rv), Some(0.0));
//! assert_eq!(dice(&[0, 0], &[0, 0], Structure::Myo), None);
//! ```

use serde::Serialize;

/// A scored cardiac structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Structure {
    /// LV blood pool (label 1).
    Lv,
    /// LV myocardium (label 2).
    Myo,
    /// RV blood pool (label 3).
    Rv,
}

impl Structure {
    /// The three structures, in label order.
    pub const ALL: [Structure; 3] = [Structure::Lv, Structure::Myo, Structure::Rv];

    /// The structure's label in the project's codes.
    pub fn label(self) -> u8 {
        match self {
            Structure::Lv => 1,
            Structure::Myo => 2,
            Structure::Rv => 3,
        }
    }

    /// Short name: `LV`, `MYO`, `RV`.
    pub fn name(self) -> &'static str {
        match self {
            Structure::Lv => "LV",
            Structure::Myo => "MYO",
            Structure::Rv => "RV",
        }
    }
}

/// Dice of `structure` between `a` and `b` (same pixels, same order); `None` when neither has it.
///
/// # Panics
/// If `a` and `b` differ in length (a programming error: both label the same image).
pub fn dice(a: &[u8], b: &[u8], structure: Structure) -> Option<f64> {
    assert_eq!(a.len(), b.len(), "label maps of different sizes");
    let label = structure.label();
    let (mut both, mut in_a, mut in_b) = (0usize, 0usize, 0usize);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x == label, y == label);
        both += usize::from(x && y);
        in_a += usize::from(x);
        in_b += usize::from(y);
    }
    (in_a + in_b > 0).then(|| 2.0 * both as f64 / (in_a + in_b) as f64)
}

/// Dice of every structure, in [`Structure::ALL`] order.
pub fn dice_all(a: &[u8], b: &[u8]) -> [Option<f64>; 3] {
    Structure::ALL.map(|s| dice(a, b, s))
}

/// Mean Dice per structure over many images or volumes; undefined values are not counted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiceMeans {
    sums: [f64; 3],
    counts: [usize; 3],
}

/// The mean Dice of one structure and how many values (images or volumes) it averages.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DiceMean {
    /// Mean over the values that are defined; `None` when none is.
    pub mean: Option<f64>,
    /// Number of values averaged.
    pub n: usize,
}

impl DiceMeans {
    /// Adds the Dice values of one image or volume ([`dice_all`]).
    pub fn add(&mut self, values: [Option<f64>; 3]) {
        for (i, value) in values.into_iter().enumerate() {
            if let Some(v) = value {
                self.sums[i] += v;
                self.counts[i] += 1;
            }
        }
    }

    /// The mean of `structure`.
    pub fn get(&self, structure: Structure) -> DiceMean {
        let i = Structure::ALL.iter().position(|&s| s == structure).expect("one of Structure::ALL");
        let n = self.counts[i];
        DiceMean { mean: (n > 0).then(|| self.sums[i] / n as f64), n }
    }
}

/// Serialised as `{"LV": {"mean": …, "n": …}, "MYO": …, "RV": …}`.
impl Serialize for DiceMeans {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(Structure::ALL.len()))?;
        for structure in Structure::ALL {
            map.serialize_entry(structure.name(), &self.get(structure))?;
        }
        map.end()
    }
}
