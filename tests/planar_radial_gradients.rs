//! Backward passes of the planar and radial flows against central finite
//! differences (`check_gradients`: parameter and input gradients of both
//! directions, f64, relative tolerance 1e-6): random parameters (proptest),
//! fixed edge cases (the reparametrisation's softplus branch, small `‖w‖`,
//! saturated `tanh`, the `w = 0` shift branch, radial near `β = −α`), the
//! accumulation contract, and the behaviour at the identity initialisations.
//!
//! **Where second-order differences resolve the gradients.** `check_gradients`
//! uses central differences with step `h = ε^{1/3}(1 + |θ|) ≈ 6e-6 (1 + |θ|)`,
//! whose truncation error is `h²/6 · L‴`. Two regimes make `L‴` large: the
//! planar inverse near its fold (`δ = 1 + wᵀû sech²(wᵀz + b)` small: the
//! inverse has derivatives growing like powers of `1/δ`) and the radial
//! inverse at small output radii `ρ = ‖y − z₀‖` (the norm and the radius
//! equation curve on the scale `ρ`). Measured over 2000–3000 random layers
//! each: with `δ ≥ 0.3` (planar) and `r ≥ 0.25`, `ρ ≥ 0.1` (radial) the worst
//! error was below 2e-7; closer in it exceeded 1e-6 while a fourth-order
//! stencil agreed with the backward pass to ~1e-10 and the second-order error
//! scaled exactly as `h²` (so: truncation, not a wrong derivative). Inputs
//! for `check_gradients` are therefore conditioned as above, and the harder
//! regimes (`δ ≥ 0.05`, `ρ ≥ 0.01`, `‖w‖` down to 0.003) are checked at the
//! same tolerance with a fourth-order stencil (`fourth_order`).

use nalgebra::{DMatrix, DVector};
use normflow::prelude::*;
use normflow::testing::strategies::{batch, batch_of, log_uniform_positive, value, vector_of};
use normflow::testing::{GRADIENT_TOLERANCE, GradientReport, check_gradients};
use proptest::prelude::*;
use rand::SeedableRng;

/// Columns per batch.
const N: usize = 6;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

fn dim() -> impl Strategy<Value = usize> {
    1usize..=5
}

fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// Runs `check_gradients` and insists that both directions were checked.
fn grads<B: Differentiable<f64> + Clone + std::fmt::Debug>(
    b: &B,
    x: &DMatrix<f64>,
) -> Result<GradientReport, String> {
    let report = check_gradients(b, x).map_err(|f| format!("{b:?} at {x}: {f}"))?;
    if report.directions != ["forward", "inverse"] || !report.skipped.is_empty() {
        return Err(format!("not both directions checked: {report:?}"));
    }
    Ok(report)
}

/// `check_gradients` with the fourth-order stencil
/// `(8(L(θ+h) − L(θ−h)) − (L(θ+2h) − L(θ−2h)))/(12h)`, `h = 1e-5 (1 + |θ|)`
/// (truncation `O(h⁴)`, rounding about `ε|L|/h`), for losses that vary on
/// scales too short for the kit's second-order differences. Same loss shape
/// (`Σ W ⊙ out + Σ w ⊙ log_det`, fixed pseudo-random weights), same relative
/// error `|analytic − numerical|/(1 + |numerical|)`, same tolerance. Returns
/// the worst (parameter, input) errors.
fn fourth_order<B: Differentiable<f64> + Clone + std::fmt::Debug>(
    b: &B,
    x: &DMatrix<f64>,
    seed: u64,
) -> Result<(f64, f64), String> {
    let (d, n) = x.shape();
    let w_out = fixed_matrix(d, n, seed + 7000, 1.0);
    let w_ld = fixed_vector(n, seed + 7001, 1.0);
    let y = b.forward(x);
    let theta = b.params_to_vec();
    let (mut worst_p, mut worst_i) = (0.0f64, 0.0f64);
    for (forward, input) in [(true, x), (false, &y)] {
        let loss = |layer: &B, inp: &DMatrix<f64>| {
            let (out, ld) = if forward {
                layer.forward_and_log_det(inp)
            } else {
                layer.inverse_and_log_det(inp)
            };
            out.component_mul(&w_out).sum() + ld.dot(&w_ld)
        };
        let stencil = |f: &mut dyn FnMut(f64) -> f64, v: f64| {
            let h = 1e-5 * (1.0 + v.abs());
            (8.0 * (f(h) - f(-h)) - (f(2.0 * h) - f(-2.0 * h))) / (12.0 * h)
        };
        let mut gp = vec![0.0; theta.len()];
        let gin = if forward {
            b.forward_and_log_det_backward(input, &w_out, &w_ld, &mut gp)
        } else {
            b.inverse_and_log_det_backward(input, &w_out, &w_ld, &mut gp)
        }
        .map_err(|e| e.to_string())?;
        let mut work = b.clone();
        for k in 0..theta.len() {
            let num = stencil(
                &mut |h| {
                    let mut p = theta.clone();
                    p[k] += h;
                    work.set_params(&p).unwrap();
                    loss(&work, input)
                },
                theta[k],
            );
            let e = (gp[k] - num).abs() / (1.0 + num.abs());
            worst_p = worst_p.max(e);
            if e.is_nan() || e > GRADIENT_TOLERANCE {
                return Err(format!(
                    "{b:?}, forward={forward}: parameter {k}: analytic {} vs {num} (error {e:.3e})",
                    gp[k]
                ));
            }
        }
        for s in 0..n {
            for i in 0..d {
                let num = stencil(
                    &mut |h| {
                        let mut ip = input.clone();
                        ip[(i, s)] += h;
                        loss(b, &ip)
                    },
                    input[(i, s)],
                );
                let e = (gin[(i, s)] - num).abs() / (1.0 + num.abs());
                worst_i = worst_i.max(e);
                if e.is_nan() || e > GRADIENT_TOLERANCE {
                    return Err(format!(
                        "{b:?}, forward={forward}: input ({i}, {s}): analytic {} vs {num} (error {e:.3e})",
                        gin[(i, s)]
                    ));
                }
            }
        }
    }
    Ok((worst_p, worst_i))
}

