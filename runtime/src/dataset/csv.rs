//! The competition's CSV format: a header row, then one image per row, either
//! `label,pixel1..pixel784` (training data) or `id,pixel1..pixel784` / `pixel1..pixel784`
//! (test data without labels).

use std::path::Path;

use super::{Dataset, DatasetError};
use crate::classes::{CLASS_COUNT, IMAGE_PIXELS};

/// What the first column of each row holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lead {
    Label,
    Id,
    Nothing,
}

/// The largest CSV file read: 256 MiB, twice the competition's training file (about
/// 130 MB for 60,000 images). A larger one is refused before it is read.
pub const MAX_CSV_BYTES: u64 = 256 << 20;

/// A CSV file's text, at most [`MAX_CSV_BYTES`] (checked on the size before reading, and
/// again while reading, for a file that grows), without the UTF-8 byte-order mark that
/// spreadsheet programs write first.
pub fn csv_text(path: &Path) -> Result<String, DatasetError> {
    use std::io::Read;
    let io = |error| DatasetError::Io {
        path: path.to_path_buf(),
        error,
    };
    let too_large = |size| DatasetError::FileTooLarge {
        path: path.to_path_buf(),
        size,
        max: MAX_CSV_BYTES,
        what: "a CSV file",
    };
    let file = super::open_regular(path)?;
    let size = file.metadata().map_err(io)?.len();
    if size > MAX_CSV_BYTES {
        return Err(too_large(size));
    }
    let mut bytes = Vec::new();
    file.take(MAX_CSV_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_CSV_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    let text = String::from_utf8_lossy(&bytes);
    Ok(text.strip_prefix('\u{feff}').unwrap_or(&text).to_owned())
}

/// Appends a row's pixel fields to `images`, or says which is not a number in 0..=255.
fn push_pixels<'a>(
    fields: impl Iterator<Item = &'a str>,
    images: &mut Vec<u8>,
) -> Result<(), String> {
    for (index, field) in fields.enumerate() {
        let pixels = index + 1;
        let field = field.trim();
        match field.parse::<u64>() {
            Ok(value) if value <= 255 => images.push(value as u8),
            Ok(value) => return Err(format!("pixel{pixels} is {value}, outside 0..=255")),
            Err(_) => return Err(format!("pixel{pixels} `{field}` is not a whole number")),
        }
    }
    Ok(())
}

/// Reads a Fashion-MNIST CSV file. Labels are kept when the first column is `label`
/// (or when there is no header and rows have 785 columns); an `id` column is skipped.
pub fn read_csv(path: &Path) -> Result<Dataset, DatasetError> {
    let text = csv_text(path)?;
    let error = |line: usize, problem: String| DatasetError::Csv {
        path: path.to_path_buf(),
        line,
        problem,
    };

    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
    let Some((_, first)) = lines.clone().find(|(_, l)| !l.is_empty()) else {
        return Err(error(1, "the file is empty".into()));
    };
    let first_field = first.split(',').next().unwrap_or("").trim();
    let header_columns = first.split(',').count();
    let has_header = first_field.parse::<f64>().is_err();
    let lead = match (has_header, header_columns) {
        (_, n) if n == IMAGE_PIXELS => Lead::Nothing,
        (true, _) if first_field.trim_matches('"').eq_ignore_ascii_case("label") => Lead::Label,
        (true, _) => Lead::Id,
        (false, _) => Lead::Label,
    };
    let columns = IMAGE_PIXELS + usize::from(lead != Lead::Nothing);
    if header_columns != columns {
        return Err(error(
            1,
            format!(
                "expected {columns} columns (label or id, then 784 pixels), found {header_columns}"
            ),
        ));
    }
    if has_header {
        lines.find(|(_, l)| !l.is_empty());
    }

    let mut images = Vec::new();
    let mut labels = Vec::new();
    for (line, row) in lines.filter(|(_, l)| !l.is_empty()) {
        let found = row.split(',').count();
        if found != columns {
            return Err(error(
                line,
                format!("expected {columns} columns, found {found}"),
            ));
        }
        let mut fields = row.split(',');
        if lead != Lead::Nothing {
            let field = fields.next().unwrap_or("").trim();
            if lead == Lead::Label {
                let label: u64 = field
                    .parse()
                    .map_err(|_| error(line, format!("label `{field}` is not a whole number")))?;
                if label >= CLASS_COUNT as u64 {
                    return Err(DatasetError::BadLabel {
                        path: path.to_path_buf(),
                        record: line,
                        label,
                    });
                }
                labels.push(label as u8);
            }
        }
        push_pixels(fields, &mut images).map_err(|problem| error(line, problem))?;
    }
    if images.is_empty() {
        return Err(error(1, "the file has a header but no images".into()));
    }
    Ok(Dataset {
        images,
        labels: (lead == Lead::Label).then_some(labels),
    })
}
