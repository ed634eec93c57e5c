//! Imaging: the heart and the chest around it rendered like a balanced steady-state free precession (bSSFP) cine —
//! bright blood, dark-grey myocardium, bright fat (subcutaneous and epicardial, thicker with BMI), dark lungs,
//! mid-grey liver, a body outline that grows with BMI — then through-slice partial volume, in-plane blur, the
//! vendor's coil bias field and contrast curve, Rician noise and quantisation to the stored integers.
//!
//! bSSFP contrast follows T2/T1: blood and fat are bright, myocardium and skeletal muscle dark, liver between
//! (e.g. Ridgway JP, J Cardiovasc Magn Reson 2010;12:71, "Cardiovascular magnetic resonance physics for
//! clinicians: part I"). Magnitude images of a complex signal with Gaussian noise follow a Rician distribution
//! (Gudbjartsson H, Patz S, Magn Reson Med 1995;34:910).
//!
//! In-plane coordinates (u, v) are millimetres from the LV long axis, `u` towards the RV / patient right (image
//! left), `v` anterior (image up); [`crate::vendor::ORIENTATION`] maps them to array indices.

use std::f64::consts::PI;

use ndarray::{Array2, Array4};
use rand::Rng;
use rand_distr::{Distribution, Normal};

use crate::anatomy::{Heart, Section, N_ANGLES};
use crate::vendor::{Acquisition, VendorProfile};

/// Tissue classes of the rendered scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Tissue {
    /// Outside the body.
    Air,
    /// LV blood pool.
    LvBlood,
    /// Papillary muscle (labelled LV cavity, as in ACDC).
    Papillary,
    /// LV myocardium.
    Myocardium,
    /// RV blood pool.
    RvBlood,
    /// RV free wall (unlabelled).
    RvWall,
    /// Atrial blood above the mitral plane (unlabelled).
    Atrium,
    /// Atrial wall around it: myocardium's signal, unlabelled (ACDC labels the ventricles only).
    AtrialWall,
    /// Fat (subcutaneous, epicardial).
    Fat,
    /// Pericardium.
    Pericardium,
    /// Lung.
    Lung,
    /// Liver.
    Liver,
    /// Skeletal muscle of the chest wall.
    Muscle,
    /// Other soft tissue (mediastinum, stomach, …).
    Soft,
    /// Vertebral body.
    Bone,
    /// Descending aorta.
    Aorta,
}

const N_TISSUES: usize = 16;

impl Tissue {
    /// Canonical label (cmr_core::labels) of the tissue.
    pub fn label(self) -> u8 {
        match self {
            Tissue::LvBlood | Tissue::Papillary => cmr_core::labels::LV,
            Tissue::Myocardium => cmr_core::labels::MYO,
            Tissue::RvBlood => cmr_core::labels::RV,
            _ => cmr_core::labels::BACKGROUND,
        }
    }
}

/// An ellipse in (u, v) mm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ellipse {
    /// Centre.
    pub centre: (f64, f64),
    /// Semi-axes along u and v.
    pub semi: (f64, f64),
}

impl Ellipse {
    fn q(&self, u: f64, v: f64) -> f64 {
        (((u - self.centre.0) / self.semi.0).powi(2) + ((v - self.centre.1) / self.semi.1).powi(2)).sqrt()
    }

    /// Approximate depth (mm) inside the outline along the ray from the centre (negative outside).
    fn depth(&self, u: f64, v: f64) -> f64 {
        let q = self.q(u, v);
        let dist = ((u - self.centre.0).powi(2) + (v - self.centre.1).powi(2)).sqrt();
        if q <= 1e-9 {
            return self.semi.0.min(self.semi.1);
        }
        dist * (1.0 / q - 1.0)
    }
}

