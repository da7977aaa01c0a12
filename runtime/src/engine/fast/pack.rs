//! Weights and requantization constants repacked once, at load, for the vector kernels:
//! 4 consecutive filter taps of 16 output channels per 64 bytes, the layout `vpdpbusd`
//! (u8 x i8 -> i32, 4 products per lane) wants, and that AVX2 widens to 16 bits for
//! `vpmaddwd`; for AMX, each convolution's weights as tiles ([`Tiles`]). Also what each
//! layer reads ([`Layout`]) and the scratch memory that costs.

use crate::blob::Requant;

/// Output channels per 512-bit accumulator.
pub(super) const LANES: usize = 16;

/// One layer's weights and requantization, repacked for the vector kernels.
#[derive(Debug, Clone)]
pub(super) struct Packed {
    /// Packed taps per output channel (see [`Layout`]); a multiple of 4.
    pub taps: usize,
    /// Expanded layers: bytes per kernel row piece of the expanded input.
    pub padded_span: usize,
    /// Output channels, and blocks of 16 of them (the last one zero-padded).
    pub channels: usize,
    pub blocks: usize,
    /// `[taps / 4][blocks * 16][4]` i8 weights.
    pub weights: Aligned,
    /// Per padded channel: bias, multiplier, and `31 + shift` as i64.
    pub bias: Vec<i32>,
    pub multiplier: Vec<i32>,
    pub total_shift: Vec<i64>,
    /// Whether every channel's total shift is at least 31, so that a requantized value
    /// (a product of two values under 2^31, shifted right that far) is under 2^31.
    pub narrow: bool,
    /// Per block of 16 channels, the 64-bit lanes the vector requantization uses: the
    /// shifts of the even channels, of the odd ones, then the rounding halves of each.
    pub lanes: Vec<i64>,
    /// Per group of 4 taps, where its bytes start relative to the first byte a pixel
    /// reads (see [`Layout`]).
    pub offsets: Vec<u32>,
    /// Bytes past a pixel's first byte that its taps reach (largest offset + 4).
    pub reach: usize,
    /// Whether the layer reads its input directly instead of an expanded copy.
    pub direct: bool,
    /// What the layer is: a convolution (with its shape) or the logits.
    pub geometry: Geometry,
    /// The weights as AMX tiles, for direct convolutions when the AMX kernels run.
    pub tiles: Option<Tiles>,
    /// The max pool after this convolution, when its kernel runs it too.
    pub pool: Option<Pool>,
    /// Whether the AVX2 tier multiplies this layer's bytes with `vpmaddubsw` (its weights
    /// [`Packed::pairs_fit_16_bits`]) rather than widened to 16 bits.
    pub bytewise: bool,
}

/// A convolution's weights laid out for AMX's `tdpbusd` (see `amx`). The taps a pixel
/// reads are split into "chunks": runs of them that lie within a 64-byte window of the
/// zero-bordered input, so that one tile row (64 bytes) holds a pixel's taps of a chunk.
/// Per chunk and block of 16 channels, 16 rows (the window's 4-byte positions) of 16
/// channels x 4 bytes; bytes no tap uses hold zero weights, so the input bytes read
/// there add nothing.
#[derive(Debug, Clone)]
pub(super) struct Tiles {
    /// `[chunks][blocks][16][16][4]` i8 weights.
    pub weights: Aligned,
    /// Per chunk, where its window starts relative to the pixel's first byte.
    pub starts: Vec<u32>,
    /// Bytes of the (zero-bordered) input copy the tiles read, with the slack the last
    /// tiles' windows reach into (zeros).
    pub reads: usize,
    /// Pixels the passes compute: every column of the bordered width from the first
    /// output pixel to the last, rounded up to whole passes.
    pub computed: usize,
}

