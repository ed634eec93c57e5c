//! Scanner vendors and what they do to a bSSFP cine: in-plane resolution and matrix, slice spacing, number of cine
//! frames, and the image effects (intensity scale, contrast curve, coil bias field, noise, blur). Values are
//! plausible, not measured: in-plane spacing 1.2–1.6 mm and 8–10 mm slice spacing are the ranges of ACDC (Bernard et al.
//! 2018: 1.34–1.68 mm, 5–10 mm) and M&Ms-1 (Campello et al. 2021: four vendors, 0.85–1.45 mm, 5–10 mm); the
//! differences between vendors are what a classifier could use as a shortcut.
//!
//! Also the geometry of one acquisition: the stored array orientation and the NIfTI affine.

use std::fmt;
use std::str::FromStr;

use rand::Rng;

/// A scanner vendor. Declared in name order (`Canon < GE < Philips < Siemens`), the quota tie-break order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Vendor {
    /// Canon (M&Ms vendor D).
    Canon,
    /// GE (M&Ms vendor C).
    #[serde(rename = "GE")]
    Ge,
    /// Philips (M&Ms vendor B).
    Philips,
    /// Siemens (M&Ms vendor A; ACDC and UK Biobank).
    Siemens,
}

impl Vendor {
    /// All vendors, in M&Ms letter order.
    pub const ALL: [Vendor; 4] = [Vendor::Siemens, Vendor::Philips, Vendor::Ge, Vendor::Canon];

    /// Name as written in Info.cfg / M&Ms `VendorName` and scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Vendor::Siemens => "Siemens",
            Vendor::Philips => "Philips",
            Vendor::Ge => "GE",
            Vendor::Canon => "Canon",
        }
    }

    /// M&Ms-1 vendor letter (`Vendor` column).
    pub fn mnms_letter(self) -> &'static str {
        match self {
            Vendor::Siemens => "A",
            Vendor::Philips => "B",
            Vendor::Ge => "C",
            Vendor::Canon => "D",
        }
    }

    /// The phantom site (centre number, as M&Ms `Centre`) of this vendor's first centre; with the default
    /// `centres = 1` of a scenario, the only site of the vendor. Equal to [`Vendor::centre_site`]`(0)`.
    pub fn site(self) -> &'static str {
        match self {
            Vendor::Siemens => "1",
            Vendor::Philips => "2",
            Vendor::Ge => "3",
            Vendor::Canon => "4",
        }
    }

    /// The site of this vendor's centre `centre` (0-based) when a scenario has several centres per vendor:
    /// `site + 4·centre`, so the numbers of the four vendors interleave and never collide (Siemens 1, 5, 9, 13, …;
    /// Philips 2, 6, 10, …; GE 3, 7, …; Canon 4, 8, …). Site ids stay bare integers because `cmr-io` reads the M&Ms
    /// `Centre` column as text and names an all-digit value `mnms1-centre{N}`; ACDC's `Site` key is kept as written.
    /// Centre 0 is [`Vendor::site`], so a scenario with one centre per vendor writes the same ids as before.
    ///
    /// ```
    /// use cmr_phantom::Vendor;
    /// assert_eq!(Vendor::Siemens.centre_site(0), "1");
    /// assert_eq!(Vendor::Siemens.centre_site(3), "13");
    /// assert_eq!(Vendor::Canon.centre_site(1), "8");
    /// ```
    pub fn centre_site(self, centre: usize) -> String {
        let first = match self {
            Vendor::Siemens => 1,
            Vendor::Philips => 2,
            Vendor::Ge => 3,
            Vendor::Canon => 4,
        };
        (first + Vendor::ALL.len() * centre).to_string()
    }

    /// Acquisition and image profile.
    pub fn profile(self) -> VendorProfile {
        match self {
            Vendor::Siemens => VendorProfile {
                pixel_mm: (1.30, 1.60),
                matrix: (256, 216),
                slice_spacing_mm: 10.0,
                slice_thickness_mm: 8.0,
                frames: 10,
                scale: 320.0,
                gamma: 1.0,
                myo_contrast: 1.0,
                noise: 0.030,
                bias: 0.25,
                blur_px: 0.60,
            },
            Vendor::Philips => VendorProfile {
                pixel_mm: (1.20, 1.40),
                matrix: (256, 256),
                slice_spacing_mm: 9.0,
                slice_thickness_mm: 8.0,
                frames: 12,
                scale: 2400.0,
                gamma: 0.85,
                myo_contrast: 1.15,
                noise: 0.025,
                bias: 0.35,
                blur_px: 0.70,
            },
            Vendor::Ge => VendorProfile {
                pixel_mm: (1.40, 1.60),
                matrix: (224, 224),
                slice_spacing_mm: 10.0,
                slice_thickness_mm: 8.0,
                frames: 8,
                scale: 1200.0,
                gamma: 1.15,
                myo_contrast: 0.9,
                noise: 0.040,
                bias: 0.20,
                blur_px: 0.80,
            },
            Vendor::Canon => VendorProfile {
                pixel_mm: (1.25, 1.45),
                matrix: (256, 240),
                slice_spacing_mm: 9.0,
                slice_thickness_mm: 7.0,
                frames: 10,
                scale: 800.0,
                gamma: 0.95,
                myo_contrast: 1.05,
                noise: 0.035,
                bias: 0.30,
                blur_px: 0.65,
            },
        }
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Vendor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Vendor::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| "a vendor: Siemens, Philips, GE or Canon".to_string())
    }
}