/// The chest of one subject around the heart.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    /// Skin outline.
    pub outline: Ellipse,
    /// Subcutaneous fat thickness (mm).
    pub subcutaneous_fat: f64,
    /// Chest-wall muscle thickness (mm).
    pub muscle: f64,
    /// Epicardial fat thickness (mm).
    pub epicardial_fat: f64,
    /// Right and left lung.
    pub lungs: [Ellipse; 2],
    /// Liver at full size (it grows towards the apex, where the plane dips into the abdomen).
    pub liver: Ellipse,
    /// Descending aorta (u, v, radius).
    pub aorta: (f64, f64, f64),
    /// Vertebral body (u, v, radius).
    pub spine: (f64, f64, f64),
    /// Signal per tissue (blood = 1).
    pub signal: [f64; N_TISSUES],
    /// Coil centre (u, v) and bias direction.
    pub coil: (f64, f64, f64),
}

impl Body {
    /// Draws the chest of a subject with this BMI and sex; `myo_contrast` is the vendor's myocardium factor.
    pub fn sample(bmi: f64, male: bool, myo_contrast: f64, rng: &mut impl Rng) -> Self {
        let grow = (bmi / 24.0).powf(0.55) * if male { 1.05 } else { 0.97 };
        let outline = Ellipse {
            centre: (rng.random_range(15.0..35.0), rng.random_range(-60.0..-45.0)),
            semi: (165.0 * grow * rng.random_range(0.95..1.05), 118.0 * grow * rng.random_range(0.95..1.05)),
        };
        // Subcutaneous fat grows with BMI, more in women.
        let subcutaneous_fat = ((bmi - 17.0) * 1.3 * if male { 0.8 } else { 1.2 } + 3.0).clamp(2.0, 45.0);
        let epicardial_fat = epicardial_fat_mm(bmi) * rng.random_range(0.8..1.2);
        let mut signal = [0.0; N_TISSUES];
        let mut set =
            |t: Tissue, mean: f64, jitter: f64| signal[t as usize] = mean * (1.0 + rng.random_range(-jitter..=jitter));
        set(Tissue::Air, 0.0, 0.0);
        set(Tissue::LvBlood, 1.0, 0.0);
        set(Tissue::RvBlood, 0.93, 0.04);
        set(Tissue::Atrium, 0.9, 0.05);
        set(Tissue::Aorta, 0.8, 0.1);
        set(Tissue::Myocardium, 0.27 * myo_contrast, 0.12);
        set(Tissue::Papillary, 0.30 * myo_contrast, 0.1);
        set(Tissue::RvWall, 0.30 * myo_contrast, 0.1);
        set(Tissue::Fat, 0.8, 0.08);
        set(Tissue::Pericardium, 0.15, 0.2);
        set(Tissue::Lung, 0.05, 0.3);
        set(Tissue::Liver, 0.33, 0.12);
        set(Tissue::Muscle, 0.22, 0.12);
        set(Tissue::Soft, 0.42, 0.12);
        set(Tissue::Bone, 0.38, 0.1);
        signal[Tissue::AtrialWall as usize] = signal[Tissue::Myocardium as usize];
        Body {
            outline,
            subcutaneous_fat,
            muscle: rng.random_range(8.0..14.0),
            epicardial_fat,
            lungs: [
                Ellipse { centre: (rng.random_range(80.0..95.0), rng.random_range(-35.0..-20.0)), semi: (55.0, 85.0) },
                Ellipse {
                    centre: (rng.random_range(-78.0..-66.0), rng.random_range(-25.0..-10.0)),
                    semi: (50.0, 80.0),
                },
            ],
            liver: Ellipse {
                centre: (rng.random_range(55.0..75.0), rng.random_range(-80.0..-65.0)),
                semi: (75.0, 48.0),
            },
            aorta: (rng.random_range(-35.0..-20.0), rng.random_range(-80.0..-65.0), rng.random_range(9.0..13.0)),
            spine: (rng.random_range(0.0..12.0), rng.random_range(-115.0..-100.0), rng.random_range(15.0..19.0)),
            signal,
            coil: (rng.random_range(-60.0..60.0), rng.random_range(20.0..80.0), rng.random_range(0.0..2.0 * PI)),
        }
    }

