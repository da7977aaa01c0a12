//! `runtime predict`: a competition submission (`id,label`) for every image of a data file.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use fmnist_runtime::dataset::{self, Split};
use fmnist_runtime::preprocess::Invert;
use fmnist_runtime::{CLASS_COUNT, CLASS_NAMES, IMAGE_PIXELS};

use crate::{model_bytes, progress_bar, ModelArg, CHUNK};

/// The images to predict and the id of each.
pub struct Unlabelled {
    /// 28x28 u8 images back to back.
    pub images: Vec<u8>,
    /// One id per image: the CSV's `id` column as written, or the row index from 0.
    pub ids: Vec<String>,
    /// Where the ids come from, for the summary line.
    pub id_source: &'static str,
}

/// The images `--data` names and how many image files could not be read (each reported
/// on stderr): one data file or data directory as [`load`] reads it, or image files and
/// folders of them (a folder is a data directory when it holds the test split's files).
fn load_inputs(paths: &[PathBuf]) -> anyhow::Result<(Unlabelled, usize)> {
    let images = crate::classify::expand(paths);
    let pictures = |files: &[PathBuf]| files.iter().all(|f| crate::classify::is_image_name(f));
    match paths {
        [path] if !path.is_dir() && !crate::classify::is_image_name(path) => Ok((load(path)?, 0)),
        [path] if path.is_dir() && (images.is_empty() || dataset::has_split(path, Split::Test)) => {
            Ok((load(path)?, 0))
        }
        _ if !images.is_empty() && pictures(&images) => Ok(load_images(&images)),
        _ => Err(crate::Usage(
            "--data takes one data file (CSV, IDX) or data directory, or image files and \
             folders of them"
                .into(),
        )
        .into()),
    }
}

/// Image files prepared as `classify` prepares them, each with its file name as id; a file
/// that cannot be read is reported and left out.
fn load_images(files: &[PathBuf]) -> (Unlabelled, usize) {
    let (mut images, mut ids, mut failed) = (Vec::new(), Vec::new(), 0);
    for file in files {
        match crate::classify::read_image(file, Invert::Auto) {
            Ok(pixels) => {
                images.extend_from_slice(&pixels);
                let name = file.file_name().unwrap_or(file.as_os_str());
                ids.push(csv_field(&name.to_string_lossy()));
            }
            Err(problem) => {
                eprintln!("error: {problem}");
                failed += 1;
            }
        }
    }
    let set = Unlabelled {
        images,
        ids,
        id_source: "file names",
    };
    (set, failed)
}

/// A CSV field: quoted (inner quotes doubled) when it holds a comma, a quote or a line
/// break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Loads `path`: a CSV file (`id,pixel1..pixel784` as the competition's test data,
/// `label,pixel1..`, or pixels alone), an IDX image file (raw or gzipped), or a data
/// directory (its test images). Ids are the CSV's `id` column when it has one, otherwise
/// the row (image) index counted from 0.
pub fn load(path: &Path) -> anyhow::Result<Unlabelled> {
    if path.is_dir() {
        let set = dataset::load_split(path, Split::Test)?;
        return Ok(indexed(set.images));
    }
    dataset::regular_file(path)?;
    if is_idx(path)? {
        return Ok(indexed(dataset::read_idx_images(path)?));
    }
    let set = dataset::read_csv(path)?;
    if set.labels.is_some() {
        return Ok(indexed(set.images));
    }
    let ids = csv_ids(path)?;
    let count = set.images.len() / IMAGE_PIXELS;
    match ids {
        None => Ok(indexed(set.images)),
        Some(ids) if ids.len() == count => Ok(Unlabelled {
            images: set.images,
            ids,
            id_source: "the id column",
        }),
        Some(ids) => anyhow::bail!(
            "{}: changed while it was read ({} ids, {count} images)",
            path.display(),
            ids.len()
        ),
    }
}

fn indexed(images: Vec<u8>) -> Unlabelled {
    let ids = (0..images.len() / IMAGE_PIXELS)
        .map(|i| i.to_string())
        .collect();
    Unlabelled {
        images,
        ids,
        id_source: "row indices from 0",
    }
}