/// How one vendor acquires and reconstructs a short-axis cine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VendorProfile {
    /// Range of the in-plane pixel spacing in mm (drawn per subject).
    pub pixel_mm: (f64, f64),
    /// Stored matrix (x, y).
    pub matrix: (usize, usize),
    /// Slice spacing (centre to centre) in mm; the stack may widen it to cover the LV in at most 12 slices.
    pub slice_spacing_mm: f64,
    /// Slice thickness in mm (partial-volume averaging through the slice).
    pub slice_thickness_mm: f64,
    /// Number of cine frames over one cycle.
    pub frames: usize,
    /// Stored value of unit signal (blood at unit coil sensitivity).
    pub scale: f64,
    /// Contrast curve: stored signal ∝ signal^gamma.
    pub gamma: f64,
    /// Multiplies the myocardium/blood signal ratio.
    pub myo_contrast: f64,
    /// Rician noise σ relative to unit signal.
    pub noise: f64,
    /// Amplitude of the coil bias field (relative).
    pub bias: f64,
    /// Gaussian point-spread σ in pixels.
    pub blur_px: f64,
}

/// One subject's acquisition: grid, stack and timing.
#[derive(Debug, Clone, PartialEq)]
pub struct Acquisition {
    /// In-plane spacing (x, y) in mm.
    pub spacing: (f64, f64),
    /// Matrix (x, y).
    pub matrix: (usize, usize),
    /// Slice spacing in mm.
    pub slice_spacing: f64,
    /// Slice thickness in mm.
    pub slice_thickness: f64,
    /// Number of slices, base to apex.
    pub slices: usize,
    /// Depth of slice 0 below the ED mitral plane in mm.
    pub z0: f64,
    /// Pixel (x, y) of the LV long axis (fractional).
    pub lv_pixel: (f64, f64),
    /// Number of cine frames.
    pub frames: usize,
    /// ES frame (0-based); ED is frame 0.
    pub es: usize,
    /// Direction of the LV long axis and the world position of the basal LV centre (RAS, mm).
    pub axis: [f64; 3],
    /// World position of the LV centre on the ED mitral plane.
    pub centre: [f64; 3],
}