    /// Tissue outside the heart at (u, v), depth `z` below the mitral plane, `d_heart` mm from the heart.
    fn tissue(&self, u: f64, v: f64, z: f64, d_heart: f64) -> Tissue {
        let depth = self.outline.depth(u, v);
        if depth < 0.0 {
            return Tissue::Air;
        }
        if depth < self.subcutaneous_fat {
            return Tissue::Fat;
        }
        if depth < self.subcutaneous_fat + self.muscle {
            return Tissue::Muscle;
        }
        let (su, sv, sr) = self.spine;
        let ds = ((u - su).powi(2) + (v - sv).powi(2)).sqrt();
        if ds < sr {
            return if ds > sr - 1.5 { Tissue::Muscle } else { Tissue::Bone };
        }
        let (au, av, ar) = self.aorta;
        let da = ((u - au).powi(2) + (v - av).powi(2)).sqrt();
        if da < ar {
            return Tissue::Aorta;
        }
        if d_heart > 3.0 {
            // The plane dips into the abdomen towards the apex: the liver grows with depth.
            let grow = ((z + 10.0) / 70.0).clamp(0.35, 1.1);
            let liver =
                Ellipse { centre: self.liver.centre, semi: (self.liver.semi.0 * grow, self.liver.semi.1 * grow) };
            if liver.q(u, v) <= 1.0 {
                return Tissue::Liver;
            }
            // The left lung reaches the lateral LV wall; the right lung keeps clear of the RV (mediastinal fat and
            // the sternal reflection lie between them).
            let lung = |n: usize, clearance: f64| d_heart > clearance && self.lungs[n].q(u, v) <= 1.0;
            if da > ar + 4.0 && (lung(0, 8.0) || lung(1, 3.0)) {
                return Tissue::Lung;
            }
        }
        Tissue::Soft
    }

    /// Multiplicative coil sensitivity at (u, v): a smooth gradient plus a bump near the surface coil.
    fn bias(&self, u: f64, v: f64, amplitude: f64) -> f64 {
        let (cu, cv, dir) = self.coil;
        let gradient = (u * dir.cos() + v * dir.sin()) / 200.0;
        let bump = (-((u - cu).powi(2) + (v - cv).powi(2)) / (2.0 * 90.0f64.powi(2))).exp();
        (1.0 + amplitude * (gradient + bump - 0.5)).max(0.3)
    }
}

/// Mean epicardial fat thickness (mm) over the LV at this BMI, before a subject's ±20 % draw: 0.5 mm when lean,
/// about 3 mm at BMI 25, 5 mm at 30, 10 mm at the top of the range. Epicardial fat is visceral fat: it thickens with
/// adiposity, from about 1 mm to over 20 mm over the RV free wall in echocardiography (Iacobellis G, Willens HJ,
/// J Am Soc Echocardiogr 2009;22:1311). In a cardiac field of view it is the part of body fat a short-axis crop
/// shows; the subcutaneous fat that grows most lies outside it.
fn epicardial_fat_mm(bmi: f64) -> f64 {
    (1.0 + 0.4 * (bmi - 20.0)).clamp(0.5, 10.0)
}

