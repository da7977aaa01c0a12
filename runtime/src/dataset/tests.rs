use std::io::Write;
use std::path::{Path, PathBuf};

use super::*;

fn idx_images(count: u32, rows: u32, data: &[u8]) -> Vec<u8> {
    let mut bytes = encode_idx_images(&[]);
    bytes[4..8].copy_from_slice(&count.to_be_bytes());
    bytes[8..12].copy_from_slice(&rows.to_be_bytes());
    bytes.extend_from_slice(data);
    bytes
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    encode_idx_labels(labels)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Three images whose pixels encode their index, so order mistakes show.
fn three_images() -> Vec<u8> {
    (0..3 * IMAGE_PIXELS)
        .map(|i| (i / IMAGE_PIXELS * 100 + i % 7) as u8)
        .collect()
}

fn csv_text(header: &str, rows: &[(String, &[u8])]) -> String {
    let mut text = format!("{header}\n");
    for (lead, pixels) in rows {
        let pixels: Vec<String> = pixels.iter().map(|p| p.to_string()).collect();
        if lead.is_empty() {
            text += &format!("{}\n", pixels.join(","));
        } else {
            text += &format!("{lead},{}\n", pixels.join(","));
        }
    }
    text
}

fn label_header() -> String {
    let pixels: Vec<String> = (1..=IMAGE_PIXELS).map(|i| format!("pixel{i}")).collect();
    format!("label,{}", pixels.join(","))
}

#[test]
fn reads_raw_and_gzipped_idx_alike() {
    let dir = tempfile::tempdir().unwrap();
    let images = three_images();
    let raw = write(dir.path(), "a", &idx_images(3, 28, &images));
    let gz = write(dir.path(), "b.gz", &gzip(&idx_images(3, 28, &images)));
    assert_eq!(read_idx_images(&raw).unwrap(), images);
    assert_eq!(read_idx_images(&gz).unwrap(), images);
}

#[test]
fn loads_a_split_from_a_directory_and_splits_off_validation() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "train-images-idx3-ubyte.gz",
        &gzip(&idx_images(3, 28, &three_images())),
    );
    write(
        dir.path(),
        "train-labels-idx1-ubyte",
        &idx_labels(&[4, 0, 9]),
    );
    let set = load_split(dir.path(), Split::Train).unwrap();
    assert_eq!(set.labels, vec![4, 0, 9]);
    assert_eq!(set.image(2)[0], 200);
    let (train, val) = set.split_last(1);
    assert_eq!((train.len(), val.len()), (2, 1));
    assert_eq!(val.labels, vec![9]);
    assert_eq!(val.image(0)[0], 200);
    assert_eq!(train.class_counts()[4], 1);
    let err = load_split(dir.path(), Split::Test).unwrap_err();
    assert!(matches!(err, DatasetError::NotFound { .. }), "{err}");
}

#[test]
fn idx_wrong_magic_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "labels-as-images", &idx_labels(&[1, 2]));
    let err = read_idx_images(&path).unwrap_err();
    assert!(
        matches!(err, DatasetError::BadMagic { found: 0x801, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("labels-as-images"), "{err}");
}

#[test]
fn idx_truncated_data_and_header() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = idx_images(3, 28, &three_images());
    bytes.truncate(bytes.len() - 10);
    let path = write(dir.path(), "short", &bytes);
    let err = read_idx_images(&path).unwrap_err();
    assert!(
        matches!(err, DatasetError::Truncated { expected, found, .. } if expected == 3 * 784 && found == 3 * 784 - 10),
        "{err}"
    );
    let path = write(dir.path(), "header-only", &[0, 0, 8, 3, 0, 0]);
    let err = read_idx_images(&path).unwrap_err();
    assert!(matches!(err, DatasetError::Truncated { .. }), "{err}");
    // A hostile count must not make us allocate terabytes: it is refused from the header.
    let path = write(dir.path(), "huge", &idx_images(u32::MAX, 28, &[0; 10]));
    assert!(matches!(
        read_idx_images(&path),
        Err(DatasetError::TooLarge { .. })
    ));
}

