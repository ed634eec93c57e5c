//! The heart of one phantom subject: the LV as a truncated (half) ellipsoid whose short-axis sections are a
//! slightly elliptic cavity inside a myocardial ring of angle-dependent thickness, the RV as a crescent on the
//! septal side, and their motion from end-diastole (ED, phase 0) to end-systole (ES, phase 1).
//!
//! Sizes come from published normal values, scaled by sex, body size (BSA) and age, then changed per condition:
//! - LV end-diastolic volume indexed to BSA (bSSFP): men ≈ 86 ± 14, women ≈ 76 ± 12 mL/m², EF ≈ 60 ± 5 %, falling a
//!   little with age — Petersen SE et al., J Cardiovasc Magn Reson 2017;19:18 (UK Biobank reference ranges) and
//!   Kawel-Boehm N et al., J Cardiovasc Magn Reson 2020;22:87 (reference ranges, 2020 update).
//! - ED myocardial wall thickness at the mid ventricle: ≈ 6 mm in women, ≈ 7 mm in men, increasing slightly with
//!   age; upper normal limits ≈ 10–11 mm — Kawel N et al., Circ Cardiovasc Imaging 2012;5:500 (MESA).
//! - RV end-diastolic volume ≈ 1.1 × LV (men 182 vs 166 mL; Petersen 2017), RVEF ≈ 55–60 %.
//! - HCM: maximal wall thickness ≥ 15 mm, most often asymmetric septal (septum/free wall ≥ 1.3), small cavity,
//!   hyperdynamic EF — Ommen SR et al., 2020 AHA/ACC HCM guideline, Circulation 2020;142:e558.
//! - DCM: dilated LV (EDV index well above the upper limit), thin walls, EF < 40 % — Pinto YM et al., Eur Heart J
//!   2016;37:1850 (ESC position statement on DCM); ACDC (Bernard et al. 2018) uses EF < 40 % for its DCM group.
//! - MINF: regional thinning (≈ 4–5 mm) and akinesis in a coronary territory, EF < 40–50 % (ACDC's MINF group:
//!   EF < 40 % and abnormal regional contraction).
//! - Long-axis shortening: the base descends ≈ 12–15 mm towards the apex in systole in normal hearts, less in disease.

use std::f64::consts::PI;

use rand::Rng;
use rand_distr::{Distribution, Normal};

use crate::Condition;

/// Angular samples of a section's contours.
pub const N_ANGLES: usize = 360;

/// A transmural infarct: where the wall is thin and does not move.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Infarct {
    /// Centre angle (rad) in the in-plane frame (0 = towards the RV / septum, π/2 = anterior).
    pub angle: f64,
    /// Half-width (rad), taper included.
    pub half_width: f64,
    /// Normalised depth range (0 = base, 1 = apex) it covers.
    pub depth: (f64, f64),
    /// ED wall thickness in the core (mm).
    pub thin_mm: f64,
    /// Remaining motion in the core (0 akinetic … 1 normal).
    pub motion: f64,
}

/// Shape and motion of one heart.
#[derive(Debug, Clone, PartialEq)]
pub struct Heart {
    /// Condition it was built for.
    pub condition: Condition,
    /// LV cavity length at ED, mitral plane → endocardial apex (mm).
    pub lc: f64,
    /// LV cavity radius at the ED mitral plane (mm).
    pub rc: f64,
    /// Cavity ellipticity (radius ∝ 1 + ecc·cos 2(θ − ecc_angle)).
    pub ecc: f64,
    /// Major-axis angle of the cavity ellipse (rad).
    pub ecc_angle: f64,
    /// ED wall thickness of normal segments (mm).
    pub wall: f64,
    /// ED wall thickness at the centre of septal hypertrophy (mm); equals `wall` without hypertrophy.
    pub septal_wall: f64,
    /// Half-width of the septal hypertrophy (rad).
    pub septal_width: f64,
    /// Apical wall thickness (mm).
    pub apex_wall: f64,
    /// Infarct, for MINF.
    pub infarct: Option<Infarct>,
    /// ES/ED radius ratio of normally moving segments (solved for the target EF).
    pub contraction: f64,
    /// Descent of the mitral plane towards the apex at ES (mm).
    pub descent: f64,
    /// Direction of the RV from the LV axis (rad; 0 = image left, π/2 = anterior).
    pub rv_angle: f64,
    /// RV crescent thickness beyond the LV epicardium at the ED base (mm).
    pub rv_thick: f64,
    /// RV half-width relative to the LV epicardial radius.
    pub rv_width: f64,
    /// RV length as a fraction of the LV cavity length.
    pub rv_length: f64,
    /// ES/ED ratio of the RV crescent thickness.
    pub rv_systole: f64,
    /// Papillary muscle radius at ED (mm).
    pub papillary: f64,
    /// Target LV ejection fraction (fraction).
    pub target_ef: f64,
}

