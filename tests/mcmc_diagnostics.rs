//! MCMC convergence diagnostics (`normflow::bayes`) against ArviZ 0.23.4
//! (NumPy 2.4.6, SciPy 1.17.1), on deterministic chains built identically
//! here and in Python, plus invariances and input checks.
//!
//! The reference values come from this script (`pip install arviz==0.23.4`);
//! the chains are AR(1) recursions driven by SplitMix64, integer arithmetic
//! and exact floating-point operations, so both languages build the same
//! bits on every platform:
//!
//! ```python
//! import numpy as np, arviz as az
//! M64 = (1 << 64) - 1
//! def splitmix64(x):
//!     z = (x + 0x9E3779B97F4A7C15) & M64
//!     z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
//!     z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
//!     return z ^ (z >> 31)
//! def u(k):
//!     return (splitmix64(k) >> 11) * 2.0**-53 - 0.5
//! def chain(seed, c, n, phi, scale=1.0, shift=0.0):
//!     x, out = 0.0, []
//!     for t in range(n):
//!         x = phi * x + u((seed << 32) | (c << 20) | t)
//!         out.append(scale * x + shift)
//!     return out
//! def case(seed, m, n, phi, scales=None, shifts=None):
//!     scales = scales or [1.0] * m
//!     shifts = shifts or [0.0] * m
//!     return np.array([chain(seed, c, n, phi, scales[c], shifts[c]) for c in range(m)])
//! cases = {
//!     "iid": case(1, 4, 400, 0.0),
//!     "ar09": case(2, 4, 1000, 0.9),
//!     "shifted": case(3, 4, 500, 0.3, shifts=[0.0, 0.0, 0.0, 0.5]),
//!     "scales": case(4, 4, 500, 0.0, scales=[1.0, 1.0, 1.0, 3.0]),
//!     "odd": case(5, 3, 101, 0.5),
//! }
//! for name, x in cases.items():
//!     print(name, [repr(az.rhat(x, method=m)) for m in ("rank", "z_scale", "split")],
//!           [repr(az.ess(x, method=m)) for m in ("bulk", "tail", "mean")])
//! from arviz.stats.diagnostics import _z_scale
//! print(_z_scale(np.array([[1.0, 2.0, 2.0], [2.0, 3.0, -1.0]])).tolist())
//! ```

use nalgebra::DMatrix;
use normflow::Error;
use normflow::bayes::{
    ess_basic, ess_bulk, ess_tail, rank_normalize, rhat, rhat_basic, split_chains, summarize_draws,
};

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform on [−1/2, 1/2): 53 bits of the hash of `k`, exactly.
fn u(k: u64) -> f64 {
    (splitmix64(k) >> 11) as f64 * 2f64.powi(-53) - 0.5
}

fn chain(seed: u64, c: u64, n: usize, phi: f64, scale: f64, shift: f64) -> Vec<f64> {
    let mut x = 0.0;
    (0..n as u64)
        .map(|t| {
            x = phi * x + u((seed << 32) | (c << 20) | t);
            scale * x + shift
        })
        .collect()
}

/// `m` chains of `n` draws; `scales`/`shifts` empty means 1 and 0.
fn case(seed: u64, m: usize, n: usize, phi: f64, scales: &[f64], shifts: &[f64]) -> Vec<Vec<f64>> {
    (0..m)
        .map(|c| {
            let scale = scales.get(c).copied().unwrap_or(1.0);
            let shift = shifts.get(c).copied().unwrap_or(0.0);
            chain(seed, c as u64, n, phi, scale, shift)
        })
        .collect()
}

fn slices(chains: &[Vec<f64>]) -> Vec<&[f64]> {
    chains.iter().map(Vec::as_slice).collect()
}

fn map(chains: &[Vec<f64>], f: impl Fn(f64) -> f64) -> Vec<Vec<f64>> {
    chains
        .iter()
        .map(|c| c.iter().copied().map(&f).collect())
        .collect()
}

#[track_caller]
fn assert_rel(got: f64, want: f64, tol: f64) {
    let rel = ((got - want) / want).abs();
    assert!(
        rel <= tol,
        "got {got}, want {want} (relative error {rel:e})"
    );
}