/// A max pool run on a convolution's raw sums, before requantization: the
/// requantization with ReLU is non-decreasing (the plan rejects negative multipliers,
/// and neither bias nor sums can wrap), so the requantized maximum is the maximum of the
/// requantized values, and only the pooled pixels are requantized.
///
/// The vector kernels compute a window's pixels in one register tile and keep their
/// maximum in registers (AVX-512: windows of 2 and 3; AVX2 and AVX-VNNI: 2); AMX stores
/// its tiles' sums anyway, and keeps each pooled pixel's maximum in the scratch
/// ([`Pool::into`]).
#[derive(Debug, Clone)]
pub(super) struct Pool {
    /// The window's side (and stride).
    pub size: usize,
    /// Pooled pixels (`(height / size) * (width / size)`).
    pub pixels: usize,
    /// With AMX tiles, per pixel they compute (every column of the bordered width,
    /// rounded up to whole passes): the pooled pixel whose window holds it, or
    /// [`Pool::NONE`]. Empty without tiles.
    pub into: Vec<u16>,
}

impl Pool {
    /// A computed pixel in no window: a border column, or a row or column the pool
    /// drops.
    pub const NONE: u16 = u16::MAX;

    /// Bytes of i32 sums the pooled pixels hold, 16 channels per block.
    pub fn sum_bytes(&self, blocks: usize) -> usize {
        self.pixels * blocks * LANES * 4
    }

    /// Scratch bytes for those sums, from a cache line, where the kernel keeps them
    /// there (AMX); 0 where it keeps them in registers.
    pub fn scratch_bytes(&self, blocks: usize) -> usize {
        match self.into.is_empty() {
            true => 0,
            false => 63 + self.sum_bytes(blocks),
        }
    }
}

/// Bytes (i8 weights) that start on a cache line, as do all their 64-byte rows: a
/// vector or tile-row load that straddles two cache lines costs two (measured: the AMX
/// tier's `edge` 7% faster with its weight tiles aligned). Reads as a `[i8]`.
#[derive(Debug, Clone, Default)]
pub(super) struct Aligned {
    lines: Vec<Line>,
    len: usize,
}

/// One cache line.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Line([i8; 64]);

impl Aligned {
    /// Each byte as a 16-bit little-endian value (2 bytes), in order.
    pub fn widened(&self) -> Aligned {
        let mut wide = Aligned::zeroed(2 * self.len);
        for (pair, &value) in wide.chunks_exact_mut(2).zip(self.iter()) {
            let [low, high] = i16::from(value).to_le_bytes();
            pair.copy_from_slice(&[low as i8, high as i8]);
        }
        wide
    }

    /// `len` zero bytes.
    pub fn zeroed(len: usize) -> Aligned {
        Aligned {
            lines: vec![Line([0; 64]); len.div_ceil(64)],
            len,
        }
    }
}

impl core::ops::Deref for Aligned {
    type Target = [i8];

    fn deref(&self) -> &[i8] {
        // SAFETY: `Line` is 64 i8 without padding (`repr(C)`), so `lines` is
        // `64 * lines.len() >= len` initialised i8, contiguous.
        unsafe { core::slice::from_raw_parts(self.lines.as_ptr().cast(), self.len) }
    }
}

impl core::ops::DerefMut for Aligned {
    fn deref_mut(&mut self) -> &mut [i8] {
        // SAFETY: as in `deref`, through the unique borrow of `lines`.
        unsafe { core::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast(), self.len) }
    }
}

/// Output pixels per AMX tile (its rows).
pub(super) const TILE_ROWS: usize = 16;

/// What a packed layer computes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Geometry {
    /// A convolution (`[height, width, channels]` shapes).
    Conv {
        input: [usize; 3],
        output: [usize; 3],
        kernel: usize,
        padding: usize,
    },
    /// The final linear layer over the flattened input.
    Logits,
}

