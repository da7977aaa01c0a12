use std::path::PathBuf;

/// What went wrong reading a dataset file. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// The file could not be opened or read.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error (in the message, not repeated as its source).
        error: std::io::Error,
    },
    /// The path is not a regular file (a named pipe, socket or device would block or
    /// read without end); refused before it is opened.
    #[error("{path}: {kind}, not a regular file")]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is instead ("a named pipe", "a socket", "a device", "a directory").
        kind: &'static str,
    },
    /// The IDX header's magic number is not the one expected.
    #[error(
        "{path}: not an IDX {kind} file (magic number {found:#010x}, expected {expected:#010x})"
    )]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// "images" or "labels".
        kind: &'static str,
        /// The magic number read.
        found: u32,
        /// The magic number an IDX file of this kind has.
        expected: u32,
    },
    /// The images are not 28x28.
    #[error("{path}: images are {rows}x{cols}, expected 28x28")]
    BadShape {
        /// The file.
        path: PathBuf,
        /// Rows per image in the header.
        rows: u32,
        /// Columns per image in the header.
        cols: u32,
    },
    /// The file ends before the data its header announces.
    #[error(
        "{path}: truncated: the header announces {expected} bytes of data, the file has {found}"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes of data announced.
        expected: u64,
        /// Bytes of data present.
        found: u64,
    },
    /// The IDX header announces more records than the readers accept.
    #[error("{path}: the header announces {count} {kind}, more than the {max} accepted")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// "images" or "labels".
        kind: &'static str,
        /// The count announced.
        count: u32,
        /// The most accepted ([`crate::dataset::MAX_IDX_RECORDS`]).
        max: u32,
    },
    /// The file is larger than its reader accepts ([`crate::dataset::MAX_CSV_BYTES`] for
    /// CSV); refused before it is read.
    #[error("{path}: {size} bytes, more than the {max} read as {what}")]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The most accepted.
        max: u64,
        /// What the file was to be read as ("a CSV file").
        what: &'static str,
    },
    /// More data follows the data the header announces (for a gzipped file: more than it
    /// inflates to).
    #[error("{path}: more data than the {expected} bytes the header announces")]
    TrailingData {
        /// The file.
        path: PathBuf,
        /// Bytes of data announced.
        expected: u64,
    },
    /// Image and label files disagree on the count.
    #[error("{images} has {image_count} images but {labels} has {label_count} labels")]
    CountMismatch {
        /// The image file.
        images: PathBuf,
        /// Images it holds.
        image_count: usize,
        /// The label file.
        labels: PathBuf,
        /// Labels it holds.
        label_count: usize,
    },
    /// A label outside 0..=9.
    #[error("{path}: label {label} at record {record} is outside 0..=9")]
    BadLabel {
        /// The file.
        path: PathBuf,
        /// 1-based record number (for CSV: the line number).
        record: usize,
        /// The label found.
        label: u64,
    },
    /// A CSV file that does not follow the competition's format.
    #[error("{path}: line {line}: {problem}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// The file holds no labels but labels are needed.
    #[error("{path}: has no label column (its first column is not `label`), so it cannot be used for training or evaluation")]
    NoLabels {
        /// The file.
        path: PathBuf,
    },
    /// The directory holds none of the files looked for.
    #[error("{dir}: no Fashion-MNIST data found (looked for {wanted}); install it with `apt-get install dataset-fashion-mnist` or pass --data DIR")]
    NotFound {
        /// The directory searched.
        dir: PathBuf,
        /// The file names looked for.
        wanted: String,
    },
}
