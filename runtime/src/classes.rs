//! The Fashion-MNIST task: image geometry and class names, shared by every layer.

/// Width and height of one image, in pixels.
pub const IMAGE_SIDE: usize = 28;
/// Pixels in one image (28 x 28), one byte each, 0 = black background.
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;

/// One 28x28 gray image, row-major, 0 = black background (the dataset's convention): what
/// [`Plan::classify`](crate::Plan::classify) takes, so that an image of another length is
/// a type error, not a run-time one. A slice becomes one with `slice.try_into()`:
///
/// ```
/// let pixels = vec![0u8; 784]; // from a camera, a file...
/// let image: &fmnist_runtime::Image = pixels.as_slice().try_into()?;
/// # Ok::<(), core::array::TryFromSliceError>(())
/// ```
///
/// ```compile_fail
/// # let plan = fmnist_runtime::Plan::new(&[]).unwrap();
/// # let mut arena = [0u8; 16];
/// // 783 pixels: does not compile.
/// plan.classify(&[0u8; 783], &mut arena);
/// ```
pub type Image = [u8; IMAGE_PIXELS];
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
