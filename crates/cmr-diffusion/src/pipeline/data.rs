//! Training data of the diffusion models: every short-axis slice of the train split as one 2-channel image (ED, ES),
//! its mask as the 8-channel one-hot condition, and its subject's prompt. Slices are drawn with weights inversely
//! proportional to the size of their prompt group, so every sex/age/BMI/condition combination is seen about equally
//! often (the reference code's weighted sampler).

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use cmr_core::{CohortRow, Split};
use rand::distr::weighted::WeightedIndex;

use crate::error::{DiffusionError, Result};

/// Classes of the canonical mask (background, LV, MYO, RV).
pub const MASK_CLASSES: usize = 4;
/// Channels of the condition: one-hot mask classes × (ED, ES).
pub const CONDITION_CHANNELS: usize = 2 * MASK_CLASSES;

/// All usable slices of the train split, in memory.
#[derive(Debug, Clone)]
pub struct SliceSet {
    height: usize,
    width: usize,
    /// `n × 2 × h × w`, scaled to \[−1, 1\].
    images: Vec<f32>,
    /// `n × 2 × h × w` canonical labels.
    masks: Vec<u8>,
    prompts: Vec<String>,
    subjects: Vec<String>,
}

/// One training batch.
#[derive(Debug)]
pub struct Batch {
    /// `(b, 2, h, w)` images in \[−1, 1\].
    pub images: Tensor,
    /// `(b, 8, h, w)` one-hot masks.
    pub conditions: Tensor,
    /// The prompt of each slice.
    pub prompts: Vec<String>,
}

impl SliceSet {
    /// Loads the slices of every train-split row of the cohort in `cohort_dir`; slices without any foreground label
    /// in either frame are skipped (they carry no geometry to condition on).
    pub fn load(cohort_dir: &Path, rows: &[CohortRow]) -> Result<Self> {
        let mut set = Self { height: 0, width: 0, images: vec![], masks: vec![], prompts: vec![], subjects: vec![] };
        for row in rows.iter().filter(|r| r.split == Split::Train) {
            let path = cohort_dir.join(&row.tensor_path);
            let tensor = cmr_io::store::read_tensor(&path)?;
            let (_, slices, h, w) = tensor.image.dim();
            if set.subjects.is_empty() {
                (set.height, set.width) = (h, w);
            } else if (h, w) != (set.height, set.width) {
                let expected = format!("{}×{} like the other subjects", set.height, set.width);
                return Err(DiffusionError::input(&path, format!("slice size {h}×{w}, expected {expected}")));
            }
            for s in 0..slices {
                let mask = tensor.mask.slice(ndarray::s![.., s, .., ..]);
                if mask.iter().all(|&label| label == 0) {
                    continue;
                }
                set.masks.extend(mask.iter());
                set.images.extend(tensor.image.slice(ndarray::s![.., s, .., ..]).iter().map(|&v| 2.0 * v - 1.0));
                set.prompts.push(row.prompt.clone());
                set.subjects.push(row.subject_id.clone());
            }
        }
        if set.subjects.is_empty() {
            return Err(DiffusionError::input(cohort_dir, "no train-split slice with a labelled heart"));
        }
        Ok(set)
    }

