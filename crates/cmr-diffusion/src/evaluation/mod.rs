//! Evaluation of a trained generator (issue 6, item 7): mask fidelity through an independent segmenter, Fréchet
//! distance, MS-SSIM diversity, memorisation and attribute fidelity, per subgroup and overall.

pub mod attribute_probe;
pub mod dice;
pub mod frechet;
mod measures;
pub mod memorisation;
pub mod msssim;
mod prompt_swap;
pub mod report;
pub mod run;
pub mod segmenter;
