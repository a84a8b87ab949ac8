//! Sequential evaluation of a MADE, for autoregressive sampling.

use nalgebra::DMatrix;

use super::Made;
use super::gemm::{self, MatMut, MatRef};
use super::made::hidden_units_of_degree;
use super::mlp::activate_in_place;
use crate::Real;

impl<T: Real> Made<T> {
    /// Starts a sequential evaluation over `n` samples (no context), for
    /// sampling coordinate by coordinate in the autoregressive order.
    ///
    /// Calling [`MadeSequential::step`] `D` times costs about **one** full
    /// MADE pass rather than `D`: a hidden unit of degree `d` depends only on
    /// the coordinates at positions `< d` of the order, so it is evaluated
    /// once, at step `d`, when those are all known; each step evaluates only
    /// the hidden units of its own degree and the outputs of its own
    /// coordinate.
    ///
    /// ```
    /// use nalgebra::DMatrix;
    /// use normflow::nn::{ConditionerConfig, Made};
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    /// let cfg = ConditionerConfig { hidden: 8, identity_init: false, ..Default::default() };
    /// let made = Made::<f64>::with_order(3, 0, 2, vec![2, 0, 1], &cfg, &mut rng)?;
    /// let x = DMatrix::from_fn(3, 4, |i, j| (i * 4 + j) as f64 * 0.1);
    /// let full = made.forward(&x);
    /// let mut seq = made.sequential(4);
    /// while let Some(i) = seq.next_coordinate() {
    ///     // Parameter k of coordinate i is output row k·D + i of the full pass.
    ///     let out = seq.step(&x);
    ///     for k in 0..2 {
    ///         for s in 0..4 {
    ///             assert!((out[(k, s)] - full[(k * 3 + i, s)]).abs() < 1e-12);
    ///         }
    ///     }
    /// }
    /// # Ok::<(), normflow::Error>(())
    /// ```
    ///
    /// # Panics
    /// If the MADE takes a context (use [`Made::sequential_with_context`]).
    pub fn sequential(&self, n: usize) -> MadeSequential<'_, T> {
        assert!(
            self.context_dim() == 0,
            "Made::sequential: this MADE takes a context; use sequential_with_context"
        );
        MadeSequential::new(self, None, n)
    }

    /// [`Made::sequential`] with a `C × n` context.
    ///
    /// # Panics
    /// If the context does not have `C` rows.
    pub fn sequential_with_context<'a>(&'a self, context: &'a DMatrix<T>) -> MadeSequential<'a, T> {
        crate::batch::assert_rows(
            "Made::sequential_with_context (context)",
            self.context_dim(),
            context,
        );
        MadeSequential::new(self, Some(context), context.ncols())
    }
}

/// A MADE evaluated one coordinate at a time, in its autoregressive order
/// (see [`Made::sequential`]).
#[derive(Debug)]
pub struct MadeSequential<'a, T: Real> {
    made: &'a Made<T>,
    context: Option<&'a DMatrix<T>>,
    n: usize,
    /// Position in the order of the next coordinate.
    position: usize,
    /// `[x; context]` when there is a context.
    input: Option<DMatrix<T>>,
    /// Plain network: the activation of every hidden layer. Residual network:
    /// the stream `h`, then for each block its two activations.
    hidden: Vec<super::pool::Scratch<T>>,
    /// The current coordinate's outputs, `params_per_dim × n`.
    out: DMatrix<T>,
}

impl<'a, T: Real> MadeSequential<'a, T> {
    fn new(made: &'a Made<T>, context: Option<&'a DMatrix<T>>, n: usize) -> Self {
        let net = made.net();
        let sizes = net.sizes();
        let hidden = if net.is_residual() {
            let blocks = (net.num_layers() - 2) / 2;
            (0..1 + 2 * blocks).map(|_| zeroed(sizes[1], n)).collect()
        } else {
            sizes[1..sizes.len() - 1]
                .iter()
                .map(|&w| zeroed(w, n))
                .collect()
        };
        Self {
            made,
            context,
            n,
            position: 0,
            input: context.map(|c| DMatrix::zeros(made.dim() + c.nrows(), n)),
            hidden,
            out: DMatrix::zeros(made.params_per_dim(), n),
        }
    }

    /// The coordinate that the next [`MadeSequential::step`] returns the
    /// parameters of, or `None` once all `D` have been returned.
    pub fn next_coordinate(&self) -> Option<usize> {
        self.made.order().get(self.position).copied()
    }

