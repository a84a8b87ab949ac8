//! Elementwise transformers: the monotone map of one coordinate given raw
//! parameters from a conditioner, shared by the coupling and the
//! autoregressive structures.
//!
//! A flow layer of either structure is a conditioner (an MLP or a MADE) that
//! reads some coordinates (and a context) and gives raw parameters, and a
//! transformer that maps each transformed coordinate with its parameters. A
//! transformer is written once — its two directions, their log-derivatives
//! and their backward passes — and every structure uses it:
//! [`Coupling`](super::Coupling) and [`Autoregressive`](super::Autoregressive)
//! are generic over it. The affine transformer of MAF and RealNVP, the
//! additive one of NICE, the rational-quadratic spline of the neural
//! spline flows, the deep sigmoidal flow of the neural autoregressive flow
//! and the circular spline of flows on tori are the instances.

use std::fmt::Debug;

use nalgebra::{DMatrix, DVector};

use crate::Real;

mod additive;
mod affine;
mod circular_spline;
mod deep_sigmoidal;
mod spline;

pub use additive::Additive;
pub use affine::Affine;
pub use circular_spline::CircularSpline;
pub use deep_sigmoidal::DeepSigmoidal;
pub use spline::Spline;

/// How a coupling conditioner orders its outputs: each transformer keeps the
/// order its layer was first published with, so that saved models keep
/// their meaning. (An autoregressive conditioner is always
/// [`ParamMajor`](Layout::ParamMajor): a MADE groups its outputs by
/// parameter.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Row `p·k + r` is parameter `p` of coordinate `r` (of `k`).
    ParamMajor,
    /// Row `r·P + p` is parameter `p` of coordinate `r` (`P` per coordinate).
    CoordMajor,
}

/// The monotone map of one coordinate given `P` raw parameters `θ`.
///
/// Directions are named by what they do in a flow: the **density**
/// direction maps data to base (what maximum likelihood evaluates), the
/// **sample** direction maps base to data. Each has its value with
/// `log|d out/d in|` and a backward pass that, given the cotangents of the
/// output and of the log-derivative, adds `∂L/∂θ` into `g_theta` and returns
/// `∂L/∂in`.
///
/// The block methods act on `k` coordinates of `n` samples at once (`k × n`
/// inputs, raw parameters `(P·k) × n` in [`Layout::ParamMajor`] order) and
/// sum the log-derivatives per sample in coordinate order; their defaults
/// loop over the one-coordinate methods, and a transformer overrides them
/// where a vectorised pass is faster.
pub trait Transformer<T: Real>: Debug + Clone + PartialEq + Send + Sync + 'static {
    /// The transformer's name in messages.
    const NAME: &'static str;
    /// How a coupling conditioner orders this transformer's parameters.
    const COUPLING_LAYOUT: Layout = Layout::ParamMajor;
    /// The name of its coupling layer in messages.
    const COUPLING_NAME: &'static str = "Coupling";
    /// The name of its autoregressive layer in messages.
    const AUTOREGRESSIVE_NAME: &'static str = "Autoregressive";
    /// Why its autoregressive layer's sampling direction has no backward
    /// pass, and what to do instead.
    const SEQUENTIAL: &'static str = "the sampling direction of an autoregressive layer takes D \
         sequential MADE passes and has no backward pass; train through the density direction \
         (data → base, one MADE pass, as maximum likelihood does), or wrap the layer in `Invert` \
         so that sampling is the one-pass direction";

    /// Whether the coordinates are angles, points of the circle `[−π, π)`: a
    /// [`Coupling`](super::Coupling) then feeds its conditioner
    /// `[cos x_A; sin x_A]` (`2|A|` features, then the context) in place of
    /// `x_A`, so that the raw parameters are periodic in the conditioning
    /// angles. Default: `false`.
    const PERIODIC: bool = false;

    /// Raw parameters per coordinate, `P`.
    fn params_per_coord(&self) -> usize;

    /// An error (naming `context`) if the transformer's own settings are
    /// invalid. Default: none are.
    fn validate(&self, context: &str) -> Result<(), crate::Error> {
        let _ = context;
        Ok(())
    }

    /// Density direction of one coordinate: `(u, log|du/dx|)`.
    fn density_one(&self, x: T, theta: &[T]) -> (T, T);
    /// Sample direction of one coordinate: `(x, log|dx/du|)`.
    fn sample_one(&self, u: T, theta: &[T]) -> (T, T);
    /// Backward pass of [`density_one`](Transformer::density_one).
    fn density_one_backward(&self, x: T, theta: &[T], g_u: T, g_ld: T, g_theta: &mut [T]) -> T;
    /// Backward pass of [`sample_one`](Transformer::sample_one).
    fn sample_one_backward(&self, u: T, theta: &[T], g_x: T, g_ld: T, g_theta: &mut [T]) -> T;

    /// The density direction on a block.
    fn density(
        &self,
        x: &DMatrix<T>,
        raw: &DMatrix<T>,
        layout: Layout,
    ) -> (DMatrix<T>, DVector<T>) {
        block_map(self, x, raw, layout, |t, v, th| t.density_one(v, th))
    }
    /// The sample direction on a block.
    fn sample(&self, u: &DMatrix<T>, raw: &DMatrix<T>, layout: Layout) -> (DMatrix<T>, DVector<T>) {
        block_map(self, u, raw, layout, |t, v, th| t.sample_one(v, th))
    }
    /// Backward pass of [`density`](Transformer::density): `(∂L/∂x, ∂L/∂raw)`.
    fn density_backward(
        &self,
        x: &DMatrix<T>,
        raw: &DMatrix<T>,
        layout: Layout,
        g_u: &DMatrix<T>,
        g_ld: &DVector<T>,
    ) -> (DMatrix<T>, DMatrix<T>) {
        block_backward(self, x, raw, layout, g_u, g_ld, |t, v, th, g, gl, gt| {
            t.density_one_backward(v, th, g, gl, gt)
        })
    }
    /// Backward pass of [`sample`](Transformer::sample): `(∂L/∂u, ∂L/∂raw)`.
    fn sample_backward(
        &self,
        u: &DMatrix<T>,
        raw: &DMatrix<T>,
        layout: Layout,
        g_x: &DMatrix<T>,
        g_ld: &DVector<T>,
    ) -> (DMatrix<T>, DMatrix<T>) {
        block_backward(self, u, raw, layout, g_x, g_ld, |t, v, th, g, gl, gt| {
            t.sample_one_backward(v, th, g, gl, gt)
        })
    }
}

