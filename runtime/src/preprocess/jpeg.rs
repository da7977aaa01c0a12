//! JPEGs over [`MAX_PIXELS`] (camera photos: 12 to 100+ Mpixel), scaled down while they
//! are decoded: `jpeg-decoder`'s scaled inverse DCT gives 1/2, 1/4 or 1/8 of each side
//! straight from the coefficients, so the full-size image never exists. A baseline JPEG
//! holds one row of blocks at a time; a progressive one holds the coefficients of the
//! whole image (2 bytes a sample), which [`MAX_DECODE_BYTES`] bounds.

use std::io::Read;
use std::path::Path;

use image::error::{DecodingError, ImageFormatHint};
use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, ImageFormat, RgbImage};
use jpeg_decoder::{CodingProcess, Decoder, PixelFormat};

use super::{orient, ImageError, MAX_DECODE_BYTES, MAX_PIXELS, MAX_SIDE};

/// The short side that a JPEG scaled while decoding keeps at least, when a scale leaves
/// that much: the largest of 1/8, 1/4, 1/2 that does. The 28x28 input is made from the
/// garment's bounding box after the border is trimmed, so a few hundred pixels of it are
/// plenty; 1024 keeps that for a garment filling a third of the photo. A 12000x8400
/// photo is decoded as 1500x1050, a 6000x4500 one as 1500x1125.
pub const JPEG_MIN_SIDE: u32 = 1024;

/// The denominator `n` (1, 2, 4 or 8) of the scale 1/n for a `width`x`height` JPEG: the
/// largest that keeps [`JPEG_MIN_SIDE`] on the short side, raised until the result is
/// within [`MAX_PIXELS`] (a long panorama; always reached within [`MAX_SIDE`] a side).
pub(super) fn scale_denominator(width: u32, height: u32) -> u32 {
    let short = width.min(height);
    let mut n = 8;
    while n > 1 && short.div_ceil(n) < JPEG_MIN_SIDE {
        n /= 2;
    }
    while n < 8 && u64::from(width.div_ceil(n)) * u64::from(height.div_ceil(n)) > MAX_PIXELS {
        n *= 2;
    }
    n
}

/// An upper bound of what `jpeg-decoder` holds for a progressive JPEG's coefficients: 64
/// 16-bit coefficients per 8x8 block of every component, the blocks padded to whole MCUs
/// (at most 4 blocks of a 4x4-subsampled MCU beyond the image on each axis); chroma
/// subsampling is counted as none.
fn coefficient_bytes(width: u32, height: u32, components: u64) -> u64 {
    let blocks = (u64::from(width.div_ceil(8)) + 3) * (u64::from(height.div_ceil(8)) + 3);
    components * blocks * 64 * 2
}

fn components(format: PixelFormat) -> u64 {
    match format {
        PixelFormat::L8 | PixelFormat::L16 => 1,
        PixelFormat::RGB24 => 3,
        PixelFormat::CMYK32 => 4,
    }
}

