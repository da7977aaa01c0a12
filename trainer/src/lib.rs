//! Fits Fashion-MNIST classifiers with burn, evaluates them, and exports them.
//!
//! One concern per module: [`model`] defines every model kind once, [`batch`] feeds it,
//! [`recipe`] says how it is trained, [`train`] trains and evaluates, [`checkpoint`] keeps
//! a run directory, [`plot`] draws what people would rather look at than read.

pub mod backend;
pub mod batch;
pub mod checkpoint;
pub mod export;
pub mod fsutil;
pub mod model;
pub mod plot;
pub mod recipe;
pub mod synthetic;
pub mod train;