/// `v/‖v‖`, or `e₀` when `v` is nearly 0.
fn unit(v: &DVector<f64>) -> DVector<f64> {
    let n = v.norm();
    if n < 1e-3 {
        let mut e = DVector::zeros(v.len());
        e[0] = 1.0;
        e
    } else {
        v / n
    }
}

/// A planar layer whose `w` has direction `dir` and norm `w_norm`, and whose `u`
/// is `u_perp` (made orthogonal to `w`) plus the component that gives
/// `wᵀu = a`, so that `wᵀû = softplus(a) − 1`.
fn planar_with(
    u_perp: &DVector<f64>,
    dir: &DVector<f64>,
    w_norm: f64,
    a: f64,
    b: f64,
) -> Planar<f64> {
    let w = unit(dir) * w_norm;
    let wtw = w.norm_squared();
    let u = u_perp - &w * (w.dot(u_perp) / wtw) + &w * (a / wtw);
    Planar::from_params(u, w, b).unwrap()
}

/// Moves every column of `x` along `w` (`wᵀz + b` keeps its sign) so that the
/// Jacobian determinant `δ = 1 + wᵀû sech²(wᵀz + b)` is at least `delta_min`:
/// away from the fold of a layer with `wᵀû ≈ −1`. Only layers with
/// `wᵀû < −(1 − delta_min)` have points with a smaller `δ`; there
/// `|wᵀz + b| ≥ acosh(√(−wᵀû/(1 − delta_min)))` is needed.
fn off_the_fold(p: &Planar<f64>, x: &DMatrix<f64>, delta_min: f64) -> DMatrix<f64> {
    let m = p.w_dot_u_hat();
    if m >= -(1.0 - delta_min) {
        return x.clone();
    }
    let margin = (-m / (1.0 - delta_min)).sqrt().acosh() * (1.0 + 1e-9);
    let w = DVector::from_column_slice(p.w());
    let wtw = w.norm_squared();
    let mut x = x.clone();
    for s in 0..x.ncols() {
        let a = w.dot(&x.column(s)) + p.b();
        if a.abs() < margin {
            let target = if a >= 0.0 { margin } else { -margin };
            let shift = &w * ((target - a) / wtw);
            let mut col = x.column_mut(s);
            col += shift;
        }
    }
    x
}

/// `min δ` over the columns of `x` (the Jacobian determinant of a planar layer).
fn min_delta(p: &Planar<f64>, x: &DMatrix<f64>) -> f64 {
    let w = DVector::from_column_slice(p.w());
    (0..x.ncols())
        .map(|s| {
            let a = w.dot(&x.column(s)) + p.b();
            1.0 + p.w_dot_u_hat() / a.cosh().powi(2)
        })
        .fold(f64::INFINITY, f64::min)
}

/// Inputs `z₀ + r·v/‖v‖`: the radial map is not differentiable at `z₀`, and the
/// finite-difference steps (about `6e-6 (1 + |zᵢ|)`) must stay on one side.
fn around(z0: &[f64], dirs: &DMatrix<f64>, radii: &[f64]) -> DMatrix<f64> {
    let d = z0.len();
    let mut x = DMatrix::zeros(d, radii.len());
    for (s, &r) in radii.iter().enumerate() {
        let v = unit(&dirs.column(s).into_owned());
        for i in 0..d {
            x[(i, s)] = z0[i] + r * v[i];
        }
    }
    x
}

/// `around` with every radius raised, if needed, so that the output radius
/// `ρ = r(σ + r)/(α + r)` is at least `rho_min` (a strong contraction maps
/// moderate radii to tiny ones). The smallest such `r` is the non-negative
/// root of `r² + (σ − ρ_min) r − α ρ_min = 0` (the layer's radius equation).
fn radial_input(r: &Radial<f64>, dirs: &DMatrix<f64>, radii: &[f64], rho_min: f64) -> DMatrix<f64> {
    let (alpha, sigma) = (r.alpha(), r.alpha() + r.beta());
    let bq = sigma - rho_min;
    let r_min = (-bq + (bq * bq + 4.0 * alpha * rho_min).sqrt()) / 2.0;
    let radii: Vec<f64> = radii.iter().map(|&v| v.max(r_min * (1.0 + 1e-6))).collect();
    let x = around(r.center(), dirs, &radii);
    let z0 = DVector::from_column_slice(r.center());
    let y = r.forward(&x);
    for c in y.column_iter() {
        let rho = (c - &z0).norm();
        assert!(
            rho >= rho_min * (1.0 - 1e-6),
            "output radius {rho} < {rho_min}"
        );
    }
    x
}

