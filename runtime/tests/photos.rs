//! Photos as phones and cameras write them: stored sideways with an EXIF orientation tag
//! (every viewer shows them upright), and JPEGs far over `preprocess::MAX_PIXELS`, which
//! are scaled down while decoding. Every picture is generated here from one drawing of a
//! garment, so the upright picture is known exactly.

use std::path::Path;

use fmnist_runtime::preprocess::{self, ImageError, Invert, MAX_PIXELS};
use fmnist_runtime::{Plan, IMAGE_PIXELS};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{DynamicImage, ExtendedColorType, GenericImageView, ImageEncoder, Rgb, RgbImage};

/// A dark T-shirt with one sleeve (on the left) and a pale collar, on a white product
/// background: asymmetric left/right and top/bottom, so that each of the 8 orientations
/// gives a different 28x28 picture. (`x`, `y`) in the upright picture of `w`x`h`.
fn garment(x: u32, y: u32, w: u32, h: u32) -> Rgb<u8> {
    let (u, v) = (
        (f64::from(x) + 0.5) / f64::from(w),
        (f64::from(y) + 0.5) / f64::from(h),
    );
    let body = (0.35..0.7).contains(&u) && (0.15..0.9).contains(&v);
    let sleeve = (0.12..0.35).contains(&u) && (0.15..0.25 + 0.6 * (u - 0.12)).contains(&v);
    let collar = (0.45..0.6).contains(&u) && (0.15..0.22).contains(&v);
    let pocket = (0.4..0.5).contains(&u) && (0.3..0.4).contains(&v);
    if collar {
        Rgb([200, 190, 170])
    } else if pocket {
        Rgb([90, 90, 140])
    } else if body || sleeve {
        Rgb([25, 35, 80])
    } else {
        Rgb([255, 255, 255])
    }
}

/// Where the pixel (`sx`, `sy`) of a picture stored with EXIF orientation `n` (`sw`x`sh`
/// stored) is shown, as the EXIF specification defines the tag (row 0 and column 0 of
/// what is stored are the shown picture's top/left, top/right, bottom/right, bottom/left,
/// left/top, right/top, right/bottom, left/bottom for 1 to 8).
fn shown_at(n: u16, sx: u32, sy: u32, sw: u32, sh: u32) -> (u32, u32) {
    match n {
        1 => (sx, sy),
        2 => (sw - 1 - sx, sy),
        3 => (sw - 1 - sx, sh - 1 - sy),
        4 => (sx, sh - 1 - sy),
        5 => (sy, sx),
        6 => (sh - 1 - sy, sx),
        7 => (sh - 1 - sy, sw - 1 - sx),
        8 => (sy, sw - 1 - sx),
        _ => unreachable!("orientation {n}"),
    }
}

/// The garment, shown `w`x`h` once turned as orientation `n` says, computed pixel by
/// pixel as an encoder reads it: a 100-Mpixel picture never exists in memory.
struct Stored {
    n: u16,
    w: u32,
    h: u32,
}

impl Stored {
    fn new(n: u16, w: u32, h: u32) -> Self {
        Stored { n, w, h }
    }
}

impl GenericImageView for Stored {
    type Pixel = Rgb<u8>;

    fn dimensions(&self) -> (u32, u32) {
        if self.n >= 5 {
            (self.h, self.w)
        } else {
            (self.w, self.h)
        }
    }

    fn get_pixel(&self, x: u32, y: u32) -> Rgb<u8> {
        let (sw, sh) = self.dimensions();
        let (dx, dy) = shown_at(self.n, x, y, sw, sh);
        garment(dx, dy, self.w, self.h)
    }
}

fn buffer(stored: &Stored) -> RgbImage {
    let (w, h) = stored.dimensions();
    RgbImage::from_fn(w, h, |x, y| stored.get_pixel(x, y))
}

/// A minimal EXIF blob (a TIFF header and one IFD) holding orientation `n`, in either
/// byte order.
fn exif(n: u16, big_endian: bool) -> Vec<u8> {
    let u16b = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u32b = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut out = if big_endian {
        b"MM\0*".to_vec()
    } else {
        b"II*\0".to_vec()
    };
    out.extend_from_slice(&u32b(8)); // the IFD's offset
    out.extend_from_slice(&u16b(1)); // one entry
    out.extend_from_slice(&u16b(0x0112)); // Orientation
    out.extend_from_slice(&u16b(3)); // SHORT
    out.extend_from_slice(&u32b(1)); // one value
    out.extend_from_slice(&u16b(n));
    out.extend_from_slice(&[0, 0]); // the value field's padding
    out.extend_from_slice(&u32b(0)); // no next IFD
    out
}

