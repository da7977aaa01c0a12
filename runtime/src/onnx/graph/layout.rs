//! The rules of the operators that move, cut, join or pad tensors, and of those given a
//! shape by another tensor.

use super::rules::*;
use super::*;

impl Node<'_> {
    pub(super) fn reshape(&self) -> Inferred {
        let x = self.input(0)?;
        let shape = self.ints_from(1, "shape")?.ok_or("no shape")?;
        let allow_zero = self.int("allowzero", 0) != 0;
        let mut dims = Vec::with_capacity(shape.len());
        let mut infer = None;
        for (i, &s) in shape.iter().enumerate() {
            dims.push(match s {
                -1 if infer.is_none() => {
                    infer = Some(i);
                    1
                }
                0 if !allow_zero => *x.dims.get(i).ok_or("a 0 past the input's dimensions")?,
                s => u64::try_from(s).map_err(|_| format!("shape {shape:?} is not valid"))?,
            });
        }
        let known = count(&dims);
        if let Some(i) = infer {
            if known == 0 || !x.elements().is_multiple_of(known) {
                return Err(format!("shape {shape:?} does not fit {:?}", x.dims));
            }
            dims[i] = x.elements() / known;
        } else if known != x.elements() {
            return Err(format!("shape {shape:?} does not fit {:?}", x.dims));
        }
        Ok((vec![Value::with(dims, x.data.clone())], 0))
    }

    pub(super) fn squeeze(&self) -> Inferred {
        let x = self.input(0)?;
        let unsqueeze = self.op() == "Unsqueeze";
        let rank = if unsqueeze {
            // Counted before the values are needed: a list of 996 axes is not kept.
            let added = match self.optional(1) {
                Some(list) => usize::try_from(list.elements()).unwrap_or(usize::MAX),
                None => self.ints("axes").ok_or("no axes")?.len(),
            };
            let rank = x.rank().saturating_add(added);
            if rank > MAX_RANK {
                return Err(format!(
                    "{added} axes would make {rank} dimensions, more than the {MAX_RANK} \
                     accepted"
                ));
            }
            rank
        } else {
            x.rank()
        };
        let mut dims = x.dims.clone();
        match self.ints_from(1, "axes")? {
            None => dims.retain(|&d| d != 1),
            Some(axes) => {
                let mut at: Vec<usize> = axes
                    .iter()
                    .map(|&a| axis(a, rank, "axis"))
                    .collect::<Result<_, _>>()?;
                at.sort_unstable();
                if at.windows(2).any(|w| w[0] == w[1]) {
                    return Err(format!("axes {axes:?} repeat an axis"));
                }
                if unsqueeze {
                    for a in at {
                        dims.insert(a, 1);
                    }
                } else {
                    for &a in at.iter().rev() {
                        if dims[a] != 1 {
                            return Err(format!("axis {a} has length {}, not 1", dims[a]));
                        }
                        dims.remove(a);
                    }
                }
            }
        }
        Ok((vec![Value::with(dims, x.data.clone())], 0))
    }

    pub(super) fn transpose(&self) -> Inferred {
        let x = self.input(0)?;
        let rank = x.rank();
        let perm: Vec<usize> = match self.ints("perm") {
            Some(perm) => {
                let mut seen = vec![false; rank];
                let mut at = Vec::with_capacity(rank);
                for &p in perm {
                    let a = usize::try_from(p).ok().filter(|&a| a < rank && !seen[a]);
                    let a =
                        a.ok_or(format!("perm {perm:?} is not a permutation of {rank} axes"))?;
                    seen[a] = true;
                    at.push(a);
                }
                if at.len() != rank {
                    return Err(format!("perm {perm:?} is not a permutation of {rank} axes"));
                }
                at
            }
            None => (0..rank).rev().collect(),
        };
        let dims = perm.iter().map(|&a| x.dims[a]).collect();
        Ok((vec![Value::shape(dims)], x.elements()))
    }

    pub(super) fn concat(&self) -> Inferred {
        let first = self.input(0)?;
        let at = axis(self.int("axis", 0), first.rank(), "axis")?;
        let mut dims = first.dims.clone();
        dims[at] = 0;
        let mut data = Some(Vec::new());
        for index in 0..self.inputs.len() {
            let x = self.input(index)?;
            let fits = x.rank() == dims.len()
                && x.dims
                    .iter()
                    .zip(&dims)
                    .enumerate()
                    .all(|(i, (a, b))| i == at || a == b);
            if !fits {
                return Err(format!(
                    "input {index} of shape {:?} does not join {:?} on axis {at}",
                    x.dims, first.dims
                ));
            }
            dims[at] = dims[at].saturating_add(x.dims[at]);
            data = match (data, x.ints()) {
                (Some(mut all), Some(v)) => {
                    all.extend_from_slice(v);
                    Some(all)
                }
                _ => None,
            };
        }
        let elements = count(&dims);
        Ok((vec![Value::with(dims, data.map(Data::Ints))], elements))
    }

    pub(super) fn split(&self) -> Inferred {
        let x = self.input(0)?;
        let at = axis(self.int("axis", 0), x.rank(), "axis")?;
        let length = x.dims[at];
        let parts = match self.ints_from(1, "split")? {
            Some(sizes) => sizes
                .iter()
                .map(|&s| u64::try_from(s).map_err(|_| format!("split size {s} is negative")))
                .collect::<Result<Vec<u64>, String>>()?,
            None => {
                let n = self.int("num_outputs", self.node.output.len() as i64);
                let n = u64::try_from(n)
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or(format!("{n} outputs"))?;
                let each = length.div_ceil(n);
                (0..n)
                    .map(|i| each.min(length.saturating_sub(i * each)))
                    .collect()
            }
        };
        if parts.iter().fold(0u64, |s, &p| s.saturating_add(p)) != length {
            return Err(format!("split {parts:?} does not add up to {length}"));
        }
        let outputs = parts
            .iter()
            .map(|&p| {
                let mut dims = x.dims.clone();
                dims[at] = p;
                Value::shape(dims)
            })
            .collect();
        Ok((outputs, x.elements()))
    }

    pub(super) fn slice(&self) -> Inferred {
        let x = self.input(0)?;
        let (starts, ends, axes, steps) = if self.opset < 10 {
            (
                self.ints("starts").map(<[i64]>::to_vec),
                self.ints("ends").map(<[i64]>::to_vec),
                self.ints("axes").map(<[i64]>::to_vec),
                None,
            )
        } else {
            (
                self.ints_from(1, "")?,
                self.ints_from(2, "")?,
                self.ints_from(3, "")?,
                self.ints_from(4, "")?,
            )
        };
        let starts = starts.ok_or("no starts")?;
        let ends = ends.ok_or("no ends")?;
        let n = starts.len();
        let axes = axes.unwrap_or_else(|| (0..n as i64).collect());
        let steps = steps.unwrap_or_else(|| vec![1; n]);
        if ends.len() != n || axes.len() != n || steps.len() != n {
            return Err("starts, ends, axes and steps of different lengths".into());
        }
        let mut dims = x.dims.clone();
        let mut ranges = vec![None; x.rank()];
        for i in 0..n {
            let a = axis(axes[i], x.rank(), "axis")?;
            if ranges[a].is_some() {
                return Err(format!("axis {a} sliced twice"));
            }
            let d = i128::from(x.dims[a]);
            let step = i128::from(steps[i]);
            if step == 0 {
                return Err("a step of 0".into());
            }
            if d == 0 {
                ranges[a] = Some((0, step, 0));
                continue;
            }
            let clamp = |v: i64, low: i128, high: i128| {
                let v = i128::from(v);
                (if v < 0 { v + d } else { v }).clamp(low, high)
            };
            let (start, end) = if step > 0 {
                (clamp(starts[i], 0, d), clamp(ends[i], 0, d))
            } else {
                (clamp(starts[i], 0, d - 1), clamp(ends[i], -1, d - 1))
            };
            let len = if step > 0 {
                (end - start + step - 1).div_euclid(step).max(0)
            } else {
                (start - end - step - 1).div_euclid(-step).max(0)
            };
            dims[a] = to_dim(len, "a sliced length")?;
            ranges[a] = Some((start, step, len));
        }
        // The values of a sliced vector (a shape cut in pieces).
        let data = match (x.ints(), &ranges[..]) {
            (Some(v), [Some((start, step, len))]) => Some(Data::Ints(
                (0..*len).map(|j| v[(start + j * step) as usize]).collect(),
            )),
            (Some(v), [None]) => Some(Data::Ints(v.to_vec())),
            _ => None,
        };
        let elements = count(&dims);
        Ok((vec![Value::with(dims, data)], elements))
    }

    pub(super) fn gather(&self) -> Inferred {
        let (x, indices) = (self.input(0)?, self.input(1)?);
        let at = axis(self.int("axis", 0), x.rank(), "axis")?;
        let length = x.dims[at];
        let mut dims = x.dims[..at].to_vec();
        dims.extend(&indices.dims);
        dims.extend(&x.dims[at + 1..]);
        let mut data = None;
        if let Some(index) = indices.ints() {
            let resolved = index
                .iter()
                .map(|&i| {
                    let j = if i < 0 {
                        i128::from(i) + i128::from(length)
                    } else {
                        i128::from(i)
                    };
                    usize::try_from(j)
                        .ok()
                        .filter(|&j| (j as u64) < length)
                        .ok_or(format!("index {i} is outside 0..{length}"))
                })
                .collect::<Result<Vec<usize>, String>>()?;
            if let (Some(v), 1) = (x.ints(), x.rank()) {
                data = Some(Data::Ints(resolved.iter().map(|&j| v[j]).collect()));
            }
        }
        let elements = count(&dims);
        Ok((vec![Value::with(dims, data)], elements))
    }

    /// A shape given by input `index`: known, non-negative integers.
    pub(super) fn shape_input(&self, index: usize) -> Result<Vec<u64>, String> {
        let shape = self
            .ints_from(index, "")?
            .ok_or(format!("input {index} (the shape) is missing"))?;
        shape
            .iter()
            .map(|&d| u64::try_from(d).map_err(|_| format!("shape {shape:?} has a negative side")))
            .collect()
    }

    pub(super) fn constant_of_shape(&self) -> Inferred {
        let dims = self.shape_input(0)?;
        if let Some(value) = self.attribute("value") {
            let tensor = value.t.as_ref().ok_or("`value` holds no tensor")?;
            if !numeric(tensor.data_type) || tensor.dims.iter().any(|&d| d != 1) {
                return Err("`value` is not one number".into());
            }
        }
        let elements = count(&dims);
        Ok((vec![Value::shape(dims)], elements))
    }

    pub(super) fn pad(&self) -> Inferred {
        let x = self.input(0)?;
        let pads = self.ints_from(1, "pads")?.ok_or("no pads")?;
        let axes: Vec<usize> = match self.ints_from(3, "")? {
            Some(axes) => axes
                .iter()
                .map(|&a| axis(a, x.rank(), "axis"))
                .collect::<Result<_, _>>()?,
            None => (0..x.rank()).collect(),
        };
        if pads.len() != 2 * axes.len() {
            return Err(format!("{} pads for {} axes", pads.len(), axes.len()));
        }
        let mode = self
            .attribute("mode")
            .map(|a| String::from_utf8_lossy(&a.s).into_owned())
            .unwrap_or_else(|| "constant".into());
        let mut dims = x.dims.clone();
        for (i, &a) in axes.iter().enumerate() {
            let (before, after) = (pads[i], pads[axes.len() + i]);
            if mode != "constant" && (before > 0 || after > 0) && x.dims[a] == 0 {
                return Err(format!("{mode} padding of an empty axis"));
            }
            let side = i128::from(x.dims[a]) + i128::from(before) + i128::from(after);
            dims[a] = to_dim(side, "a padded side")?;
        }
        let elements = count(&dims);
        Ok((vec![Value::shape(dims)], elements))
    }

    pub(super) fn resize(&self) -> Inferred {
        let x = self.input(0)?;
        let rank = x.rank();
        // Upsample, and Resize before opset 11: (X, scales); since: (X, roi, scales, sizes).
        let (scales_at, sizes_at) = if self.op() == "Upsample" || self.opset < 11 {
            (1, usize::MAX)
        } else {
            (2, 3)
        };
        let axes: Vec<usize> = match self.ints("axes") {
            Some(axes) => axes
                .iter()
                .map(|&a| axis(a, rank, "axis"))
                .collect::<Result<_, _>>()?,
            None => (0..rank).collect(),
        };
        let mut dims = x.dims.clone();
        let sizes = self.optional(sizes_at).filter(|s| s.elements() > 0);
        if let Some(sizes) = sizes {
            let sizes = sizes
                .ints()
                .ok_or("the sizes are not a constant this check can follow")?;
            if sizes.len() != axes.len() {
                return Err(format!("{} sizes for {} axes", sizes.len(), axes.len()));
            }
            for (&a, &s) in axes.iter().zip(sizes) {
                dims[a] = u64::try_from(s).map_err(|_| format!("size {s} is negative"))?;
            }
        } else {
            let scales = match self.optional(scales_at) {
                Some(scales) => scales
                    .floats()
                    .ok_or("the scales are not a constant this check can follow")?,
                None => self
                    .attribute("scales")
                    .map(|a| a.floats.iter().map(|&f| f64::from(f)).collect())
                    .ok_or("neither scales nor sizes")?,
            };
            if scales.len() != axes.len() {
                return Err(format!("{} scales for {} axes", scales.len(), axes.len()));
            }
            for (&a, &s) in axes.iter().zip(&scales) {
                if !(s.is_finite() && s > 0.0) {
                    return Err(format!("scale {s} is not a positive number"));
                }
                let side = (x.dims[a] as f64 * s).floor();
                dims[a] = if side >= u64::MAX as f64 {
                    u64::MAX
                } else {
                    side as u64
                };
            }
        }
        let elements = count(&dims);
        // Linear and cubic modes read 2 to 4 values per axis.
        Ok((vec![Value::shape(dims)], times(elements, 4)))
    }
}