/// `Planar::new(d, false, rng)` plus a perturbation of every parameter: `u` and
/// `b` by up to ±0.5, `w` by up to ±0.2/√d per entry (so `‖w‖ ≥ 0.3` survives
/// the initial `‖w‖ ≥ 0.5` and `û` stays moderate).
fn perturbed_planar(d: usize, seed: u64, pert: &[f64]) -> Planar<f64> {
    let mut p = Planar::<f64>::new(d, false, &mut rng(seed)).unwrap();
    let w_scale = 0.4 / (d as f64).sqrt();
    for (k, v) in p.params_mut().iter_mut().enumerate() {
        let e = pert[k];
        *v += if (d..2 * d).contains(&k) {
            w_scale * e
        } else {
            e
        };
    }
    p
}

/// `Radial::new(d, false, rng)` plus up to ±0.5 on every parameter.
fn perturbed_radial(d: usize, seed: u64, pert: &[f64]) -> Radial<f64> {
    let mut r = Radial::<f64>::new(d, false, &mut rng(seed)).unwrap();
    for (v, e) in r.params_mut().iter_mut().zip(pert) {
        *v += e;
    }
    r
}

/// Deterministic pseudo-random matrix with entries in `[-scale, scale]`.
fn fixed_matrix(d: usize, n: usize, seed: u64, scale: f64) -> DMatrix<f64> {
    use rand::RngExt;
    let mut g = rng(seed);
    DMatrix::from_fn(d, n, |_, _| scale * (2.0 * g.random_range(0.0..1.0) - 1.0))
}

fn fixed_vector(n: usize, seed: u64, scale: f64) -> DVector<f64> {
    DVector::from_column_slice(fixed_matrix(n, 1, seed, scale).as_slice())
}

// ---------------------------------------------------------------------------
// Random parameters
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(64))]

    /// Randomly initialised planar layers with every parameter perturbed,
    /// inputs in `[−2, 2]^D` kept at `δ ≥ 0.3`: both backward passes match the
    /// kit's finite differences.
    #[test]
    fn planar_gradients_random_init(
        (seed, pert, x) in dim().prop_flat_map(|d| (
            any::<u64>(),
            proptest::collection::vec(value(0.5), 2 * d + 1),
            batch(d, N, 2.0),
        ))
    ) {
        let p = perturbed_planar(x.nrows(), seed, &pert);
        let x = off_the_fold(&p, &x, 0.3);
        grads(&p, &x).map_err(TestCaseError::fail)?;
    }

    /// Planar layers over the whole range of the reparametrisation: `‖w‖` in
    /// `[0.25, 3]`, `wᵀu` in `[−6, 10]` (`wᵀû` from `−0.998` to `9`, through
    /// both forms of the log-det), `b` in `[−3, 3]`, inputs at `δ ≥ 0.5`.
    #[test]
    fn planar_gradients_reparametrisation_range(
        (u, dir, wn, a, b, x) in dim().prop_flat_map(|d| (
            vector_of(d, value(2.0)),
            vector_of(d, value(1.0)),
            log_uniform_positive(0.25, 3.0),
            -6.0..=10.0f64,
            value(3.0),
            batch(d, N, 2.0),
        ))
    ) {
        let p = planar_with(&u, &dir, wn, a, b);
        let x = off_the_fold(&p, &x, 0.5);
        grads(&p, &x).map_err(TestCaseError::fail)?;
    }

    /// The same range closer to the fold (`δ ≥ 0.05`, where `‖∂z/∂y‖` reaches
    /// 20), checked with the fourth-order stencil.
    #[test]
    fn planar_gradients_near_the_fold_fourth_order(
        (u, dir, wn, a, b, x, seed) in dim().prop_flat_map(|d| (
            vector_of(d, value(2.0)),
            vector_of(d, value(1.0)),
            log_uniform_positive(0.25, 3.0),
            -6.0..=10.0f64,
            value(3.0),
            batch(d, N, 2.0),
            any::<u64>(),
        ))
    ) {
        let p = planar_with(&u, &dir, wn, a, b);
        let x = off_the_fold(&p, &x, 0.05);
        prop_assert!(min_delta(&p, &x) >= 0.05 * (1.0 - 1e-6));
        fourth_order(&p, &x, seed).map_err(TestCaseError::fail)?;
    }

    /// Randomly initialised radial layers with every parameter perturbed,
    /// inputs at radii log-uniform in `[0.25, 5]` from `z₀`, raised where
    /// needed so that `ρ ≥ 0.1`.
    #[test]
    fn radial_gradients_random_init(
        (seed, pert, dirs, radii) in dim().prop_flat_map(|d| (
            any::<u64>(),
            proptest::collection::vec(value(0.5), d + 2),
            batch_of(d, N, value(1.0)),
            proptest::collection::vec(log_uniform_positive(0.25, 5.0), N),
        ))
    ) {
        let r = perturbed_radial(dirs.nrows(), seed, &pert);
        let x = radial_input(&r, &dirs, &radii, 0.1);
        grads(&r, &x).map_err(TestCaseError::fail)?;
    }

    /// Radial layers from strong contraction to expansion: `α̃` in `[−3, 3]`,
    /// `β̃` in `[−8, 6]` (`β` from `≈ −α` to `≈ 6`), radii in `[0.25, 8]` with
    /// `ρ ≥ 0.1`.
    #[test]
    fn radial_gradients_parameter_range(
        (z0, a, b, dirs, radii) in dim().prop_flat_map(|d| (
            vector_of(d, value(2.0)),
            value(3.0),
            -8.0..=6.0f64,
            batch_of(d, N, value(1.0)),
            proptest::collection::vec(log_uniform_positive(0.25, 8.0), N),
        ))
    ) {
        let r = Radial::from_params(z0, a, b).unwrap();
        let x = radial_input(&r, &dirs, &radii, 0.1);
        grads(&r, &x).map_err(TestCaseError::fail)?;
    }

    /// Radial layers down to `σ = softplus(−14) ≈ 8e-7` with inputs close to
    /// `z₀` (`r ≥ 0.02`, `ρ ≥ 0.01`), checked with the fourth-order stencil.
    #[test]
    fn radial_gradients_close_to_the_centre_fourth_order(
        (z0, a, b, dirs, radii, seed) in dim().prop_flat_map(|d| (
            vector_of(d, value(2.0)),
            value(3.0),
            -14.0..=6.0f64,
            batch_of(d, N, value(1.0)),
            proptest::collection::vec(log_uniform_positive(0.02, 8.0), N),
            any::<u64>(),
        ))
    ) {
        let r = Radial::from_params(z0, a, b).unwrap();
        let x = radial_input(&r, &dirs, &radii, 0.01);
        fourth_order(&r, &x, seed).map_err(TestCaseError::fail)?;
    }
}

