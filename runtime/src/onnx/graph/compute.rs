//! The rules of the operators that compute over windows or products: convolutions,
//! pools, matrix products, normalizations, reductions.

use super::rules::*;
use super::*;

impl Node<'_> {
    /// Strides, dilations and pads of a window over `spatial` dimensions, checked.
    pub(super) fn window(&self, spatial: usize, kernel: &[u64]) -> Result<Vec<u64>, String> {
        let list = |name: &str, default: i64, len: usize| -> Result<Vec<i64>, String> {
            match self.ints(name) {
                Some(v) if v.len() == len => Ok(v.to_vec()),
                Some(v) => Err(format!("`{name}` has {} values, expected {len}", v.len())),
                None => Ok(vec![default; len]),
            }
        };
        let strides = list("strides", 1, spatial)?;
        let dilations = list("dilations", 1, spatial)?;
        let pads = list("pads", 0, 2 * spatial)?;
        if let Some(s) = strides.iter().find(|&&s| s < 1) {
            return Err(format!("stride {s} is not positive"));
        }
        if let Some(d) = dilations.iter().find(|&&d| d < 1) {
            return Err(format!("dilation {d} is not positive"));
        }
        if let Some(p) = pads.iter().find(|&&p| p < 0) {
            return Err(format!("pad {p} is negative"));
        }
        let auto = self
            .attribute("auto_pad")
            .map(|a| String::from_utf8_lossy(&a.s).into_owned())
            .unwrap_or_default();
        let ceil = self.int("ceil_mode", 0) != 0;
        let x = self.input(0)?;
        (0..spatial)
            .map(|i| {
                let input = i128::from(x.dims[2 + i]);
                let stride = i128::from(strides[i]);
                let reach = (i128::from(kernel[i]) - 1) * i128::from(dilations[i]) + 1;
                let out = match auto.as_str() {
                    "SAME_UPPER" | "SAME_LOWER" => (input + stride - 1) / stride,
                    "VALID" => {
                        if input < reach {
                            0
                        } else {
                            (input - reach) / stride + 1
                        }
                    }
                    "" | "NOTSET" => {
                        let padded = input + i128::from(pads[i]) + i128::from(pads[spatial + i]);
                        if padded < reach {
                            0
                        } else if ceil {
                            (padded - reach + stride - 1) / stride + 1
                        } else {
                            (padded - reach) / stride + 1
                        }
                    }
                    other => return Err(format!("auto_pad `{other}` is not an ONNX mode")),
                };
                if out < 1 {
                    return Err(format!(
                        "a window reaching {reach} does not fit the {input} pixels of axis {}, \
                         padded",
                        i + 2
                    ));
                }
                to_dim(out, "an output side")
            })
            .collect()
    }

    pub(super) fn conv(&self, x: usize, w: usize, bias: usize) -> Inferred {
        let (x, w) = (self.input(x)?, self.input(w)?);
        if x.rank() < 3 || w.rank() != x.rank() {
            return Err(format!(
                "input of {} dimensions and weights of {}: expected the same, 3 or more",
                x.rank(),
                w.rank()
            ));
        }
        let group = self.int("group", 1);
        let group = u64::try_from(group)
            .ok()
            .filter(|&g| g >= 1)
            .ok_or(format!("group {group} is not positive"))?;
        let (channels, filters) = (x.dims[1], w.dims[0]);
        if channels != times(w.dims[1], group) || !filters.is_multiple_of(group) {
            return Err(format!(
                "weights {:?} in {group} groups do not fit {channels} input channels",
                w.dims
            ));
        }
        let kernel = &w.dims[2..];
        if let Some(stated) = self.ints("kernel_shape") {
            if stated.iter().map(|&k| k as u64).ne(kernel.iter().copied()) {
                return Err(format!(
                    "kernel_shape {stated:?} is not the weights' {kernel:?}"
                ));
            }
        }
        if kernel.contains(&0) {
            return Err("the kernel is empty".into());
        }
        if let Some(b) = self.optional(bias) {
            if b.dims != [filters] {
                return Err(format!("bias of shape {:?} for {filters} filters", b.dims));
            }
        }
        let spatial = x.rank() - 2;
        let out = self.window(spatial, kernel)?;
        let taps = times(w.dims[1], product(kernel));
        let pixels = product(&out);
        // tract unfolds the input (im2col) for one group at a time. (An output too large
        // is refused as such, by the caller.)
        let unfolded = times(taps, pixels);
        if unfolded > MAX_TENSOR_ELEMENTS && pixels <= MAX_TENSOR_ELEMENTS {
            return Err(format!(
                "its unfolded input would have {unfolded} elements, more than the \
                 {MAX_TENSOR_ELEMENTS} accepted"
            ));
        }
        let mut dims = vec![x.dims[0], filters];
        dims.extend(out);
        let macs = times(count(&dims), taps);
        Ok((vec![Value::shape(dims)], macs))
    }

    pub(super) fn pool(&self) -> Inferred {
        let x = self.input(0)?;
        if x.rank() < 3 {
            return Err("input has fewer than 3 dimensions".into());
        }
        let spatial = x.rank() - 2;
        let kernel = self.ints("kernel_shape").ok_or("no kernel_shape")?;
        if kernel.len() != spatial || kernel.iter().any(|&k| k < 1) {
            return Err(format!(
                "kernel_shape {kernel:?} for {spatial} spatial dimensions"
            ));
        }
        let kernel: Vec<u64> = kernel.iter().map(|&k| k as u64).collect();
        let out = self.window(spatial, &kernel)?;
        let mut dims = x.dims[..2].to_vec();
        dims.extend(out);
        let macs = times(count(&dims), product(&kernel));
        let value = Value::shape(dims);
        Ok((vec![value.clone(), value], macs))
    }

    pub(super) fn gemm(&self) -> Inferred {
        let (a, b) = (self.input(0)?, self.input(1)?);
        if a.rank() != 2 || b.rank() != 2 {
            return Err(format!(
                "operands of {} and {} dimensions, expected 2",
                a.rank(),
                b.rank()
            ));
        }
        let (m, k) = if self.int("transA", 0) != 0 {
            (a.dims[1], a.dims[0])
        } else {
            (a.dims[0], a.dims[1])
        };
        let (k2, n) = if self.int("transB", 0) != 0 {
            (b.dims[1], b.dims[0])
        } else {
            (b.dims[0], b.dims[1])
        };
        if k != k2 {
            return Err(format!("inner sizes {k} and {k2} differ"));
        }
        if let Some(c) = self.optional(2) {
            if broadcast(&c.dims, &[m, n])? != [m, n] {
                return Err(format!("C of shape {:?} for an output [{m}, {n}]", c.dims));
            }
        }
        Ok((vec![Value::shape(vec![m, n])], times(times(m, n), k)))
    }

    pub(super) fn matmul(&self, a: usize, b: usize) -> Inferred {
        let (a, b) = (self.input(a)?, self.input(b)?);
        if a.rank() == 0 || b.rank() == 0 {
            return Err("a scalar operand".into());
        }
        let mut left = a.dims.clone();
        let mut right = b.dims.clone();
        let (a1, b1) = (left.len() == 1, right.len() == 1);
        if a1 {
            left.insert(0, 1);
        }
        if b1 {
            right.push(1);
        }
        let (m, k) = (left[left.len() - 2], left[left.len() - 1]);
        let (k2, n) = (right[right.len() - 2], right[right.len() - 1]);
        if k != k2 {
            return Err(format!("inner sizes {k} and {k2} differ"));
        }
        let mut dims = broadcast(&left[..left.len() - 2], &right[..right.len() - 2])?;
        if !a1 {
            dims.push(m);
        }
        if !b1 {
            dims.push(n);
        }
        let macs = times(count(&dims), k);
        Ok((vec![Value::shape(dims)], macs))
    }

    pub(super) fn normalization(&self) -> Inferred {
        let x = self.input(0)?;
        let channels = if self.op() == "LayerNormalization" {
            let at = axis(self.int("axis", -1), x.rank(), "axis")?;
            count(&x.dims[at..])
        } else {
            if x.rank() < 2 {
                return Err("input has fewer than 2 dimensions".into());
            }
            x.dims[1]
        };
        for index in 1..self.inputs.len() {
            if let Some(parameter) = self.optional(index) {
                if parameter.elements() != channels {
                    return Err(format!(
                        "input {index} has {} values for {channels} channels",
                        parameter.elements()
                    ));
                }
            }
        }
        Ok((vec![Value::shape(x.dims.clone())], times(x.elements(), 2)))
    }

    pub(super) fn reduce(&self) -> Inferred {
        let x = self.input(0)?;
        let axes = self.ints_from(1, "axes")?;
        let keep = self.int("keepdims", 1) != 0;
        let axes: Vec<usize> = match axes {
            Some(axes) if !axes.is_empty() => axes
                .iter()
                .map(|&a| axis(a, x.rank(), "axis"))
                .collect::<Result<_, _>>()?,
            _ if self.int("noop_with_empty_axes", 0) != 0 => vec![],
            _ => (0..x.rank()).collect(),
        };
        let mut dims = Vec::with_capacity(x.rank());
        for (i, &d) in x.dims.iter().enumerate() {
            if !axes.contains(&i) {
                dims.push(d);
            } else if keep {
                dims.push(1);
            }
        }
        Ok((vec![Value::shape(dims)], x.elements()))
    }
}
