//! The options of `trainer fit` as plain data: what a run starts with, kept in
//! `run.json` so that `trainer fit --resume` continues with exactly them.

use std::path::{Path, PathBuf};

use fmnist_runtime::dataset::DEFAULT_DATA_DIR;

use crate::backend::DeviceKind;
use crate::config::recipe::RecipeOverrides;
use crate::model::ModelKind;

/// The options of `trainer fit`, as given on the command line and as `run.json` keeps them
/// (where a field it does not know is refused, as in the rest of `run.json`).
#[derive(Debug, Clone, PartialEq, clap::Args, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitOptions {
    /// The model kind (the shipped `models/edge.*` are an `edge14`).
    #[arg(long, value_enum, default_value = "edge14")]
    pub model: ModelKind,
    /// The parts of the model kind's default recipe to replace.
    #[command(flatten)]
    pub recipe: RecipeOverrides,
    /// Seed of initialisation, shuffling and augmentation: same seed, backend and data give the same result.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Run directory (default: `runs/<model>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Directory with the IDX files (raw or .gz) or the competition's CSV files.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data: PathBuf,
    /// The last N training images are the validation split.
    #[arg(long, default_value_t = 1000)]
    pub val: usize,
    /// Train on only the first N training images; the validation split stays the last
    /// --val images of the training file. For quick runs.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Evaluate only the first N test images at the end.
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Where to train.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
    /// Also write the trained model as ONNX to this file (see `trainer export`).
    #[arg(long, value_name = "FILE")]
    pub export: Option<PathBuf>,
    /// Also write the trained model as an int8 blob for the runtime (see `trainer export`).
    #[arg(long, value_name = "FILE")]
    pub export_q8: Option<PathBuf>,
    /// The --export-q8 blob's weights: 8 bits, or 7, which CPUs with AVX2 and no VNNI
    /// multiply byte-wise, faster (as `trainer export --weight-bits`).
    #[arg(long, value_enum, default_value = "8", requires = "export_q8")]
    #[serde(default, skip_serializing_if = "WeightBits::is_eight")]
    pub weight_bits: WeightBits,
    /// Stop early when validation accuracy has not improved for N epochs; the test and the
    /// exports then use the best epoch's weights (kept as best.mpk in every run).
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<usize>,
    /// Distil from a teacher: an ONNX file or int8 blob written by `trainer export` (for
    /// example of a `wide` run; a blob runs about 4x faster, in the int8 engine), run beside
    /// the student on the same images; see --distill-weight and --distill-temperature. The
    /// run records the file's SHA-256 and a resumed run checks it.
    #[arg(long, value_name = "FILE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher: Option<PathBuf>,
}

impl FitOptions {
    /// The run directory: `--out`, else `runs/<model>`.
    pub fn out_dir(&self) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| Path::new("runs").join(self.model.name()))
    }

    /// `self` with the teacher, data and export paths made absolute (against the working
    /// directory; a path that cannot be made so stays as given), so that a resume from
    /// another directory finds and writes the same files.
    pub fn with_absolute_paths(self) -> FitOptions {
        let absolute = |path: PathBuf| std::path::absolute(&path).unwrap_or(path);
        FitOptions {
            teacher: self.teacher.map(absolute),
            data: absolute(self.data),
            export: self.export.map(absolute),
            export_q8: self.export_q8.map(absolute),
            ..self
        }
    }

    /// Whether `self` and `other` train the same run: the same model, effective recipe
    /// (apart from its length), seed, data selection, device and run directory.
    pub fn same_run(&self, other: &FitOptions) -> bool {
        let recipe = |o: &FitOptions| {
            o.recipe.apply(o.model).ok().map(|mut r| {
                r.epochs = 0;
                r
            })
        };
        let dir = |o: &FitOptions| {
            let dir = o.out_dir();
            std::fs::canonicalize(&dir).unwrap_or(dir)
        };
        let distill = |o: &FitOptions| (o.teacher.is_some(), o.recipe.distill_settings());
        self.model == other.model
            && recipe(self) == recipe(other)
            && distill(self) == distill(other)
            && (self.seed, self.val, self.train_limit, self.device)
                == (other.seed, other.val, other.train_limit, other.device)
            && dir(self) == dir(other)
    }
}

/// The range of the blob's weights.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum WeightBits {
    /// -127..=127 per output channel: the finest steps.
    #[default]
    #[value(name = "8")]
    Eight,
    /// -64..=64 per output channel: half the resolution, but no pair of weights can
    /// saturate a 16-bit sum of u8 x i8 products, so CPUs with AVX2 and no VNNI multiply
    /// the bytes themselves (`vpmaddubsw`) instead of widening them to 16 bits. The same
    /// results on every engine tier, bit for bit.
    #[value(name = "7")]
    Seven,
}

impl WeightBits {
    /// Whether this is the default, 8 bits (`run.json` leaves it out then).
    pub fn is_eight(&self) -> bool {
        *self == WeightBits::Eight
    }

    /// 8 or 7.
    pub fn bits(self) -> u32 {
        match self {
            WeightBits::Eight => 8,
            WeightBits::Seven => 7,
        }
    }

    /// The largest weight magnitude.
    pub fn largest(self) -> f32 {
        match self {
            WeightBits::Eight => 127.0,
            WeightBits::Seven => 64.0,
        }
    }
}
