//! Memory budgets of the `runtime` binary on hostile files (issue 12, items 6-8), measured
//! as the child's peak RSS (`wait4`): any single image file under 256 MB, a gzip bomb
//! given as IDX data and an ONNX graph that folds to a huge constant under 512 MB. Each
//! hostile file is generated here, small, and refused with exit code 1, naming the file.
#![cfg(target_os = "linux")]

use std::io::Write;
use std::path::Path;

use tract_onnx::pb;

#[path = "../../tests/common/onnx_graph.rs"]
mod onnx_graph;
use onnx_graph::{int64s, model, node};

mod common;
use common::{measured, path, Outcome};

/// Asserts a refusal: exit code 1, an error naming `file` and saying `why`, no panic, and
/// a peak RSS under `budget_mb`.
fn refused_within(args: &[&str], file: &Path, why: &str, budget_mb: u64) -> Outcome {
    let outcome = measured(args);
    let what = args.join(" ");
    let stderr = &outcome.stderr;
    eprintln!("{what}: peak RSS {} MB", outcome.peak_mb);
    assert_eq!(outcome.code, Some(1), "{what}: {stderr}");
    assert!(
        stderr.contains(path(file)) && stderr.contains(why),
        "{what}: {stderr}"
    );
    assert!(!stderr.contains("internal error"), "{what}: {stderr}");
    assert!(
        outcome.peak_mb < budget_mb,
        "{what}: peak RSS {} MB, budget {budget_mb} MB",
        outcome.peak_mb
    );
    outcome
}

/// Feeds `len` zero bytes to `out`, 1 MiB at a time.
fn zeros(out: &mut impl Write, len: u64) {
    let block = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        out.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

/// A complete PNG of `side`x`side` pixels, every byte zero (transparent black), in colour
/// type 6 (RGBA) at `depth` bits: its IDAT is the real zlib stream of every row, so it
/// decodes in full, yet it is about 1000 times smaller than its pixels.
fn rgba_png(side: u32, depth: u8) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[depth, 6, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    let row = 1 + u64::from(side) * 4 * u64::from(depth / 8);
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    zeros(&mut zlib, row * u64::from(side));
    png_chunk(&mut out, b"IDAT", &zlib.finish().unwrap());
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A GIF whose logical screen is `side`x`side` with a single 1x1 frame: 35 bytes. The
/// decoder makes the whole screen its canvas.
fn gif(side: u16) -> Vec<u8> {
    let mut out = b"GIF89a".to_vec();
    out.extend_from_slice(&side.to_le_bytes());
    out.extend_from_slice(&side.to_le_bytes());
    out.extend_from_slice(&[0x80, 0, 0]); // a 2-colour global table
    out.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
    out.extend_from_slice(&[0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0]); // a 1x1 frame at 0,0
    out.extend_from_slice(&[2, 2, 0x44, 0x01, 0]); // its LZW data
    out.push(0x3b);
    out
}

/// An 8-bit RLE BMP of `side`x`side` whose data is one end-of-bitmap marker.
fn rle8_bmp(side: u32) -> Vec<u8> {
    let data = [0u8, 1]; // end of bitmap
    let offset = 14 + 40 + 2 * 4;
    let mut out = b"BM".to_vec();
    out.extend_from_slice(&((offset + data.len()) as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(offset as u32).to_le_bytes());
    out.extend_from_slice(&40u32.to_le_bytes());
    out.extend_from_slice(&side.to_le_bytes());
    out.extend_from_slice(&side.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // planes
    out.extend_from_slice(&8u16.to_le_bytes()); // bits per pixel
    out.extend_from_slice(&1u32.to_le_bytes()); // BI_RLE8
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 8]); // resolution
    out.extend_from_slice(&2u32.to_le_bytes()); // colours used
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&[0, 0, 0, 0, 255, 255, 255, 0]);
    out.extend_from_slice(&data);
    out
}

/// The headers of a progressive (SOF2) 3-component JPEG of `side`x`side`, up to its first
/// scan.
fn progressive_jpeg(side: u16) -> Vec<u8> {
    let mut out = vec![0xff, 0xd8];
    // A quantisation table of ones.
    out.extend_from_slice(&[0xff, 0xdb, 0, 67, 0]);
    out.extend_from_slice(&[1; 64]);
    out.extend_from_slice(&[0xff, 0xc2, 0, 17, 8]);
    out.extend_from_slice(&side.to_be_bytes());
    out.extend_from_slice(&side.to_be_bytes());
    out.extend_from_slice(&[3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0]);
    // A DC Huffman table with one code.
    out.extend_from_slice(&[0xff, 0xc4, 0, 20, 0x00, 1]);
    out.extend_from_slice(&[0; 15]);
    out.push(0);
    // First scan: DC of all components.
    out.extend_from_slice(&[0xff, 0xda, 0, 12, 3, 1, 0, 2, 0, 3, 0, 0, 0, 0]);
    out.extend_from_slice(&[0; 16]);
    out.extend_from_slice(&[0xff, 0xd9]);
    out
}

#[test]
fn hostile_images_are_refused_from_their_header_under_256_mb() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("screen.gif", gif(11_585)),
        ("rle.bmp", rle8_bmp(13_000)),
        ("progressive.jpg", progressive_jpeg(16_384)),
        // 8192x8192 RGBA: a 256 MiB decode buffer that fits the decoder's old 512 MiB
        // limit, then a full RGBA copy.
        ("rgba.png", rgba_png(8_192, 8)),
    ];
    for (name, bytes) in files {
        assert!(bytes.len() < 2_000_000, "{name}: {} bytes", bytes.len());
        let file = dir.path().join(name);
        std::fs::write(&file, &bytes).unwrap();
        refused_within(
            &["classify", path(&file)],
            &file,
            "pixels, more than the 16777216",
            256,
        );
    }
}