/// The classic R̂ of already split chains (ArviZ's `_rhat`), to check the
/// rank-normalised part of `rhat` on its own.
fn classic_rhat(chains: &[Vec<f64>]) -> f64 {
    let n = chains[0].len() as f64;
    let mean = |c: &[f64]| c.iter().sum::<f64>() / c.len() as f64;
    let var = |c: &[f64]| {
        let m = mean(c);
        c.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (c.len() - 1) as f64
    };
    let means: Vec<f64> = chains.iter().map(|c| mean(c)).collect();
    let w = chains.iter().map(|c| var(c)).sum::<f64>() / chains.len() as f64;
    ((n * var(&means) / w + n - 1.0) / n).sqrt()
}

/// The bulk part of `rhat` (ArviZ's `method="z_scale"`).
fn rhat_bulk(chains: &[Vec<f64>]) -> f64 {
    classic_rhat(&rank_normalize(&slices(&split_chains(&slices(chains)))))
}

/// ArviZ 0.23.4 values of one case, in the order of the script's output.
struct Reference {
    rhat_rank: f64,
    rhat_z_scale: f64,
    rhat_split: f64,
    ess_bulk: f64,
    ess_tail: f64,
    ess_mean: f64,
}

const TOL: f64 = 1e-9;

fn check_against_arviz(chains: &[Vec<f64>], r: &Reference) {
    let s = slices(chains);
    assert_rel(rhat(&s), r.rhat_rank, TOL);
    assert_rel(rhat_bulk(chains), r.rhat_z_scale, TOL);
    assert_rel(rhat_basic(&s), r.rhat_split, TOL);
    assert_rel(ess_bulk(&s), r.ess_bulk, TOL);
    assert_rel(ess_tail(&s), r.ess_tail, TOL);
    assert_rel(ess_basic(&s), r.ess_mean, TOL);
}

#[test]
fn chains_are_built_as_in_python() {
    // `cases["iid"][0, :3]` and `cases["ar09"][0, :3]` printed by Python.
    let iid = case(1, 4, 400, 0.0, &[], &[]);
    assert_eq!(
        iid[0][..3],
        [0.266301757339086, -0.3739689795790129, 0.200931241870707]
    );
    let ar = case(2, 4, 1000, 0.9, &[], &[]);
    assert_eq!(
        ar[0][..3],
        [0.405065227878185, 0.632220934315592, 0.7261203961023244]
    );
}

#[test]
fn rank_normalize_matches_arviz_z_scale_with_ties() {
    let z = rank_normalize(&[&[1.0, 2.0, 2.0], &[2.0, 3.0, -1.0]]);
    let want = [
        [-0.643345405392917, 0.20189347914185074, 0.20189347914185074],
        [0.20189347914185074, 1.2815515655446004, -1.2815515655446004],
    ];
    for (row, want_row) in z.iter().zip(&want) {
        for (g, w) in row.iter().zip(want_row) {
            assert_rel(*g, *w, 1e-13);
        }
    }
}

#[test]
fn split_chains_drops_the_middle_draw_of_odd_chains() {
    let halves = split_chains(&[&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0, 9.0]]);
    assert_eq!(
        halves,
        vec![
            vec![1.0, 2.0],
            vec![3.0, 4.0],
            vec![5.0, 6.0],
            vec![8.0, 9.0]
        ]
    );
}

#[test]
fn iid_chains_match_arviz_and_have_ess_near_mn() {
    let x = case(1, 4, 400, 0.0, &[], &[]);
    check_against_arviz(
        &x,
        &Reference {
            rhat_rank: 1.0010265430226564,
            rhat_z_scale: 1.0010265430226564,
            rhat_split: 1.0015729471054307,
            ess_bulk: 1446.8514725081063,
            ess_tail: 1476.2333623782192,
            ess_mean: 1481.7736568741775,
        },
    );
    let s = slices(&x);
    assert!(rhat(&s) < 1.01);
    assert!(ess_bulk(&s) > 0.7 * 1600.0 && ess_bulk(&s) < 1.3 * 1600.0);
}

#[test]
fn ar1_chains_match_arviz_and_have_small_ess() {
    let x = case(2, 4, 1000, 0.9, &[], &[]);
    check_against_arviz(
        &x,
        &Reference {
            rhat_rank: 1.0199982024547862,
            rhat_z_scale: 1.0199982024547862,
            rhat_split: 1.0200362276449093,
            ess_bulk: 223.03556332033875,
            ess_tail: 455.8726829028626,
            ess_mean: 222.68388917271727,
        },
    );
    // τ = (1 + φ)/(1 − φ) = 19 for φ = 0.9: about 4000/19 = 211.
    let ess = ess_bulk(&slices(&x));
    assert!(ess > 150.0 && ess < 300.0, "{ess}");
}