// ---------------------------------------------------------------------------
// Edge cases at fixed seeds
// ---------------------------------------------------------------------------

/// `wᵀu` very negative: `wᵀû = softplus(wᵀu) − 1` is within `e^{wᵀu}` of −1
/// (−1 exactly in `f64` for `wᵀu = −40`), the log-det takes its
/// `tanh² + softplus(wᵀu)·sech²` form and `û = u + (softplus(−a) − 1) w/‖w‖²`
/// carries a large correction. Inputs at `δ ≥ 0.3` for the kit, at
/// `δ ≥ 0.05` for the fourth-order stencil.
#[test]
fn planar_gradients_very_negative_w_dot_u() {
    for (seed, a) in [(1u64, -8.0), (2, -20.0), (3, -40.0)] {
        for d in 1..=4 {
            let u = fixed_vector(d, seed, 1.5);
            let dir = fixed_vector(d, seed + 100, 1.0);
            let p = planar_with(&u, &dir, 0.9, a, 0.4);
            assert!(p.w_dot_u_hat() < -0.99);
            let x = fixed_matrix(d, N, seed + 200, 2.0);
            grads(&p, &off_the_fold(&p, &x, 0.3)).unwrap();
            fourth_order(&p, &off_the_fold(&p, &x, 0.05), seed).unwrap();
        }
    }
}

/// Small but nonzero `‖w‖`: `û` grows like `1/‖w‖`, and so do the gradients.
/// Down to `‖w‖ = 0.05` the kit's central differences resolve them (inputs at
/// `δ ≥ 0.3`, as everywhere).
#[test]
fn planar_gradients_small_w() {
    for (seed, wn) in [(4u64, 0.1), (5, 0.05)] {
        for d in 1..=4 {
            for a in [-2.0, 0.0, 1.5] {
                let u = fixed_vector(d, seed, 1.0);
                let dir = fixed_vector(d, seed + 100, 1.0);
                let p = planar_with(&u, &dir, wn, a, 0.3);
                let x = off_the_fold(&p, &fixed_matrix(d, N, seed + 200, 2.0), 0.3);
                grads(&p, &x).unwrap();
            }
        }
    }
}

/// Smaller `‖w‖` (down to 0.003, `‖û‖` up to ~10³): the loss varies in `w` on
/// the scale `‖w‖`, so the kit's second-order differences with step
/// `6e-6 (1 + |θ|)` carry a truncation error of order `(h/‖w‖)²` (at
/// `‖w‖ = 0.02` it reached 1.1e-6 relative, and a fourth-order stencil
/// converged to the analytic value as h⁴ as the step shrank). Checked here
/// against the fourth-order stencil with a small step instead, at the same
/// tolerance.
#[test]
fn planar_gradients_smaller_w_fourth_order() {
    for (seed, wn) in [(5u64, 0.02), (6, 0.01), (7, 0.003)] {
        for d in 1..=4 {
            for a in [-2.0, 0.0, 1.5] {
                let u = fixed_vector(d, seed, 1.0);
                let dir = fixed_vector(d, seed + 100, 1.0);
                let p = planar_with(&u, &dir, wn, a, 0.3);
                let x = off_the_fold(&p, &fixed_matrix(d, N, seed + 200, 2.0), 0.05);
                fourth_order(&p, &x, seed).unwrap();
            }
        }
    }
}

