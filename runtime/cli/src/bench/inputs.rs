//! The images a benchmark cycles through: the dataset's test set, a data file or
//! deterministic synthetic images, and the pool that the calls take their batches from.

use super::*;

/// Images in the pool the calls cycle through (the first of the data, when it has more).
const POOL_IMAGES: usize = 1000;

/// The images the calls cycle through: `images` of them, then the first `batch - 1`
/// again, so that the batch starting at any image of the pool is one contiguous slice.
pub(super) struct Pool {
    pixels: Vec<u8>,
    pub(super) images: usize,
    batch: usize,
}

impl Pool {
    /// The pool of `source`'s first [`POOL_IMAGES`] images (at least one).
    pub(super) fn new(source: &[u8], batch: usize) -> Pool {
        let images = (source.len() / IMAGE_PIXELS).min(POOL_IMAGES);
        let pixels = (0..images + batch - 1)
            .flat_map(|i| {
                let i = i % images;
                &source[i * IMAGE_PIXELS..(i + 1) * IMAGE_PIXELS]
            })
            .copied()
            .collect();
        Pool {
            pixels,
            images,
            batch,
        }
    }

    /// The batch starting at image `start` (less than the pool's size).
    pub(super) fn batch(&self, start: usize) -> &[u8] {
        &self.pixels[start * IMAGE_PIXELS..(start + self.batch) * IMAGE_PIXELS]
    }

    /// The start after `start`.
    pub(super) fn next(&self, start: usize) -> usize {
        (start + self.batch) % self.images
    }
}

/// `count` deterministic synthetic images that look roughly like the dataset's: a light,
/// textured garment-shaped blob (a body with or without sleeves or legs) centred on black.
fn synthetic(count: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut random = move |below: u64| {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) % below
    };
    let mut pixels = vec![0u8; count * IMAGE_PIXELS];
    for image in pixels.chunks_exact_mut(IMAGE_PIXELS) {
        let half_width = 4 + random(8) as i64;
        let top = 2 + random(6) as i64;
        let bottom = 20 + random(7) as i64;
        let arms = random(3) as i64 * 3;
        let legs = random(2) == 1;
        let level = 60 + random(160) as i64;
        for (index, pixel) in image.iter_mut().enumerate() {
            let (y, x) = ((index / 28) as i64, (index % 28) as i64 - 14);
            let body = y >= top && y <= bottom && x.abs() <= half_width;
            let sleeve = y >= top && y <= top + 8 && x.abs() <= half_width + arms;
            let gap = legs && y > (top + bottom) / 2 && x.abs() <= 1;
            if (body || sleeve) && !gap {
                let shade = level + random(50) as i64 - 25 - (y - top) % 4 * 4;
                *pixel = shade.clamp(1, 255) as u8;
            }
        }
    }
    pixels
}

/// The images to benchmark on, and how to name them.
pub(super) struct Inputs {
    pub(super) pixels: Vec<u8>,
    /// "test set", "data file" or "synthetic".
    pub(super) kind: &'static str,
    /// Where they come from (none for synthetic images).
    pub(super) source: Option<PathBuf>,
}

/// The images that `--data` or `--synthetic` name, at most [`POOL_IMAGES`] of them.
pub(super) fn inputs(args: &BenchArgs) -> anyhow::Result<Inputs> {
    let synthetic_inputs = || Inputs {
        pixels: synthetic(POOL_IMAGES),
        kind: "synthetic",
        source: None,
    };
    if args.synthetic {
        return Ok(synthetic_inputs());
    }
    let kind = |path: &Path| {
        if path.is_dir() {
            "test set"
        } else {
            "data file"
        }
    };
    match &args.data {
        Some(path) => {
            let mut pixels = crate::predict::load(path)?.images;
            if pixels.len() < IMAGE_PIXELS {
                anyhow::bail!("{}: no images", path.display());
            }
            pixels.truncate(POOL_IMAGES * IMAGE_PIXELS);
            Ok(Inputs {
                pixels,
                kind: kind(path),
                source: Some(path.clone()),
            })
        }
        None => {
            let dir = Path::new(DEFAULT_DATA_DIR);
            if !dir.is_dir() {
                return Ok(synthetic_inputs());
            }
            match dataset::load_split(dir, Split::Test) {
                Ok(set) if !set.is_empty() => {
                    let mut pixels = set.images;
                    pixels.truncate(POOL_IMAGES * IMAGE_PIXELS);
                    Ok(Inputs {
                        pixels,
                        kind: "test set",
                        source: Some(dir.to_path_buf()),
                    })
                }
                Ok(_) => Ok(synthetic_inputs()),
                Err(error) => {
                    eprintln!("warning: {error}; benchmarking on synthetic images");
                    Ok(synthetic_inputs())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_wraps_so_that_every_batch_is_contiguous() {
        let source: Vec<u8> = (0..3u8)
            .flat_map(|i| std::iter::repeat_n(i, IMAGE_PIXELS))
            .collect();
        let pool = Pool::new(&source, 5);
        assert_eq!(pool.images, 3);
        let batch = pool.batch(2);
        let firsts: Vec<u8> = batch.chunks(IMAGE_PIXELS).map(|image| image[0]).collect();
        assert_eq!(firsts, [2, 0, 1, 2, 0]);
        assert_eq!(pool.next(2), 1);
    }

    #[test]
    fn synthetic_images_are_deterministic_and_not_blank() {
        let a = synthetic(10);
        assert_eq!(a, synthetic(10));
        for image in a.chunks(IMAGE_PIXELS) {
            let lit = image.iter().filter(|&&p| p > 0).count();
            assert!((50..700).contains(&lit), "{lit}");
        }
    }
}