/// Decodes the JPEG at the start of `input` scaled down, gray and upright, if its frame
/// header announces more than [`MAX_PIXELS`]; `None` for a smaller one, or one whose
/// header `jpeg-decoder` does not take (the `image` crate's decoder then reads it and
/// says what is wrong). `input` is left anywhere.
pub(super) fn load_scaled<R: Read>(
    input: &mut R,
    path: &Path,
) -> Result<Option<GrayImage>, ImageError> {
    let decode = |source: jpeg_decoder::Error| ImageError::Decode {
        path: path.to_path_buf(),
        source: image::ImageError::Decoding(DecodingError::new(
            ImageFormatHint::Exact(ImageFormat::Jpeg),
            source,
        )),
    };
    let mut decoder = Decoder::new(input);
    // Reads the markers up to the frame header: tables, the EXIF segment, nothing of the
    // image's size.
    if decoder.read_info().is_err() {
        return Ok(None);
    }
    let Some(info) = decoder.info() else {
        return Ok(None);
    };
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    if width == 0 || height == 0 || u64::from(width) * u64::from(height) <= MAX_PIXELS {
        return Ok(None);
    }
    let too_large = || ImageError::TooLarge {
        path: path.to_path_buf(),
        width,
        height,
    };
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(too_large());
    }
    let not_scaled = |coding, why| ImageError::JpegTooLarge {
        path: path.to_path_buf(),
        width,
        height,
        coding,
        why,
    };
    let components = components(info.pixel_format);
    let coefficients = match info.coding_process {
        CodingProcess::DctSequential => 0,
        CodingProcess::DctProgressive => coefficient_bytes(width, height, components),
        CodingProcess::Lossless => {
            let why = "lossless JPEGs are not scaled while decoding".to_owned();
            return Err(not_scaled("lossless", why));
        }
    };
    let n = scale_denominator(width, height);
    // Both sides requested: the decoder takes the smallest scale that reaches either.
    let (w, h) = (width.div_ceil(n), height.div_ceil(n));
    let (w, h) = decoder
        .scale(w as u16, h as u16)
        .map_err(decode)
        .map(|(w, h)| (u32::from(w), u32::from(h)))?;
    let pixels = u64::from(w) * u64::from(h);
    if pixels > MAX_PIXELS || w == 0 || h == 0 {
        return Err(too_large());
    }
    check_memory(coefficients, components, (w, h)).map_err(|why| not_scaled("progressive", why))?;
    // Its own check of the output, as a second bound.
    decoder.set_max_decoding_buffer_size(usize::try_from(components * pixels).unwrap_or(0));
    let decoded = decode_guarded(&mut decoder).map_err(decode)?;
    // After the whole file: an EXIF segment after the frame header is found too.
    let orientation = decoder
        .exif_data()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let Some(gray) = gray_in_place(decoded, info.pixel_format, w, h) else {
        return Err(decode(jpeg_decoder::Error::Format(format!(
            "fewer decoded bytes than {w}x{h} pixels"
        ))));
    };
    Ok(Some(orient(gray, orientation)))
}

/// Refuses a decode to `w`x`h` that would hold more than [`MAX_DECODE_BYTES`]: a
/// progressive JPEG's `coefficients`, the scaled planes (padded to whole blocks) and the
/// interleaved output.
fn check_memory(coefficients: u64, components: u64, (w, h): (u32, u32)) -> Result<(), String> {
    let pixels = u64::from(w) * u64::from(h);
    let planes = components * u64::from(w + 32) * u64::from(h + 32);
    let needed = coefficients + planes + components * pixels;
    if needed > MAX_DECODE_BYTES {
        return Err(format!(
            "its DCT coefficients are held whole while decoding: {needed} bytes, more than \
             the {MAX_DECODE_BYTES} allowed"
        ));
    }
    Ok(())
}

/// The decoded pixels. `jpeg-decoder` is fuzzed upstream, but it asserts on some states:
/// a panic is this file's decoding error, not the caller's.
fn decode_guarded<R: Read>(decoder: &mut Decoder<R>) -> Result<Vec<u8>, jpeg_decoder::Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decoder.decode())).unwrap_or_else(
        |_| {
            Err(jpeg_decoder::Error::Format(
                "the decoder stopped on an inconsistent state".to_owned(),
            ))
        },
    )
}

