//! Any image file to a Fashion-MNIST input, as the dataset itself was made: gray, light
//! garment on black, empty border trimmed, longest side scaled to 28, centred in 28x28.
//!
//! Files are shown as a viewer shows them: the orientation a camera records (the EXIF tag of
//! a JPEG, TIFF, WebP or PNG) is applied. A JPEG of more than [`MAX_PIXELS`] is scaled
//! down while it is decoded (`jpeg` module), so that camera photos of any size are read;
//! other formats are decoded at full size and refused above [`MAX_PIXELS`].

use std::io::{BufReader, Seek, SeekFrom};
use std::path::Path;

use image::metadata::Orientation;
use image::{
    imageops, DynamicImage, GenericImageView, GrayImage, ImageDecoder, ImageFormat, ImageReader,
    Limits, Luma,
};

use crate::classes::{IMAGE_PIXELS, IMAGE_SIDE};

mod jpeg;

pub use jpeg::JPEG_MIN_SIDE;

/// Images whose header claims more pixels than this per side are refused before decoding,
/// JPEGs included.
pub const MAX_SIDE: u32 = 16_384;

/// Images whose header claims more pixels than this in all (16 Mpixel, 4096x4096) are not
/// decoded at full size: the decode buffer of the widest colour type (RGBA, 16 bits per
/// channel: 8 bytes a pixel) then stays at 128 MiB, and the whole of classifying one image
/// under 256 MB. A larger JPEG is scaled down by 2, 4 or 8 while it is decoded (never to
/// more than this); a larger image in another format is refused before decoding.
pub const MAX_PIXELS: u64 = 1 << 24;

/// What the decoder may allocate for one image: the decode buffer ([`MAX_PIXELS`] x 8
/// bytes at most) and its own working memory. For a JPEG scaled while decoding, its
/// estimate of the scaled planes, the output and (progressive JPEGs) the DCT coefficients
/// of the whole image.
pub const MAX_DECODE_BYTES: u64 = 192 << 20;

/// The largest image file read: some decoders (JPEG) read the whole file into memory
/// first, so its size counts against the same budget. 64 MiB is far beyond any image of
/// [`MAX_PIXELS`] a camera or an editor writes.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Whether to invert the gray levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invert {
    /// Invert when the border is mostly light (a product photo on white).
    Auto,
    /// Always invert.
    Yes,
    /// Never invert.
    No,
}

/// An image that could not be read or decoded. Names the file; the cause is its source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The file could not be opened or read.
    #[error("{}: cannot read", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The content is not an image in a format this crate decodes.
    #[error("{}: not an image in a known format", path.display())]
    UnknownFormat {
        /// The file.
        path: std::path::PathBuf,
    },
    /// The header announces more pixels than [`MAX_PIXELS`] in a format other than JPEG,
    /// or a side over [`MAX_SIDE`]; refused before decoding.
    #[error(
        "{}: {width}x{height} pixels, more than the {} (4096x4096) decoded at full size, or a \
         side over {}; only JPEGs are scaled down while decoding (any size up to {}x{})",
        path.display(),
        MAX_PIXELS,
        MAX_SIDE,
        MAX_SIDE,
        MAX_SIDE
    )]
    TooLarge {
        /// The file.
        path: std::path::PathBuf,
        /// Width in the header.
        width: u32,
        /// Height in the header.
        height: u32,
    },
    /// The header announces no pixels (a width or height of 0), which some decoders
    /// (PNM's) accept.
    #[error("{}: {width}x{height} pixels, an empty image", path.display())]
    Empty {
        /// The file.
        path: std::path::PathBuf,
        /// Width in the header.
        width: u32,
        /// Height in the header.
        height: u32,
    },
    /// The file is larger than [`MAX_FILE_BYTES`]; refused before reading it.
    #[error(
        "{}: a file of {bytes} bytes, more than the {} read as an image",
        path.display(),
        MAX_FILE_BYTES
    )]
    FileTooLarge {
        /// The file.
        path: std::path::PathBuf,
        /// Its size.
        bytes: u64,
    },
    /// A JPEG of more than [`MAX_PIXELS`] that cannot be scaled down while decoding within
    /// [`MAX_DECODE_BYTES`]: a progressive JPEG's DCT coefficients are held whole (2 bytes
    /// a sample), and a lossless JPEG is not scaled. Refused before decoding.
    #[error(
        "{}: a {coding} JPEG of {width}x{height} pixels, more than the {} (4096x4096) decoded \
         at full size, and {why}",
        path.display(),
        MAX_PIXELS
    )]
    JpegTooLarge {
        /// The file.
        path: std::path::PathBuf,
        /// Width in the header.
        width: u32,
        /// Height in the header.
        height: u32,
        /// "progressive" or "lossless".
        coding: &'static str,
        /// Why it is not scaled while decoding.
        why: String,
    },
    /// The decoder refused the image (corrupt data, or dimensions over the limits).
    #[error("{}: cannot decode", path.display())]
    Decode {
        /// The file.
        path: std::path::PathBuf,
        /// The decoder's error.
        #[source]
        source: image::ImageError,
    },
}