/// Heart tissue at (u, v) in `sec`, with `r`, angle index `a`; also the distance to the heart's outer surface.
fn heart_tissue(sec: &Section, heart: &Heart, body: &Body, u: f64, v: f64, r: f64, a: usize) -> (Option<Tissue>, f64) {
    if let Some(ra) = sec.atrium {
        let t = if r < ra {
            Some(Tissue::Atrium)
        } else if r < ra + 2.0 {
            Some(Tissue::AtrialWall)
        } else {
            None
        };
        return (t, r - ra - 2.0);
    }
    let mut d_lv = f64::INFINITY;
    if let Some(lv) = &sec.lv {
        let (rc, re) = (lv.endo[a], lv.epi[a]);
        if r < rc {
            for &(pu, pv, pr) in &sec.papillary {
                if (u - pu).powi(2) + (v - pv).powi(2) < pr * pr {
                    return (Some(Tissue::Papillary), -1.0);
                }
            }
            return (Some(Tissue::LvBlood), -1.0);
        }
        if r < re {
            return (Some(Tissue::Myocardium), -1.0);
        }
        d_lv = r - re;
    }
    const RV_WALL: f64 = 2.5;
    let mut d_rv = f64::INFINITY;
    if let Some(rv) = &sec.rv {
        if rv.q(u, v, 0.0) <= 1.0 {
            return (Some(Tissue::RvBlood), -1.0);
        }
        if rv.q(u, v, RV_WALL) <= 1.0 {
            return (Some(Tissue::RvWall), -1.0);
        }
        d_rv = rv.distance(u, v, RV_WALL);
    }
    let d_heart = d_lv.min(d_rv);
    if d_heart.is_finite() {
        // Epicardial fat, thicker in the grooves where the RV meets the LV, most in the anterior one (around the
        // left anterior descending artery); over the thin RV free wall only half as thick.
        let theta = crate::anatomy::angle(a);
        let groove = |off: f64| {
            let d = (theta - heart.rv_angle - off + PI).rem_euclid(2.0 * PI) - PI;
            (1.0 - (d / 0.3).powi(2)).max(0.0)
        };
        let grooves = 4.0 * groove(1.15) + 1.5 * groove(-1.15);
        let beyond = (d_lv - body.epicardial_fat - grooves).min(d_rv - 0.5 * body.epicardial_fat - grooves);
        if beyond < 0.0 {
            return (Some(Tissue::Fat), d_heart);
        }
        if beyond < 0.8 {
            return (Some(Tissue::Pericardium), d_heart);
        }
    }
    (None, d_heart)
}

/// The rendered cine: stored image values and canonical labels (labels only at ED and ES; zero elsewhere).
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Stored image (x, y, z, t), integer-valued, ≥ 0.
    pub image: Array4<f32>,
    /// Canonical labels (x, y, z, t).
    pub labels: Array4<u8>,
}

/// Cardiac phase (0 ED … 1 ES) of frame `f` of `frames`, ES at frame `es`: cosine ease ED→ES→ED.
pub fn phase_of(f: usize, es: usize, frames: usize) -> f64 {
    if f <= es {
        0.5 * (1.0 - (PI * f as f64 / es as f64).cos())
    } else {
        0.5 * (1.0 + (PI * (f - es) as f64 / (frames - es) as f64).cos())
    }
}