#[test]
fn shifted_chain_matches_arviz_and_raises_rhat() {
    let x = case(3, 4, 500, 0.3, &[], &[0.0, 0.0, 0.0, 0.5]);
    check_against_arviz(
        &x,
        &Reference {
            rhat_rank: 1.2492651752126815,
            rhat_z_scale: 1.2492651752126815,
            rhat_split: 1.274711482141044,
            ess_bulk: 11.90732290380488,
            ess_tail: 28.766081673687356,
            ess_mean: 11.062202618625381,
        },
    );
    assert!(rhat(&slices(&x)) > 1.01);
}

#[test]
fn wider_chain_matches_arviz_and_only_the_folded_rhat_sees_it() {
    let x = case(4, 4, 500, 0.0, &[1.0, 1.0, 1.0, 3.0], &[]);
    check_against_arviz(
        &x,
        &Reference {
            rhat_rank: 1.187631865499533,
            rhat_z_scale: 1.0000124644020556,
            rhat_split: 1.0011469493109504,
            ess_bulk: 2157.1924104068153,
            ess_tail: 32.452050228344746,
            ess_mean: 2177.3516448584987,
        },
    );
    let s = slices(&x);
    assert!(rhat_bulk(&x) < 1.01 && rhat_basic(&s) < 1.01);
    assert!(rhat(&s) > 1.1);
}

#[test]
fn odd_length_chains_match_arviz() {
    let x = case(5, 3, 101, 0.5, &[], &[]);
    check_against_arviz(
        &x,
        &Reference {
            rhat_rank: 1.061398694260754,
            rhat_z_scale: 1.061398694260754,
            rhat_split: 1.0585224413008474,
            ess_bulk: 49.0678827058367,
            ess_tail: 238.27371846033142,
            ess_mean: 52.702992753907324,
        },
    );
}

#[test]
fn bulk_diagnostics_are_invariant_under_monotone_maps() {
    for x in [
        case(2, 4, 1000, 0.9, &[], &[]),
        case(4, 4, 500, 0.0, &[1.0, 1.0, 1.0, 3.0], &[]),
    ] {
        let e = map(&x, f64::exp);
        let (s, se) = (slices(&x), slices(&e));
        assert_rel(ess_bulk(&se), ess_bulk(&s), 1e-12);
        assert_rel(rhat_bulk(&e), rhat_bulk(&x), 1e-12);
        // The raw-draw ESS is not rank based, and moves.
        assert!((ess_basic(&se) / ess_basic(&s) - 1.0).abs() > 1e-3);
        // Negation reverses the ranks and leaves the folded draws alone;
        // doubling is exact: R̂ is unchanged by both.
        let neg = map(&x, |v| -2.0 * v);
        assert_rel(rhat(&slices(&neg)), rhat(&s), 1e-12);
        assert_rel(ess_bulk(&slices(&neg)), ess_bulk(&s), 1e-12);
    }
    // ArviZ 0.23.4, `az.ess(np.exp(x), method="bulk")` and
    // `az.ess(np.exp(x), method="mean")` for the "ar09" case.
    let e = map(&case(2, 4, 1000, 0.9, &[], &[]), f64::exp);
    assert_rel(ess_bulk(&slices(&e)), 223.03556332033875, TOL);
    assert_rel(ess_basic(&slices(&e)), 254.99495065477626, TOL);
}

/// A diagnostic on chains of scalar draws.
type Diagnostic = fn(&[&[f64]]) -> f64;

fn to_matrices(coords: &[Vec<Vec<f64>>]) -> Vec<DMatrix<f64>> {
    let (m, n) = (coords[0].len(), coords[0][0].len());
    (0..m)
        .map(|c| DMatrix::from_fn(coords.len(), n, |i, j| coords[i][c][j]))
        .collect()
}