#[test]
fn an_image_file_over_64_mib_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("huge.jpg");
    // A JPEG start and a sparse tail: 100 MiB stated, almost nothing on disk. The JPEG
    // decoder would read it all into memory.
    let mut jpeg = std::fs::File::create(&file).unwrap();
    jpeg.write_all(&progressive_jpeg(64)).unwrap();
    jpeg.set_len(100 << 20).unwrap();
    drop(jpeg);
    refused_within(
        &["classify", path(&file)],
        &file,
        "bytes, more than the 67108864 read as an image",
        64,
    );
}

#[test]
fn an_image_at_the_pixel_cap_in_the_widest_colour_type_is_classified_under_256_mb() {
    // 4096x4096 RGBA at 16 bits: the 128 MiB decode buffer is the only full-size copy
    // besides the gray one.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wide.png");
    std::fs::write(&file, rgba_png(4_096, 16)).unwrap();
    let outcome = measured(&["classify", path(&file)]);
    eprintln!("classify wide.png: peak RSS {} MB", outcome.peak_mb);
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    assert!(outcome.stdout.contains("wide.png: "), "{}", outcome.stdout);
    assert!(outcome.peak_mb < 256, "peak RSS {} MB", outcome.peak_mb);
}

#[test]
fn an_idx_gzip_bomb_is_refused_without_inflating_it() {
    // A header announcing 10 images, then 50 MB of zeros: about 50 KB gzipped.
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("t10k-images-idx3-ubyte.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    for word in [0x0803u32, 10, 28, 28] {
        gz.write_all(&word.to_be_bytes()).unwrap();
    }
    zeros(&mut gz, 50 << 20);
    let bytes = gz.finish().unwrap();
    assert!(bytes.len() < 200_000, "{} bytes", bytes.len());
    std::fs::write(&images, bytes).unwrap();
    let mut labels = Vec::new();
    for word in [0x0801u32, 10] {
        labels.extend_from_slice(&word.to_be_bytes());
    }
    labels.extend_from_slice(&[0; 10]);
    std::fs::write(dir.path().join("t10k-labels-idx1-ubyte"), labels).unwrap();
    refused_within(
        &["eval", "--data", path(dir.path())],
        &images,
        "more data than the 7840 bytes the header announces",
        512,
    );
}

/// A float initializer of these dimensions, all zeros, its data raw.
fn zero_floats(name: &str, dims: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        raw_data: vec![0; dims.iter().product::<i64>() as usize * 4],
        ..Default::default()
    }
}

