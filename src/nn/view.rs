//! Strided matrix views, read-only ([`MatRef`]) and mutable ([`MatMut`]),
//! for the dense products: element `(i, j)` is `data[i·rs + j·cs]`, so a
//! transpose or a block is a view with other strides and offset, not a copy.

use nalgebra::DMatrix;

use crate::Real;

/// The shape and strides of a view, and the index arithmetic both views
/// share.
#[derive(Clone, Copy)]
pub(crate) struct Layout {
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) rs: usize,
    pub(super) cs: usize,
}

impl Layout {
    /// Largest offset of the view plus one (0 for an empty view).
    #[inline]
    fn extent(self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.rs + (self.cols - 1) * self.cs + 1
        }
    }

    /// Panics (naming `view`) if the view reaches past `len` values.
    #[inline]
    fn check_fits(self, view: &str, len: usize) {
        let Layout { rows, cols, rs, cs } = self;
        assert!(
            self.extent() <= len,
            "{view}: a {rows}×{cols} view with strides ({rs}, {cs}) does not fit in {len} values"
        );
    }

    /// Rows `rows.0..rows.1` and columns `cols.0..cols.1`: the offset of the
    /// block's first element and its layout.
    #[inline]
    fn block(self, rows: (usize, usize), cols: (usize, usize)) -> (usize, Layout) {
        assert!(
            rows.0 <= rows.1 && rows.1 <= self.rows && cols.0 <= cols.1 && cols.1 <= self.cols,
            "block: rows {rows:?}, columns {cols:?} of a {}×{} view",
            self.rows,
            self.cols
        );
        let (r, c) = (rows.1 - rows.0, cols.1 - cols.0);
        let start = if r == 0 || c == 0 {
            0
        } else {
            rows.0 * self.rs + cols.0 * self.cs
        };
        (
            start,
            Layout {
                rows: r,
                cols: c,
                ..self
            },
        )
    }

    /// The rows `start, start + step, …` (`count` of them): the offset and
    /// the layout.
    #[inline]
    fn rows_strided(self, start: usize, step: usize, count: usize) -> (usize, Layout) {
        assert!(
            count == 0 || start + (count - 1) * step < self.rows,
            "rows_strided: out of range"
        );
        if count == 0 {
            return (0, Layout { rows: 0, ..self });
        }
        let rs = self.rs * step;
        (
            start * self.rs,
            Layout {
                rows: count,
                rs,
                ..self
            },
        )
    }
}

/// A strided matrix view over the values `data` (a `&[T]` or a `&mut [T]`):
/// element `(i, j)` is `data[i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub(crate) struct View<S> {
    pub(super) data: S,
    pub(super) l: Layout,
}

/// A read-only strided matrix view.
pub(crate) type MatRef<'a, T> = View<&'a [T]>;

/// A mutable strided matrix view (same indexing as [`MatRef`]). Distinct
/// elements must have distinct offsets (no stride is 0 unless its extent is 1).
pub(crate) type MatMut<'a, T> = View<&'a mut [T]>;

/// The values behind a view: a slice that can be cut at an offset.
pub(crate) trait Values: Sized {
    /// The number of values.
    fn len(&self) -> usize;
    /// The values from `start` on.
    fn skip_to(self, start: usize) -> Self;
}

impl<T> Values for &[T] {
    #[inline]
    fn len(&self) -> usize {
        <[T]>::len(self)
    }
    #[inline]
    fn skip_to(self, start: usize) -> Self {
        &self[start..]
    }
}

impl<T> Values for &mut [T] {
    #[inline]
    fn len(&self) -> usize {
        <[T]>::len(self)
    }
    #[inline]
    fn skip_to(self, start: usize) -> Self {
        &mut self[start..]
    }
}

impl<S: Values> View<S> {
    /// `data` under the layout `l`, checked to fit (naming `view`).
    fn checked(view: &str, data: S, l: Layout) -> Self {
        l.check_fits(view, data.len());
        Self::at(data, l)
    }

    #[inline]
    fn at(data: S, l: Layout) -> Self {
        Self { data, l }
    }

    /// Rows `rows.0..rows.1` and columns `cols.0..cols.1`, as a view.
    #[inline]
    pub(crate) fn block(self, rows: (usize, usize), cols: (usize, usize)) -> Self {
        let (start, l) = self.l.block(rows, cols);
        Self::at(self.data.skip_to(start), l)
    }

    /// The rows `start, start + step, …` (`count` of them), as a view.
    #[inline]
    pub(crate) fn rows_strided(self, start: usize, step: usize, count: usize) -> Self {
        let (offset, l) = self.l.rows_strided(start, step, count);
        Self::at(self.data.skip_to(offset), l)
    }
}

impl<'a, T> MatRef<'a, T> {
    /// A strided view of `data`.
    ///
    /// # Panics
    /// If the view reaches past the end of `data`.
    #[inline]
    pub(crate) fn new(data: &'a [T], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        Self::checked("MatRef", data, Layout { rows, cols, rs, cs })
    }

    /// A column-major `rows × cols` matrix stored contiguously in `data`.
    #[inline]
    pub(crate) fn col_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, 1, rows)
    }

    /// The transpose, as a view (no copy).
    #[inline]
    pub(crate) fn t(self) -> Self {
        let Layout { rows, cols, rs, cs } = self.l;
        Self::at(
            self.data,
            Layout {
                rows: cols,
                cols: rows,
                rs: cs,
                cs: rs,
            },
        )
    }
}

impl<'a, T: Real> From<&'a DMatrix<T>> for MatRef<'a, T> {
    fn from(m: &'a DMatrix<T>) -> Self {
        Self::col_major(m.as_slice(), m.nrows(), m.ncols())
    }
}

impl<'a, T> MatMut<'a, T> {
    /// A mutable strided view of `data`.
    ///
    /// # Panics
    /// If the view reaches past the end of `data`, or two elements share an
    /// offset.
    #[inline]
    pub(crate) fn new(data: &'a mut [T], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        // Column-major-like (rs < cs with (rows − 1)·rs < cs) or row-major-like
        // layouts never alias; the views built in this crate are one of them.
        assert!(
            rows <= 1
                || cols <= 1
                || (rs >= 1 && (rows - 1) * rs < cs)
                || (cs >= 1 && (cols - 1) * cs < rs),
            "MatMut: strides ({rs}, {cs}) alias elements of a {rows}×{cols} view"
        );
        assert!(
            (rows <= 1 || rs >= 1) && (cols <= 1 || cs >= 1),
            "MatMut: a zero stride aliases elements"
        );
        Self::checked("MatMut", data, Layout { rows, cols, rs, cs })
    }

    /// A column-major `rows × cols` matrix stored contiguously in `data`.
    #[inline]
    pub(crate) fn col_major(data: &'a mut [T], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, 1, rows)
    }

    /// Calls `f(row, col, &mut value)` on every element, column by column.
    pub(crate) fn for_each(&mut self, mut f: impl FnMut(usize, usize, &mut T)) {
        let Layout { rows, cols, rs, cs } = self.l;
        for j in 0..cols {
            for i in 0..rows {
                f(i, j, &mut self.data[i * rs + j * cs]);
            }
        }
    }
}

impl<'a, T: Real> From<&'a mut DMatrix<T>> for MatMut<'a, T> {
    fn from(m: &'a mut DMatrix<T>) -> Self {
        let (r, c) = m.shape();
        Self::col_major(m.as_mut_slice(), r, c)
    }
}
