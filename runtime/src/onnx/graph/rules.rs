//! The rules of the operators that keep or broadcast their input's shape, and the
//! dispatch from an operator to its rule.

use super::*;

pub(super) type Inferred = Result<(Vec<Value>, u64), String>;

pub(super) fn product(values: &[u64]) -> u64 {
    count(values)
}

/// `a * b`, saturated.
pub(super) fn times(a: u64, b: u64) -> u64 {
    a.saturating_mul(b)
}

pub(super) fn to_dim(value: i128, what: &str) -> Result<u64, String> {
    u64::try_from(value).map_err(|_| format!("{what} would be {value}"))
}

/// The axis `axis` of a tensor of rank `rank` (negative from the end).
pub(super) fn axis(axis: i64, rank: usize, what: &str) -> Result<usize, String> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(format!(
            "{what} {axis} is outside a tensor of {rank} dimensions"
        ))
    }
}

/// Numpy's broadcast of two shapes.
pub(super) fn broadcast(a: &[u64], b: &[u64]) -> Result<Vec<u64>, String> {
    let rank = a.len().max(b.len());
    let at = |v: &[u64], i: usize| {
        let offset = rank - v.len();
        if i < offset {
            1
        } else {
            v[i - offset]
        }
    };
    (0..rank)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        })
        .collect()
}