/// LV ring of one section: endocardial and epicardial radius per angle (endo 0 below the cavity apex).
#[derive(Debug, Clone, PartialEq)]
pub struct LvRing {
    /// Endocardial radius (mm) at angles `2π·n/N_ANGLES`.
    pub endo: Vec<f64>,
    /// Epicardial radius (mm).
    pub epi: Vec<f64>,
}

/// RV of one section: an ellipse (the part outside the LV epicardium is the cavity) and its free wall.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RvShape {
    /// Centre (u, v) in mm.
    pub centre: (f64, f64),
    /// Unit direction of the semi-axis `a`.
    pub dir: (f64, f64),
    /// Semi-axis along `dir` (mm).
    pub a: f64,
    /// Semi-axis across (mm).
    pub b: f64,
}

impl RvShape {
    /// Normalised elliptic radius of (u, v) after growing both semi-axes by `grow` mm (≤ 1 inside).
    pub fn q(&self, u: f64, v: f64, grow: f64) -> f64 {
        let (du, dv) = (u - self.centre.0, v - self.centre.1);
        let x = du * self.dir.0 + dv * self.dir.1;
        let y = -du * self.dir.1 + dv * self.dir.0;
        ((x / (self.a + grow)).powi(2) + (y / (self.b + grow)).powi(2)).sqrt()
    }

    /// Approximate distance (mm) outside the ellipse grown by `grow` (negative inside).
    pub fn distance(&self, u: f64, v: f64, grow: f64) -> f64 {
        (self.q(u, v, grow) - 1.0) * (self.a.min(self.b) + grow)
    }
}

/// The heart cut at one depth and phase.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// LV ring, when the plane cuts the LV.
    pub lv: Option<LvRing>,
    /// RV, when the plane cuts it.
    pub rv: Option<RvShape>,
    /// Papillary muscles (u, v, radius), inside the cavity.
    pub papillary: Vec<(f64, f64, f64)>,
    /// Radius of the atrial blood pool when the plane lies above the mitral plane (mm).
    pub atrium: Option<f64>,
}

impl Section {
    /// Epicardial radius at angle index `a`, 0 when there is no LV.
    pub fn epi(&self, a: usize) -> f64 {
        self.lv.as_ref().map_or(0.0, |lv| lv.epi[a])
    }
}

/// Body surface area (m²), Mosteller: √(height·weight / 3600).
pub fn bsa(height_cm: f64, weight_kg: f64) -> f64 {
    (height_cm * weight_kg / 3600.0).sqrt()
}

fn normal(rng: &mut impl Rng, mean: f64, sd: f64, lo: f64, hi: f64) -> f64 {
    let d = Normal::new(mean, sd).expect("sd > 0");
    for _ in 0..100 {
        let x = d.sample(rng);
        if (lo..=hi).contains(&x) {
            return x;
        }
    }
    mean.clamp(lo, hi)
}

/// Raised-cosine bump of half-width `hw` (1 at 0, 0 beyond `hw`).
fn bump(delta: f64, hw: f64) -> f64 {
    if delta.abs() >= hw {
        0.0
    } else {
        0.5 * (1.0 + (PI * delta / hw).cos())
    }
}

/// Plateau with raised-cosine edges: 1 for |δ| ≤ core, 0 beyond hw.
fn plateau(delta: f64, core: f64, hw: f64) -> f64 {
    let d = delta.abs();
    if d <= core {
        1.0
    } else if d >= hw {
        0.0
    } else {
        0.5 * (1.0 + (PI * (d - core) / (hw - core)).cos())
    }
}