/// An IDX header announcing `count` 28x28 images followed by `data_len` zero bytes,
/// gzipped as it is written: the plain file is never held whole.
fn gzipped_zeros_after_header(count: u32, data_len: usize) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&idx_images(count, 28, &[])).unwrap();
    let zeros = vec![0u8; 1 << 20];
    let mut left = data_len;
    while left > 0 {
        let n = left.min(zeros.len());
        encoder.write_all(&zeros[..n]).unwrap();
        left -= n;
    }
    encoder.finish().unwrap()
}

#[test]
fn a_gzip_bomb_stops_inflating_at_the_announced_size() {
    // 10 images announced, 50 MB of zeros behind them: about 50 KB gzipped.
    let dir = tempfile::tempdir().unwrap();
    let bomb = gzipped_zeros_after_header(10, 50 << 20);
    assert!(bomb.len() < 200 << 10, "{} bytes", bomb.len());
    let path = write(dir.path(), "bomb.gz", &bomb);
    let started = std::time::Instant::now();
    let err = read_idx_images(&path).unwrap_err();
    assert!(
        matches!(err, DatasetError::TrailingData { expected, .. } if expected == 10 * 784),
        "{err}"
    );
    assert!(err.to_string().contains("bomb.gz"), "{err}");
    // Refused after inflating 7,841 bytes, not 50 MB.
    assert!(started.elapsed() < std::time::Duration::from_secs(2));

    // The same for plain files, and for labels.
    let mut plain = idx_images(3, 28, &three_images());
    plain.push(0);
    let path = write(dir.path(), "long", &plain);
    let err = read_idx_images(&path).unwrap_err();
    assert!(matches!(err, DatasetError::TrailingData { .. }), "{err}");
    let mut labels = idx_labels(&[1, 2, 3]);
    labels.push(4);
    let path = write(dir.path(), "long-labels.gz", &gzip(&labels));
    let err = read_idx_labels(&path).unwrap_err();
    assert!(matches!(err, DatasetError::TrailingData { .. }), "{err}");
}

#[test]
fn idx_counts_over_the_cap_are_refused_before_reading_the_data() {
    // 2M images announced (1.6 GB), 50 MB present: refused from the header alone.
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "many.gz",
        &gzipped_zeros_after_header(2_000_000, 50 << 20),
    );
    let err = read_idx_images(&path).unwrap_err();
    assert!(
        matches!(err, DatasetError::TooLarge { count: 2_000_000, max, .. } if max == MAX_IDX_RECORDS),
        "{err}"
    );
    let mut labels = encode_idx_labels(&[]);
    labels[4..8].copy_from_slice(&(MAX_IDX_RECORDS + 1).to_be_bytes());
    let path = write(dir.path(), "labels", &labels);
    let err = read_idx_labels(&path).unwrap_err();
    assert!(matches!(err, DatasetError::TooLarge { .. }), "{err}");
    // At the cap, the count is accepted (and then the data is short).
    let path = write(
        dir.path(),
        "at-cap",
        &idx_images(MAX_IDX_RECORDS, 28, &[0; 10]),
    );
    assert!(matches!(
        read_idx_images(&path),
        Err(DatasetError::Truncated { .. })
    ));
}