/// Whether the file starts as an IDX image file (magic `00 00 08 03`) or a gzip stream
/// (which the IDX reader inflates; the CSV reader does not read gzip).
fn is_idx(path: &Path) -> anyhow::Result<bool> {
    let mut head = [0u8; 4];
    let mut file = dataset::open_checked(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    let mut read = 0;
    while read < head.len() {
        match file.read(&mut head[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => anyhow::bail!("{}: cannot read: {e}", path.display()),
        }
    }
    if head[..read] == [0, 0, 8, 1] {
        anyhow::bail!(
            "{}: an IDX label file; predict needs the images (an *-images-idx3-ubyte file)",
            path.display()
        );
    }
    Ok(head[..read].starts_with(&[0x1f, 0x8b]) || head[..read] == [0, 0, 8, 3])
}

/// The `id` column of a CSV file the dataset reader has accepted without labels: `None`
/// when its rows are pixels alone (784 columns). Lines are counted as the reader counts
/// them, so that an error names the same line.
fn csv_ids(path: &Path) -> anyhow::Result<Option<Vec<String>>> {
    let text = dataset::csv_text(path)?;
    let mut rows = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    let Some((_, header)) = rows.next() else {
        return Ok(None);
    };
    if header.split(',').count() == IMAGE_PIXELS {
        return Ok(None);
    }
    let mut ids = Vec::new();
    for (line, row) in rows {
        let id = row.split(',').next().unwrap_or("").trim();
        if id.is_empty() {
            anyhow::bail!("{}: line {line}: the id is empty", path.display());
        }
        ids.push(id.to_string());
    }
    Ok(Some(ids))
}

/// Refuses an output path that exists and is not a regular file: a symbolic link, a named
/// pipe, a device (`/dev/null`, `/dev/stdout`), a directory. The file is written beside it
/// and renamed over it, which would replace the link or the device itself.
pub fn check_out(out: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(out) {
        Ok(meta) if meta.file_type().is_symlink() => anyhow::bail!(
            "{}: a symbolic link; predict writes a new file in its place and would replace the \
             link, so name the file itself",
            out.display()
        ),
        Ok(meta) if meta.is_dir() => {
            anyhow::bail!("{}: a directory, not a file to write", out.display())
        }
        Ok(meta) if !meta.is_file() => anyhow::bail!(
            "{}: not a regular file (a named pipe or a device); predict writes a new file \
             and renames it into place, which would replace it",
            out.display()
        ),
        _ => Ok(()),
    }
}

/// The rows to write: an id and a prediction per image.
pub struct Table<'a> {
    /// One id per image.
    pub ids: &'a [String],
    /// Each image's probabilities.
    pub predictions: &'a [[f32; CLASS_COUNT]],
    /// Whether the probabilities are written too.
    pub probabilities: bool,
}

impl Table<'_> {
    fn write(&self, writer: &mut impl Write) -> std::io::Result<()> {
        write!(writer, "id,label")?;
        if self.probabilities {
            for name in CLASS_NAMES {
                write!(writer, ",{name}")?;
            }
        }
        writeln!(writer)?;
        for (id, probabilities) in self.ids.iter().zip(self.predictions) {
            let label = fmnist_runtime::metrics::argmax(probabilities);
            write!(writer, "{id},{label}")?;
            if self.probabilities {
                for p in probabilities {
                    write!(writer, ",{p:.6}")?;
                }
            }
            writeln!(writer)?;
        }
        writer.flush()
    }
}

/// Writes the table to standard output; a reader that has gone ends it quietly.
fn write_stdout(table: &Table<'_>) -> anyhow::Result<String> {
    let stdout = std::io::stdout();
    let mut writer = BufWriter::new(stdout.lock());
    match table.write(&mut writer) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => anyhow::bail!("standard output: cannot write: {e}"),
        Ok(()) => {}
    }
    Ok("<stdout>".to_string())
}