fn wrap(a: f64) -> f64 {
    (a + PI).rem_euclid(2.0 * PI) - PI
}

/// Angle of sample `n`.
pub fn angle(n: usize) -> f64 {
    2.0 * PI * n as f64 / N_ANGLES as f64
}

impl Heart {
    /// Builds the heart of a subject from sex, age, height, weight and condition.
    pub fn sample(
        condition: Condition,
        male: bool,
        age: f64,
        height_cm: f64,
        weight_kg: f64,
        rng: &mut impl Rng,
    ) -> Self {
        let bsa = bsa(height_cm, weight_kg);
        // 1. normal LV size and wall for this sex, body size and age
        let edvi = if male { normal(rng, 86.0, 10.0, 62.0, 112.0) } else { normal(rng, 76.0, 9.0, 55.0, 100.0) };
        let edvi = edvi * (1.0 - 0.003 * (age - 50.0)).clamp(0.85, 1.1);
        let wall = if male { normal(rng, 7.2, 0.8, 5.5, 9.5) } else { normal(rng, 6.1, 0.7, 4.8, 8.0) }
            * (1.0 + 0.004 * (age - 45.0).max(0.0));
        // 2. condition
        let (edv_factor, ef, wall, septal_wall, descent, rv_systole) = match condition {
            Condition::Nor => {
                (1.0, normal(rng, 0.62, 0.035, 0.56, 0.69), wall, wall, normal(rng, 13.0, 2.0, 9.0, 17.0), 0.6)
            }
            Condition::Hcm => {
                let septal = normal(rng, 20.0, 3.5, 15.5, 30.0);
                let concentric = rng.random_bool(0.25);
                let free =
                    if concentric { septal * rng.random_range(0.75..0.9) } else { wall * rng.random_range(1.1..1.5) };
                (
                    normal(rng, 0.85, 0.1, 0.65, 1.05),
                    normal(rng, 0.72, 0.04, 0.65, 0.82),
                    free,
                    septal,
                    normal(rng, 9.0, 2.0, 5.0, 13.0),
                    0.6,
                )
            }
            Condition::Dcm => {
                let thin = wall * rng.random_range(0.7..0.85);
                (
                    normal(rng, 1.75, 0.2, 1.4, 2.3),
                    normal(rng, 0.25, 0.06, 0.10, 0.37),
                    thin,
                    thin,
                    normal(rng, 6.0, 1.5, 3.0, 9.0),
                    0.75,
                )
            }
            Condition::Minf => (
                normal(rng, 1.3, 0.12, 1.05, 1.6),
                normal(rng, 0.38, 0.05, 0.28, 0.47),
                wall,
                wall,
                normal(rng, 8.0, 2.0, 4.0, 12.0),
                0.65,
            ),
        };
        let edv_mm3 = edvi * edv_factor * bsa * 1000.0;
        // 3. LV shape: cavity length grows as the cube root of volume; DCM is more spherical.
        let sphere = match condition {
            Condition::Dcm => 0.86,
            Condition::Hcm => 0.95,
            _ => 1.0,
        };
        let lc = 84.0 * (edv_mm3 / 140_000.0).cbrt() * sphere * rng.random_range(0.95..1.05);
        let ecc = rng.random_range(0.0..0.06);
        let ecc_angle = rng.random_range(0.0..PI);
        let rc = (3.0 * edv_mm3 / (2.0 * PI * lc * (1.0 + ecc * ecc / 2.0))).sqrt();
        let infarct = (condition == Condition::Minf).then(|| {
            // LAD (anterior/anteroseptal), RCA (inferior) or LCx (inferolateral) territory.
            let centre = match rng.random_range(0..3) {
                0 => rng.random_range(0.9..1.6),
                1 => rng.random_range(-1.8..-1.3),
                _ => rng.random_range(3.4..4.0),
            };
            let start = rng.random_range(0.15..0.45);
            Infarct {
                angle: wrap(centre),
                half_width: rng.random_range(0.6..1.0),
                depth: (start, rng.random_range(0.8..1.05)),
                thin_mm: rng.random_range(3.5..5.0),
                motion: rng.random_range(0.0..0.15),
            }
        });
        let mut heart = Heart {
            condition,
            lc,
            rc,
            ecc,
            ecc_angle,
            wall,
            septal_wall,
            septal_width: rng.random_range(0.9..1.3),
            apex_wall: wall * rng.random_range(0.7..0.9),
            infarct,
            contraction: 1.0,
            descent,
            rv_angle: rng.random_range(0.1..0.45),
            rv_thick: rc * rng.random_range(0.75..0.95) * if condition == Condition::Dcm { 0.85 } else { 1.0 },
            rv_width: rng.random_range(1.15..1.35),
            rv_length: rng.random_range(0.75..0.88),
            rv_systole,
            papillary: rc * rng.random_range(0.09..0.13),
            target_ef: ef,
        };
        heart.contraction = heart.solve_contraction(ef);
        heart
    }

