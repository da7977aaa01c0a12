//! What a convolution's tiles read ([`Source`]): the input itself, its zero-bordered
//! copy, or its expanded copy (see `pack::Layout`), built by [`prepare`] in the scratch
//! part of the caller's arena; and the windows max pooling reads ([`pool_windows`]).

use super::pack::{Geometry, Packed};

/// The bytes a convolution's tiles read, and where each output pixel's taps start.
pub(super) struct Source<'s> {
    pub reads: &'s [u8],
    direct: bool,
    /// Row width (pixels) and channels of a direct source; output width and piece size
    /// of an expanded one.
    width: usize,
    channels: usize,
    out_w: usize,
    piece: usize,
    /// Output pixels.
    pixels: usize,
}

impl<'s> Source<'s> {
    /// How many output pixels the layer has.
    pub fn pixels(&self) -> usize {
        self.pixels
    }

    /// Where the taps of output pixel (`y`, `x`) start.
    #[inline(always)]
    fn start(&self, y: usize, x: usize) -> usize {
        match self.direct {
            true => (y * self.width + x) * self.channels,
            false => (y * self.out_w + x) * self.piece,
        }
    }

    /// The output pixels, `P` at a time: `(first, count, starts)`, `starts[p]` being where
    /// pixel `first + p`'s taps start (the pixels past `count` repeat the last one).
    pub fn tiles<const P: usize>(&self) -> PixelTiles<'_, 's, P> {
        PixelTiles {
            source: self,
            first: 0,
            at: (0, 0),
        }
    }

    /// The windows of an `S` x `S` max pool (stride `S`) over the output pixels, `P / (S *
    /// S)` windows at a time: `(first, count, starts)`, `first` being the first window's
    /// pooled pixel, `count` how many windows are real, and `starts` where each window's
    /// pixels' taps start, window by window, row by row within a window (the windows past
    /// `count` repeat the last real pixel).
    pub fn windows<const P: usize, const S: usize>(&self) -> Windows<'_, 's, P, S> {
        let (pool_h, pool_w) = (self.pixels / self.out_w / S, self.out_w / S);
        Windows {
            source: self,
            pooled: pool_h * pool_w,
            pool_w,
            first: 0,
            at: (0, 0),
        }
    }
}

/// See [`Source::tiles`]. An iterator whose `next` is always inlined into the kernel (a
/// closure's was not, and took a sixth of a 256-bit kernel's time), and which counts rows
/// and columns rather than divide them out (a division per pixel measured a third of the
/// AVX-512 tier's first convolution).
pub(super) struct PixelTiles<'a, 's, const P: usize> {
    source: &'a Source<'s>,
    /// The next pixel, and its row and column.
    first: usize,
    at: (usize, usize),
}

impl<const P: usize> Iterator for PixelTiles<'_, '_, P> {
    type Item = (usize, usize, [usize; P]);

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        let pixels = self.source.pixels;
        if self.first >= pixels {
            return None;
        }
        let first = self.first;
        let count = P.min(pixels - first);
        let mut starts = [0; P];
        for at in &mut starts[..count] {
            let (y, x) = self.at;
            *at = self.source.start(y, x);
            self.at = match x + 1 == self.source.out_w {
                true => (y + 1, 0),
                false => (y, x + 1),
            };
        }
        let last = starts[count - 1];
        starts[count..].fill(last);
        self.first += count;
        Some((first, count, starts))
    }
}

/// See [`Source::windows`]; inlined, and counting, as [`PixelTiles`].
pub(super) struct Windows<'a, 's, const P: usize, const S: usize> {
    source: &'a Source<'s>,
    pooled: usize,
    pool_w: usize,
    /// The next window's pooled pixel, and its pooled row and column.
    first: usize,
    at: (usize, usize),
}

impl<const P: usize, const S: usize> Iterator for Windows<'_, '_, P, S> {
    type Item = (usize, usize, [usize; P]);

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        let window = S * S;
        if self.first >= self.pooled {
            return None;
        }
        let first = self.first;
        let count = (P / window).min(self.pooled - first);
        let mut starts = [0; P];
        for pixels in starts.chunks_exact_mut(window).take(count) {
            let (py, px) = self.at;
            for dy in 0..S {
                for dx in 0..S {
                    pixels[dy * S + dx] = self.source.start(py * S + dy, px * S + dx);
                }
            }
            self.at = match px + 1 == self.pool_w {
                true => (py + 1, 0),
                false => (py, px + 1),
            };
        }
        let last = starts[count * window - 1];
        starts[count * window..].fill(last);
        self.first += count;
        Some((first, count, starts))
    }
}