#[test]
fn idx_wrong_image_size_and_bad_label() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "small", &idx_images(1, 14, &[0; 14 * 28]));
    assert!(matches!(
        read_idx_images(&path),
        Err(DatasetError::BadShape { rows: 14, .. })
    ));
    let path = write(dir.path(), "labels", &idx_labels(&[1, 2, 10]));
    let err = read_idx_labels(&path).unwrap_err();
    assert!(
        matches!(
            err,
            DatasetError::BadLabel {
                record: 3,
                label: 10,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn idx_count_mismatch_names_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let images = write(dir.path(), "imgs", &idx_images(3, 28, &three_images()));
    let labels = write(dir.path(), "lbls", &idx_labels(&[1, 2]));
    let err = load_idx_pair(&images, &labels).unwrap_err();
    let text = err.to_string();
    assert!(matches!(
        err,
        DatasetError::CountMismatch {
            image_count: 3,
            label_count: 2,
            ..
        }
    ));
    assert!(text.contains("imgs") && text.contains("lbls"), "{text}");
}

#[test]
fn corrupt_gzip_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = gzip(&idx_images(3, 28, &three_images()));
    let half = bytes.len() / 2;
    bytes.truncate(half);
    let path = write(dir.path(), "cut.gz", &bytes);
    assert!(read_idx_images(&path).is_err());
}

#[test]
fn csv_with_labels_ids_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let images = three_images();
    let rows: Vec<(String, &[u8])> = (0..3)
        .map(|i| (format!("{}", 7 + i), &images[i * 784..(i + 1) * 784]))
        .collect();
    let path = write(
        dir.path(),
        "train.csv",
        csv_text(&label_header(), &rows).as_bytes(),
    );
    let set = read_csv(&path).unwrap();
    assert_eq!(set.images, images);
    assert_eq!(set.labels, Some(vec![7, 8, 9]));

    let id_header = label_header().replacen("label", "id", 1);
    let path = write(
        dir.path(),
        "test.csv",
        csv_text(&id_header, &rows).as_bytes(),
    );
    let set = read_csv(&path).unwrap();
    assert_eq!((set.images.len(), set.labels.clone()), (3 * 784, None));
    assert!(matches!(
        set.into_labeled(&path),
        Err(DatasetError::NoLabels { .. })
    ));

    let bare: Vec<(String, &[u8])> = rows.iter().map(|(_, p)| (String::new(), *p)).collect();
    let pixel_header = label_header().replacen("label,", "", 1);
    let path = write(
        dir.path(),
        "bare.csv",
        csv_text(&pixel_header, &bare).as_bytes(),
    );
    assert_eq!(read_csv(&path).unwrap().images, images);
}

#[test]
fn csv_errors_give_the_line_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let pixels = [0u8; 784];
    let good = csv_text(&label_header(), &[("1".into(), &pixels)]);

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "short-row",
            good.clone() + "2,0,0,0\n",
            "line 3: expected 785 columns, found 4",
        ),
        (
            "big-label",
            good.replacen("\n1,", "\n12,", 1),
            "label 12 at record 2",
        ),
        (
            "word-label",
            good.replacen("\n1,", "\nshoe,", 1),
            "line 2: label `shoe`",
        ),
        (
            "big-pixel",
            good.replacen("\n1,0,", "\n1,256,", 1),
            "line 2: pixel1 is 256, outside 0..=255",
        ),
        (
            "neg-pixel",
            good.replacen("\n1,0,0,", "\n1,0,-3,", 1),
            "line 2: pixel2 `-3`",
        ),
        ("header-only", label_header() + "\n", "no images"),
        ("empty", String::new(), "empty"),
        (
            "narrow",
            "label,a,b\n1,2,3\n".into(),
            "line 1: expected 785 columns",
        ),
    ];
    for (name, text, expected) in cases {
        let path = write(dir.path(), name, text.as_bytes());
        let err = read_csv(&path).expect_err(name).to_string();
        assert!(
            err.contains(expected) && err.contains(name),
            "{name}: {err}"
        );
    }
}

#[test]
fn missing_paths_are_errors() {
    let err = load_path(Path::new("/nonexistent/fm.csv"), Split::Test).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/fm.csv"));
}

#[test]
fn named_pipes_are_refused_before_they_are_opened() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fashion-mnist_test.csv");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    // Opening a FIFO with no writer would block forever: these must return at once.
    let csv = read_csv(&fifo).unwrap_err();
    assert!(matches!(csv, DatasetError::NotAFile { .. }), "{csv}");
    assert!(csv.to_string().contains("not a regular file"), "{csv}");
    let idx = read_idx_images(&fifo).unwrap_err();
    assert!(matches!(idx, DatasetError::NotAFile { .. }), "{idx}");
    let via_path = load_path(&fifo, Split::Test).unwrap_err();
    assert!(
        via_path.to_string().contains("fashion-mnist_test.csv"),
        "{via_path}"
    );
}

