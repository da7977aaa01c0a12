//! The Fashion-MNIST task: image geometry and class names, shared by every layer.

/// Width and height of one image, in pixels.
pub const IMAGE_SIDE: usize = 28;
/// Pixels in one image (28 x 28), one byte each, 0 = black background.
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
/// Number of classes.
pub const CLASS_COUNT: usize = 10;
/// Class names in label order (label 0 is "T-shirt/top").
pub const CLASS_NAMES: [&str; CLASS_COUNT] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
/// Real value of one pixel step: pixel `p` (u8) is fed to the float models as
/// `p * INPUT_SCALE` (`p / 255`, the notebook's scaling). The trainer's batches, both
/// exporters and the blob's `input_scale` all use this one constant.
pub const INPUT_SCALE: f32 = 1.0 / 255.0;
