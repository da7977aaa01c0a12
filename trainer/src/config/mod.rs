//! How a run is trained, as plain data: the recipe of each model kind (with the
//! distillation's settings and every default and limit) and the options of `trainer fit`
//! that `run.json` keeps.

pub mod options;
pub mod recipe;
