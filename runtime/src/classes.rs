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
