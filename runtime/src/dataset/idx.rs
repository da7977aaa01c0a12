//! IDX files as the upstream dataset ships them: a big-endian header, then raw u8 data.
//! Gzipped files are recognised by their magic bytes, whatever their name.

use std::io::{BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::DatasetError;
use crate::classes::{CLASS_COUNT, IMAGE_SIDE};

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// The most images (or labels) an IDX header may announce: 1M, 17 times the training
/// set. A header announcing more is refused before anything is allocated or inflated.
pub const MAX_IDX_RECORDS: u32 = 1 << 20;

/// Reads an IDX3 image file (`*-images-idx3-ubyte[.gz]`): 28x28 u8 images back to back.
pub fn read_idx_images(path: &Path) -> Result<Vec<u8>, DatasetError> {
    let mut reader = open(path)?;
    let header = read_header(&mut reader, path, IMAGES_MAGIC, 4, "images")?;
    let (count, rows, cols) = (header[1], header[2], header[3]);
    check_count(path, count, "images")?;
    if rows as usize != IMAGE_SIDE || cols as usize != IMAGE_SIDE {
        return Err(DatasetError::BadShape {
            path: path.to_path_buf(),
            rows,
            cols,
        });
    }
    read_body(
        reader,
        path,
        u64::from(count) * (IMAGE_SIDE * IMAGE_SIDE) as u64,
    )
}

/// Reads an IDX1 label file (`*-labels-idx1-ubyte[.gz]`), checking every label is 0..=9.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>, DatasetError> {
    let mut reader = open(path)?;
    let header = read_header(&mut reader, path, LABELS_MAGIC, 2, "labels")?;
    check_count(path, header[1], "labels")?;
    let labels = read_body(reader, path, u64::from(header[1]))?;
    if let Some(index) = labels.iter().position(|&l| usize::from(l) >= CLASS_COUNT) {
        return Err(DatasetError::BadLabel {
            path: path.to_path_buf(),
            record: index + 1,
            label: u64::from(labels[index]),
        });
    }
    Ok(labels)
}

fn check_count(path: &Path, count: u32, kind: &'static str) -> Result<(), DatasetError> {
    if count > MAX_IDX_RECORDS {
        return Err(DatasetError::TooLarge {
            path: path.to_path_buf(),
            kind,
            count,
            max: MAX_IDX_RECORDS,
        });
    }
    Ok(())
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DatasetError + '_ {
    move |source| DatasetError::Io {
        path: path.to_path_buf(),
        error: source,
    }
}

fn open(path: &Path) -> Result<Box<dyn Read>, DatasetError> {
    let mut file = BufReader::new(super::open_regular(path)?);
    let mut magic = [0u8; 2];
    let gzipped = {
        use std::io::BufRead;
        let head = file.fill_buf().map_err(io_error(path))?;
        head.len() >= 2 && {
            magic.copy_from_slice(&head[..2]);
            magic == [0x1f, 0x8b]
        }
    };
    // Every member of a multi-member gzip file (`cat a.gz b.gz`, as `zcat` reads it);
    // bytes after the last member that are not a gzip member are an error.
    Ok(if gzipped {
        Box::new(MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    })
}

/// Reads the magic number and `words - 1` dimensions, all big-endian u32.
fn read_header(
    reader: &mut dyn Read,
    path: &Path,
    magic: u32,
    words: usize,
    kind: &'static str,
) -> Result<Vec<u32>, DatasetError> {
    let mut header = Vec::with_capacity(words);
    for read in 0..words {
        let mut word = [0u8; 4];
        if let Err(source) = reader.read_exact(&mut word) {
            return Err(if source.kind() == std::io::ErrorKind::UnexpectedEof {
                DatasetError::Truncated {
                    path: path.to_path_buf(),
                    expected: (words * 4) as u64,
                    found: (read * 4) as u64,
                }
            } else {
                DatasetError::Io {
                    path: path.to_path_buf(),
                    error: source,
                }
            });
        }
        let word = u32::from_be_bytes(word);
        // Check the magic before reading on: a file of the wrong kind is not "truncated".
        if read == 0 && word != magic {
            return Err(DatasetError::BadMagic {
                path: path.to_path_buf(),
                kind,
                found: word,
                expected: magic,
            });
        }
        header.push(word);
    }
    Ok(header)
}

/// Reads exactly `expected` bytes, then refuses the file if anything follows. The header
/// is untrusted: memory grows with the bytes actually present, never past the announced
/// size, and a gzip stream is inflated no further than one byte past it (a small `.gz`
/// that inflates to gigabytes is refused after the announced size).
fn read_body(
    mut reader: Box<dyn Read>,
    path: &Path,
    expected: u64,
) -> Result<Vec<u8>, DatasetError> {
    let mut body = Vec::new();
    (&mut reader)
        .take(expected)
        .read_to_end(&mut body)
        .map_err(io_error(path))?;
    if (body.len() as u64) < expected {
        return Err(DatasetError::Truncated {
            path: path.to_path_buf(),
            expected,
            found: body.len() as u64,
        });
    }
    let mut next = [0u8; 1];
    let more = loop {
        match reader.read(&mut next) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error(path)(e)),
        }
    };
    if more > 0 {
        return Err(DatasetError::TrailingData {
            path: path.to_path_buf(),
            expected,
        });
    }
    Ok(body)
}

/// Encodes images (28x28 u8, back to back) as an uncompressed IDX3 file's bytes.
pub fn encode_idx_images(images: &[u8]) -> Vec<u8> {
    let count = (images.len() / (IMAGE_SIDE * IMAGE_SIDE)) as u32;
    let mut bytes = Vec::with_capacity(16 + images.len());
    for word in [IMAGES_MAGIC, count, IMAGE_SIDE as u32, IMAGE_SIDE as u32] {
        bytes.extend_from_slice(&word.to_be_bytes());
    }
    bytes.extend_from_slice(images);
    bytes
}

/// Encodes labels as an uncompressed IDX1 file's bytes.
pub fn encode_idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(8 + labels.len());
    for word in [LABELS_MAGIC, labels.len() as u32] {
        bytes.extend_from_slice(&word.to_be_bytes());
    }
    bytes.extend_from_slice(labels);
    bytes
}