    /// ED wall thickness (mm) at angle `theta` and normalised depth `t`.
    pub fn wall_at(&self, theta: f64, t: f64) -> f64 {
        let mut w = self.wall;
        if self.septal_wall > self.wall {
            let hyp = bump(wrap(theta - self.rv_angle), self.septal_width) * (1.0 - 0.5 * t * t);
            w += (self.septal_wall - self.wall) * hyp;
        }
        if let Some(s) = self.infarct_weight(theta, t) {
            let inf = self.infarct.expect("weight implies infarct");
            w = w * (1.0 - s) + inf.thin_mm * s;
        }
        w
    }

    fn infarct_weight(&self, theta: f64, t: f64) -> Option<f64> {
        let inf = self.infarct?;
        let across = plateau(wrap(theta - inf.angle), inf.half_width * 0.6, inf.half_width);
        let mid = 0.5 * (inf.depth.0 + inf.depth.1);
        let half = 0.5 * (inf.depth.1 - inf.depth.0);
        let along = plateau(t - mid, (half - 0.08).max(0.0), half + 0.08);
        Some(across * along)
    }

    /// Relative motion (1 normal … `motion` in an infarct core).
    fn motion_at(&self, theta: f64, t: f64) -> f64 {
        match (self.infarct, self.infarct_weight(theta, t)) {
            (Some(inf), Some(s)) => 1.0 - s * (1.0 - inf.motion),
            _ => 1.0,
        }
    }

    fn rho(&self, theta: f64) -> f64 {
        1.0 + self.ecc * (2.0 * (theta - self.ecc_angle)).cos()
    }

    /// Cavity length at phase `phase` (0 ED … 1 ES); the apex stays put, the base descends.
    pub fn cavity_length(&self, phase: f64) -> f64 {
        self.lc - phase * self.descent
    }

    fn epi_ed(&self, theta: f64, z_ed: f64, t: f64) -> f64 {
        let le = self.lc + self.apex_wall;
        if z_ed >= le {
            return 0.0;
        }
        (self.rc * self.rho(theta) + self.wall_at(theta, t.min(1.0))) * (1.0 - (z_ed / le).powi(2)).sqrt()
    }

    /// LV endo/epi radius at angle `theta`, depth `z` (mm below the ED mitral plane) and phase, with the ES
    /// contraction `k` of normal segments. `None` above the mitral plane or below the epicardial apex.
    fn radii(&self, theta: f64, z: f64, phase: f64, k: f64) -> Option<(f64, f64)> {
        let l = self.cavity_length(phase);
        let zp = z - phase * self.descent;
        if zp < 0.0 {
            return None;
        }
        let t = zp / l;
        // Myocardial area per angle is conserved along the cycle, scaled by the shortening (volume conservation).
        let stretch = self.lc / l;
        if t < 1.0 {
            let kth = 1.0 - (1.0 - k) * self.motion_at(theta, t);
            let rc_ed = self.rc * self.rho(theta) * (1.0 - t * t).sqrt();
            let re_ed = self.epi_ed(theta, t * self.lc, t);
            let rc = rc_ed * (1.0 - phase * (1.0 - kth));
            let area = (re_ed * re_ed - rc_ed * rc_ed) * (1.0 + phase * (stretch - 1.0));
            Some((rc, (rc * rc + area).sqrt()))
        } else {
            let re = self.epi_ed(theta, self.lc + (zp - l), 1.0) * (1.0 + phase * (stretch - 1.0)).sqrt();
            (re > 0.0).then_some((0.0, re))
        }
    }