/// `decoded` (`w`x`h` pixels of `format`) made gray in its own buffer, which is then
/// shortened: row by row, each row's gray bytes are written at or before where its pixels
/// began, after they were read. Colour becomes gray by `DynamicImage::to_luma8`, as
/// for every other image (one row at a time, so no full-size copy); CMYK (`jpeg-decoder`
/// undoes Adobe's inversion) first becomes RGB as the `image` crate did with this decoder
/// (`R = (255 - C)(255 - K) / 255`). `None` when the buffer is shorter than `w`x`h`
/// pixels.
fn gray_in_place(mut decoded: Vec<u8>, format: PixelFormat, w: u32, h: u32) -> Option<GrayImage> {
    let row = usize::try_from(w).ok()?;
    let n = row.checked_mul(usize::try_from(h).ok()?)?;
    let bytes = format.pixel_bytes();
    if decoded.len() < n.checked_mul(bytes)? {
        return None;
    }
    match format {
        PixelFormat::L8 => {}
        PixelFormat::L16 => {
            for i in 0..n {
                // Native byte order; rounded to 8 bits as `image` does.
                let v = u16::from_ne_bytes([decoded[2 * i], decoded[2 * i + 1]]);
                decoded[i] = ((u32::from(v) + 128) / 257) as u8;
            }
        }
        PixelFormat::RGB24 | PixelFormat::CMYK32 => {
            for y in 0..n / row.max(1) {
                let pixels = &decoded[y * row * bytes..(y + 1) * row * bytes];
                let rgb: Vec<u8> = if format == PixelFormat::RGB24 {
                    pixels.to_vec()
                } else {
                    pixels
                        .chunks_exact(4)
                        .flat_map(|cmyk| {
                            let k = 255 - u16::from(cmyk[3]);
                            let ink = |c: u8| ((255 - u16::from(c)) * k / 255) as u8;
                            [ink(cmyk[0]), ink(cmyk[1]), ink(cmyk[2])]
                        })
                        .collect()
                };
                let gray = DynamicImage::ImageRgb8(RgbImage::from_raw(w, 1, rgb)?).into_luma8();
                decoded[y * row..(y + 1) * row].copy_from_slice(gray.as_raw());
            }
        }
    }
    decoded.truncate(n);
    decoded.shrink_to_fit();
    GrayImage::from_raw(w, h, decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn the_scale_keeps_the_short_side_and_the_pixel_cap() {
        // Phones and cameras: the largest scale that keeps 1024 px on the short side.
        assert_eq!(scale_denominator(12_000, 8_400), 8);
        assert_eq!(scale_denominator(8_660, 5_773), 4);
        assert_eq!(scale_denominator(6_000, 4_500), 4);
        assert_eq!(scale_denominator(4_097, 4_097), 4);
        // A panorama: the short side would allow 1/1, the cap needs 1/2.
        assert_eq!(scale_denominator(16_384, 1_100), 2);
        // Any image within MAX_SIDE a side fits the cap at 1/8.
        assert_eq!(scale_denominator(MAX_SIDE, MAX_SIDE), 8);
        for (w, h) in [
            (16_384, 16_384),
            (16_384, 1_025),
            (5_000, 4_000),
            (4_097, 4_096),
        ] {
            let n = scale_denominator(w, h);
            assert!(u64::from(w.div_ceil(n)) * u64::from(h.div_ceil(n)) <= MAX_PIXELS);
        }
    }

    #[test]
    fn rgb_and_cmyk_become_the_gray_that_image_makes() {
        let rgb = RgbImage::from_fn(61, 7, |x, y| {
            Rgb([(x * 4) as u8, (y * 37 + x) as u8, (x * y * 13 % 256) as u8])
        });
        let expected = DynamicImage::ImageRgb8(rgb.clone()).to_luma8();
        let gray = gray_in_place(rgb.clone().into_raw(), PixelFormat::RGB24, 61, 7).unwrap();
        assert_eq!(gray, expected);
        // CMYK with no black is the complement of RGB.
        let cmyk: Vec<u8> = rgb
            .pixels()
            .flat_map(|p| [255 - p.0[0], 255 - p.0[1], 255 - p.0[2], 0])
            .collect();
        let gray = gray_in_place(cmyk, PixelFormat::CMYK32, 61, 7).unwrap();
        assert_eq!(gray, expected);
        // Full black ink is black, whatever the rest.
        let gray = gray_in_place(vec![0, 0, 0, 255], PixelFormat::CMYK32, 1, 1).unwrap();
        assert_eq!(gray.as_raw(), &[0]);
        // Too few bytes: refused, not read out of bounds.
        assert!(gray_in_place(vec![0; 5], PixelFormat::RGB24, 2, 1).is_none());
    }
}
