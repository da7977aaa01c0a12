//! Fashion-MNIST readers: the upstream IDX files (raw or gzipped) and the competition's CSV.
//!
//! Every reader validates what it reads and reports the file and the problem in a
//! [`DatasetError`]; none panics on bad input.

mod csv;
mod error;
mod idx;

use std::path::{Path, PathBuf};

pub use self::csv::{csv_text, read_csv, MAX_CSV_BYTES};
pub use error::DatasetError;
pub use idx::{
    encode_idx_images, encode_idx_labels, read_idx_images, read_idx_labels, MAX_IDX_RECORDS,
};

use crate::classes::{Image, CLASS_COUNT, IMAGE_PIXELS};

/// Where the Debian package `dataset-fashion-mnist` installs the IDX files.
pub const DEFAULT_DATA_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// A set of 28x28 u8 images, with labels when the source has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// Row-major pixels, `IMAGE_PIXELS` bytes per image, images back to back.
    pub images: Vec<u8>,
    /// One label (0..10) per image, or `None` for unlabelled data (a CSV test file with ids).
    pub labels: Option<Vec<u8>>,
}

/// A set of 28x28 u8 images with one label each.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabeledImages {
    /// Row-major pixels, `IMAGE_PIXELS` bytes per image, images back to back.
    pub images: Vec<u8>,
    /// One label (0..10) per image.
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len() / IMAGE_PIXELS
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The labelled form, or an error naming `source` when the data has no labels.
    pub fn into_labeled(self, source: &Path) -> Result<LabeledImages, DatasetError> {
        match self.labels {
            Some(labels) => Ok(LabeledImages {
                images: self.images,
                labels,
            }),
            None => Err(DatasetError::NoLabels {
                path: source.to_path_buf(),
            }),
        }
    }
}

impl LabeledImages {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The pixels of image `index`.
    ///
    /// # Panics
    /// When `index >= self.len()`.
    pub fn image(&self, index: usize) -> &Image {
        &self.images.as_chunks::<IMAGE_PIXELS>().0[index]
    }

    /// Splits off the last `count` images: returns `(first, last)`, the seed's
    /// train/validation split (59,000 + 1,000 of the 60,000 training images by default).
    pub fn split_last(mut self, count: usize) -> (LabeledImages, LabeledImages) {
        let keep = self.len().saturating_sub(count);
        let tail = LabeledImages {
            images: self.images.split_off(keep * IMAGE_PIXELS),
            labels: self.labels.split_off(keep),
        };
        (self, tail)
    }

    /// The first `count` images (all of them when there are fewer).
    pub fn truncated(mut self, count: usize) -> LabeledImages {
        let keep = self.len().min(count);
        self.images.truncate(keep * IMAGE_PIXELS);
        self.labels.truncate(keep);
        self
    }

    /// How many images each class has.
    pub fn class_counts(&self) -> [usize; CLASS_COUNT] {
        let mut counts = [0; CLASS_COUNT];
        for &label in &self.labels {
            counts[usize::from(label) % CLASS_COUNT] += 1;
        }
        counts
    }
}

/// Which half of the dataset to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The 60,000 training images.
    Train,
    /// The 10,000 test images.
    Test,
}

impl Split {
    fn idx_stem(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }

    fn csv_names(self) -> &'static [&'static str] {
        match self {
            Split::Train => &["fashion-mnist_train.csv"],
            Split::Test => &["fashion-mnist_test.csv", "fashion-mnist_test_data.csv"],
        }
    }
}

/// Loads one split from a directory holding the IDX files (`train-images-idx3-ubyte[.gz]`,
/// `train-labels-idx1-ubyte[.gz]`, `t10k-...`) or the competition's CSV files
/// (`fashion-mnist_train.csv`, `fashion-mnist_test.csv` or `fashion-mnist_test_data.csv`).
/// IDX files win when both are present.
pub fn load_split(dir: &Path, split: Split) -> Result<LabeledImages, DatasetError> {
    let stem = split.idx_stem();
    match split_files(dir, split) {
        SplitFiles::Idx { images, labels } => return load_idx_pair(&images, &labels),
        SplitFiles::Csv(csv) => return read_csv(&csv)?.into_labeled(&csv),
        SplitFiles::None => {}
    }
    Err(DatasetError::NotFound {
        dir: dir.to_path_buf(),
        wanted: format!(
            "{stem}-images-idx3-ubyte[.gz] and {stem}-labels-idx1-ubyte[.gz], or {}",
            split.csv_names().join(" or ")
        ),
    })
}