    /// The section at depth `z` (mm below the ED mitral plane) and phase (0 ED … 1 ES).
    pub fn section(&self, z: f64, phase: f64) -> Section {
        let l = self.cavity_length(phase);
        let zp = z - phase * self.descent;
        if zp < 0.0 {
            // Above the mitral plane: the left atrium.
            let r = self.rc * 0.8;
            return Section { lv: None, rv: None, papillary: vec![], atrium: Some(r) };
        }
        let mut endo = vec![0.0; N_ANGLES];
        let mut epi = vec![0.0; N_ANGLES];
        let mut any = false;
        for n in 0..N_ANGLES {
            if let Some((rc, re)) = self.radii(angle(n), z, phase, self.contraction) {
                endo[n] = rc;
                epi[n] = re;
                any = true;
            }
        }
        if !any {
            return Section { lv: None, rv: None, papillary: vec![], atrium: None };
        }
        let t = zp / l;
        // RV: an ellipse on the septal side whose part outside the LV epicardium is the cavity.
        let lrv = self.rv_length * l;
        let rv = (zp < lrv).then(|| {
            let taper = (1.0 - (zp / lrv).powi(2)).sqrt();
            let mean_epi = epi.iter().sum::<f64>() / N_ANGLES as f64;
            let side = epi[((self.rv_angle.rem_euclid(2.0 * PI)) / (2.0 * PI) * N_ANGLES as f64) as usize % N_ANGLES];
            let h = self.rv_thick * (1.0 - phase * (1.0 - self.rv_systole)) * taper.max(0.05);
            let a = (side + h - 0.2 * mean_epi) / 2.0;
            let d = 0.2 * mean_epi + a;
            let dir = (self.rv_angle.cos(), self.rv_angle.sin());
            let b = self.rv_width * mean_epi * (0.7 + 0.3 * taper) * (1.0 - 0.07 * phase);
            RvShape { centre: (d * dir.0, d * dir.1), dir, a, b }
        });
        // Papillary muscles in the mid cavity, antero-lateral and postero-medial (opposite the septum).
        let mut papillary = vec![];
        if (0.25..0.78).contains(&t) {
            for off in [-0.95f64, 0.95] {
                let th = self.rv_angle + PI + off;
                let n = ((th.rem_euclid(2.0 * PI)) / (2.0 * PI) * N_ANGLES as f64) as usize % N_ANGLES;
                let rcav = endo[n];
                let r = (self.papillary * (1.0 + 0.3 * phase)).min(0.3 * rcav);
                if r > 1.0 {
                    let at = rcav - r * 1.3;
                    papillary.push((at * th.cos(), at * th.sin(), r));
                }
            }
        }
        Section { lv: Some(LvRing { endo, epi }), rv, papillary, atrium: None }
    }

    fn cavity_volume_with(&self, phase: f64, k: f64) -> f64 {
        // ∫∫ ½ r² dθ dz, 0.5 mm steps, 90 angles.
        let dz = 0.5;
        let na = 90;
        let mut v = 0.0;
        let mut z = dz / 2.0;
        while z < self.lc + self.apex_wall + 1.0 {
            for n in 0..na {
                let th = 2.0 * PI * n as f64 / na as f64;
                if let Some((rc, _)) = self.radii(th, z, phase, k) {
                    v += 0.5 * rc * rc * (2.0 * PI / na as f64) * dz;
                }
            }
            z += dz;
        }
        v
    }

    /// LV cavity volume at `phase` in mL.
    pub fn lv_volume_ml(&self, phase: f64) -> f64 {
        self.cavity_volume_with(phase, self.contraction) / 1000.0
    }