    /// Given `x` (`D × n`) whose coordinates at positions `0..k` of the order
    /// are final (the others are ignored, but must be finite), returns the
    /// MADE's outputs for coordinate `order[k]`: a `params_per_dim × n`
    /// matrix whose row `p` is output row `p·D + order[k]` of a full pass.
    ///
    /// # Panics
    /// If `x` is not `D × n`, or all `D` coordinates were already returned.
    pub fn step(&mut self, x: &DMatrix<T>) -> &DMatrix<T> {
        let d = self.made.dim();
        let k = self.position;
        let i = self
            .next_coordinate()
            .expect("MadeSequential::step: all coordinates were already returned");
        crate::batch::assert_rows("MadeSequential::step", d, x);
        assert_eq!(x.ncols(), self.n, "MadeSequential::step: wrong batch size");
        if let (Some(input), Some(c)) = (self.input.as_mut(), self.context) {
            input.rows_mut(0, d).copy_from(x);
            input.rows_mut(d, c.nrows()).copy_from(c);
        }
        let input = self.input.as_ref().unwrap_or(x);
        let net = self.made.net();
        let act = net.activation();
        // The hidden units of degree k: rows r0, r0 + step, … (cnt of them).
        let (ctx, layout) = (self.made.context_dim(), self.made.hidden_order());
        let rows = |width: usize| hidden_units_of_degree(d, ctx, width, layout, k);
        let last = net.num_layers() - 1;
        let top: &DMatrix<T>;
        if net.is_residual() {
            let (h, blocks) = self.hidden.split_first_mut().expect("a stream");
            let (r0, step, cnt) = rows(h.nrows());
            if cnt > 0 {
                rows_affine(net, 0, r0, step, cnt, input, h, false);
                for (b, pair) in blocks.chunks_exact_mut(2).enumerate() {
                    let l = 1 + 2 * b;
                    let (a, t) = pair.split_at_mut(1);
                    let (a, t) = (&mut a[0], &mut t[0]);
                    for s in 0..self.n {
                        for c in 0..cnt {
                            let r = r0 + c * step;
                            a[(r, s)] = act.apply(h[(r, s)]);
                        }
                    }
                    rows_affine(net, l, r0, step, cnt, a, t, false);
                    activate_rows(act, t, r0, step, cnt);
                    rows_affine(net, l + 1, r0, step, cnt, t, h, true);
                }
            }
            top = &self.hidden[0];
        } else {
            for l in 0..last {
                let (before, rest) = self.hidden.split_at_mut(l);
                let dst = &mut rest[0];
                let (r0, step, cnt) = rows(dst.nrows());
                if cnt == 0 {
                    continue;
                }
                let src = if l == 0 { input } else { &before[l - 1] };
                rows_affine(net, l, r0, step, cnt, src, dst, false);
                activate_rows(act, dst, r0, step, cnt);
            }
            top = if last == 0 {
                input
            } else {
                &self.hidden[last - 1]
            };
        }
        // Output p of coordinate i is row p·D + i.
        let p = self.made.params_per_dim();
        let b = net.bias(last);
        for s in 0..self.n {
            for q in 0..p {
                self.out[(q, s)] = b[q * d + i];
            }
        }
        gemm::gemm(
            T::one(),
            net.weight_ref(last).rows_strided(i, d, p),
            top.into(),
            T::one(),
            (&mut self.out).into(),
        );
        self.position += 1;
        &self.out
    }
}

/// Rows `r0, r0 + step, …` (`cnt` of them) of `dst` ← (or, with `add`, +=)
/// the same rows of layer `l`'s `W src + b`.
#[allow(clippy::too_many_arguments)]
fn rows_affine<T: Real>(
    net: &super::Mlp<T>,
    l: usize,
    r0: usize,
    step: usize,
    cnt: usize,
    src: &DMatrix<T>,
    dst: &mut DMatrix<T>,
    add: bool,
) {
    let b = net.bias(l);
    let mut view = MatMut::from(dst).rows_strided(r0, step, cnt);
    view.for_each(|r, _, v| {
        let bias = b[r0 + r * step];
        *v = if add { *v + bias } else { bias };
    });
    gemm::gemm(
        T::one(),
        net.weight_ref(l).rows_strided(r0, step, cnt),
        MatRef::from(src),
        T::one(),
        view,
    );
}

/// Applies the activation to rows `r0, r0 + step, …` (`cnt` of them).
fn activate_rows<T: Real>(
    act: super::Activation,
    m: &mut DMatrix<T>,
    r0: usize,
    step: usize,
    cnt: usize,
) {
    if step == 1 {
        let rows = m.nrows();
        for col in m.as_mut_slice().chunks_exact_mut(rows) {
            activate_in_place(act, &mut col[r0..r0 + cnt]);
        }
    } else {
        MatMut::from(m)
            .rows_strided(r0, step, cnt)
            .for_each(|_, _, v| *v = act.apply(*v));
    }
}

/// A zeroed `rows × cols` matrix in a buffer from the thread's pool (a
/// sampling pass makes one per hidden layer and MAF layer; fresh allocations
/// of that size cost page faults on every call).
fn zeroed<T: Real>(rows: usize, cols: usize) -> super::pool::Scratch<T> {
    let mut m = super::pool::take_scratch(rows, cols);
    m.as_mut_slice().fill(T::zero());
    m
}