/// A baseline JPEG of `image` with an APP1 Exif segment holding orientation `n` right
/// after SOI, where phones write it (inserted by hand, as a camera's firmware does).
fn jpeg_with_orientation<I>(image: &I, n: u16, quality: u8) -> Vec<u8>
where
    I: GenericImageView<Pixel = Rgb<u8>>,
{
    let mut plain = Vec::new();
    JpegEncoder::new_with_quality(&mut plain, quality)
        .encode_image(image)
        .unwrap();
    assert_eq!(&plain[..2], &[0xff, 0xd8]);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&exif(n, true));
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&(app1.len() as u16 + 2).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&plain[2..]);
    out
}

/// A PNG of `image` with an eXIf chunk holding orientation `n` (little-endian EXIF).
fn png_with_orientation(image: &RgbImage, n: u16) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = PngEncoder::new(&mut out);
    encoder.set_exif_metadata(exif(n, false)).unwrap();
    encoder
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

/// A lossless WebP of `image` with an EXIF chunk holding orientation `n`.
fn webp_with_orientation(image: &RgbImage, n: u16) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = WebPEncoder::new_lossless(&mut out);
    encoder.set_exif_metadata(exif(n, true)).unwrap();
    encoder
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

/// An uncompressed 8-bit gray TIFF of `image`'s luma, its Orientation tag (274) `n`:
/// written by hand (the `image` crate's TIFF encoder writes no orientation).
fn tiff_with_orientation(image: &RgbImage, n: u16) -> Vec<u8> {
    let gray = DynamicImage::ImageRgb8(image.clone()).to_luma8();
    let (w, h) = gray.dimensions();
    let entries: [(u16, u16, u32); 10] = [
        (256, 4, w),        // ImageWidth, LONG
        (257, 4, h),        // ImageLength
        (258, 3, 8),        // BitsPerSample, SHORT
        (259, 3, 1),        // Compression: none
        (262, 3, 1),        // PhotometricInterpretation: black is zero
        (273, 4, 0),        // StripOffsets: filled in below
        (274, 3, n as u32), // Orientation
        (277, 3, 1),        // SamplesPerPixel
        (278, 4, h),        // RowsPerStrip
        (279, 4, w * h),    // StripByteCounts
    ];
    let data_at = 8 + 2 + entries.len() as u32 * 12 + 4;
    let mut out = b"II*\0".to_vec();
    out.extend_from_slice(&8u32.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, kind, value) in entries {
        let value = if tag == 273 { data_at } else { value };
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        if kind == 3 {
            out.extend_from_slice(&(value as u16).to_le_bytes());
            out.extend_from_slice(&[0, 0]);
        } else {
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(out.len() as u32, data_at);
    out.extend_from_slice(gray.as_raw());
    out
}

fn load(dir: &Path, name: &str, bytes: &[u8]) -> Result<[u8; IMAGE_PIXELS], ImageError> {
    let file = dir.join(name);
    std::fs::write(&file, bytes).unwrap();
    preprocess::load(&file, Invert::Auto)
}

fn mean_abs_diff(a: &[u8; IMAGE_PIXELS], b: &[u8; IMAGE_PIXELS]) -> f64 {
    let sum: u32 = a.iter().zip(b).map(|(&x, &y)| x.abs_diff(y) as u32).sum();
    f64::from(sum) / IMAGE_PIXELS as f64
}

fn class(pixels: &[u8; IMAGE_PIXELS]) -> usize {
    let plan = Plan::new(include_bytes!("../../models/edge.q8")).expect("valid blob");
    let mut arena = vec![0u8; plan.arena_bytes()];
    plan.classify(pixels, &mut arena)
        .expect("classifies")
        .class()
}

// The upright picture's size: not square (a quarter turn changes the stored shape), and
// multiples of 16 so that JPEG blocks map onto blocks under every turn.
const W: u32 = 160;
const H: u32 = 224;

#[test]
fn every_exif_orientation_is_shown_upright_in_png_webp_tiff_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let upright = buffer(&Stored::new(1, W, H));
    let expected = preprocess::prepare(&DynamicImage::ImageRgb8(upright.clone()), Invert::Auto);
    let gray = DynamicImage::ImageRgb8(upright.clone()).to_luma8();
    let expected_gray = preprocess::prepare(&DynamicImage::ImageLuma8(gray), Invert::Auto);
    for n in 1..=8 {
        let stored = buffer(&Stored::new(n, W, H));
        if n >= 5 {
            assert_eq!(stored.dimensions(), (H, W));
        }
        // Read as stored, the picture is another one: the tag is what makes them equal.
        let as_stored = preprocess::prepare(&DynamicImage::ImageRgb8(stored.clone()), Invert::Auto);
        if n != 1 {
            let diff = mean_abs_diff(&as_stored, &expected);
            assert!(
                diff > 10.0,
                "orientation {n}: stored differs by only {diff}"
            );
        }
        let png = load(dir.path(), "p.png", &png_with_orientation(&stored, n)).unwrap();
        assert_eq!(png, expected, "PNG (eXIf), orientation {n}");
        let webp = load(dir.path(), "p.webp", &webp_with_orientation(&stored, n)).unwrap();
        assert_eq!(webp, expected, "WebP (EXIF chunk), orientation {n}");
        let tiff = load(dir.path(), "p.tif", &tiff_with_orientation(&stored, n)).unwrap();
        assert_eq!(
            tiff, expected_gray,
            "TIFF (Orientation tag), orientation {n}"
        );
    }
}

#[test]
fn every_exif_orientation_of_a_phone_jpeg_is_shown_upright() {
    let dir = tempfile::tempdir().unwrap();
    let upright = jpeg_with_orientation(&Stored::new(1, W, H), 1, 95);
    let expected = load(dir.path(), "upright.jpg", &upright).unwrap();
    let upright_class = class(&expected);
    for n in 1..=8 {
        let stored = Stored::new(n, W, H);
        let photo = load(
            dir.path(),
            "photo.jpg",
            &jpeg_with_orientation(&stored, n, 95),
        )
        .unwrap();
        // JPEG's loss differs a little with the stored orientation (chroma subsampling).
        let diff = mean_abs_diff(&photo, &expected);
        eprintln!("orientation {n}: mean difference {diff:.2}");
        assert!(diff < 1.0, "orientation {n}: differs by {diff}");
        assert_eq!(class(&photo), upright_class, "orientation {n}");
        // Without the tag, the same pixels are another picture.
        if n != 1 {
            let untagged = {
                let mut plain = Vec::new();
                JpegEncoder::new_with_quality(&mut plain, 95)
                    .encode_image(&stored)
                    .unwrap();
                load(dir.path(), "untagged.jpg", &plain).unwrap()
            };
            let diff = mean_abs_diff(&untagged, &expected);
            assert!(
                diff > 10.0,
                "orientation {n}: untagged differs by only {diff}"
            );
        }
    }
}

#[test]
fn a_50_mpixel_sideways_camera_jpeg_is_scaled_while_decoding_and_shown_upright() {
    let dir = tempfile::tempdir().unwrap();
    // 8660x5773 shown, stored 5773x8660 with orientation 6, as a phone held upright
    // writes a landscape sensor's picture.
    let (w, h) = (8_660, 5_773);
    assert!(u64::from(w) * u64::from(h) > 2 * MAX_PIXELS);
    let started = std::time::Instant::now();
    let bytes = jpeg_with_orientation(&Stored::new(6, w, h), 6, 90);
    let encoded = started.elapsed();
    let started = std::time::Instant::now();
    let large = load(dir.path(), "camera.jpg", &bytes).unwrap();
    eprintln!(
        "{w}x{h}: {} bytes, encoded in {encoded:?}, loaded in {:?}",
        bytes.len(),
        started.elapsed()
    );
    // The same drawing at a tenth of the size, upright, decoded at full size.
    let small = buffer(&Stored::new(1, w / 10, h / 10));
    let expected = preprocess::prepare(&DynamicImage::ImageRgb8(small), Invert::Auto);
    let diff = mean_abs_diff(&large, &expected);
    eprintln!("scaled 28x28 against the small picture's: mean difference {diff:.2}");
    assert!(diff < 2.5, "differs from the small picture by {diff}");
    assert_eq!(class(&large), class(&expected));
    // Not turned, it would be another picture.
    let sideways = buffer(&Stored::new(6, w / 10, h / 10));
    let sideways = preprocess::prepare(&DynamicImage::ImageRgb8(sideways), Invert::Auto);
    assert!(mean_abs_diff(&large, &sideways) > 10.0);
}

#[test]
fn a_jpeg_just_over_the_cap_is_scaled_and_agrees_with_one_just_under() {
    // 4104x4104 (over 4096x4096) takes the scaled path, 4088x4088 the full-size one.
    let dir = tempfile::tempdir().unwrap();
    let over = load(
        dir.path(),
        "over.jpg",
        &jpeg_with_orientation(&Stored::new(8, 4_104, 4_104), 8, 90),
    )
    .unwrap();
    let under = load(
        dir.path(),
        "under.jpg",
        &jpeg_with_orientation(&Stored::new(8, 4_088, 4_088), 8, 90),
    )
    .unwrap();
    let diff = mean_abs_diff(&over, &under);
    eprintln!("scaled against full-size decoding: mean difference {diff:.2}");
    assert!(diff < 2.5, "the two paths differ by {diff}");
    assert_eq!(class(&over), class(&under));
}

#[test]
fn other_formats_over_the_cap_are_still_refused_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (w, h) = (4_100, 4_100);
    let gray = vec![0u8; (w * h) as usize];
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(&gray, w, h, ExtendedColorType::L8)
        .unwrap();
    let file = dir.path().join("big.png");
    std::fs::write(&file, &png).unwrap();
    let error = preprocess::load(&file, Invert::Auto).unwrap_err();
    assert!(matches!(error, ImageError::TooLarge { .. }), "{error:?}");
    let message = error.to_string();
    for part in [
        file.to_str().unwrap(),
        "4100x4100 pixels, more than the 16777216 (4096x4096) decoded at full size",
        "only JPEGs are scaled down while decoding",
    ] {
        assert!(message.contains(part), "{message}");
    }
}

