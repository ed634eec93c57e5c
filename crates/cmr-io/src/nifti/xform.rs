//! NIfTI-1 spatial transforms: the quaternion `qform` ↔ 4×4 affine conversions of the reference C library
//! (`nifti1_io.c`, `nifti_quatern_to_mat44` and `nifti_mat44_to_quatern`,
//! <https://github.com/NIFTI-Imaging/nifti_clib/blob/v3.0.1/niftilib/nifti1_io.c>), written out here because the
//! `nifti` crate only offers them behind its `nalgebra` feature.
//!
//! Notation (nifti1.h, "METHOD 2"): `R` is the rotation built from the quaternion `(a, b, c, d)`, `qfac` (±1, stored
//! in `pixdim[0]`) flips the third axis, and `[x y z]ᵀ = R · diag(dx, dy, qfac·dz) · [i j k]ᵀ + [qx qy qz]ᵀ`.

/// A 3×3 matrix, row-major.
type Mat3 = [[f64; 3]; 3];

/// The parameters of a NIfTI `qform`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quatern {
    /// Quaternion `b, c, d` (`a` is implied, ≥ 0).
    pub bcd: [f64; 3],
    /// Offsets `qoffset_x, qoffset_y, qoffset_z` in mm.
    pub offset: [f64; 3],
    /// `qfac`, −1 or 1 (`pixdim[0]`).
    pub qfac: f64,
}

/// The affine of a `qform` with voxel spacing `spacing` (`pixdim[1..=3]`).
pub fn quatern_to_affine(q: &Quatern, spacing: [f64; 3]) -> [[f64; 4]; 4] {
    let [b, c, d] = q.bcd;
    let mut a = 1.0 - (b * b + c * c + d * d);
    let (a, b, c, d) = if a < 1e-7 {
        // Special case of nifti1_io.c: a 180° rotation; renormalise (b, c, d).
        a = 1.0 / (b * b + c * c + d * d).sqrt();
        (0.0, b * a, c * a, d * a)
    } else {
        (a.sqrt(), b, c, d)
    };
    let r: Mat3 = [
        [a * a + b * b - c * c - d * d, 2.0 * (b * c - a * d), 2.0 * (b * d + a * c)],
        [2.0 * (b * c + a * d), a * a + c * c - b * b - d * d, 2.0 * (c * d - a * b)],
        [2.0 * (b * d - a * c), 2.0 * (c * d + a * b), a * a + d * d - c * c - b * b],
    ];
    let qfac = if q.qfac < 0.0 { -1.0 } else { 1.0 };
    // nifti1_io.c replaces non-positive spacings by 1.
    let s = spacing.map(|v| if v > 0.0 { v } else { 1.0 });
    let scale = [s[0], s[1], qfac * s[2]];
    let mut m = [[0.0; 4]; 4];
    for (row, r_row) in m.iter_mut().zip(r) {
        for col in 0..3 {
            row[col] = r_row[col] * scale[col];
        }
    }
    for (row, offset) in m.iter_mut().zip(q.offset) {
        row[3] = offset;
    }
    m[3][3] = 1.0;
    m
}

/// The `qform` closest to `affine` (exact when its 3×3 part is a rotation times a diagonal scaling, the nearest
/// orthogonal rotation otherwise) and the column norms, which are the voxel spacings it implies.
pub fn affine_to_quatern(affine: &[[f64; 4]; 4]) -> (Quatern, [f64; 3]) {
    let mut r: Mat3 = [[0.0; 3]; 3];
    let mut spacing = [0.0; 3];
    for col in 0..3 {
        let norm = (0..3).map(|row| affine[row][col].powi(2)).sum::<f64>().sqrt();
        spacing[col] = norm;
        for row in 0..3 {
            // A zero column becomes the unit axis, as in nifti1_io.c.
            r[row][col] = if norm > 0.0 { affine[row][col] / norm } else { (row == col) as u8 as f64 };
        }
    }
    let mut r = polar(r);
    let qfac = if det(&r) > 0.0 { 1.0 } else { -1.0 };
    if qfac < 0.0 {
        for row in r.iter_mut() {
            row[2] = -row[2];
        }
    }
    let offset = [affine[0][3], affine[1][3], affine[2][3]];
    (Quatern { bcd: rotation_to_bcd(&r), offset, qfac }, spacing)
}