/// Large `|b|`: `tanh` saturated (and `sech²` underflowing for `b = −1e8`), the
/// layer is a shift by `±û`; the gradients flow through `û` alone.
#[test]
fn planar_gradients_large_b() {
    for (seed, b) in [(7u64, 8.0), (8, -25.0), (9, 1e3), (10, -1e8)] {
        for d in 1..=4 {
            let mut p = Planar::<f64>::new(d, false, &mut rng(seed)).unwrap();
            p.params_mut()[2 * d] = b;
            let x = fixed_matrix(d, N, seed + 200, 2.0);
            grads(&p, &x).unwrap();
        }
    }
}

/// Radial with `β` near `−α` (`σ = α + β = softplus(β̃)` from `4.5e-5` down to
/// `2e-9`): a strong contraction towards `z₀`. Kit at `ρ ≥ 0.1`, fourth-order
/// stencil at `ρ ≥ 0.01`.
#[test]
fn radial_gradients_beta_near_minus_alpha() {
    for (seed, raw_alpha, raw_beta) in [(11u64, 1.0, -10.0), (12, -1.0, -15.0), (13, 2.5, -20.0)] {
        for d in 1..=4 {
            let z0 = fixed_vector(d, seed, 2.0);
            let r = Radial::from_params(z0, raw_alpha, raw_beta).unwrap();
            assert!(r.alpha() + r.beta() < 1e-4);
            let dirs = fixed_matrix(d, N, seed + 100, 1.0);
            let radii = [0.02, 0.1, 0.3, 1.0, 3.0, 8.0];
            grads(&r, &radial_input(&r, &dirs, &radii, 0.1)).unwrap();
            fourth_order(&r, &radial_input(&r, &dirs, &radii, 0.01), seed).unwrap();
        }
    }
}