/// A file swapped for a named pipe between the check of its name and the open (an
/// attacker's race) is refused, never blocks: the readers open without blocking and check
/// what they opened. Before this, the reader below hung in `open` within a few hundred
/// rounds.
#[test]
fn a_file_swapped_for_a_named_pipe_while_it_is_opened_never_blocks() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("fashion-mnist_test.csv");
    let (regular, fifo) = (dir.path().join("regular"), dir.path().join("fifo"));
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    std::fs::write(&regular, "label,pixel1\n").unwrap();
    std::fs::copy(&regular, &target).unwrap();

    // The swapper flips the name between the two files, rename after rename.
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, target, regular, fifo) = (stop.clone(), target.clone(), regular, fifo);
        std::thread::spawn(move || {
            let mut hard = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Swap in the pipe, then a fresh copy of the regular file.
                let _ = std::fs::hard_link(&fifo, dir_tmp(&target, "p"));
                let _ = std::fs::rename(dir_tmp(&target, "p"), &target);
                let _ = std::fs::hard_link(&regular, dir_tmp(&target, "r"));
                let _ = std::fs::rename(dir_tmp(&target, "r"), &target);
                hard += 1;
            }
            hard
        })
    };
    let (done, finished) = std::sync::mpsc::channel();
    {
        let target = target.clone();
        std::thread::spawn(move || {
            for _ in 0..20_000 {
                let _ = read_csv(&target);
                let _ = open_regular(&target);
            }
            let _ = done.send(());
        });
    }
    let outcome = finished.recv_timeout(std::time::Duration::from_secs(60));
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(swaps > 0, "the swapper never ran");
    assert!(
        outcome.is_ok(),
        "a reader blocked opening a named pipe ({swaps} swaps)"
    );
}

fn dir_tmp(target: &Path, tag: &str) -> std::path::PathBuf {
    target.with_extension(format!("swap-{tag}"))
}

#[test]
fn a_csv_that_starts_with_a_byte_order_mark_keeps_its_label_column() {
    // Spreadsheet programs write the UTF-8 byte-order mark first; it is not part of the
    // first column's name.
    let dir = tempfile::tempdir().unwrap();
    let images = three_images();
    let rows: Vec<(String, &[u8])> = (0..3)
        .map(|i| (format!("{}", 4 + i), &images[i * 784..(i + 1) * 784]))
        .collect();
    let mut bytes = "\u{feff}".as_bytes().to_vec();
    bytes.extend_from_slice(csv_text(&label_header(), &rows).as_bytes());
    let path = write(dir.path(), "bom.csv", &bytes);
    let set = read_csv(&path).unwrap();
    assert_eq!(set.labels, Some(vec![4, 5, 6]));
    assert_eq!(set.images, images);
}

#[test]
fn a_csv_over_the_size_cap_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.csv");
    // Sparse: no disk is used, and the reader must not read it either.
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(MAX_CSV_BYTES + 1).unwrap();
    let err = read_csv(&path).unwrap_err();
    assert!(
        matches!(err, DatasetError::FileTooLarge { size, max, .. } if size == MAX_CSV_BYTES + 1 && max == MAX_CSV_BYTES),
        "{err}"
    );
    assert!(err.to_string().contains("huge.csv"), "{err}");
}

#[test]
fn a_multi_member_gzip_idx_file_is_read_whole() {
    // `cat a.gz b.gz > c.gz` is a valid gzip file that `zcat` reads whole.
    let dir = tempfile::tempdir().unwrap();
    let images = three_images();
    let file = idx_images(3, 28, &images);
    let (first, second) = file.split_at(1000);
    let mut bytes = gzip(first);
    bytes.extend_from_slice(&gzip(second));
    let path = write(dir.path(), "members.gz", &bytes);
    assert_eq!(read_idx_images(&path).unwrap(), images);
    // Bytes after the last member that are not a gzip member are an error, as trailing
    // bytes after a raw file's data are.
    bytes.extend_from_slice(b"trailing");
    let path = write(dir.path(), "trailing.gz", &bytes);
    assert!(read_idx_images(&path).is_err());
}