/// How a layer's taps are laid out, and where a pixel's groups of 4 taps are read from.
///
/// - Logits: the flattened input, taps padded to a multiple of 4.
/// - Direct (input channels a multiple of 4, or any with padding): the (zero-bordered)
///   input activation itself; each kernel row's `kernel x channels` taps are that many
///   consecutive bytes, read in groups of 4 (rounded up: the last group of a row may
///   read bytes past it, which zero weights multiply).
/// - Expanded (other channel counts without padding, whose last pixel's groups could
///   read past the input): each kernel row's `kernel x channels` bytes are first copied,
///   for every output column, into a row of the "expanded" input (rounded up to 4
///   bytes), so a pixel's taps are `kernel` such pieces, one per kernel row.
struct Layout {
    /// Packed taps per output channel (a multiple of 4).
    taps: usize,
    /// The blob's taps per kernel row (`kernel x in`), and the packed ones (to 4; the
    /// same for logits).
    span: usize,
    padded_span: usize,
    /// Per group of 4 packed taps, its offset from the pixel's first byte.
    offsets: Vec<u32>,
    direct: bool,
}

impl Layout {
    fn new(taps: usize, geometry: Geometry) -> Layout {
        let Geometry::Conv {
            input: [_, w, c],
            output: [_, out_w, _],
            kernel,
            padding,
        } = geometry
        else {
            let taps = taps.div_ceil(4) * 4;
            return Layout {
                taps,
                span: taps,
                padded_span: taps,
                offsets: (0..taps / 4).map(|g| (4 * g) as u32).collect(),
                direct: false,
            };
        };
        let span = kernel * c;
        let padded_span = span.div_ceil(4) * 4;
        // Direct: kernel row `ky`'s taps are `span` consecutive bytes of the input, `ky`
        // rows below the pixel's; its last group of 4 may read up to `padded_span - span`
        // bytes past them, which zero weights multiply (and the bordered copy has them:
        // `Packed::copies`). Expanded: `ky` rows of pieces below the pixel's piece.
        let direct = c.is_multiple_of(4) || padding > 0;
        let row = match direct {
            true => (w + 2 * padding) * c,
            false => out_w * padded_span,
        };
        Layout {
            taps: kernel * padded_span,
            span,
            padded_span,
            offsets: (0..kernel)
                .flat_map(|ky| (0..padded_span / 4).map(move |g| (ky * row + 4 * g) as u32))
                .collect(),
            direct,
        }
    }

    /// Where tap `t` of the blob's `[ky][kx][in]` order goes among the packed taps: each
    /// kernel row's piece starts on a multiple of 4.
    fn place(&self, t: usize) -> usize {
        (t / self.span) * self.padded_span + t % self.span
    }
}

impl Packed {
    pub fn new(weights: &[u8], requant: &Requant<'_>, taps: usize, geometry: Geometry) -> Packed {
        let layout = Layout::new(taps, geometry);
        let channels = requant.shift.len();
        let blocks = channels.div_ceil(LANES);
        let width = blocks * LANES;
        let mut packed = Aligned::zeroed(layout.taps * width);
        for c in 0..channels {
            for t in 0..taps {
                let at = layout.place(t);
                packed[((at / 4) * width + c) * 4 + at % 4] = weights[c * taps + t] as i8;
            }
        }
        // Per padded channel; the padding channels get 0.
        let per_channel = |bytes: &[u8]| -> Vec<i32> {
            (0..width)
                .map(|c| {
                    if c < channels {
                        crate::engine::kernels::le_i32(bytes, c)
                    } else {
                        0
                    }
                })
                .collect()
        };
        Packed {
            taps: layout.taps,
            padded_span: layout.padded_span,
            channels,
            blocks,
            weights: packed,
            bias: per_channel(requant.bias),
            multiplier: per_channel(requant.multiplier),
            // Padded channels: multiplier 0 and a shift of 31 give 0, never stored.
            total_shift: (0..width)
                .map(|c| 31 + requant.shift.get(c).map_or(0, |&s| i64::from(s as i8)))
                .collect(),
            narrow: false,
            lanes: Vec::new(),
            reach: layout.offsets.iter().max().map_or(0, |&o| o as usize + 4),
            offsets: layout.offsets,
            direct: layout.direct,
            geometry,
            tiles: None,
            pool: None,
            bytewise: false,
        }
        .with_lanes()
    }

