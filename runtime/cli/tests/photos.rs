//! A camera photo as big as they come (12000x8400, 100 Mpixel, stored sideways with EXIF
//! orientation 6) classified by the `runtime` binary within the 256 MB of peak RSS that
//! one image may take (measured as the child's own peak RSS from `wait4`, as
//! `tests/budgets.rs` does), and as the same picture at a tenth of the size.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::time::Instant;

use image::codecs::jpeg::JpegEncoder;
use image::{GenericImageView, Rgb};

mod common;
use common::{measured, path};

/// A dark T-shirt with one sleeve on a white background, `w`x`h` shown; stored turned as
/// EXIF orientation 6 says (`h`x`w`, shown after a quarter turn clockwise) when
/// `sideways`. Computed pixel by pixel as the encoder reads it: the 100-Mpixel picture
/// never exists in memory.
struct Garment {
    w: u32,
    h: u32,
    sideways: bool,
}

impl GenericImageView for Garment {
    type Pixel = Rgb<u8>;

    fn dimensions(&self) -> (u32, u32) {
        if self.sideways {
            (self.h, self.w)
        } else {
            (self.w, self.h)
        }
    }

    fn get_pixel(&self, x: u32, y: u32) -> Rgb<u8> {
        // Orientation 6: stored (x, y) is shown at (stored height - 1 - y, x).
        let (x, y) = if self.sideways {
            (self.w - 1 - y, x)
        } else {
            (x, y)
        };
        let u = (f64::from(x) + 0.5) / f64::from(self.w);
        let v = (f64::from(y) + 0.5) / f64::from(self.h);
        let body = (0.35..0.7).contains(&u) && (0.15..0.9).contains(&v);
        let sleeve = (0.12..0.35).contains(&u) && (0.15..0.25 + 0.6 * (u - 0.12)).contains(&v);
        if body || sleeve {
            Rgb([25, 35, 80])
        } else {
            Rgb([255, 255, 255])
        }
    }
}

/// A baseline JPEG of `image` with an APP1 Exif segment (big-endian TIFF header, one IFD
/// entry: Orientation = `orientation`) right after SOI, as phones write it.
fn phone_jpeg(image: &Garment, orientation: u16) -> Vec<u8> {
    let mut plain = Vec::new();
    JpegEncoder::new_with_quality(&mut plain, 90)
        .encode_image(image)
        .unwrap();
    let mut app1 = b"Exif\0\0MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01".to_vec();
    app1.extend_from_slice(&orientation.to_be_bytes());
    app1.extend_from_slice(&[0; 6]);
    let mut out = vec![0xff, 0xd8, 0xff, 0xe1];
    out.extend_from_slice(&(app1.len() as u16 + 2).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&plain[2..]);
    out
}

/// The top class of a `classify` line, `NAME: Class 97.1%, ...`.
fn top_class<'a>(stdout: &'a str, file: &Path) -> &'a str {
    let line = stdout.lines().next().unwrap_or_default();
    let rest = line
        .strip_prefix(path(file))
        .and_then(|rest| rest.strip_prefix(": "))
        .unwrap_or_else(|| panic!("not a class line for {}: {stdout}", file.display()));
    let first = rest.split('%').next().unwrap_or_default();
    let class = first.rsplit_once(' ').map_or("", |(name, _)| name);
    assert!(
        fmnist_runtime::CLASS_NAMES.contains(&class),
        "{class:?} in {stdout}"
    );
    class
}

#[test]
fn a_100_mpixel_sideways_phone_jpeg_is_classified_upright_under_256_mb() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big_12000x8400.jpg");
    let started = Instant::now();
    let bytes = phone_jpeg(
        &Garment {
            w: 12_000,
            h: 8_400,
            sideways: true,
        },
        6,
    );
    eprintln!(
        "12000x8400 JPEG: {} bytes, encoded in {:?}",
        bytes.len(),
        started.elapsed()
    );
    std::fs::write(&big, &bytes).unwrap();
    drop(bytes);
    let small = dir.path().join("small.png");
    let upright = Garment {
        w: 1_200,
        h: 840,
        sideways: false,
    };
    image::RgbImage::from_fn(1_200, 840, |x, y| upright.get_pixel(x, y))
        .save(&small)
        .unwrap();

    let outcome = measured(&["classify", path(&big)]);
    eprintln!(
        "classify big_12000x8400.jpg: peak RSS {} MB, {:?}: {}",
        outcome.peak_mb,
        outcome.wall,
        outcome.stdout.trim()
    );
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    assert!(outcome.stderr.is_empty(), "{}", outcome.stderr);
    let class = top_class(&outcome.stdout, &big);
    assert!(
        outcome.peak_mb < 256,
        "peak RSS {} MB, budget 256 MB",
        outcome.peak_mb
    );

    // The same picture, small and upright: the same class.
    let reference = measured(&["classify", path(&small)]);
    assert_eq!(reference.code, Some(0), "{}", reference.stderr);
    assert_eq!(class, top_class(&reference.stdout, &small));
}