impl Node<'_> {
    pub(super) fn op(&self) -> &str {
        &self.node.op_type
    }

    pub(super) fn attribute(&self, name: &str) -> Option<&pb::AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }

    pub(super) fn int(&self, name: &str, default: i64) -> i64 {
        self.attribute(name).map_or(default, |a| a.i)
    }

    pub(super) fn ints(&self, name: &str) -> Option<&[i64]> {
        self.attribute(name).map(|a| a.ints.as_slice())
    }

    pub(super) fn input(&self, index: usize) -> Result<&Value, String> {
        self.optional(index)
            .ok_or_else(|| format!("input {index} is missing"))
    }

    pub(super) fn optional(&self, index: usize) -> Option<&Value> {
        self.inputs.get(index).copied().flatten()
    }

    /// Integers given by input `index` when the node has it, else by the attribute
    /// `name`, else `None`; an input that is not a known constant is refused.
    pub(super) fn ints_from(&self, index: usize, name: &str) -> Result<Option<Vec<i64>>, String> {
        match self.optional(index) {
            Some(value) => value.ints().map(|v| Some(v.to_vec())).ok_or_else(|| {
                format!(
                    "input {index} (`{}`) is not an integer constant this check can follow",
                    self.node.input[index]
                )
            }),
            None => Ok(self.ints(name).map(<[i64]>::to_vec)),
        }
    }

    /// Output `0` of the input 0's shape, one output element's worth of work each.
    pub(super) fn same(&self) -> Inferred {
        let x = self.input(0)?;
        Ok((vec![Value::shape(x.dims.clone())], x.elements()))
    }

    /// The node's outputs and its work. One arm per operator of [`OPERATORS`]: a table,
    /// longer than a function should be, read one row at a time.
    pub(super) fn infer(&self) -> Inferred {
        match self.op() {
            "Constant" => self.constant(),
            "Identity" => {
                let x = self.input(0)?;
                Ok((vec![x.clone()], 0))
            }
            "Cast" => self.cast(),
            "Dropout" => {
                let x = self.input(0)?;
                let shape = Value::shape(x.dims.clone());
                Ok((vec![x.clone(), shape], x.elements()))
            }
            "Clip" => {
                for index in 1..3 {
                    if let Some(bound) = self.optional(index) {
                        if bound.elements() != 1 {
                            return Err(format!("bound {index} is not a single value"));
                        }
                    }
                }
                self.same()
            }
            "Softmax" | "LogSoftmax" | "Hardmax" => {
                let x = self.input(0)?;
                let default = if self.opset >= 13 { -1 } else { 1 };
                axis(self.int("axis", default), x.rank(), "axis")?;
                Ok((vec![Value::shape(x.dims.clone())], times(x.elements(), 3)))
            }
            "LRN" => {
                let size = self.int("size", 0);
                if size < 1 {
                    return Err(format!("size {size} is not a positive window"));
                }
                let x = self.input(0)?;
                if x.rank() < 3 {
                    return Err("input has fewer than 3 dimensions".into());
                }
                Ok((
                    vec![Value::shape(x.dims.clone())],
                    times(x.elements(), (size as u64).min(x.dims[1])),
                ))
            }
            "BatchNormalization" | "InstanceNormalization" | "LayerNormalization" => {
                self.normalization()
            }
            "QuantizeLinear" | "DequantizeLinear" => self.same(),
            "DynamicQuantizeLinear" => {
                let x = self.input(0)?;
                Ok((
                    vec![
                        Value::shape(x.dims.clone()),
                        Value::shape(vec![]),
                        Value::shape(vec![]),
                    ],
                    times(x.elements(), 2),
                ))
            }
            "Abs" | "Ceil" | "Celu" | "Cos" | "Elu" | "Erf" | "Exp" | "Floor" | "Gelu"
            | "HardSigmoid" | "HardSwish" | "IsInf" | "IsNaN" | "LeakyRelu" | "Log" | "Mish"
            | "Neg" | "Not" | "Reciprocal" | "Relu" | "Round" | "Selu" | "Sigmoid" | "Sign"
            | "Sin" | "Softplus" | "Softsign" | "Sqrt" | "Tan" | "Tanh" | "ThresholdedRelu" => {
                self.same()
            }
            "Add" | "Sub" | "Mul" | "Div" | "Max" | "Min" | "Sum" | "Mean" | "Pow" | "Mod"
            | "And" | "Or" | "Xor" | "Equal" | "Greater" | "GreaterOrEqual" | "Less"
            | "LessOrEqual" | "PRelu" | "Where" => self.elementwise(),
            "Conv" => self.conv(0, 1, 2),
            "ConvInteger" => self.conv(0, 1, usize::MAX),
            "QLinearConv" => self.conv(0, 3, 8),
            "MaxPool" | "AveragePool" | "LpPool" => self.pool(),
            "GlobalAveragePool" | "GlobalMaxPool" | "GlobalLpPool" => {
                let x = self.input(0)?;
                if x.rank() < 3 {
                    return Err("input has fewer than 3 dimensions".into());
                }
                let mut dims = x.dims.clone();
                dims[2..].iter_mut().for_each(|d| *d = 1);
                Ok((vec![Value::shape(dims)], x.elements()))
            }
            "Gemm" => self.gemm(),
            "MatMul" | "MatMulInteger" => self.matmul(0, 1),
            "QLinearMatMul" => self.matmul(0, 3),
            "Flatten" => {
                let x = self.input(0)?;
                let rank = x.rank();
                let at = self.int("axis", 1);
                let at = if at == rank as i64 {
                    rank
                } else {
                    axis(at, rank, "axis")?
                };
                let dims = vec![product(&x.dims[..at]), product(&x.dims[at..])];
                Ok((vec![Value::with(dims, x.data.clone())], 0))
            }
            "Reshape" => self.reshape(),
            "Squeeze" | "Unsqueeze" => self.squeeze(),
            "Transpose" => self.transpose(),
            "Concat" => self.concat(),
            "Split" => self.split(),
            "Slice" => self.slice(),
            "Gather" => self.gather(),
            "Shape" => {
                let x = self.input(0)?;
                let rank = x.rank() as i64;
                let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
                let start = clamp(self.int("start", 0));
                let end = clamp(self.int("end", rank)).max(start);
                let dims: Vec<i64> = x.dims[start..end].iter().map(|&d| d as i64).collect();
                Ok((
                    vec![Value::with(vec![dims.len() as u64], Some(Data::Ints(dims)))],
                    0,
                ))
            }
            "Size" => {
                let x = self.input(0)?;
                let size = i64::try_from(x.elements()).unwrap_or(i64::MAX);
                Ok((vec![Value::with(vec![], Some(Data::Ints(vec![size])))], 0))
            }
            "ConstantOfShape" => self.constant_of_shape(),
            "Expand" => {
                let x = self.input(0)?;
                let shape = self.shape_input(1)?;
                let dims = broadcast(&x.dims, &shape)?;
                let elements = count(&dims);
                Ok((vec![Value::shape(dims)], elements))
            }
            "Tile" => {
                let x = self.input(0)?;
                let repeats = self
                    .ints_from(1, "")?
                    .ok_or("input 1 (repeats) is missing")?;
                if repeats.len() != x.rank() {
                    return Err(format!(
                        "{} repeats for a tensor of {} dimensions",
                        repeats.len(),
                        x.rank()
                    ));
                }
                let dims = x
                    .dims
                    .iter()
                    .zip(&repeats)
                    .map(|(&d, &r)| {
                        u64::try_from(r)
                            .map(|r| times(d, r))
                            .map_err(|_| format!("repeat {r} is negative"))
                    })
                    .collect::<Result<Vec<u64>, String>>()?;
                let elements = count(&dims);
                Ok((vec![Value::shape(dims)], elements))
            }
            "Pad" => self.pad(),
            "Resize" | "Upsample" => self.resize(),
            "ReduceL1" | "ReduceL2" | "ReduceLogSum" | "ReduceLogSumExp" | "ReduceMax"
            | "ReduceMean" | "ReduceMin" | "ReduceProd" | "ReduceSum" | "ReduceSumSquare" => {
                self.reduce()
            }
            "ArgMax" | "ArgMin" => {
                let x = self.input(0)?;
                let at = axis(self.int("axis", 0), x.rank(), "axis")?;
                let mut dims = x.dims.clone();
                if self.int("keepdims", 1) == 0 {
                    dims.remove(at);
                } else {
                    dims[at] = 1;
                }
                Ok((vec![Value::shape(dims)], x.elements()))
            }
            "TopK" => {
                let x = self.input(0)?;
                let at = axis(self.int("axis", -1), x.rank(), "axis")?;
                let k = match self.ints_from(1, "")? {
                    Some(k) if k.len() == 1 => k[0],
                    Some(_) => return Err("K is not a single value".into()),
                    None => self.int("k", -1),
                };
                if k < 0 || k as u64 > x.dims[at] {
                    return Err(format!(
                        "K = {k} is outside 0..={} (the axis' length)",
                        x.dims[at]
                    ));
                }
                let mut dims = x.dims.clone();
                dims[at] = k as u64;
                let out = Value::shape(dims);
                Ok((vec![out.clone(), out], times(x.elements(), 2)))
            }
            other => Err(format!("operator {other} has no shape rule")),
        }
    }

    pub(super) fn constant(&self) -> Inferred {
        let [attribute] = &self.node.attribute[..] else {
            return Err("a Constant needs exactly one value attribute".into());
        };
        let value = match attribute.name.as_str() {
            "value" => {
                let tensor = attribute.t.as_ref().ok_or("`value` holds no tensor")?;
                stated(tensor, "its value").map_err(|e| match e {
                    Refusal::Graph(text) | Refusal::TooComplex(text) => text,
                    Refusal::TooLarge(_, n) => format!("its value has {n} elements"),
                })?
            }
            "value_int" => Value::with(vec![], Some(Data::Ints(vec![attribute.i]))),
            "value_ints" => Value::with(
                vec![attribute.ints.len() as u64],
                Some(Data::Ints(attribute.ints.clone())),
            ),
            "value_float" => Value::with(vec![], Some(Data::Floats(vec![attribute.f.into()]))),
            "value_floats" => Value::with(
                vec![attribute.floats.len() as u64],
                Some(Data::Floats(
                    attribute.floats.iter().map(|&f| f.into()).collect(),
                )),
            ),
            other => return Err(format!("a `{other}` value is not accepted")),
        };
        Ok((vec![value], 0))
    }

    pub(super) fn cast(&self) -> Inferred {
        let to = self.int("to", 0) as i32;
        if !numeric(to) {
            return Err(format!(
                "cast to element type {to}: only numbers are accepted"
            ));
        }
        let x = self.input(0)?;
        let data = match (&x.data, to) {
            (Some(Data::Floats(v)), 2..=7 | 9 | 12 | 13) => {
                Some(Data::Ints(v.iter().map(|&f| f as i64).collect()))
            }
            (Some(Data::Ints(v)), 1 | 10 | 11 | 16) => {
                Some(Data::Floats(v.iter().map(|&i| i as f64).collect()))
            }
            (data, _) => data.clone(),
        };
        Ok((vec![Value::with(x.dims.clone(), data)], x.elements()))
    }

    pub(super) fn elementwise(&self) -> Inferred {
        let mut dims: Option<Vec<u64>> = None;
        for index in 0..self.inputs.len() {
            let x = self.input(index)?;
            dims = Some(match dims {
                None => x.dims.clone(),
                Some(d) => broadcast(&d, &x.dims)?,
            });
        }
        let dims = dims.ok_or("no inputs")?;
        let data = self.arithmetic();
        let elements = count(&dims);
        Ok((vec![Value::with(dims, data)], elements))
    }

    /// Elementwise integer arithmetic on known values (the same length, or one of them a
    /// single value): how exporters compute shapes. Saturating, so that a product cannot
    /// wrap back under a cap; a division by zero is not followed.
    pub(super) fn arithmetic(&self) -> Option<Data> {
        let (a, b) = match &self.inputs[..] {
            [Some(a), Some(b)] => (a.ints()?, b.ints()?),
            _ => return None,
        };
        let len = a.len().max(b.len());
        if (a.len() != len && a.len() != 1) || (b.len() != len && b.len() != 1) {
            return None;
        }
        let at = |v: &[i64], i: usize| if v.len() == 1 { v[0] } else { v[i] };
        (0..len)
            .map(|i| {
                let (x, y) = (at(a, i), at(b, i));
                match self.op() {
                    "Add" => Some(x.saturating_add(y)),
                    "Sub" => Some(x.saturating_sub(y)),
                    "Mul" => Some(x.saturating_mul(y)),
                    "Div" => x.checked_div(y),
                    "Max" => Some(x.max(y)),
                    "Min" => Some(x.min(y)),
                    _ => None,
                }
            })
            .collect::<Option<Vec<i64>>>()
            .map(Data::Ints)
    }
}