    /// LV myocardial volume at `phase` in mL.
    pub fn myo_volume_ml(&self, phase: f64) -> f64 {
        let (dz, na) = (0.5, 90);
        let mut v = 0.0;
        let mut z = dz / 2.0;
        while z < self.lc + self.apex_wall + 1.0 {
            for n in 0..na {
                let th = 2.0 * PI * n as f64 / na as f64;
                if let Some((rc, re)) = self.radii(th, z, phase, self.contraction) {
                    v += 0.5 * (re * re - rc * rc) * (2.0 * PI / na as f64) * dz;
                }
            }
            z += dz;
        }
        v / 1000.0
    }

    /// LV ejection fraction (fraction) of the model.
    pub fn ejection_fraction(&self) -> f64 {
        1.0 - self.lv_volume_ml(1.0) / self.lv_volume_ml(0.0)
    }

    /// Maximal ED wall thickness over the mid-ventricular and basal levels (mm).
    pub fn max_wall_mm(&self) -> f64 {
        let mut best: f64 = 0.0;
        for i in 0..=20 {
            let z = self.lc * 0.7 * i as f64 / 20.0;
            for n in 0..N_ANGLES {
                if let Some((rc, re)) = self.radii(angle(n), z, 0.0, self.contraction) {
                    best = best.max(re - rc);
                }
            }
        }
        best
    }

    /// Solves the ES radius ratio of normal segments for the target EF by bisection.
    fn solve_contraction(&self, ef: f64) -> f64 {
        let edv = self.cavity_volume_with(0.0, 1.0);
        let (mut lo, mut hi) = (0.15, 1.0);
        for _ in 0..30 {
            let mid = 0.5 * (lo + hi);
            let got = 1.0 - self.cavity_volume_with(1.0, mid) / edv;
            if got > ef {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hearts(condition: Condition, n: usize) -> Vec<Heart> {
        let mut rng = cmr_core::seed::rng(11, &["anatomy", condition.acdc_code()]);
        (0..n).map(|i| Heart::sample(condition, i % 2 == 0, 30.0 + i as f64 * 5.0, 170.0, 72.0, &mut rng)).collect()
    }

    #[test]
    fn conditions_meet_their_definitions() {
        for h in hearts(Condition::Nor, 10) {
            let ef = h.ejection_fraction();
            assert!((0.55..=0.70).contains(&ef), "NOR EF {ef}");
            assert!(h.max_wall_mm() < 12.0, "NOR wall {}", h.max_wall_mm());
        }
        for h in hearts(Condition::Hcm, 10) {
            assert!(h.max_wall_mm() >= 15.0, "HCM wall {}", h.max_wall_mm());
            assert!(h.ejection_fraction() > 0.62);
        }
        for h in hearts(Condition::Dcm, 10) {
            assert!(h.ejection_fraction() < 0.40, "DCM EF {}", h.ejection_fraction());
            assert!(h.lv_volume_ml(0.0) > 180.0, "DCM EDV {}", h.lv_volume_ml(0.0));
        }
        for h in hearts(Condition::Minf, 10) {
            assert!(h.ejection_fraction() < 0.50);
            let inf = h.infarct.unwrap();
            let t = 0.5 * (inf.depth.0 + inf.depth.1);
            assert!(h.wall_at(inf.angle, t) < 5.5 && h.wall_at(inf.angle + PI, t) > 5.0);
        }
    }

    #[test]
    fn lv_volume_scales_with_bsa_and_myocardium_is_conserved() {
        let make = |h, w| {
            let mut rng = cmr_core::seed::rng(5, &["same"]);
            Heart::sample(Condition::Nor, true, 50.0, h, w, &mut rng)
        };
        let small = make(155.0, 50.0);
        let big = make(195.0, 100.0);
        let ratio = big.lv_volume_ml(0.0) / small.lv_volume_ml(0.0);
        let bsa_ratio = bsa(195.0, 100.0) / bsa(155.0, 50.0);
        assert!((ratio / bsa_ratio - 1.0).abs() < 0.05, "{ratio} vs {bsa_ratio}");
        let (ed, es) = (big.myo_volume_ml(0.0), big.myo_volume_ml(1.0));
        assert!((es / ed - 1.0).abs() < 0.08, "myocardium ED {ed} ES {es}");
    }
}