    /// Number of slices.
    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    /// Whether there are no slices (never after a successful [`Self::load`]).
    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }

    /// `(height, width)` of every slice.
    pub fn size(&self) -> (usize, usize) {
        (self.height, self.width)
    }

    /// The prompt of every slice, in order.
    pub fn prompts(&self) -> &[String] {
        &self.prompts
    }

    /// Distinct subjects the slices come from.
    pub fn subject_count(&self) -> usize {
        let mut ids: Vec<&String> = self.subjects.iter().collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }

    /// Sampling weight of each slice: `1 / (slices sharing its prompt)`, so each prompt group is drawn equally often.
    pub fn balanced_weights(&self) -> Vec<f64> {
        let mut group_sizes: BTreeMap<&str, usize> = BTreeMap::new();
        for prompt in &self.prompts {
            *group_sizes.entry(prompt).or_default() += 1;
        }
        self.prompts.iter().map(|p| 1.0 / group_sizes[p.as_str()] as f64).collect()
    }

    /// The distribution of slice indices with [`Self::balanced_weights`]; build it once and draw every batch from it.
    pub fn balanced_sampler(&self) -> WeightedIndex<f64> {
        WeightedIndex::new(self.balanced_weights()).expect("positive weights for a non-empty set")
    }

    /// Up to `n` slices for a validation grid: the middle slice of the first subject of each prompt, in prompt order.
    pub fn preview_indices(&self, n: usize) -> Vec<usize> {
        let mut first_of_prompt: BTreeMap<&str, (usize, usize)> = BTreeMap::new(); // prompt → (first, count)
        for (i, prompt) in self.prompts.iter().enumerate() {
            let entry = first_of_prompt.entry(prompt).or_insert((i, 0));
            if self.subjects[i] == self.subjects[entry.0] {
                entry.1 += 1;
            }
        }
        first_of_prompt.values().take(n).map(|&(first, count)| first + count / 2).collect()
    }

    /// The `(b, 2, h, w)` labels of slices `indices`, flattened.
    pub fn labels(&self, indices: &[usize]) -> Vec<u8> {
        let plane = 2 * self.height * self.width;
        indices.iter().flat_map(|&i| self.masks[i * plane..(i + 1) * plane].iter().copied()).collect()
    }

    /// The batch of slices `indices` on `device`.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Result<Batch> {
        let plane = 2 * self.height * self.width;
        let images: Vec<f32> =
            indices.iter().flat_map(|&i| self.images[i * plane..(i + 1) * plane].iter().copied()).collect();
        let (b, h, w) = (indices.len(), self.height, self.width);
        Ok(Batch {
            images: Tensor::from_vec(images, (b, 2, h, w), device)?,
            conditions: one_hot_condition(&self.labels(indices), (b, h, w), device)?,
            prompts: indices.iter().map(|&i| self.prompts[i].clone()).collect(),
        })
    }
}

/// `(b, 2, h, w)` labels (flattened in `masks`) → `(b, 8, h, w)` one-hot f32, channel `frame·4 + class`.
pub fn one_hot_condition(masks: &[u8], (b, h, w): (usize, usize, usize), device: &Device) -> Result<Tensor> {
    let plane = h * w;
    if masks.len() != b * 2 * plane {
        return Err(DiffusionError::option("mask", format!("{} labels for {b}×2×{h}×{w}", masks.len())));
    }
    let mut one_hot = vec![0f32; b * CONDITION_CHANNELS * plane];
    for (n, frames) in masks.chunks_exact(2 * plane).enumerate() {
        for (frame, labels) in frames.chunks_exact(plane).enumerate() {
            for (p, &label) in labels.iter().enumerate() {
                let class = usize::from(label).min(MASK_CLASSES - 1);
                one_hot[(n * CONDITION_CHANNELS + frame * MASK_CLASSES + class) * plane + p] = 1.0;
            }
        }
    }
    Ok(Tensor::from_vec(one_hot, (b, CONDITION_CHANNELS, h, w), device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hot_puts_each_label_of_each_frame_in_its_channel() {
        // one sample, 1×2 pixels: ED labels [0, 3], ES labels [2, 1]
        let t = one_hot_condition(&[0, 3, 2, 1], (1, 1, 2), &Device::Cpu).unwrap();
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut expected = vec![0f32; 16];
        expected[0] = 1.0; // ED class 0, pixel 0
        expected[2 * 3 + 1] = 1.0; // ED class 3, pixel 1
        expected[2 * (4 + 2)] = 1.0; // ES class 2, pixel 0
        expected[2 * (4 + 1) + 1] = 1.0; // ES class 1, pixel 1
        assert_eq!(v, expected);
    }

    #[test]
    fn balanced_weights_give_each_prompt_group_equal_mass() {
        let set = SliceSet {
            height: 1,
            width: 1,
            images: vec![0.0; 8],
            masks: vec![1; 8],
            prompts: ["a", "a", "a", "b"].map(String::from).to_vec(),
            subjects: ["s1", "s1", "s2", "s3"].map(String::from).to_vec(),
        };
        let w = set.balanced_weights();
        assert_eq!(w, vec![1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0, 1.0]);
        assert_eq!(set.subject_count(), 3);
    }
}
