//! Small synthetic Fashion-MNIST look-alikes for tests and examples: each class draws a
//! bright bar at its own place, plus noise, so a model can learn them in a few steps.

use std::path::Path;

use fmnist_runtime::dataset::{encode_idx_images, encode_idx_labels, LabeledImages};
use fmnist_runtime::{CLASS_COUNT, IMAGE_PIXELS, IMAGE_SIDE};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// `count` images, labels cycling through the classes, reproducible from `seed`.
pub fn images(count: usize, seed: u64) -> LabeledImages {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut set = LabeledImages::default();
    for index in 0..count {
        let label = (index % CLASS_COUNT) as u8;
        let mut image = [0u8; IMAGE_PIXELS];
        for pixel in image.iter_mut() {
            *pixel = rng.random_range(0..60);
        }
        // Class k: a bar 2 pixels thick, horizontal for k < 5, vertical otherwise.
        let at = 4 + 4 * (usize::from(label) % 5);
        for along in 4..IMAGE_SIDE - 4 {
            for across in at..at + 2 {
                let (y, x) = if label < 5 {
                    (across, along)
                } else {
                    (along, across)
                };
                image[y * IMAGE_SIDE + x] = rng.random_range(200..=255);
            }
        }
        set.images.extend_from_slice(&image);
        set.labels.push(label);
    }
    set
}

/// Writes a data directory in the upstream layout (uncompressed IDX) with `train` training
/// and `test` test images.
pub fn write_dataset(dir: &Path, train: usize, test: usize) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (stem, set) in [("train", images(train, 1)), ("t10k", images(test, 2))] {
        std::fs::write(
            dir.join(format!("{stem}-images-idx3-ubyte")),
            encode_idx_images(&set.images),
        )?;
        std::fs::write(
            dir.join(format!("{stem}-labels-idx1-ubyte")),
            encode_idx_labels(&set.labels),
        )?;
    }
    Ok(())
}