#[test]
fn summarize_draws_reports_each_coordinate() {
    let iid = case(1, 4, 400, 0.0, &[], &[]);
    let shifted: Vec<Vec<f64>> = case(3, 4, 500, 0.3, &[], &[0.0, 0.0, 0.0, 0.5])
        .into_iter()
        .map(|c| c[..400].to_vec())
        .collect();
    let s = summarize_draws(&to_matrices(&[iid.clone(), shifted.clone()])).unwrap();
    assert_eq!(s.rhat, vec![rhat(&slices(&iid)), rhat(&slices(&shifted))]);
    assert_eq!(
        s.ess_bulk,
        vec![ess_bulk(&slices(&iid)), ess_bulk(&slices(&shifted))]
    );
    assert_rel(s.rhat[0], 1.0010265430226564, TOL);
    assert_eq!(s.rhat_max(), s.rhat[1]);
    assert_eq!(s.ess_bulk_min(), s.ess_bulk[1]);
    assert!(s.rhat_max() > 1.01 && s.ess_bulk_min() < 100.0);
}

#[test]
fn constant_draws_give_documented_values_not_nan() {
    // All draws equal (a stuck sampler): R̂ = 1, ESS = 1, not ArviZ's M·N.
    let c = vec![DMatrix::from_element(1, 10, 2.5); 3];
    let s = summarize_draws(&c).unwrap();
    assert_eq!((s.rhat[0], s.ess_bulk[0]), (1.0, 1.0));
    // Each chain constant, the chains different: R̂ = +∞, ESS finite.
    let c: Vec<_> = (0..3)
        .map(|k| DMatrix::from_element(1, 10, k as f64))
        .collect();
    let s = summarize_draws(&c).unwrap();
    assert_eq!(s.rhat[0], f64::INFINITY);
    assert!(s.ess_bulk[0].is_finite() && s.ess_bulk[0] > 0.0);
    // A coordinate that takes two values symmetric about its median folds
    // to a constant: still no NaN.
    let c: Vec<_> = (0..2)
        .map(|_| DMatrix::from_fn(1, 8, |_, j| if j % 2 == 0 { -1.0 } else { 1.0 }))
        .collect();
    let s = summarize_draws(&c).unwrap();
    assert!(!s.rhat[0].is_nan() && !s.ess_bulk[0].is_nan());
}

#[test]
fn summarize_draws_rejects_bad_input() {
    let good = DMatrix::from_fn(2, 8, |i, j| (i * 8 + j) as f64);
    assert!(matches!(
        summarize_draws(&[]),
        Err(Error::InvalidDimension { got: 0, .. })
    ));
    assert!(matches!(
        summarize_draws(&[DMatrix::zeros(2, 3), DMatrix::zeros(2, 3)]),
        Err(Error::InvalidDimension { got: 3, .. })
    ));
    assert!(matches!(
        summarize_draws(&[DMatrix::zeros(0, 8)]),
        Err(Error::InvalidDimension { got: 0, .. })
    ));
    assert!(matches!(
        summarize_draws(&[good.clone(), DMatrix::zeros(3, 8)]),
        Err(Error::DimensionMismatch {
            expected: 2,
            got: 3,
            ..
        })
    ));
    assert!(matches!(
        summarize_draws(&[good.clone(), DMatrix::zeros(2, 9)]),
        Err(Error::DimensionMismatch {
            expected: 8,
            got: 9,
            ..
        })
    ));
    let mut bad = good.clone();
    bad[(1, 5)] = f64::NAN;
    let err = summarize_draws(&[good.clone(), bad]).unwrap_err();
    assert!(matches!(err, Error::InvalidParameter { .. }));
    assert!(err.to_string().contains("chains[1][(1, 5)]"), "{err}");
    let mut bad = good.clone();
    bad[(0, 0)] = f64::INFINITY;
    assert!(summarize_draws(&[bad]).is_err());
    assert!(summarize_draws(&[good]).is_ok());
}

#[test]
fn free_functions_return_nan_on_unusable_input() {
    let a = [1.0, 2.0, 3.0, 4.0, 5.0];
    let fns: [Diagnostic; 5] = [rhat, rhat_basic, ess_bulk, ess_tail, ess_basic];
    for f in fns {
        assert!(f(&[]).is_nan());
        assert!(f(&[&a[..3]]).is_nan());
        assert!(f(&[&a, &a[..4]]).is_nan());
        assert!(f(&[&a, &[1.0, 2.0, f64::NAN, 4.0, 5.0]]).is_nan());
        assert!(f(&[&a, &[3.0, 1.0, 4.0, 1.0, 5.0]]).is_finite());
    }
}