/// Renders the whole cine of one subject.
pub fn render(heart: &Heart, body: &Body, acq: &Acquisition, profile: &VendorProfile, rng: &mut impl Rng) -> Rendered {
    let (nx, ny) = acq.matrix;
    let (nz, nt) = (acq.slices, acq.frames);
    let mut image = Array4::<f32>::zeros((nx, ny, nz, nt));
    let mut labels = Array4::<u8>::zeros((nx, ny, nz, nt));
    // Per-pixel geometry, shared by all slices and frames.
    let mut geo = Vec::with_capacity(nx * ny);
    for i in 0..nx {
        for j in 0..ny {
            let (u, v) = acq.pixel_to_uv(i as f64, j as f64);
            let theta = v.atan2(u).rem_euclid(2.0 * PI);
            let a = ((theta / (2.0 * PI) * N_ANGLES as f64).round() as usize) % N_ANGLES;
            geo.push((u, v, (u * u + v * v).sqrt(), a, body.bias(u, v, profile.bias)));
        }
    }
    let noise = Normal::new(0.0, profile.noise).expect("noise σ > 0");
    let offsets = [-acq.slice_thickness / 3.0, 0.0, acq.slice_thickness / 3.0];
    // The chest does not move: its signal per slice is computed once, away from the heart (d_heart = ∞).
    let chest: Vec<Vec<f64>> = (0..nz)
        .map(|k| {
            let z = acq.slice_depth(k);
            geo.iter().map(|&(u, v, ..)| body.signal[body.tissue(u, v, z, f64::INFINITY) as usize]).collect()
        })
        .collect();
    for f in 0..nt {
        let phase = phase_of(f, acq.es, nt);
        let labelled = f == 0 || f == acq.es;
        for k in 0..nz {
            let z = acq.slice_depth(k);
            let sections: Vec<Section> = offsets.iter().map(|o| heart.section(z + o, phase)).collect();
            // Beyond `reach` no section has heart, epicardial fat, or a heart close enough to move lung or liver.
            let reach = sections.iter().map(|s| reach(s, body)).fold(0.0, f64::max);
            let mut signal = Array2::<f64>::zeros((nx, ny));
            for i in 0..nx {
                for j in 0..ny {
                    let p = i * ny + j;
                    let (u, v, r, a, bias) = geo[p];
                    if r > reach {
                        signal[[i, j]] = chest[k][p] * bias;
                        continue;
                    }
                    let mut s = 0.0;
                    for (n, sec) in sections.iter().enumerate() {
                        let (t, d) = heart_tissue(sec, heart, body, u, v, r, a);
                        let t = t.unwrap_or_else(|| body.tissue(u, v, z + offsets[n], d));
                        s += body.signal[t as usize];
                        if labelled && n == 1 {
                            labels[[i, j, k, f]] = t.label();
                        }
                    }
                    signal[[i, j]] = s / 3.0 * bias;
                }
            }
            let blurred = gaussian_blur(&signal, profile.blur_px);
            for i in 0..nx {
                for j in 0..ny {
                    let s = blurred[[i, j]].max(0.0).powf(profile.gamma);
                    let (re, im) = (s + noise.sample(rng), noise.sample(rng));
                    let value = ((re * re + im * im).sqrt() * profile.scale).round().clamp(0.0, 32767.0);
                    image[[i, j, k, f]] = value as f32;
                }
            }
        }
    }
    Rendered { image, labels }
}

/// Radius (mm from the LV axis) beyond which `sec` leaves the scene to the chest: the heart, its fat (at most
/// `epicardial_fat + 4` mm plus the 0.8 mm pericardium, see [`heart_tissue`]) and the largest lung clearance (8 mm) of
/// [`Body::tissue`], plus 1 mm.
fn reach(sec: &Section, body: &Body) -> f64 {
    let mut r: f64 = sec.atrium.map_or(0.0, |ra| ra + 2.0);
    if let Some(lv) = &sec.lv {
        r = r.max(lv.epi.iter().cloned().fold(0.0, f64::max));
    }
    if let Some(rv) = &sec.rv {
        r = r.max(rv.centre.0.hypot(rv.centre.1) + rv.a.max(rv.b) + 3.0);
    }
    if r == 0.0 {
        return 0.0;
    }
    r + body.epicardial_fat + 4.0 + 0.8 + 8.0 + 1.0
}