/// The `w = 0` branch (`û = u`, a pure shift, and below `‖w‖ ≈ 1e-154` the same
/// rule): the backward passes are the gradients of the function that branch
/// computes, `z ↦ z + u tanh(wᵀz + b)` with log-det `log(1 + wᵀu sech²(wᵀz + b))`
/// (no reparametrisation). The layer is discontinuous in `w` at `w = 0` (for
/// `w ≠ 0` the correction `(softplus(−wᵀu) − 1) w/‖w‖²` is of order `1/‖w‖`),
/// so finite differences of the layer itself cannot check `∂/∂w` there; this
/// test differences the branch's own function (forward: explicitly; inverse:
/// a scalar Newton solve of `α + wᵀu tanh(α + b) = wᵀy`).
#[test]
fn planar_shift_branch_gradients_are_those_of_the_branch() {
    for (seed, w_scale) in [(14u64, 0.0), (15, 1e-170)] {
        for d in 1..=4 {
            let u = fixed_vector(d, seed, 1.0);
            let w = fixed_vector(d, seed + 1, 1.0) * w_scale;
            let b = 0.7;
            let p = Planar::from_params(u.clone(), w.clone(), b).unwrap();
            // The branch is taken: û = u.
            assert_eq!(p.u_hat(), u);
            let x = fixed_matrix(d, N, seed + 2, 2.0);
            let theta: Vec<f64> = p.params().to_vec();
            let gy = fixed_matrix(d, N, seed + 3, 1.0);
            let gl = fixed_vector(N, seed + 4, 1.0);

            // The branch as a plain function of (θ, input).
            let branch_fwd = |th: &[f64], z: &DMatrix<f64>| -> f64 {
                let (u, w, b) = (&th[..d], &th[d..2 * d], th[2 * d]);
                let wtu: f64 = u.iter().zip(w).map(|(a, c)| a * c).sum();
                let mut loss = 0.0;
                for s in 0..z.ncols() {
                    let xs = (0..d).map(|i| w[i] * z[(i, s)]).sum::<f64>() + b;
                    let (t, s2) = (xs.tanh(), 1.0 / xs.cosh().powi(2));
                    for i in 0..d {
                        loss += gy[(i, s)] * (z[(i, s)] + u[i] * t);
                    }
                    loss += gl[s] * (wtu * s2).ln_1p();
                }
                loss
            };
            let branch_inv = |th: &[f64], y: &DMatrix<f64>| -> f64 {
                let (u, w, b) = (&th[..d], &th[d..2 * d], th[2 * d]);
                let wtu: f64 = u.iter().zip(w).map(|(a, c)| a * c).sum();
                let mut loss = 0.0;
                for s in 0..y.ncols() {
                    let c = (0..d).map(|i| w[i] * y[(i, s)]).sum::<f64>();
                    let mut al = c;
                    for _ in 0..100 {
                        let s2 = 1.0 / (al + b).cosh().powi(2);
                        al -= (al + wtu * (al + b).tanh() - c) / (1.0 + wtu * s2);
                    }
                    let (t, s2) = ((al + b).tanh(), 1.0 / (al + b).cosh().powi(2));
                    for i in 0..d {
                        loss += gy[(i, s)] * (y[(i, s)] - u[i] * t);
                    }
                    loss -= gl[s] * (wtu * s2).ln_1p();
                }
                loss
            };
            let y = p.forward(&x);
            for (name, input, f) in [
                (
                    "forward",
                    &x,
                    &branch_fwd as &dyn Fn(&[f64], &DMatrix<f64>) -> f64,
                ),
                ("inverse", &y, &branch_inv),
            ] {
                let mut gp = vec![0.0; theta.len()];
                let gin = if name == "forward" {
                    p.forward_and_log_det_backward(input, &gy, &gl, &mut gp)
                } else {
                    p.inverse_and_log_det_backward(input, &gy, &gl, &mut gp)
                }
                .unwrap();
                let h = 1e-6;
                for k in 0..theta.len() {
                    let (mut tp, mut tm) = (theta.clone(), theta.clone());
                    tp[k] += h;
                    tm[k] -= h;
                    let num = (f(&tp, input) - f(&tm, input)) / (2.0 * h);
                    let err = (gp[k] - num).abs() / (1.0 + num.abs());
                    assert!(
                        err < 1e-7,
                        "{name} d={d} w_scale={w_scale} param {k}: {} vs {num}",
                        gp[k]
                    );
                }
                for s in 0..N {
                    for i in 0..d {
                        let (mut ip, mut im) = (input.clone(), input.clone());
                        ip[(i, s)] += h;
                        im[(i, s)] -= h;
                        let num = (f(&theta, &ip) - f(&theta, &im)) / (2.0 * h);
                        let err = (gin[(i, s)] - num).abs() / (1.0 + num.abs());
                        assert!(
                            err < 1e-7,
                            "{name} d={d} input ({i},{s}): {} vs {num}",
                            gin[(i, s)]
                        );
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Accumulation
// ---------------------------------------------------------------------------

/// Backward passes ADD into `grad_params`: starting from a nonzero buffer, two
/// half-batch calls give the start plus the full-batch gradient, and the input
/// gradients of the halves are the columns of the full one.
fn check_accumulation<B: Differentiable<f64>>(b: &B, x: &DMatrix<f64>, seed: u64) {
    let (d, n) = x.shape();
    let h = n / 2;
    let np = Parameters::num_params(b);
    let start: Vec<f64> = fixed_vector(np, seed, 3.0).iter().copied().collect();
    let g_out = fixed_matrix(d, n, seed + 1, 1.0);
    let g_ld = fixed_vector(n, seed + 2, 1.0);
    let y = b.forward(x);
    for forward in [true, false] {
        let input = if forward { x } else { &y };
        let call = |inp: &DMatrix<f64>, go: &DMatrix<f64>, gl: &DVector<f64>, gp: &mut [f64]| {
            if forward {
                b.forward_and_log_det_backward(inp, go, gl, gp)
            } else {
                b.inverse_and_log_det_backward(inp, go, gl, gp)
            }
            .unwrap()
        };
        let mut full = vec![0.0; np];
        let gin_full = call(input, &g_out, &g_ld, &mut full);
        let mut acc = start.clone();
        let gin_a = call(
            &input.columns(0, h).into_owned(),
            &g_out.columns(0, h).into_owned(),
            &g_ld.rows(0, h).into_owned(),
            &mut acc,
        );
        let gin_b = call(
            &input.columns(h, n - h).into_owned(),
            &g_out.columns(h, n - h).into_owned(),
            &g_ld.rows(h, n - h).into_owned(),
            &mut acc,
        );
        assert!(
            full.iter().any(|g| g.abs() > 1e-3),
            "trivial gradient {full:?}"
        );
        for k in 0..np {
            let expect = start[k] + full[k];
            assert!(
                (acc[k] - expect).abs() <= 1e-12 * (1.0 + expect.abs()),
                "forward={forward} param {k}: {} vs {expect}",
                acc[k]
            );
        }
        assert_eq!(gin_a, gin_full.columns(0, h).into_owned());
        assert_eq!(gin_b, gin_full.columns(h, n - h).into_owned());
    }
}

#[test]
fn backward_passes_accumulate() {
    for d in 1..=5 {
        let seed = 20 + d as u64;
        let p = Planar::<f64>::new(d, false, &mut rng(seed)).unwrap();
        check_accumulation(&p, &fixed_matrix(d, N, seed, 2.0), seed);
        let r = Radial::<f64>::new(d, false, &mut rng(seed)).unwrap();
        let x = around(
            r.center(),
            &fixed_matrix(d, N, seed + 7, 1.0),
            &[0.5, 1.0, 1.5, 2.0, 3.0, 0.7],
        );
        check_accumulation(&r, &x, seed);
    }
}

// ---------------------------------------------------------------------------
// Identity initialisations
// ---------------------------------------------------------------------------

/// Planar at its identity initialisation (`u = w = 0`, `b = 0`): every
/// parameter gradient is exactly 0 in both directions (`∂f/∂u = tanh(b) = 0`,
/// `∂f/∂w ∝ û = 0`, `∂f/∂b ∝ û = 0`, and the log-det is 0 to second order),
/// so gradient descent cannot leave it — a saddle. The input gradient is the
/// output cotangent (the map is the identity).
#[test]
fn planar_identity_init_has_zero_parameter_gradients() {
    for d in 1..=5 {
        let p = Planar::<f64>::new(d, true, &mut rng(30)).unwrap();
        let x = fixed_matrix(d, N, 31, 3.0);
        let g_out = fixed_matrix(d, N, 32, 1.0);
        let g_ld = fixed_vector(N, 33, 1.0);
        let mut gp = vec![0.0; Parameters::num_params(&p)];
        let gz = p
            .forward_and_log_det_backward(&x, &g_out, &g_ld, &mut gp)
            .unwrap();
        assert_eq!(gz, g_out);
        let gy = p
            .inverse_and_log_det_backward(&x, &g_out, &g_ld, &mut gp)
            .unwrap();
        assert_eq!(gy, g_out);
        assert!(gp.iter().all(|&g| g == 0.0), "{gp:?}");
    }
}

/// Radial at `β̃ = α̃` (`β = 0`, exactly the identity): the gradients do not
/// vanish (`∂f/∂β̃ = sigmoid(β̃)(z − z₀)/(α + r) ≠ 0`), so training moves it;
/// and they match finite differences there.
#[test]
fn radial_identity_init_has_nonzero_gradients() {
    for d in 1..=5 {
        let r = Radial::<f64>::new(d, true, &mut rng(40 + d as u64)).unwrap();
        assert_eq!(r.beta(), 0.0);
        let x = around(
            r.center(),
            &fixed_matrix(d, N, 41, 1.0),
            &[0.5, 1.0, 1.5, 2.0, 3.0, 0.7],
        );
        grads(&r, &x).unwrap();
        let g_out = fixed_matrix(d, N, 42, 1.0);
        let g_ld = fixed_vector(N, 43, 1.0);
        for forward in [true, false] {
            let mut gp = vec![0.0; Parameters::num_params(&r)];
            if forward {
                r.forward_and_log_det_backward(&x, &g_out, &g_ld, &mut gp)
            } else {
                r.inverse_and_log_det_backward(&x, &g_out, &g_ld, &mut gp)
            }
            .unwrap();
            assert!(gp[d + 1].abs() > 1e-3, "∂L/∂β̃ vanished: {gp:?}");
            assert!(gp.iter().map(|g| g.abs()).sum::<f64>() > 1e-2, "{gp:?}");
        }
    }
}

/// The backward passes are generic: in `f32` they agree with `f64` to single
/// precision (relative `1e-3` of the largest entry, both directions; the
/// planar inverse includes the `f32` root finding).
#[test]
fn f32_backward_agrees_with_f64() {
    fn compare<A: Differentiable<f64>, B: Differentiable<f32>>(
        a: &A,
        b: &B,
        x: &DMatrix<f64>,
        seed: u64,
    ) {
        let (d, n) = x.shape();
        let g_out = fixed_matrix(d, n, seed, 1.0);
        let g_ld = fixed_vector(n, seed + 1, 1.0);
        let y = a.forward(x);
        for forward in [true, false] {
            let input = if forward { x } else { &y };
            let mut gp64 = vec![0.0; a.num_params()];
            let mut gp32 = vec![0.0f32; b.num_params()];
            let (gi64, gi32) = if forward {
                (
                    a.forward_and_log_det_backward(input, &g_out, &g_ld, &mut gp64)
                        .unwrap(),
                    b.forward_and_log_det_backward(
                        &input.map(|v| v as f32),
                        &g_out.map(|v| v as f32),
                        &g_ld.map(|v| v as f32),
                        &mut gp32,
                    )
                    .unwrap(),
                )
            } else {
                (
                    a.inverse_and_log_det_backward(input, &g_out, &g_ld, &mut gp64)
                        .unwrap(),
                    b.inverse_and_log_det_backward(
                        &input.map(|v| v as f32),
                        &g_out.map(|v| v as f32),
                        &g_ld.map(|v| v as f32),
                        &mut gp32,
                    )
                    .unwrap(),
                )
            };
            let scale = 1.0
                + gp64
                    .iter()
                    .chain(gi64.iter())
                    .fold(0.0f64, |m, v| m.max(v.abs()));
            for (g64, g32) in gp64
                .iter()
                .chain(gi64.iter())
                .zip(gp32.iter().chain(gi32.iter()))
            {
                assert!(
                    (g64 - *g32 as f64).abs() <= 1e-3 * scale,
                    "forward={forward}: {g64} vs {g32}"
                );
            }
        }
    }
    for seed in 0..10u64 {
        let d = 1 + (seed % 5) as usize;
        let p = Planar::<f64>::new(d, false, &mut rng(seed)).unwrap();
        let p32 = Planar::<f32>::from_params(
            DVector::from_column_slice(p.u()).map(|v| v as f32),
            DVector::from_column_slice(p.w()).map(|v| v as f32),
            p.b() as f32,
        )
        .unwrap();
        compare(
            &p,
            &p32,
            &off_the_fold(&p, &fixed_matrix(d, N, seed + 60, 2.0), 0.3),
            seed,
        );
        let r = Radial::<f64>::new(d, false, &mut rng(seed)).unwrap();
        let r32 = Radial::<f32>::from_params(
            DVector::from_column_slice(r.center()).map(|v| v as f32),
            r.raw_alpha() as f32,
            r.raw_beta() as f32,
        )
        .unwrap();
        let x = radial_input(
            &r,
            &fixed_matrix(d, N, seed + 70, 1.0),
            &[0.3, 0.6, 1.0, 2.0, 4.0, 0.5],
            0.1,
        );
        compare(&r, &r32, &x, seed);
    }
}

/// Both layers are trainable through the `Bijector` trait object.
#[test]
fn layers_are_differentiable_through_the_bijector_trait() {
    let mut g = rng(50);
    let p: Box<dyn Bijector<f64>> = Box::new(Planar::<f64>::new(3, false, &mut g).unwrap());
    let r: Box<dyn Bijector<f64>> = Box::new(Radial::<f64>::new(3, false, &mut g).unwrap());
    assert_eq!(p.as_differentiable().map(|b| b.num_params()), Some(7));
    assert_eq!(r.as_differentiable().map(|b| b.num_params()), Some(5));
}

// ---------------------------------------------------------------------------
// Worst errors over a deterministic sweep
// ---------------------------------------------------------------------------

/// Runs `check_gradients` on 64 seeded layers of each kind (dims 1..=5,
/// conditioned as in the proptests) and the fourth-order check on 64 harder
/// ones (planar at `δ ≥ 0.05`, `‖w‖` down to 0.01; radial at `ρ ≥ 0.01`), and
/// prints the worst errors
/// (`cargo test --release --test planar_radial_gradients worst -- --nocapture`).
#[test]
fn worst_gradient_errors() {
    let mut worst = [[0.0f64; 2]; 4];
    let upd = |w: &mut [f64; 2], p: f64, i: f64| {
        w[0] = w[0].max(p);
        w[1] = w[1].max(i);
    };
    for seed in 0..64u64 {
        let d = 1 + (seed % 5) as usize;
        // Planar, kit.
        let pert: Vec<f64> = fixed_vector(2 * d + 1, seed + 1000, 0.5)
            .iter()
            .copied()
            .collect();
        let p = perturbed_planar(d, seed, &pert);
        let x = off_the_fold(&p, &fixed_matrix(d, N, seed + 2000, 2.0), 0.3);
        let rep = grads(&p, &x).unwrap();
        upd(&mut worst[0], rep.max_param_error, rep.max_input_error);
        // Planar, fourth order: wᵀu in [−6, 10], ‖w‖ log-uniform in [0.01, 3].
        let v = fixed_vector(2, seed + 2500, 1.0);
        let (a, wn) = (2.0 + 8.0 * v[0], 0.01 * 300f64.powf((v[1] + 1.0) / 2.0));
        let q = planar_with(
            &fixed_vector(d, seed + 2600, 2.0),
            &fixed_vector(d, seed + 2700, 1.0),
            wn,
            a,
            1.5 * v[0] - 0.5,
        );
        let x = off_the_fold(&q, &fixed_matrix(d, N, seed + 2800, 2.0), 0.05);
        let (e_p, e_i) = fourth_order(&q, &x, seed).unwrap();
        upd(&mut worst[1], e_p, e_i);
        // Radial, kit.
        let pert: Vec<f64> = fixed_vector(d + 2, seed + 3000, 0.5)
            .iter()
            .copied()
            .collect();
        let r = perturbed_radial(d, seed, &pert);
        let radii: Vec<f64> = fixed_vector(N, seed + 4000, 1.0)
            .iter()
            .map(|v| 0.25 * 20f64.powf((v + 1.0) / 2.0))
            .collect();
        let dirs = fixed_matrix(d, N, seed + 5000, 1.0);
        let rep = grads(&r, &radial_input(&r, &dirs, &radii, 0.1)).unwrap();
        upd(&mut worst[2], rep.max_param_error, rep.max_input_error);
        // Radial, fourth order: β̃ in [−14, 6], radii from 0.02.
        let v = fixed_vector(2, seed + 5500, 1.0);
        let s = Radial::from_params(
            fixed_vector(d, seed + 5600, 2.0),
            3.0 * v[0],
            -4.0 + 10.0 * v[1],
        )
        .unwrap();
        let radii: Vec<f64> = fixed_vector(N, seed + 5700, 1.0)
            .iter()
            .map(|v| 0.02 * 400f64.powf((v + 1.0) / 2.0))
            .collect();
        let (e_p, e_i) = fourth_order(&s, &radial_input(&s, &dirs, &radii, 0.01), seed).unwrap();
        upd(&mut worst[3], e_p, e_i);
    }
    let names = [
        "planar, check_gradients (δ ≥ 0.3)",
        "planar, fourth order (δ ≥ 0.05, ‖w‖ ≥ 0.01)",
        "radial, check_gradients (r ≥ 0.25, ρ ≥ 0.1)",
        "radial, fourth order (ρ ≥ 0.01, β̃ ≥ −14)",
    ];
    for (name, [p, i]) in names.iter().zip(worst) {
        println!(
            "{name}: worst parameter-gradient error {p:.3e}, worst input-gradient error {i:.3e}"
        );
    }
    assert!(worst.iter().flatten().all(|&e| e <= GRADIENT_TOLERANCE));
}