/// In-plane orientation of the stored array: `(u, v) = M · ((i − i₀)·dx, (j − j₀)·dy)` with `u` towards the RV
/// (patient right) and `v` anterior, so the RV lies towards low `x` (first array axis) and the anterior wall towards
/// low `y`. Found empirically with the ACDC-trained segmenter, which is fed the stored `[x, y]` plane
/// (`scripts/phantom-realism.py --orientations`, 12 subjects × ED/ES × 3 mid slices): RV Dice 0.916 with this
/// orientation, 0.902 (both axes flipped), 0.890 (x flipped), 0.852 (y flipped), and 0.816–0.878 for the four
/// transposed ones — the network expects the RV–LV axis along the first array axis, as ACDC stores its images.
/// The affine is built from the same matrix, so the RV is at patient right in world (RAS) space and any viewer that
/// honours the affine shows it on the image left in radiological display.
pub const ORIENTATION: [[f64; 2]; 2] = [[-1.0, 0.0], [0.0, -1.0]];

impl Acquisition {
    /// Draws the acquisition of a subject whose LV (ED cavity + apical wall) is `lv_length` mm long.
    pub fn sample(profile: &VendorProfile, lv_length: f64, rng: &mut impl Rng) -> Self {
        let px = rng.random_range(profile.pixel_mm.0..=profile.pixel_mm.1);
        let spacing = ((px * 1000.0).round() / 1000.0, (px * 1000.0).round() / 1000.0);
        let matrix = profile.matrix;
        // Slices from 4 mm below the ED base to just past the epicardial apex, 8–12 of them.
        let z0 = rng.random_range(2.0..6.0);
        let cover = lv_length + 2.0 - z0;
        let mut slice_spacing = profile.slice_spacing_mm;
        let mut slices = (cover / slice_spacing).ceil() as usize + 1;
        if slices > 12 {
            slices = 12;
            slice_spacing = (cover / 11.0 * 10.0).ceil() / 10.0;
        }
        let slices = slices.max(8);
        let frames = profile.frames;
        let es = ((frames as f64) * rng.random_range(0.33..0.42)).round() as usize;
        // LV centre a little right of the FOV centre (image right), so the whole heart is about centred.
        let (ci, cj) = ((matrix.0 as f64 - 1.0) / 2.0, (matrix.1 as f64 - 1.0) / 2.0);
        let du = rng.random_range(-22.0..-8.0);
        let dv = rng.random_range(-8.0..8.0);
        let (di, dj) = uv_to_pixel_offset(du, dv, spacing);
        let lv_pixel = (ci + di, cj + dj);
        // Long axis base→apex: leftwards, anterior, inferior (RAS), about 45° off the sagittal plane.
        let axis = normalize([-0.62 + rng.random_range(-0.08..0.08), 0.55, -0.56 + rng.random_range(-0.08..0.08)]);
        let centre = [rng.random_range(-10.0..10.0), rng.random_range(-10.0..10.0), rng.random_range(-10.0..10.0)];
        Self {
            spacing,
            matrix,
            slice_spacing,
            slice_thickness: profile.slice_thickness_mm,
            slices,
            z0,
            lv_pixel,
            frames,
            es,
            axis,
            centre,
        }
    }

    /// Depth (mm below the ED mitral plane) of slice `k`.
    pub fn slice_depth(&self, k: usize) -> f64 {
        self.z0 + k as f64 * self.slice_spacing
    }

    /// In-plane anatomical coordinates (u, v) in mm of pixel (i, j).
    pub fn pixel_to_uv(&self, i: f64, j: f64) -> (f64, f64) {
        let x = (i - self.lv_pixel.0) * self.spacing.0;
        let y = (j - self.lv_pixel.1) * self.spacing.1;
        (ORIENTATION[0][0] * x + ORIENTATION[0][1] * y, ORIENTATION[1][0] * x + ORIENTATION[1][1] * y)
    }

