//! The affine transformer of MAF and RealNVP.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::{Layout, Transformer};
use crate::Real;
use crate::nn::{ScratchVec, positive_scale, positive_scale_derivative, take_scratch_vec};

/// `u = x·s(a) + t` in the density direction (data → base), so
/// `x = (u − t)/s(a)` in the sample direction, with `s = `
/// [`positive_scale`] (softplus with a floor of `1e-3`, equal to 1 at
/// `a = 0`) and `log|du/dx| = log s`. Two raw parameters per coordinate:
/// the shift `t` (parameter 0) and the raw scale `a` (parameter 1).
///
/// The scale multiplies in the density direction (as in nflows): fitting by
/// maximum likelihood usually has to *expand* thin data, and an expansion
/// that grows linearly in the network output trains stably, where one that
/// grows like `1/softplus` produced loss spikes.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Affine {}

impl<T: Real> Transformer<T> for Affine {
    const NAME: &'static str = "affine";
    const COUPLING_NAME: &'static str = "AffineCoupling";
    const AUTOREGRESSIVE_NAME: &'static str = "MaskedAutoregressiveFlow";
    const SEQUENTIAL: &'static str = "the sampling direction of a MAF is D sequential passes and has no backward pass; \
         train a MAF by maximum likelihood (the inverse direction), or use an \
         InverseAutoregressiveFlow when gradients must flow through samples";

    fn params_per_coord(&self) -> usize {
        2
    }

    #[inline]
    fn density_one(&self, x: T, theta: &[T]) -> (T, T) {
        let (s, log_s) = positive_scale(theta[1]);
        (x * s + theta[0], log_s)
    }

    #[inline]
    fn sample_one(&self, u: T, theta: &[T]) -> (T, T) {
        let (s, log_s) = positive_scale(theta[1]);
        ((u - theta[0]) / s, -log_s)
    }

    #[inline]
    fn density_one_backward(&self, x: T, theta: &[T], g_u: T, g_ld: T, g_theta: &mut [T]) -> T {
        let (s, _) = positive_scale(theta[1]);
        g_theta[0] += g_u;
        g_theta[1] += (g_u * x + g_ld / s) * positive_scale_derivative(theta[1]);
        g_u * s
    }

    #[inline]
    fn sample_one_backward(&self, u: T, theta: &[T], g_x: T, g_ld: T, g_theta: &mut [T]) -> T {
        let (s, _) = positive_scale(theta[1]);
        let x = (u - theta[0]) / s;
        g_theta[0] += -g_x / s;
        g_theta[1] += -(g_x * x + g_ld) / s * positive_scale_derivative(theta[1]);
        g_x / s
    }

    /// Vectorised: all scales of the block in one pass, then one loop over
    /// column slices (no index checks), so the inner loop vectorises.
    fn density(
        &self,
        x: &DMatrix<T>,
        raw: &DMatrix<T>,
        layout: Layout,
    ) -> (DMatrix<T>, DVector<T>) {
        debug_assert_eq!(
            layout,
            Layout::ParamMajor,
            "the affine layout is param-major"
        );
        let d = x.nrows();
        let mut u = DMatrix::zeros(d, x.ncols());
        let mut ldj = DVector::zeros(x.ncols());
        let sc = Scales::of(d, raw, true);
        for (((((uc, xc), oc), scc), lsc), l) in u
            .as_mut_slice()
            .chunks_exact_mut(d)
            .zip(x.as_slice().chunks_exact(d))
            .zip(raw.as_slice().chunks_exact(2 * d))
            .zip(sc.s.chunks_exact(d))
            .zip(sc.log_s.chunks_exact(d))
            .zip(ldj.iter_mut())
        {
            let mut acc = T::zero();
            for (((ui, xi), ti), (si, li)) in
                uc.iter_mut().zip(xc).zip(&oc[..d]).zip(scc.iter().zip(lsc))
            {
                *ui = *xi * *si + *ti;
                acc += *li;
            }
            *l = acc;
        }
        (u, ldj)
    }

    /// Vectorised like [`density`](Transformer::density).
    fn density_backward(
        &self,
        x: &DMatrix<T>,
        raw: &DMatrix<T>,
        layout: Layout,
        g_u: &DMatrix<T>,
        g_ld: &DVector<T>,
    ) -> (DMatrix<T>, DMatrix<T>) {
        debug_assert_eq!(
            layout,
            Layout::ParamMajor,
            "the affine layout is param-major"
        );
        let (d, n) = x.shape();
        let mut grad_x = DMatrix::zeros(d, n);
        let mut grad_raw = DMatrix::zeros(2 * d, n);
        let sc = Scales::of(d, raw, false);
        for ((((((gxc, gnc), xc), scc), dsc), guc), gl) in grad_x
            .as_mut_slice()
            .chunks_exact_mut(d)
            .zip(grad_raw.as_mut_slice().chunks_exact_mut(2 * d))
            .zip(x.as_slice().chunks_exact(d))
            .zip(sc.s.chunks_exact(d))
            .zip(sc.ds.chunks_exact(d))
            .zip(g_u.as_slice().chunks_exact(d))
            .zip(g_ld.iter())
        {
            let (g_t, g_a) = gnc.split_at_mut(d);
            for (((((gx, gt), ga), xi), (si, dsi)), gu) in gxc
                .iter_mut()
                .zip(g_t)
                .zip(g_a)
                .zip(xc)
                .zip(scc.iter().zip(dsc))
                .zip(guc)
            {
                *gx = *gu * *si;
                *gt = *gu;
                let g_scale = *gu * *xi + *gl / *si;
                *ga = g_scale * *dsi;
            }
        }
        (grad_x, grad_raw)
    }
}

/// `s(a)`, `log s(a)` (when asked for) and `ds/da` of every raw scale of a
/// block (rows `d..2d` of each column), in buffers from the scratch pool.
struct Scales<T: Real> {
    s: ScratchVec<T>,
    log_s: ScratchVec<T>,
    ds: ScratchVec<T>,
}

impl<T: Real> Scales<T> {
    fn of(d: usize, raw: &DMatrix<T>, with_log: bool) -> Self {
        let len = d * raw.ncols();
        let mut a = take_scratch_vec::<T>(len);
        for (ac, oc) in a
            .chunks_exact_mut(d)
            .zip(raw.as_slice().chunks_exact(2 * d))
        {
            ac.copy_from_slice(&oc[d..]);
        }
        let mut sc = Scales {
            s: take_scratch_vec(len),
            log_s: if with_log {
                take_scratch_vec(len)
            } else {
                ScratchVec::empty()
            },
            ds: take_scratch_vec(len),
        };
        let log_s = with_log.then_some(sc.log_s.as_mut_slice());
        crate::nn::positive_scales(&a, &mut sc.s, log_s, &mut sc.ds);
        sc
    }
}
