//! The geometry the kernels that copy input windows into columns share (`dsp`,
//! `simd128`): which rows of an output pixel's window lie inside the image, and whether
//! the whole window does.

use super::Step;
use crate::blob::QuantConv2d;

/// Whether output pixel `pixel`'s window lies wholly inside the input (reads no padding).
#[inline(always)]
pub(super) fn inside(step: &Step, conv: &QuantConv2d<'_>, pixel: usize) -> bool {
    let [in_h, in_w, _] = step.input;
    let out_w = step.output[1];
    let (k, pad) = (usize::from(conv.kernel), usize::from(conv.padding));
    let (oy, ox) = (pixel / out_w, pixel % out_w);
    ox >= pad && ox + k <= in_w + pad && oy >= pad && oy + k <= in_h + pad
}

/// The rows of output pixel `pixel`'s window that lie inside the input, each as the index
/// of its first tap in the filter (taps in `[ky][kx][ic]` order, as the weights) and its
/// bytes of `input` (HWC); the taps of the rows and columns in the padding are not given.
#[inline(always)]
pub(super) fn rows<'a>(
    step: &Step,
    conv: &QuantConv2d<'_>,
    input: &'a [u8],
    pixel: usize,
) -> impl Iterator<Item = (usize, &'a [u8])> {
    let [in_h, in_w, in_c] = step.input;
    let out_w = step.output[1];
    let (k, pad) = (usize::from(conv.kernel), usize::from(conv.padding));
    let (oy, ox) = (pixel / out_w, pixel % out_w);
    let kx_start = pad.saturating_sub(ox);
    let kx_end = k.min(in_w + pad - ox);
    (0..k).filter_map(move |ky| {
        let iy = (oy + ky).checked_sub(pad).filter(|&iy| iy < in_h)?;
        let row = &input[(iy * in_w + ox + kx_start - pad) * in_c..][..(kx_end - kx_start) * in_c];
        Some(((ky * k + kx_start) * in_c, row))
    })
}
