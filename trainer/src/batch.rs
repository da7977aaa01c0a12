//! Turning u8 images into float batches, with the training-time augmentation.

use burn::prelude::*;
use fmnist_runtime::dataset::LabeledImages;
use fmnist_runtime::{IMAGE_PIXELS, IMAGE_SIDE, INPUT_SCALE};
use rand::rngs::StdRng;
use rand::Rng;

/// The random shift, in pixels, of the augmentation (pad by 2, crop back to 28x28).
pub const MAX_SHIFT: i32 = 2;

/// Images `indices` of `set` as a `[n, 1, 28, 28]` float tensor and their labels `[n]`.
/// With `augment`, each image is shifted by up to [`MAX_SHIFT`] pixels each way (zero
/// filled) and mirrored left-right half the time.
pub fn batch<B: Backend>(
    set: &LabeledImages,
    indices: &[usize],
    augment: Option<&mut StdRng>,
    device: &B::Device,
) -> (Tensor<B, 4>, Tensor<B, 1, Int>) {
    let mut pixels = vec![0f32; indices.len() * IMAGE_PIXELS];
    let mut rng = augment;
    for (out, &index) in pixels.chunks_exact_mut(IMAGE_PIXELS).zip(indices) {
        let image = set.image(index);
        match rng.as_deref_mut() {
            None => out
                .iter_mut()
                .zip(image)
                .for_each(|(o, &p)| *o = f32::from(p) * INPUT_SCALE),
            Some(rng) => {
                let dy = rng.random_range(-MAX_SHIFT..=MAX_SHIFT);
                let dx = rng.random_range(-MAX_SHIFT..=MAX_SHIFT);
                let flip = rng.random_bool(0.5);
                shift_flip(image, out, dy, dx, flip);
            }
        }
    }
    let labels: Vec<i64> = indices.iter().map(|&i| i64::from(set.labels[i])).collect();
    let n = indices.len();
    (
        Tensor::from_data(
            TensorData::new(pixels, [n, 1, IMAGE_SIDE, IMAGE_SIDE]),
            device,
        ),
        Tensor::from_data(TensorData::new(labels, [n]), device),
    )
}

/// Whole images, 784 pixels each one after the other (as IDX files and
/// [`LabeledImages::images`] hold them), as a `[n, 1, 28, 28]` float tensor scaled by
/// [`INPUT_SCALE`], as the models take them. A partial image at the end is left out.
pub fn images_tensor<B: Backend>(pixels: &[u8], device: &B::Device) -> Tensor<B, 4> {
    let n = pixels.len() / IMAGE_PIXELS;
    let scaled: Vec<f32> = pixels[..n * IMAGE_PIXELS]
        .iter()
        .map(|&p| f32::from(p) * INPUT_SCALE)
        .collect();
    Tensor::from_data(
        TensorData::new(scaled, [n, 1, IMAGE_SIDE, IMAGE_SIDE]),
        device,
    )
}

/// A tensor's values as `f32`, row-major (empty if the backend cannot convert them).
pub fn to_f32_vec<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .into_vec()
        .unwrap_or_default()
}

/// out[y][x] = image[y - dy][x' - dx] scaled, where x' mirrors x when `flip`; zero outside.
fn shift_flip(image: &[u8], out: &mut [f32], dy: i32, dx: i32, flip: bool) {
    let side = IMAGE_SIDE as i32;
    for y in 0..side {
        let sy = y - dy;
        for x in 0..side {
            let tx = if flip { side - 1 - x } else { x };
            let sx = tx - dx;
            out[(y * side + x) as usize] = if (0..side).contains(&sy) && (0..side).contains(&sx) {
                f32::from(image[(sy * side + sx) as usize]) * INPUT_SCALE
            } else {
                0.0
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_tensor_scales_like_the_batches() {
        use crate::backend::Cpu;
        let set = crate::synthetic::images(3, 1);
        let device = Default::default();
        let (batch, _) = batch::<Cpu>(&set, &[0, 1, 2], None, &device);
        let mut pixels = set.images.clone();
        pixels.push(255); // a partial image is left out
        let tensor = images_tensor::<Cpu>(&pixels, &device);
        assert_eq!(tensor.dims(), [3, 1, IMAGE_SIDE, IMAGE_SIDE]);
        assert_eq!(to_f32_vec(tensor), to_f32_vec(batch));
    }

    #[test]
    fn shift_moves_pixels_and_fills_with_black() {
        let mut image = [0u8; IMAGE_PIXELS];
        image[0] = 255; // top-left corner
        let mut out = [0f32; IMAGE_PIXELS];
        shift_flip(&image, &mut out, 1, 2, false);
        assert_eq!(out[IMAGE_SIDE + 2], 1.0);
        assert_eq!(out.iter().filter(|&&v| v != 0.0).count(), 1);
        shift_flip(&image, &mut out, 0, 0, true);
        assert_eq!(out[IMAGE_SIDE - 1], 1.0);
        shift_flip(&image, &mut out, -1, 0, false);
        assert!(out.iter().all(|&v| v == 0.0), "shifted out of the frame");
    }
}