/// Separable Gaussian blur with reflected borders.
fn gaussian_blur(img: &Array2<f64>, sigma: f64) -> Array2<f64> {
    if sigma <= 0.0 {
        return img.clone();
    }
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f64> = (-radius..=radius).map(|x| (-(x * x) as f64 / (2.0 * sigma * sigma)).exp()).collect();
    let total: f64 = kernel.iter().sum();
    let kernel: Vec<f64> = kernel.iter().map(|k| k / total).collect();
    let (nx, ny) = img.dim();
    let reflect = |x: isize, n: usize| -> usize {
        let n = n as isize;
        let mut x = x;
        if x < 0 {
            x = -x - 1;
        }
        if x >= n {
            x = 2 * n - x - 1;
        }
        x.clamp(0, n - 1) as usize
    };
    let mut tmp = Array2::<f64>::zeros((nx, ny));
    for i in 0..nx {
        for j in 0..ny {
            let mut s = 0.0;
            for (o, k) in kernel.iter().enumerate() {
                s += k * img[[reflect(i as isize + o as isize - radius, nx), j]];
            }
            tmp[[i, j]] = s;
        }
    }
    let mut out = Array2::<f64>::zeros((nx, ny));
    for i in 0..nx {
        for j in 0..ny {
            let mut s = 0.0;
            for (o, k) in kernel.iter().enumerate() {
                s += k * tmp[[i, reflect(j as isize + o as isize - radius, ny)]];
            }
            out[[i, j]] = s;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_runs_ed_es_ed() {
        assert_eq!(phase_of(0, 4, 10), 0.0);
        assert!((phase_of(4, 4, 10) - 1.0).abs() < 1e-12);
        assert!(phase_of(9, 4, 10) < 0.1);
    }

    #[test]
    fn blur_keeps_the_mean() {
        let mut img = Array2::<f64>::zeros((20, 20));
        img[[10, 10]] = 1.0;
        let b = gaussian_blur(&img, 1.0);
        assert!((b.sum() - 1.0).abs() < 1e-9 && b[[10, 10]] < 0.5);
    }

    #[test]
    fn the_atrium_above_the_mitral_plane_is_unlabelled_and_its_wall_looks_like_myocardium() {
        let mut rng = cmr_core::seed::rng(5, &["appearance", "atrium"]);
        let heart = Heart::sample(crate::Condition::Nor, true, 50.0, 175.0, 75.0, &mut rng);
        let body = Body::sample(25.0, true, 1.0, &mut rng);
        // 2 mm above the ED mitral plane at ED; at ES the base has descended further below it.
        for phase in [0.0, 1.0] {
            let sec = heart.section(-2.0, phase);
            let ra = sec.atrium.expect("an atrium above the mitral plane");
            let steps = ((ra + 4.0) / 0.1) as usize;
            let tissues: Vec<Tissue> = (0..=steps)
                .filter_map(|i| heart_tissue(&sec, &heart, &body, i as f64 * 0.1, 0.0, i as f64 * 0.1, 0).0)
                .collect();
            assert!(tissues.contains(&Tissue::Atrium) && tissues.contains(&Tissue::AtrialWall), "{tissues:?}");
            assert!(tissues.iter().all(|t| t.label() == cmr_core::labels::BACKGROUND), "phase {phase}: {tissues:?}");
        }
        assert_eq!(body.signal[Tissue::AtrialWall as usize], body.signal[Tissue::Myocardium as usize]);
    }

    /// Fat (mm, in 0.1 mm steps) on the ray at angle index `a` of the mid-ventricular ED section, outward from the
    /// LV epicardium.
    fn fat_on_ray(heart: &Heart, body: &Body, a: usize) -> f64 {
        let sec = heart.section(30.0, 0.0);
        let (theta, epi) = (crate::anatomy::angle(a), sec.lv.as_ref().expect("an LV at mid-ventricle").epi[a]);
        let fat_steps = (0..400)
            .map(|i| epi + 0.05 + i as f64 * 0.1)
            .filter(|&r| heart_tissue(&sec, heart, body, r * theta.cos(), r * theta.sin(), r, a).0 == Some(Tissue::Fat))
            .count();
        fat_steps as f64 * 0.1
    }

    #[test]
    fn epicardial_fat_thickens_with_bmi_by_pixels_of_a_demo_crop() {
        let heart = Heart::sample(crate::Condition::Nor, false, 50.0, 165.0, 60.0, &mut cmr_core::seed::rng(3, &["h"]));
        // The lateral LV wall, opposite the RV: no groove there.
        let lateral = ((heart.rv_angle + PI) / (2.0 * PI) * N_ANGLES as f64).round() as usize % N_ANGLES;
        // One body draw per BMI from the same stream: the same ±20 % factor, only the BMI differs.
        let fat =
            |bmi: f64| fat_on_ray(&heart, &Body::sample(bmi, false, 1.0, &mut cmr_core::seed::rng(3, &["b"])), lateral);
        let (lean, normal, obese) = (fat(18.0), fat(22.0), fat(34.0));
        assert!(lean <= 1.0, "lean {lean} mm");
        assert!(lean < normal && normal < obese, "{lean} {normal} {obese}");
        // At least two 2 mm pixels more fat at BMI 34 than at 22, where the old model gave one.
        assert!(obese - normal >= 4.0, "normal {normal} mm, obese {obese} mm");
    }
}