    /// NIfTI affine (RAS, mm): columns are the world steps of +i, +j, +k; the origin is voxel (0, 0, 0).
    pub fn affine(&self) -> [[f64; 4]; 4] {
        let n = self.axis;
        // In-plane anatomical directions in world space: anterior (projected) and patient right (projected).
        let ant = normalize(sub(&[0.0, 1.0, 0.0], &scale(&n, n[1])));
        let mut right = cross(&ant, &n);
        if right[0] < 0.0 {
            right = scale(&right, -1.0);
        }
        // e_i = M[0][0]·right + M[1][0]·ant (u is "right", v is "anterior").
        let e_i = add(&scale(&right, ORIENTATION[0][0]), &scale(&ant, ORIENTATION[1][0]));
        let e_j = add(&scale(&right, ORIENTATION[0][1]), &scale(&ant, ORIENTATION[1][1]));
        let (dx, dy, dz) = (self.spacing.0, self.spacing.1, self.slice_spacing);
        let mut origin = add(&self.centre, &scale(&n, self.z0));
        origin = sub(&origin, &scale(&e_i, self.lv_pixel.0 * dx));
        origin = sub(&origin, &scale(&e_j, self.lv_pixel.1 * dy));
        let mut a = [[0.0; 4]; 4];
        for r in 0..3 {
            a[r] = [e_i[r] * dx, e_j[r] * dy, n[r] * dz, origin[r]];
        }
        a[3] = [0.0, 0.0, 0.0, 1.0];
        a
    }
}

/// Pixel offset (Δi, Δj) of an in-plane displacement (u, v) in mm; inverse of the orientation matrix (orthogonal).
fn uv_to_pixel_offset(u: f64, v: f64, spacing: (f64, f64)) -> (f64, f64) {
    let x = ORIENTATION[0][0] * u + ORIENTATION[1][0] * v;
    let y = ORIENTATION[0][1] * u + ORIENTATION[1][1] * v;
    (x / spacing.0, y / spacing.1)
}

fn normalize(v: [f64; 3]) -> [f64; 3] {
    let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    [v[0] / n, v[1] / n, v[2] / n]
}
fn scale(v: &[f64; 3], s: f64) -> [f64; 3] {
    [v[0] * s, v[1] * s, v[2] * s]
}
fn add(a: &[f64; 3], b: &[f64; 3]) -> [f64; 3] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}
fn sub(a: &[f64; 3], b: &[f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn cross(a: &[f64; 3], b: &[f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centre_sites_extend_the_vendor_site_without_collisions() {
        let mut seen = std::collections::BTreeSet::new();
        for v in Vendor::ALL {
            assert_eq!(v.centre_site(0), v.site());
            for c in 0..8 {
                assert!(seen.insert(v.centre_site(c)), "{v} centre {c}");
            }
        }
        let siemens: Vec<String> = (0..4).map(|c| Vendor::Siemens.centre_site(c)).collect();
        assert_eq!(siemens, ["1", "5", "9", "13"]);
    }

    #[test]
    fn affine_is_orthogonal_with_the_spacing_and_maps_the_lv_axis() {
        let mut rng = cmr_core::seed::rng(3, &["t"]);
        let acq = Acquisition::sample(&Vendor::Philips.profile(), 90.0, &mut rng);
        let a = acq.affine();
        let col = |c: usize| [a[0][c], a[1][c], a[2][c]];
        let norm = |v: [f64; 3]| (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        assert!((norm(col(0)) - acq.spacing.0).abs() < 1e-9);
        assert!((norm(col(2)) - acq.slice_spacing).abs() < 1e-9);
        let dot = |p: [f64; 3], q: [f64; 3]| p[0] * q[0] + p[1] * q[1] + p[2] * q[2];
        assert!(dot(col(0), col(1)).abs() < 1e-9 && dot(col(0), col(2)).abs() < 1e-9);
        // The LV axis pixel of slice k sits at centre + depth·axis.
        let (i, j, k) = (acq.lv_pixel.0, acq.lv_pixel.1, 3.0);
        let w: Vec<f64> = (0..3).map(|r| a[r][0] * i + a[r][1] * j + a[r][2] * k + a[r][3]).collect();
        let depth = acq.slice_depth(3);
        for (r, got) in w.iter().enumerate() {
            assert!((got - (acq.centre[r] + depth * acq.axis[r])).abs() < 1e-6);
        }
        assert!((8..=12).contains(&acq.slices));
    }
}