/// The headers of a JPEG (SOF0 baseline or SOF2 progressive) of `w`x`h`, 3 components,
/// up to a first scan that needs a missing AC table: what a hostile file states.
fn jpeg_header(sof: u8, w: u16, h: u16) -> Vec<u8> {
    let mut out = vec![0xff, 0xd8];
    out.extend_from_slice(&[0xff, 0xdb, 0, 67, 0]);
    out.extend_from_slice(&[1; 64]);
    out.extend_from_slice(&[0xff, sof, 0, 17, 8]);
    out.extend_from_slice(&h.to_be_bytes());
    out.extend_from_slice(&w.to_be_bytes());
    out.extend_from_slice(&[3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0]);
    out.extend_from_slice(&[0xff, 0xc4, 0, 20, 0x00, 1]);
    out.extend_from_slice(&[0; 15]);
    out.push(0);
    out.extend_from_slice(&[0xff, 0xda, 0, 12, 3, 1, 0, 2, 0, 3, 0, 0, 63, 0]);
    out.extend_from_slice(&[0; 16]);
    out.extend_from_slice(&[0xff, 0xd9]);
    out
}

#[test]
fn hostile_jpeg_headers_over_the_cap_are_refused_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    // Progressive: its coefficients would be held whole (1.6 GB for 16384x16384).
    let error = load(dir.path(), "p.jpg", &jpeg_header(0xc2, 16_384, 16_384)).unwrap_err();
    assert!(
        matches!(error, ImageError::JpegTooLarge { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("a progressive JPEG of 16384x16384 pixels, more than the 16777216")
            && message.contains("DCT coefficients"),
        "{message}"
    );
    // A progressive JPEG whose coefficients fit is scaled (here: decoding then fails on
    // its missing data, as a decoding error).
    let error = load(dir.path(), "q.jpg", &jpeg_header(0xc2, 5_000, 4_000)).unwrap_err();
    assert!(matches!(error, ImageError::Decode { .. }), "{error:?}");
    // Baseline at the side limit: scaled, then its missing tables are a decoding error.
    let error = load(dir.path(), "b.jpg", &jpeg_header(0xc0, 16_384, 16_384)).unwrap_err();
    assert!(matches!(error, ImageError::Decode { .. }), "{error:?}");
    assert!(
        error.to_string().ends_with("b.jpg: cannot decode"),
        "{error}"
    );
    // A side over MAX_SIDE: refused from the header.
    let error = load(dir.path(), "s.jpg", &jpeg_header(0xc0, 20_000, 1_000)).unwrap_err();
    assert!(matches!(error, ImageError::TooLarge { .. }), "{error:?}");
    assert!(error.to_string().contains("20000x1000 pixels"), "{error}");
}