/// `input` (`[h, w, c]`) with `padding` zero pixels around it, at the start of `dst`
/// (`copy` copies its rows); the rest of `dst` is zeroed. Only the bytes outside the
/// input's rows are written with zeros.
pub(super) fn border(
    input: &[u8],
    [h, w, c]: [usize; 3],
    padding: usize,
    dst: &mut [u8],
    copy: impl Fn(&[u8], &mut [u8]),
) {
    let (width, row) = (w + 2 * padding, w * c);
    let mut done = 0;
    for y in 0..h {
        let at = ((y + padding) * width + padding) * c;
        dst[done..at].fill(0);
        copy(&input[y * row..][..row], &mut dst[at..at + row]);
        done = at + row;
    }
    dst[done..].fill(0);
}

/// The logits layer's patch: the flattened `input`, then zeros up to `packed.taps` (a
/// multiple of 4), at the start of `scratch`, copied with `copy`.
pub(super) fn patch<'s>(
    packed: &Packed,
    input: &[u8],
    scratch: &'s mut [u8],
    copy: impl Fn(&[u8], &mut [u8]),
) -> &'s [u8] {
    let patch = &mut scratch[..packed.taps];
    let (head, tail) = patch.split_at_mut(input.len());
    copy(input, head);
    tail.fill(0);
    patch
}

/// The source of convolution `packed` over `input`: the zero-bordered copy of a padded
/// input (direct layers) or the expanded input (the others) is built at the start of
/// `scratch` with `copy` (`dst.copy_from_slice(src)`, or a faster equivalent). Returns
/// the source and the scratch bytes it left unused.
pub(super) fn prepare<'s>(
    packed: &Packed,
    input: &'s [u8],
    scratch: &'s mut [u8],
    copy: impl Fn(&[u8], &mut [u8]),
) -> (Source<'s>, &'s mut [u8]) {
    let Geometry::Conv {
        input: [in_h, in_w, in_c],
        output: [out_h, out_w, _],
        kernel,
        padding,
    } = packed.geometry
    else {
        unreachable!("only convolutions have a source");
    };
    let (bordered_len, expanded_len) = packed.copies();
    let (bordered, rest) = scratch.split_at_mut(bordered_len);
    let (expanded, rest) = rest.split_at_mut(expanded_len);
    let (source, width): (&[u8], usize) = if padding == 0 {
        (input, in_w)
    } else {
        border(input, [in_h, in_w, in_c], padding, bordered, &copy);
        (bordered, in_w + 2 * padding)
    };
    let piece = packed.padded_span;
    let reads: &[u8] = if packed.direct {
        source
    } else {
        expanded.fill(0);
        let span = kernel * in_c;
        for (i, row) in expanded.chunks_exact_mut(piece).enumerate() {
            let (y, x) = (i / out_w, i % out_w);
            let from = (y * width + x) * in_c;
            copy(&source[from..from + span], &mut row[..span]);
        }
        expanded
    };
    let source = Source {
        reads,
        direct: packed.direct,
        width,
        channels: in_c,
        out_w,
        piece,
        pixels: out_h * out_w,
    };
    (source, rest)
}

/// Max pooling's walk over `input` (`[h, w, c]` in `src`) with a `size` x `size` window,
/// stride `size`: for each output pixel in order, `visit(window, out, size)` with the
/// window's bytes (from its top-left pixel's first channel to its bottom-right pixel's
/// last, rows `w * c` apart) and the output pixel's `c` bytes of `dst`. Always inlined,
/// so that `visit` runs with its caller's target features; 2 and 3 are passed to it as
/// constants, so that its loops over the window unroll (the loop over a run-time size
/// measured slower).
#[inline(always)]
pub(super) fn pool_windows(
    input: [usize; 3],
    size: usize,
    src: &[u8],
    dst: &mut [u8],
    mut visit: impl FnMut(&[u8], &mut [u8], usize),
) {
    match size {
        2 => walk::<2>(input, size, src, dst, &mut visit),
        3 => walk::<3>(input, size, src, dst, &mut visit),
        _ => walk::<0>(input, size, src, dst, &mut visit),
    }
}

/// [`pool_windows`] with `size` the constant `S` when that is not 0.
#[inline(always)]
fn walk<const S: usize>(
    [h, w, c]: [usize; 3],
    size: usize,
    src: &[u8],
    dst: &mut [u8],
    visit: &mut impl FnMut(&[u8], &mut [u8], usize),
) {
    let size = if S == 0 { size } else { S };
    let (out_h, out_w) = (h / size, w / size);
    let (src, dst) = (&src[..h * w * c], &mut dst[..out_h * out_w * c]);
    for oy in 0..out_h {
        for ox in 0..out_w {
            let out = &mut dst[(oy * out_w + ox) * c..][..c];
            let corner = (oy * size * w + ox * size) * c;
            visit(
                &src[corner..corner + ((size - 1) * w + size) * c],
                out,
                size,
            );
        }
    }
}
