//! PNG preview of a subject tensor: a grid with one row per frame (ED on top, ES below) and one tile per slice
//! (base on the left), the image in grey with the mask's outline drawn over it (LV red, MYO green, RV blue).
//! Tiles are separated by a 2-pixel dark border. The PNG carries no timestamp, so the bytes are deterministic.

use cmr_core::labels::{BACKGROUND, LV, MYO, RV};
use ndarray::{ArrayView2, Axis};

use crate::store::SubjectTensor;

/// Gap between tiles, in pixels.
const GAP: usize = 2;
/// Colour of the gaps.
const GAP_RGB: [u8; 3] = [24, 24, 24];

/// Outline colour of a canonical label.
fn colour(label: u8) -> Option<[u8; 3]> {
    match label {
        LV => Some([230, 60, 60]),
        MYO => Some([70, 200, 70]),
        RV => Some([70, 130, 240]),
        _ => None,
    }
}

/// Encodes the preview of `t` as an 8-bit RGB PNG.
pub fn preview_png(t: &SubjectTensor) -> Vec<u8> {
    let [_, slices, h, w] = t.image.shape().try_into().expect("subject tensors have 4 axes");
    let width = slices * w + (slices + 1) * GAP;
    let height = 2 * h + 3 * GAP;
    let mut rgb = GAP_RGB.repeat(width * height);
    for frame in 0..2 {
        let (image, mask) = (t.image.index_axis(Axis(0), frame), t.mask.index_axis(Axis(0), frame));
        for k in 0..slices {
            let (top, left) = (GAP + frame * (h + GAP), GAP + k * (w + GAP));
            draw_tile(&mut rgb, width, (top, left), image.index_axis(Axis(0), k), mask.index_axis(Axis(0), k));
        }
    }
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, width as u32, height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().expect("writing to a Vec cannot fail");
    writer.write_image_data(&rgb).expect("buffer size matches the header");
    writer.finish().expect("writing to a Vec cannot fail");
    png
}

fn draw_tile(
    rgb: &mut [u8],
    width: usize,
    (top, left): (usize, usize),
    image: ArrayView2<'_, f32>,
    mask: ArrayView2<'_, u8>,
) {
    let (h, w) = image.dim();
    for r in 0..h {
        for c in 0..w {
            let label = mask[[r, c]];
            let grey = (image[[r, c]].clamp(0.0, 1.0) * 255.0).round() as u8;
            let pixel = match colour(label) {
                Some(rgb) if is_edge(mask, r, c) => rgb,
                _ => [grey; 3],
            };
            let at = ((top + r) * width + left + c) * 3;
            rgb[at..at + 3].copy_from_slice(&pixel);
        }
    }
}

/// A labelled pixel on the tile border or with a 4-neighbour of another label.
fn is_edge(mask: ArrayView2<'_, u8>, r: usize, c: usize) -> bool {
    let (h, w) = mask.dim();
    let label = mask[[r, c]];
    if label == BACKGROUND {
        return false;
    }
    if r == 0 || c == 0 || r + 1 == h || c + 1 == w {
        return true;
    }
    [(r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)].iter().any(|&(i, j)| mask[[i, j]] != label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    #[test]
    fn the_grid_has_a_row_per_frame_and_outlines_labels() {
        let mut mask = Array4::<u8>::zeros((2, 3, 10, 12));
        mask.slice_mut(ndarray::s![.., .., 3..7, 4..8]).fill(LV);
        let t = SubjectTensor {
            image: Array4::from_elem((2, 3, 10, 12), 0.5),
            mask,
            spacing_mm: [8.0, 1.5, 1.5],
            source_sha256: vec![],
        };
        let png_bytes = preview_png(&t);
        assert_eq!(png_bytes, preview_png(&t));
        let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (3 * 12 + 4 * GAP as u32, 2 * 10 + 3 * GAP as u32));
        let px = |x: usize, y: usize| &buf[(y * info.width as usize + x) * 3..][..3];
        // Tile (ED, slice 0) starts at (GAP, GAP): its LV square's corner is outlined, its inside stays grey.
        assert_eq!(px(GAP + 4, GAP + 3), colour(LV).unwrap());
        assert_eq!(px(GAP + 5, GAP + 4), [128, 128, 128]);
        assert_eq!(px(0, 0), GAP_RGB);
    }
}