/// Whether `dir` holds `split`'s files as [`load_split`] looks for them (its IDX images and
/// labels, or its CSV file), without reading them.
pub fn has_split(dir: &Path, split: Split) -> bool {
    !matches!(split_files(dir, split), SplitFiles::None)
}

/// The files of `split` in `dir` that [`load_split`] reads.
enum SplitFiles {
    Idx { images: PathBuf, labels: PathBuf },
    Csv(PathBuf),
    None,
}

fn split_files(dir: &Path, split: Split) -> SplitFiles {
    let stem = split.idx_stem();
    let images = find_file(dir, &[format!("{stem}-images-idx3-ubyte")]);
    let labels = find_file(dir, &[format!("{stem}-labels-idx1-ubyte")]);
    if let (Some(images), Some(labels)) = (images, labels) {
        return SplitFiles::Idx { images, labels };
    }
    let csv_names: Vec<String> = split.csv_names().iter().map(|s| s.to_string()).collect();
    find_file(dir, &csv_names).map_or(SplitFiles::None, SplitFiles::Csv)
}

/// Loads an IDX image file and its IDX label file, checking that the counts agree.
pub fn load_idx_pair(images: &Path, labels: &Path) -> Result<LabeledImages, DatasetError> {
    let image_bytes = read_idx_images(images)?;
    let label_bytes = read_idx_labels(labels)?;
    let image_count = image_bytes.len() / IMAGE_PIXELS;
    if image_count != label_bytes.len() {
        return Err(DatasetError::CountMismatch {
            images: images.to_path_buf(),
            image_count,
            labels: labels.to_path_buf(),
            label_count: label_bytes.len(),
        });
    }
    Ok(LabeledImages {
        images: image_bytes,
        labels: label_bytes,
    })
}

/// Loads labelled images from a path the user gave: a directory (its test split, or the
/// split asked for), or a CSV file with a `label` column.
pub fn load_path(path: &Path, split: Split) -> Result<LabeledImages, DatasetError> {
    if path.is_dir() {
        load_split(path, split)
    } else if path.exists() {
        read_csv(path)?.into_labeled(path)
    } else {
        Err(DatasetError::Io {
            path: path.to_path_buf(),
            error: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
        })
    }
}

fn find_file(dir: &Path, names: &[String]) -> Option<PathBuf> {
    names.iter().find_map(|name| {
        [name.clone(), format!("{name}.gz")]
            .into_iter()
            .map(|candidate| dir.join(candidate))
            .find(|candidate| candidate.is_file())
    })
}

#[cfg(test)]
mod tests;

/// Opens `path` for reading if it is a regular file: [`regular_file`] names what else it is,
/// then [`open_checked`] opens it without blocking and checks what was opened.
pub fn open_regular(path: &Path) -> Result<std::fs::File, DatasetError> {
    regular_file(path)?;
    open_checked(path).map_err(|error| DatasetError::Io {
        path: path.to_path_buf(),
        error,
    })
}

/// Opens `path` for reading and checks that what was opened (not the name a moment
/// earlier) is a regular file. On Unix the open is non-blocking, so a file replaced by a
/// named pipe between a check of its name and the open is refused here instead of blocking
/// the reader forever (non-blocking has no effect on reading a regular file).
pub fn open_checked(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (it was replaced after it was checked)",
        ));
    }
    Ok(file)
}

/// Refuses what is not a regular file (following symbolic links) before it is opened: a
/// named pipe would block the reader forever, a device read without end. The dataset
/// readers call it; so does the `runtime` command for images and models. Readers then open
/// with [`open_checked`], which closes the window between this check and the open.
pub fn regular_file(path: &std::path::Path) -> Result<(), DatasetError> {
    let kind = std::fs::metadata(path)
        .map_err(|source| DatasetError::Io {
            path: path.to_path_buf(),
            error: source,
        })?
        .file_type();
    if kind.is_file() {
        return Ok(());
    }
    #[cfg(unix)]
    let what = {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            "a named pipe"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_block_device() || kind.is_char_device() {
            "a device"
        } else if kind.is_dir() {
            "a directory"
        } else {
            "not a file"
        }
    };
    #[cfg(not(unix))]
    let what = if kind.is_dir() {
        "a directory"
    } else {
        "not a file"
    };
    Err(DatasetError::NotAFile {
        path: path.to_path_buf(),
        kind: what,
    })
}
