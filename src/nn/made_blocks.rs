//! The row blocks of a MADE's masks: with the hidden units in increasing
//! degree, every masked weight matrix is block-triangular, and a product
//! over row blocks, each limited to the columns its rows reach, skips the
//! zero blocks (see [`Made`](super::Made)).

use nalgebra::DMatrix;

use super::mlp::RowBlock;
use crate::Real;

/// The blocks of `mask` for the forward products and for the backward ones,
/// each `None` where blocks are not worth their extra products (they would
/// still cover more than 85 % of the matrix). The forward products use finer
/// blocks where those skip at least a tenth of the matrix more.
pub(super) fn row_blocks_of<T: Real>(
    mask: &DMatrix<T>,
) -> (Option<Vec<RowBlock>>, Option<Vec<RowBlock>>) {
    let whole = mask.nrows() * mask.ncols();
    let (coarse, coarse_area) = row_blocks(mask, ROW_BLOCK);
    let (fine, fine_area) = row_blocks(mask, forward_row_block(mask.nrows()));
    let worth = |area: usize| area * 100 <= whole * 85;
    let backward = worth(coarse_area).then_some(coarse);
    let forward = if worth(fine_area) && fine_area + whole / 10 <= coarse_area {
        Some(fine)
    } else {
        backward.clone()
    };
    (forward, backward)
}

/// Rows per block of the backward products, whose blocks each cost a
/// masked copy of the weight gradient.
const ROW_BLOCK: usize = 64;

/// Rows per block of a forward product of a layer with `rows` outputs: a
/// quarter of them, from 16 to [`ROW_BLOCK`]. At hidden 64 this skips the
/// masked multiply-adds that one 64-row block keeps (about 10 % of a
/// `maf(5, hidden = 64)` log-density at `D = 8`, batch 256); at hidden 256
/// the blocks stay at 64 rows.
fn forward_row_block(rows: usize) -> usize {
    (rows / 4).clamp(16, ROW_BLOCK)
}

/// Splits a mask's rows into blocks of `block` rows, each with the range of
/// columns its nonzero entries span, and the number of entries the blocks
/// cover.
fn row_blocks<T: Real>(mask: &DMatrix<T>, block: usize) -> (Vec<RowBlock>, usize) {
    let (rows, cols) = mask.shape();
    let mut blocks = Vec::new();
    let mut area = 0;
    for r0 in (0..rows).step_by(block) {
        let r1 = (r0 + block).min(rows);
        let (mut lo, mut hi) = (cols, 0);
        for c in 0..cols {
            if (r0..r1).any(|r| mask[(r, c)] != T::zero()) {
                lo = lo.min(c);
                hi = c + 1;
            }
        }
        if lo >= hi {
            (lo, hi) = (0, 0);
        }
        // Columns from lo on whose entries are all ones in these rows.
        let full = (lo..hi)
            .find(|&c| (r0..r1).any(|r| mask[(r, c)] == T::zero()))
            .unwrap_or(hi);
        area += (r1 - r0) * (hi - lo);
        blocks.push(RowBlock {
            rows: (r0, r1),
            cols: (lo, hi),
            full,
        });
    }
    (blocks, area)
}