/// Coordinate `r`'s parameters (of `k`, `p` each) in one column `col` of
/// raw parameters: read in place when they are contiguous
/// ([`Layout::CoordMajor`]), else gathered into `buf`.
#[inline(always)]
fn coordinate<'a, T: Real>(
    col: &'a [T],
    layout: Layout,
    k: usize,
    p: usize,
    r: usize,
    buf: &'a mut [T],
) -> &'a [T] {
    match layout {
        Layout::CoordMajor => &col[r * p..(r + 1) * p],
        Layout::ParamMajor => {
            for (q, b) in buf.iter_mut().enumerate() {
                *b = col[q * k + r];
            }
            buf
        }
    }
}

/// `f` on every entry of a block, the log-derivatives summed per sample in
/// coordinate order.
fn block_map<T: Real, Tr: Transformer<T>>(
    tr: &Tr,
    input: &DMatrix<T>,
    raw: &DMatrix<T>,
    layout: Layout,
    f: impl Fn(&Tr, T, &[T]) -> (T, T),
) -> (DMatrix<T>, DVector<T>) {
    let (k, n) = input.shape();
    let p = tr.params_per_coord();
    let mut buf = vec![T::zero(); p];
    let mut out = DMatrix::zeros(k, n);
    let mut ld = DVector::zeros(n);
    if k == 0 {
        return (out, ld);
    }
    for (((oc, ic), rc), l) in out
        .as_mut_slice()
        .chunks_exact_mut(k)
        .zip(input.as_slice().chunks_exact(k))
        .zip(raw.as_slice().chunks_exact(p * k))
        .zip(ld.iter_mut())
    {
        let mut acc = T::zero();
        for (r, (o, v)) in oc.iter_mut().zip(ic).enumerate() {
            let (y, lr) = f(tr, *v, coordinate(rc, layout, k, p, r, &mut buf));
            *o = y;
            acc += lr;
        }
        *l = acc;
    }
    (out, ld)
}

/// The backward pass `f` on every entry of a block.
fn block_backward<T: Real, Tr: Transformer<T>>(
    tr: &Tr,
    input: &DMatrix<T>,
    raw: &DMatrix<T>,
    layout: Layout,
    g_out: &DMatrix<T>,
    g_ld: &DVector<T>,
    f: impl Fn(&Tr, T, &[T], T, T, &mut [T]) -> T,
) -> (DMatrix<T>, DMatrix<T>) {
    let (k, n) = input.shape();
    let p = tr.params_per_coord();
    let mut buf = vec![T::zero(); p];
    let mut g_theta = vec![T::zero(); p];
    let mut g_in = DMatrix::zeros(k, n);
    let mut g_raw = DMatrix::zeros(raw.nrows(), n);
    if k == 0 {
        return (g_in, g_raw);
    }
    for (((((gic, ic), rc), grc), goc), gl) in g_in
        .as_mut_slice()
        .chunks_exact_mut(k)
        .zip(input.as_slice().chunks_exact(k))
        .zip(raw.as_slice().chunks_exact(p * k))
        .zip(g_raw.as_mut_slice().chunks_exact_mut(p * k))
        .zip(g_out.as_slice().chunks_exact(k))
        .zip(g_ld.iter())
    {
        for (r, ((gi, v), go)) in gic.iter_mut().zip(ic).zip(goc).enumerate() {
            let theta = coordinate(rc, layout, k, p, r, &mut buf);
            match layout {
                // The kernels add into the zeroed slice in place.
                Layout::CoordMajor => {
                    *gi = f(tr, *v, theta, *go, *gl, &mut grc[r * p..(r + 1) * p]);
                }
                Layout::ParamMajor => {
                    g_theta.iter_mut().for_each(|g| *g = T::zero());
                    *gi = f(tr, *v, theta, *go, *gl, &mut g_theta);
                    for (q, g) in g_theta.iter().enumerate() {
                        grc[q * k + r] = *g;
                    }
                }
            }
        }
    }
    (g_in, g_raw)
}