/// Reads and decodes `path` (PNG, JPEG, GIF, BMP, TIFF, WebP, PNM; format guessed from the
/// content), applies its orientation tag, and prepares it as [`prepare`] does, with one
/// gray copy of the decoded image at most (two while it is turned by 90 degrees, once the
/// decoded image is freed). More than [`MAX_PIXELS`] from the header is refused before
/// decoding, except in a JPEG: that is scaled down while decoding to
/// [`MAX_PIXELS`] at most (the first of 1/8, 1/4, 1/2 that keeps [`JPEG_MIN_SIDE`] pixels
/// on the short side).
pub fn load(path: &Path, invert: Invert) -> Result<[u8; IMAGE_PIXELS], ImageError> {
    Ok(prepare_gray(load_gray(path)?, invert))
}

/// The file's pixels in gray, upright.
fn load_gray(path: &Path) -> Result<GrayImage, ImageError> {
    let read = |source| ImageError::Read {
        path: path.to_path_buf(),
        source,
    };
    let decode = |source| ImageError::Decode {
        path: path.to_path_buf(),
        source,
    };
    // What was opened is checked (a regular file, its size), not the name a moment earlier.
    let file = crate::dataset::open_checked(path).map_err(read)?;
    let bytes = file.metadata().map_err(read)?.len();
    if bytes > MAX_FILE_BYTES {
        return Err(ImageError::FileTooLarge {
            path: path.to_path_buf(),
            bytes,
        });
    }
    let mut reader = ImageReader::new(BufReader::new(file));
    // As `ImageReader::open`: the extension's format, unless the content says otherwise.
    if let Ok(format) = ImageFormat::from_path(path) {
        reader.set_format(format);
    }
    let mut reader = reader.with_guessed_format().map_err(read)?;
    let Some(format) = reader.format() else {
        return Err(ImageError::UnknownFormat {
            path: path.to_path_buf(),
        });
    };
    if format == ImageFormat::Jpeg {
        // Its frame header says whether it is over the cap; if so, it is scaled while
        // decoding. Otherwise (or if this header reader does not take it) the `image`
        // crate's decoder reads it from the start, as any other file.
        let mut input = reader.into_inner();
        if let Some(gray) = jpeg::load_scaled(&mut input, path)? {
            return Ok(gray);
        }
        input.seek(SeekFrom::Start(0)).map_err(read)?;
        reader = ImageReader::with_format(input, ImageFormat::Jpeg);
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits.clone());
    // The decoder reads the header only (a GIF's logical screen, a PNG's IHDR, a JPEG's
    // frame header); nothing of the image's size is allocated before the check.
    let mut decoder = reader.into_decoder().map_err(decode)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(ImageError::Empty {
            path: path.to_path_buf(),
            width,
            height,
        });
    }
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(ImageError::TooLarge {
            path: path.to_path_buf(),
            width,
            height,
        });
    }
    // From the header's metadata (EXIF in JPEG, PNG, WebP; the TIFF tag). An orientation
    // that cannot be read leaves the pixels as stored, as viewers do; the pixels
    // themselves are still checked by the decoder.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    limits.reserve(decoder.total_bytes()).map_err(decode)?;
    decoder.set_limits(limits).map_err(decode)?;
    let image = DynamicImage::from_decoder(decoder).map_err(decode)?;
    let gray = into_gray(image);
    Ok(orient(gray, orientation))
}

/// `gray` turned or flipped as `orientation` says, as [`DynamicImage::apply_orientation`]
/// does: flips and the half turn in place, a quarter turn into a new gray buffer.
fn orient(gray: GrayImage, orientation: Orientation) -> GrayImage {
    if orientation == Orientation::NoTransforms {
        return gray;
    }
    let mut image = DynamicImage::ImageLuma8(gray);
    image.apply_orientation(orientation);
    // A gray image stays gray: this moves its buffer, no copy.
    image.into_luma8()
}

/// Gray, inverted if needed, trimmed, scaled and centred. A 28x28 image is only made gray
/// and (if needed) inverted: it already has the dataset's geometry.
pub fn prepare(image: &DynamicImage, invert: Invert) -> [u8; IMAGE_PIXELS] {
    prepare_gray(to_gray(image), invert)
}