    /// This convolution's AMX tiles (see [`Tiles`]), from the blob's `[channel][ky][kx]
    /// [in]` weights. The kernel reads the zero-bordered input, in which tap `(ky, kx,
    /// in)` of a pixel lies `(ky * width + kx) * in_channels + in` bytes after its first
    /// byte, whatever the channel count; it computes the output pixels of every column
    /// of that width (those past the output's width are dropped), so that consecutive
    /// pixels' taps lie a constant stride apart (the input channels), 32 pixels (two
    /// tiles) at a time.
    pub fn tiles(&self, weights: &[u8]) -> Option<Tiles> {
        let Geometry::Conv {
            input: [h, w, c],
            output: [out_h, out_w, _],
            kernel,
            padding,
        } = self.geometry
        else {
            return None;
        };
        if out_h == 0 || out_w == 0 {
            return None;
        }
        let source_width = w + 2 * padding;
        let taps = kernel * kernel * c;
        let mut starts: Vec<u32> = Vec::new();
        // Per tap: its chunk and its byte in the chunk's window.
        let mut places = Vec::with_capacity(taps);
        for t in 0..taps {
            let (ky, kx, ic) = (t / (kernel * c), (t / c) % kernel, t % c);
            let offset = ((ky * source_width + kx) * c + ic) as u32;
            match starts.last() {
                Some(&start) if offset < start + 64 => {}
                _ => starts.push(offset),
            }
            let start = starts[starts.len() - 1];
            places.push((starts.len() - 1, (offset - start) as usize));
        }
        let blocks = self.blocks;
        let mut tiles = Aligned::zeroed(starts.len() * blocks * TILE_ROWS * 64);
        for channel in 0..self.channels {
            let (block, lane) = (channel / LANES, channel % LANES);
            for (t, &(chunk, byte)) in places.iter().enumerate() {
                let row = byte / 4;
                let to = ((chunk * blocks + block) * TILE_ROWS + row) * 64 + lane * 4 + byte % 4;
                tiles[to] = weights[channel * taps + t] as i8;
            }
        }
        let pixels = (out_h - 1) * source_width + out_w;
        let computed = pixels.div_ceil(2 * TILE_ROWS) * 2 * TILE_ROWS;
        let last = starts.iter().max().map_or(0, |&s| s as usize);
        let reads = ((h + 2 * padding) * source_width * c).max((computed - 1) * c + last + 64);
        Some(Tiles {
            weights: tiles,
            starts,
            reads,
            computed,
        })
    }

    /// The [`Pool`] of a `size` x `size` max pool (stride `size`, `size` at least 1, as
    /// the plan checked) after this convolution, over the pixels its kernel computes (AMX
    /// tiles, if [`Packed::tiles`] is already set); `None` if the tiles' pooled pixels do
    /// not fit 16 bits. Which sizes each kernel runs, `FastPlan::with_isa` decides.
    pub fn pool(&self, size: usize) -> Option<Pool> {
        let Geometry::Conv {
            output: [out_h, out_w, _],
            input: [_, w, _],
            padding,
            ..
        } = self.geometry
        else {
            return None;
        };
        let (pool_h, pool_w) = (out_h / size, out_w / size);
        let pixels = pool_h * pool_w;
        let into = match &self.tiles {
            Some(tiles) if pixels < usize::from(Pool::NONE) => {
                let width = w + 2 * padding;
                (0..tiles.computed)
                    .map(|p| {
                        let (y, x) = (p / width, p % width);
                        match (y / size, x / size) {
                            (py, px) if x < out_w && py < pool_h && px < pool_w => {
                                (py * pool_w + px) as u16
                            }
                            _ => Pool::NONE,
                        }
                    })
                    .collect()
            }
            Some(_) => return None,
            None => Vec::new(),
        };
        Some(Pool { size, pixels, into })
    }