/// Writes the table to `out` atomically: a temporary file beside it, renamed over it once
/// complete, so that an interrupted run leaves the old file or none. `data` are the files
/// read: they are never overwritten.
pub fn write_submission(out: &Path, data: &[&Path], table: &Table<'_>) -> anyhow::Result<()> {
    let dir = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let failed = |what: &str, e: std::io::Error| anyhow::anyhow!("{}: {what}: {e}", out.display());
    check_out(out)?;
    if let Ok(a) = out.canonicalize() {
        if data.iter().any(|d| d.canonicalize().is_ok_and(|b| a == b)) {
            anyhow::bail!(
                "{}: is the --data file itself; write the predictions elsewhere",
                out.display()
            );
        }
    }
    let mut builder = tempfile::Builder::new();
    // A new file's usual mode (0666 less the umask), not the temporary file's 0600.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let file = builder
        .prefix(".submission-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| failed("cannot create a file in its directory", e))?;
    let mut writer = BufWriter::new(file);
    table
        .write(&mut writer)
        .map_err(|e| failed("cannot write", e))?;
    let file = writer
        .into_inner()
        .map_err(|e| failed("cannot write", e.into_error()))?;
    file.as_file()
        .sync_all()
        .map_err(|e| failed("cannot write", e))?;
    // Again just before the rename: the path may have become a link or a device meanwhile.
    check_out(out)?;
    file.persist(out)
        .map_err(|e| failed("cannot rename the finished file to it", e.error))?;
    Ok(())
}

#[derive(Args)]
pub(crate) struct PredictArgs {
    #[command(flatten)]
    model: ModelArg,
    /// The images: a CSV file (the competition's `id,pixel1..pixel784` test data, or
    /// `label,pixel1..`, or pixels alone), an IDX image file (raw or gzipped), a data
    /// directory (its test images), or image files and folders of them (PNG, JPEG, ...,
    /// prepared as `classify` does). Ids are the `id` column when there is one, an image's
    /// file name, otherwise the row index counted from 0.
    #[arg(long, value_name = "PATH", num_args = 1.., required = true)]
    data: Vec<PathBuf>,
    /// The CSV file to write, or `-` for standard output: a header `id,label`, then one row
    /// per image (the label is the predicted class index, 0..9). A file is written to a
    /// temporary file and renamed over FILE when complete.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Also write each class's probability: ten more columns, named by class.
    #[arg(long)]
    probabilities: bool,
    /// Replace FILE if it exists (without it, an existing FILE is refused and kept).
    #[arg(long)]
    force: bool,
}

pub(crate) fn predict(args: &PredictArgs) -> anyhow::Result<u8> {
    let to_stdout = crate::classify::is_stdin(&args.out);
    if !to_stdout {
        check_out(&args.out)?;
        if !args.force && std::fs::symlink_metadata(&args.out).is_ok() {
            return Err(crate::Usage(format!(
                "{}: exists; give --force to replace it",
                args.out.display()
            ))
            .into());
        }
    }
    let (bytes, name) = model_bytes(&args.model)?;
    let model = crate::load(&bytes, &name, args.model.kernels)?;
    let (set, failed) = load_inputs(&args.data)?;
    if set.ids.is_empty() {
        let shown: Vec<String> = args.data.iter().map(|p| p.display().to_string()).collect();
        anyhow::bail!("{}: no images", shown.join(", "));
    }
    let started = std::time::Instant::now();
    let bar = progress_bar(set.ids.len());
    let mut predictions = Vec::with_capacity(set.ids.len());
    for chunk in set.images.chunks(CHUNK * IMAGE_PIXELS) {
        let probabilities = model.probabilities(chunk)?;
        bar.inc(probabilities.len() as u64);
        predictions.extend(probabilities);
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let table = Table {
        ids: &set.ids,
        predictions: &predictions,
        probabilities: args.probabilities,
    };
    let written = if to_stdout {
        write_stdout(&table)?
    } else {
        let data: Vec<&Path> = args.data.iter().map(PathBuf::as_path).collect();
        write_submission(&args.out, &data, &table)?;
        args.out.display().to_string()
    };
    eprintln!(
        "{written}: {} predictions by {name} (ids: {}), {seconds:.2} s{}",
        predictions.len(),
        set.id_source,
        match failed {
            0 => String::new(),
            n => format!("; {n} image files could not be read (above)"),
        }
    );
    Ok(if failed > 0 { crate::EXIT_FAILURE } else { 0 })
}