/// Asserts that `runtime info` and `runtime classify --model` refuse each of these ONNX
/// files with exit code 1 under 512 MB, with a message naming the file and saying `why`.
fn onnx_refused_under_512_mb(files: &[(&str, Vec<u8>, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("x.png");
    image::GrayImage::new(28, 28).save(&image).unwrap();
    for (name, bytes, why) in files {
        assert!(bytes.len() < 200_000, "{name}: {} bytes", bytes.len());
        let file = dir.path().join(name);
        std::fs::write(&file, bytes).unwrap();
        for args in [
            vec!["info", path(&file)],
            vec!["classify", "--model", path(&file), path(&image)],
        ] {
            refused_within(&args, &file, why, 512);
        }
    }
}

#[test]
fn an_onnx_graph_folding_to_a_huge_constant_is_refused_under_512_mb() {
    // ConstantOfShape([12000, 12000]) then Add: 576 MB per tensor once tract folds it.
    let bytes = model(
        vec![
            node("ConstantOfShape", &["shape"], "big", vec![]),
            node("Add", &["big", "big"], "out", vec![]),
        ],
        vec![int64s("shape", &[12_000, 12_000])],
    );
    onnx_refused_under_512_mb(&[("fold.onnx", bytes, "144000000 elements, more than")]);
}

#[test]
fn onnx_graphs_that_compute_or_broadcast_huge_constants_are_refused_under_512_mb() {
    // Each makes a 12000x12000 float tensor (576 MB) from a few kilobytes, by a path that
    // states no large shape: tract folds every node whose inputs are constants. The shape
    // check follows integer arithmetic on constants; the memory budget stops the rest.
    let computed_shape = model(
        vec![
            node("Mul", &["half", "two"], "side", vec![]),
            node(
                "Concat",
                &["side", "side"],
                "shape",
                vec![pb::AttributeProto {
                    name: "axis".into(),
                    r#type: pb::attribute_proto::AttributeType::Int as i32,
                    i: 0,
                    ..Default::default()
                }],
            ),
            node("ConstantOfShape", &["shape"], "big", vec![]),
            node("Add", &["big", "big"], "out", vec![]),
        ],
        vec![int64s("half", &[6_000]), int64s("two", &[2])],
    );
    // The input's own shape [N,1,28,28], sliced to [28, 28] and multiplied: constant
    // once N is set to 1.
    let from_the_input_shape = model(
        vec![
            node("Shape", &["input"], "dims", vec![]),
            node("Slice", &["dims", "starts", "ends"], "hw", vec![]),
            node("Mul", &["hw", "factor"], "shape", vec![]),
            node("ConstantOfShape", &["shape"], "big", vec![]),
            node("Add", &["big", "big"], "out", vec![]),
        ],
        vec![
            int64s("starts", &[2]),
            int64s("ends", &[4]),
            int64s("factor", &[430]),
        ],
    );
    // `op` of a [12000, 1] and a [1, 12000] constant: a broadcast or an outer product.
    let column_by_row = |op: &str| {
        model(
            vec![
                node(op, &["column", "row"], "big", vec![]),
                node("Add", &["big", "big"], "out", vec![]),
            ],
            vec![
                zero_floats("column", &[12_000, 1]),
                zero_floats("row", &[1, 12_000]),
            ],
        )
    };
    let (broadcast, outer_product) = (column_by_row("Add"), column_by_row("MatMul"));
    onnx_refused_under_512_mb(&[
        ("mul.onnx", computed_shape, "144000000 elements, more than"),
        (
            "shape.onnx",
            from_the_input_shape,
            "144961600 elements, more than",
        ),
        ("broadcast.onnx", broadcast, "144000000 elements, more than"),
        (
            "matmul.onnx",
            outer_product,
            "144000000 elements, more than",
        ),
    ]);
}

/// Issue 34, items 1 and 2: files of a few hundred bytes that aborted the binary (exit
/// 134: tract made a buffer as a plain `Vec`, and a refused `Vec` aborts) or ran for
/// minutes. Each is refused by the graph check, exit 1, naming the file.
#[test]
fn onnx_graphs_that_aborted_or_stalled_the_binary_are_refused_with_exit_1() {
    use onnx_graph::aborted;
    onnx_refused_under_512_mb(&[
        (
            "pad.onnx",
            aborted("pad"),
            "14406720784 elements, more than",
        ),
        (
            "resize.onnx",
            aborted("resize-constant"),
            "1600000000 elements, more than",
        ),
        (
            "expand-string.onnx",
            aborted("string-expand"),
            "only numbers are accepted",
        ),
        (
            "transpose.onnx",
            aborted("transpose"),
            "is not a permutation",
        ),
        (
            "unsqueeze.onnx",
            aborted("unsqueeze"),
            "996 axes would make 1000 dimensions",
        ),
        (
            "dilated.onnx",
            aborted("dilated"),
            "1602240784 elements, more than",
        ),
        (
            "matmuls.onnx",
            aborted("matmuls"),
            "multiply-accumulates per image",
        ),
    ]);
}