    /// Bytes of the zero-bordered and of the expanded copy of the input that
    /// `source::prepare` builds for this layer (0 for a copy it does not build).
    pub fn copies(&self) -> (usize, usize) {
        let Geometry::Conv {
            input: [h, w, c],
            output: [_, out_w, _],
            kernel,
            padding,
        } = self.geometry
        else {
            return (0, 0);
        };
        let height = h + 2 * padding;
        // With the bytes the last pixel's groups of 4 read past its last taps.
        let bordered = if padding > 0 {
            height * (w + 2 * padding) * c + (self.padded_span - kernel * c)
        } else {
            0
        };
        let expanded = if self.direct {
            0
        } else {
            height * out_w * self.padded_span
        };
        (bordered, expanded)
    }

    /// Bytes the tiles read: the logits' patch (taps), a direct layer's input or bordered
    /// copy, or the expanded copy.
    pub fn reads(&self) -> usize {
        let (bordered, expanded) = self.copies();
        match self.geometry {
            Geometry::Logits => self.taps,
            Geometry::Conv {
                input: [h, w, c], ..
            } if self.direct => bordered.max(h * w * c),
            Geometry::Conv { .. } => expanded,
        }
    }

    /// Scratch bytes the kernels need for this layer: the copies, plus, when `widened`
    /// (AVX2), the bytes read widened to 16 bits. The logits copy their input to a patch
    /// of `taps` bytes (16-bit when widened).
    pub fn scratch_bytes(&self, widened: bool) -> usize {
        let (bordered, expanded) = self.copies();
        let patch = match self.geometry {
            Geometry::Logits => self.taps,
            Geometry::Conv { .. } => 0,
        };
        if widened {
            bordered + expanded + 2 * self.reads()
        } else {
            bordered + expanded + patch
        }
    }

    /// Whether `vpmaddubsw` computes this layer exactly: in every group of 4 taps, each pair
    /// of weights it adds (taps 0 and 1, 2 and 3) has `|w0| + |w1| <= 128`, so that no pair
    /// sum of u8 inputs (at most `255 * 128 = 32,640`) saturates its 16 bits. Weights
    /// quantized to 7 bits (`|w| <= 64`) always do; the zero padding adds nothing.
    pub fn pairs_fit_16_bits(&self) -> bool {
        self.weights
            .chunks_exact(2)
            .all(|pair| pair[0].unsigned_abs() as u32 + pair[1].unsigned_abs() as u32 <= 128)
    }