fn prepare_gray(gray: GrayImage, invert: Invert) -> [u8; IMAGE_PIXELS] {
    let invert = match invert {
        Invert::Yes => true,
        Invert::No => false,
        Invert::Auto => border_mean(&gray) > 127.0,
    };
    let mut gray = gray;
    if invert {
        imageops::invert(&mut gray);
    }
    let side = IMAGE_SIDE as u32;
    let placed = if gray.dimensions() == (side, side) {
        gray
    } else {
        fit(&gray)
    };
    let mut pixels = [0u8; IMAGE_PIXELS];
    pixels.copy_from_slice(placed.as_raw());
    pixels
}

/// [`to_gray`], taking the buffer of an image that is gray already.
fn into_gray(image: DynamicImage) -> GrayImage {
    match image {
        DynamicImage::ImageLuma8(gray) => gray,
        image => to_gray(&image),
    }
}

/// Gray levels; transparent pixels are composited over white (the usual product-photo
/// background), so they become background after inversion. Converts pixel by pixel into
/// the one gray buffer: no RGBA copy of the whole image.
fn to_gray(image: &DynamicImage) -> GrayImage {
    if image.color().has_alpha() {
        let mut gray = GrayImage::new(image.width(), image.height());
        // `GenericImageView::pixels` gives each pixel as 8-bit RGBA, converted as
        // `to_rgba8` would.
        for (out, (_, _, px)) in gray.pixels_mut().zip(image.pixels()) {
            let [r, g, b, a] = px.0.map(f32::from);
            let luma = 0.299 * r + 0.587 * g + 0.114 * b;
            let alpha = a / 255.0;
            *out = Luma([(luma * alpha + 255.0 * (1.0 - alpha)).round() as u8]);
        }
        gray
    } else {
        image.to_luma8()
    }
}

fn border_mean(gray: &GrayImage) -> f64 {
    let (w, h) = gray.dimensions();
    let mut sum = 0u64;
    let mut count = 0u64;
    for (x, y, px) in gray.enumerate_pixels() {
        if x == 0 || y == 0 || x + 1 == w || y + 1 == h {
            sum += u64::from(px.0[0]);
            count += 1;
        }
    }
    sum as f64 / count.max(1) as f64
}

/// Trims the dark border, scales the longest side to 28 and centres the result.
fn fit(gray: &GrayImage) -> GrayImage {
    let threshold = 32;
    let (w, h) = gray.dimensions();
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for (x, y, px) in gray.enumerate_pixels() {
        if px.0[0] > threshold {
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
        }
    }
    // A view, not a copy: the resize reads the kept region in place.
    let cropped = if x0 <= x1 && y0 <= y1 {
        imageops::crop_imm(gray, x0, y0, x1 - x0 + 1, y1 - y0 + 1)
    } else {
        imageops::crop_imm(gray, 0, 0, w, h)
    };
    let (cw, ch) = cropped.dimensions();
    let side = IMAGE_SIDE as u32;
    let scale = f64::from(side) / f64::from(cw.max(ch));
    let nw = ((f64::from(cw) * scale).round() as u32).clamp(1, side);
    let nh = ((f64::from(ch) * scale).round() as u32).clamp(1, side);
    let resized = imageops::resize(&*cropped, nw, nh, imageops::FilterType::CatmullRom);
    let mut canvas = GrayImage::new(side, side);
    imageops::overlay(
        &mut canvas,
        &resized,
        i64::from((side - nw) / 2),
        i64::from((side - nh) / 2),
    );
    canvas
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dark_garment_on_white_is_inverted_trimmed_and_centred() {
        // 100x50 white image with a black 40x20 block off-centre.
        let mut gray = GrayImage::from_pixel(100, 50, Luma([255]));
        for y in 5..25 {
            for x in 10..50 {
                gray.put_pixel(x, y, Luma([0]));
            }
        }
        let pixels = prepare(&DynamicImage::ImageLuma8(gray), Invert::Auto);
        // The block's 40 px wide side is scaled to 28 and centred: 28 x 14, rows 7..21.
        assert_eq!(pixels[14 * 28 + 14], 255);
        assert_eq!(pixels[14 * 28], 255);
        assert_eq!(pixels[2 * 28 + 14], 0);
        assert_eq!(pixels[25 * 28 + 14], 0);
        let lit = pixels.iter().filter(|&&p| p > 128).count();
        assert!((28 * 13..=28 * 15).contains(&lit), "{lit}");
    }

    #[test]
    fn a_28x28_dataset_image_is_kept_as_is() {
        let gray = GrayImage::from_fn(28, 28, |x, y| Luma([((x * 9 + y) % 200) as u8]));
        let pixels = prepare(&DynamicImage::ImageLuma8(gray.clone()), Invert::Auto);
        assert_eq!(&pixels[..], gray.as_raw().as_slice());
        let inverted = prepare(&DynamicImage::ImageLuma8(gray.clone()), Invert::Yes);
        assert_eq!(inverted[1], 255 - gray.as_raw()[1]);
    }
}