/// The quaternion `(b, c, d)` of a proper rotation, with `a ≥ 0` (nifti1_io.c's case analysis for stability).
fn rotation_to_bcd(r: &Mat3) -> [f64; 3] {
    let trace = r[0][0] + r[1][1] + r[2][2] + 1.0;
    let (a, b, c, d);
    if trace > 0.5 {
        a = 0.5 * trace.sqrt();
        b = 0.25 * (r[2][1] - r[1][2]) / a;
        c = 0.25 * (r[0][2] - r[2][0]) / a;
        d = 0.25 * (r[1][0] - r[0][1]) / a;
    } else {
        let xd = 1.0 + r[0][0] - (r[1][1] + r[2][2]);
        let yd = 1.0 + r[1][1] - (r[0][0] + r[2][2]);
        let zd = 1.0 + r[2][2] - (r[0][0] + r[1][1]);
        if xd > 1.0 {
            b = 0.5 * xd.sqrt();
            c = 0.25 * (r[0][1] + r[1][0]) / b;
            d = 0.25 * (r[0][2] + r[2][0]) / b;
            a = 0.25 * (r[2][1] - r[1][2]) / b;
        } else if yd > 1.0 {
            c = 0.5 * yd.sqrt();
            b = 0.25 * (r[0][1] + r[1][0]) / c;
            d = 0.25 * (r[1][2] + r[2][1]) / c;
            a = 0.25 * (r[0][2] - r[2][0]) / c;
        } else {
            d = 0.5 * zd.sqrt();
            b = 0.25 * (r[0][2] + r[2][0]) / d;
            c = 0.25 * (r[1][2] + r[2][1]) / d;
            a = 0.25 * (r[1][0] - r[0][1]) / d;
        }
    }
    if a < 0.0 {
        [-b, -c, -d]
    } else {
        [b, c, d]
    }
}

/// The orthogonal factor of the polar decomposition (Higham's iteration `X ← (X + X⁻ᵀ)/2`), as nifti1_io.c's
/// `nifti_mat33_polar`; the identity for a singular input.
fn polar(m: Mat3) -> Mat3 {
    let mut x = m;
    for _ in 0..100 {
        let Some(inv) = inverse(&x) else { return identity() };
        let mut next = [[0.0; 3]; 3];
        let mut change = 0.0_f64;
        for i in 0..3 {
            for j in 0..3 {
                next[i][j] = 0.5 * (x[i][j] + inv[j][i]);
                change = change.max((next[i][j] - x[i][j]).abs());
            }
        }
        x = next;
        if change < 1e-12 {
            break;
        }
    }
    x
}

fn det(m: &Mat3) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

fn inverse(m: &Mat3) -> Option<Mat3> {
    let d = det(m);
    if d.abs() < 1e-300 {
        return None;
    }
    let c = |i: usize, j: usize| {
        let (r0, r1) = ((i + 1) % 3, (i + 2) % 3);
        let (c0, c1) = ((j + 1) % 3, (j + 2) % 3);
        m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0]
    };
    let mut inv = [[0.0; 3]; 3];
    for (i, row) in inv.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            // inverse = adjugate / det; adjugate[i][j] = cofactor[j][i].
            *v = c(j, i) / d;
        }
    }
    Some(inv)
}

fn identity() -> Mat3 {
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[[f64; 4]; 4], b: &[[f64; 4]; 4], tol: f64) -> bool {
        a.iter().flatten().zip(b.iter().flatten()).all(|(x, y)| (x - y).abs() < tol)
    }

    #[test]
    fn rotations_with_and_without_flip_round_trip() {
        // Rotation of 30° about z, then 20° about x, spacing (1.2, 0.8, 6.0), with and without a flipped k axis.
        let (cz, sz) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
        let (cx, sx) = (20f64.to_radians().cos(), 20f64.to_radians().sin());
        let rz = [[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]];
        let rx = [[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]];
        let mut r = [[0.0; 3]; 3];
        for i in 0..3 {
            for j in 0..3 {
                r[i][j] = (0..3).map(|k| rx[i][k] * rz[k][j]).sum();
            }
        }
        for flip in [1.0, -1.0] {
            let scale = [1.2, 0.8, 6.0 * flip];
            let mut affine = [[0.0; 4]; 4];
            for i in 0..3 {
                for j in 0..3 {
                    affine[i][j] = r[i][j] * scale[j];
                }
            }
            affine[0][3] = -10.0;
            affine[1][3] = 25.5;
            affine[2][3] = 3.0;
            affine[3][3] = 1.0;
            let (q, spacing) = affine_to_quatern(&affine);
            assert_eq!(q.qfac, flip);
            assert!((spacing[2] - 6.0).abs() < 1e-12);
            assert!(close(&quatern_to_affine(&q, spacing), &affine, 1e-9), "{q:?}");
        }
    }

    #[test]
    fn a_half_turn_uses_the_special_case() {
        // 180° about x: b = 1, a = 0.
        let affine = [[2.0, 0.0, 0.0, 0.0], [0.0, -2.0, 0.0, 0.0], [0.0, 0.0, -3.0, 0.0], [0.0, 0.0, 0.0, 1.0]];
        let (q, spacing) = affine_to_quatern(&affine);
        assert!((q.bcd[0].abs() - 1.0).abs() < 1e-12);
        assert!(close(&quatern_to_affine(&q, spacing), &affine, 1e-9));
    }
}