    fn with_lanes(mut self) -> Packed {
        self.narrow = self.total_shift.iter().all(|&shift| shift >= 31);
        self.lanes = self
            .total_shift
            .chunks_exact(LANES)
            .flat_map(|block| {
                let even = block.iter().step_by(2);
                let odd = block.iter().skip(1).step_by(2);
                let shifts = even.clone().chain(odd.clone()).copied();
                let halves = even.chain(odd).map(|&s| 1i64 << (s - 1));
                shifts.chain(halves).collect::<Vec<_>>()
            })
            .collect();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::Output;

    #[test]
    fn byte_pairs_fit_up_to_128_in_magnitude_and_not_beyond() {
        let (bias, multiplier, shift) = ([0u8; 4], [0u8; 4], [0u8]);
        let requant = Requant {
            bias: &bias,
            multiplier: &multiplier,
            shift: &shift,
            output: Output::Logits,
        };
        // One channel of 6 taps (packed as 8: the last pair is padding), the pairs
        // (taps 0-1, 2-3, 4-5) at `|w0| + |w1|` = 128, -128 included.
        let fits = |weights: [i8; 6]| {
            let bytes = weights.map(|w| w as u8);
            Packed::new(&bytes, &requant, 6, Geometry::Logits).pairs_fit_16_bits()
        };
        assert!(fits([-128, 0, 64, -64, 100, 28]));
        assert!(fits([127, 1, -1, -127, 0, 0]));
        // One pair over 128 anywhere: 255 x 129 = 32,895 would saturate.
        assert!(!fits([-128, -1, 0, 0, 0, 0]));
        assert!(!fits([0, 0, 0, 0, 65, 64]));
        assert!(!fits([64, 64, 127, 2, 0, 0]));
        // Taps 1 and 2 are not a pair: both large is fine.
        assert!(fits([0, 127, 127, 0, 0, 0]));
    }

    #[test]
    fn packing_puts_four_taps_of_sixteen_channels_together() {
        // 2 channels, 5 taps: weights[c][t] = 10 * c + t.
        let weights: Vec<u8> = (0..2)
            .flat_map(|c| (0..5).map(move |t| 10 * c + t))
            .collect();
        let bias = [0u8; 8];
        let multiplier = [0u8; 8];
        let shift = [3u8, 253];
        let requant = Requant {
            bias: &bias,
            multiplier: &multiplier,
            shift: &shift,
            output: Output::Logits,
        };
        let packed = Packed::new(&weights, &requant, 5, Geometry::Logits);
        assert_eq!((packed.taps, packed.blocks, packed.channels), (8, 1, 2));
        assert_eq!(&packed.weights[..8], &[0, 1, 2, 3, 10, 11, 12, 13]);
        // Taps 4..8 of channel 0 start the second group of 16 channels x 4 taps.
        assert_eq!(&packed.weights[64..72], &[4, 0, 0, 0, 14, 0, 0, 0]);
        assert_eq!(&packed.total_shift[..3], &[34, 28, 31]);
        // Requantization lanes: even channels' shifts, odd channels', then the halves.
        assert_eq!(&packed.lanes[..2], &[34, 31]);
        assert_eq!(&packed.lanes[8..10], &[28, 31]);
        assert_eq!(&packed.lanes[16..18], &[1 << 33, 1 << 30]);
        assert_eq!(&packed.lanes[24..26], &[1 << 27, 1 << 30]);
        // The logits' scratch: one patch of 8 taps, 16 bytes when widened.
        assert_eq!(
            (packed.scratch_bytes(false), packed.scratch_bytes(true)),
            (8, 16)
        );
    }

    #[test]
    fn scratch_covers_the_copies_and_the_widened_reads() {
        let weights = [1u8; 9 * 2];
        let (bias, multiplier, shift) = ([0u8; 8], [0u8; 8], [0u8; 2]);
        let requant = Requant {
            bias: &bias,
            multiplier: &multiplier,
            shift: &shift,
            output: Output::Relu,
        };
        let conv = |padding: usize| {
            let side = |n: usize| n + 2 * padding - 2;
            let geometry = Geometry::Conv {
                input: [6, 5, 1],
                output: [side(6), side(5), 2],
                kernel: 3,
                padding,
            };
            Packed::new(&weights, &requant, 9, geometry)
        };
        // A padded 1-channel 3x3 convolution on 6x5 reads its bordered 8x7 copy directly,
        // each kernel row a group of 4 (3 taps and a zero weight), 7 bytes apart; the last
        // pixel's last group reads 1 byte past the copy, which has it.
        let packed = conv(1);
        assert!(packed.direct);
        assert_eq!((packed.taps, &packed.offsets[..]), (12, &[0, 7, 14][..]));
        assert_eq!(packed.copies(), (8 * 7 + 1, 0));
        assert_eq!(packed.reads(), 57);
        assert_eq!(packed.scratch_bytes(false), 57);
        assert_eq!(packed.scratch_bytes(true), 57 + 2 * 57);
        // Unpadded, the last pixel's group would read past the input: expanded rows of 4
        // per output column (3) and input row (6).
        let packed = conv(0);
        assert!(!packed.direct);
        assert_eq!(packed.copies(), (0, 6 * 3 * 4));
        assert_eq!(packed.reads(), 72);
        assert_eq!(packed.scratch_bytes(false), 72);
        assert_eq!(packed.scratch_bytes(true), 72 + 144);
    }
}
