//! Convergence diagnostics of MCMC draws: the rank-normalised split-R̂ and
//! the bulk and tail effective sample sizes of Vehtari, Gelman, Simpson,
//! Carpenter & Bürkner (2021), "Rank-normalization, folding, and
//! localization: an improved R̂ for assessing convergence of MCMC",
//! *Bayesian Analysis* 16(2).
//!
//! The computations follow the paper and its reference implementations,
//! Stan's `posterior` package and ArviZ; they agree with ArviZ 0.23's
//! `az.rhat(method="rank")`, `az.ess(method="bulk")`, `"tail"` and `"mean"`
//! to rounding.
//!
//! A chain is a slice of draws of one scalar quantity; the free functions
//! take several chains as `&[&[f64]]`. [`summarize_draws`] takes whole
//! vector-valued chains (one `D × N` matrix per chain, one column per draw)
//! and checks its input; the free functions return NaN on unusable input
//! instead (see [`rhat`]).

use nalgebra::DMatrix;

use crate::Error;
use crate::distribution::normal_quantile;
use crate::error::check;

/// The fewest draws per chain the diagnostics accept (each split half then
/// holds at least two).
const MIN_DRAWS: usize = 4;

/// Pooled rank normalisation: every draw is replaced by the normal score of
/// its rank among the draws of *all* chains.
///
/// With `S` draws in all and `r` a draw's rank (1 = smallest; tied draws get
/// the average of their ranks), the draw becomes
/// `z = Φ⁻¹((r − 3/8) / (S + 1/4))` (Blom's offset). The result has the
/// shape of the input (chains may have different lengths here). Any
/// monotone increasing map of the draws leaves it unchanged; a
/// decreasing one negates it (to rounding).
///
/// If any draw is NaN every output value is NaN (±∞ rank as the extremes).
///
/// ```
/// use normflow::bayes::rank_normalize;
///
/// let z = rank_normalize(&[&[10.0, 30.0], &[20.0, 20.0]]);
/// // Ranks 1, 4 | 2.5, 2.5 among S = 4 draws: symmetric scores.
/// assert!(z[0][0] < 0.0 && (z[0][0] + z[0][1]).abs() < 1e-12);
/// assert!(z[1][0].abs() < 1e-12 && z[1][0] == z[1][1]);
/// ```
pub fn rank_normalize(chains: &[&[f64]]) -> Vec<Vec<f64>> {
    let mut out: Vec<Vec<f64>> = chains.iter().map(|c| vec![0.0; c.len()]).collect();
    if chains.iter().flat_map(|c| c.iter()).any(|x| x.is_nan()) {
        out.iter_mut().for_each(|c| c.fill(f64::NAN));
        return out;
    }
    let mut order: Vec<(f64, usize, usize)> = chains
        .iter()
        .enumerate()
        .flat_map(|(m, c)| c.iter().enumerate().map(move |(i, &x)| (x, m, i)))
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    let s = order.len() as f64;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && order[end].0 == order[start].0 {
            end += 1;
        }
        // Draws start..end (0-based) share the ranks start+1 ..= end.
        let rank = (start + 1 + end) as f64 / 2.0;
        let z = normal_quantile((rank - 0.375) / (s + 0.25));
        for &(_, m, i) in &order[start..end] {
            out[m][i] = z;
        }
        start = end;
    }
    out
}

/// Splits every chain into its first and second halves, in order (chain 0's
/// first half, chain 0's second half, chain 1's first half, …). A chain of
/// odd length loses its middle draw, so all halves have `⌊N/2⌋` draws.
///
/// Comparing the halves is what lets R̂ see a chain that drifts.
///
/// ```
/// use normflow::bayes::split_chains;
///
/// let halves = split_chains(&[&[1.0, 2.0, 3.0, 4.0, 5.0]]);
/// assert_eq!(halves, vec![vec![1.0, 2.0], vec![4.0, 5.0]]);
/// ```
pub fn split_chains(chains: &[&[f64]]) -> Vec<Vec<f64>> {
    chains
        .iter()
        .flat_map(|c| {
            let half = c.len() / 2;
            [c[..half].to_vec(), c[c.len() - half..].to_vec()]
        })
        .collect()
}

/// The rank-normalised split-R̂ of the paper: the larger of the split-R̂ of
/// the rank-normalised split chains (sensitive to differences in location)
/// and of the rank-normalised *folded* split chains, `|x − median|`
/// (sensitive to differences in scale).
///
/// The median is that of the draws the split keeps, as in ArviZ (Stan's
/// `posterior` takes it over all draws: the two differ only when the chains
/// have an odd length). Values near 1 indicate convergence; the
/// paper recommends using the draws only when R̂ < 1.01.
///
/// Conventions where the formula has no answer:
/// - draws that are all equal give R̂ = 1 (nothing to disagree about);
/// - split chains that are each constant but differ from each other give
///   R̂ = +∞ (no mixing at all).
///
/// One chain is accepted (its two halves are compared; ArviZ returns NaN
/// there). NaN is returned if
/// there is no chain, the chains differ in length, any has fewer than 4
/// draws, or any draw is not finite; [`summarize_draws`] reports these as
/// errors instead.
///
/// ```
/// use normflow::bayes::rhat;
///
/// // A deterministic stand-in for independent uniform draws.
/// let e = |i: usize| ((i * i * 7919 + i * 104_729) % 10_007) as f64 / 10_007.0 - 0.5;
/// let a: Vec<f64> = (0..100).map(e).collect();
/// let b: Vec<f64> = (100..200).map(e).collect();
/// assert!(rhat(&[&a, &b]) < 1.01);
/// // A second chain stuck elsewhere is caught.
/// let shifted: Vec<f64> = b.iter().map(|x| x + 0.6).collect();
/// assert!(rhat(&[&a, &shifted]) > 1.1);
/// ```
pub fn rhat(chains: &[&[f64]]) -> f64 {
    if checked_len(chains).is_none() {
        return f64::NAN;
    }
    let split = split_chains(chains);
    let bulk = plain_rhat(&rank_normalize(&slices(&split)));
    let med = median(split.iter().flatten().copied().collect());
    let folded: Vec<Vec<f64>> = split
        .iter()
        .map(|c| c.iter().map(|x| (x - med).abs()).collect())
        .collect();
    let tail = plain_rhat(&rank_normalize(&slices(&folded)));
    bulk.max(tail)
}

/// The split-R̂ of the raw draws, without rank normalisation or folding
/// (ArviZ's `method="split"`): sensitive to differences in location only,
/// and unreliable for heavy-tailed draws. Same input conventions as
/// [`rhat`].
pub fn rhat_basic(chains: &[&[f64]]) -> f64 {
    if checked_len(chains).is_none() {
        return f64::NAN;
    }
    plain_rhat(&split_chains(chains))
}

/// Bulk effective sample size: the effective sample size of the
/// rank-normalised split chains, a measure of how well the centre of the
/// distribution (means, medians) is estimated. It exists whether or not
/// the draws have a finite mean or variance.
///
/// The autocorrelations are combined over the chains as in Stan,
/// `ρ̂_t = 1 − (W − mean_m ĉ_{m,t}) / var⁺`, then summed by Geyer's initial
/// positive sequence, made monotone; `ESS = M·N / τ̂` with
/// `τ̂ = −1 + 2·Σ P̂_k`, floored at `1 / log10(M·N)` (here `M` counts split
/// chains and `N` their length). Draws that are all equal (a stuck
/// sampler) give `ESS = 1`, where ArviZ gives `M·N`. Same input
/// conventions as [`rhat`].
///
/// ```
/// use normflow::bayes::ess_bulk;
///
/// let e = |i: usize| ((i * i * 7919 + i * 104_729) % 10_007) as f64 / 10_007.0 - 0.5;
/// let noise: Vec<f64> = (0..4000).map(e).collect();
/// assert!(ess_bulk(&[&noise]) > 3000.0);
/// // An AR(1) chain with coefficient 0.9 has an ESS near N·(1 − 0.9)/(1 + 0.9) = 211.
/// let mut x = 0.0;
/// let ar: Vec<f64> = noise.iter().map(|u| { x = 0.9 * x + u; x }).collect();
/// let ess = ess_bulk(&[&ar]);
/// assert!(ess > 150.0 && ess < 300.0);
/// ```
pub fn ess_bulk(chains: &[&[f64]]) -> f64 {
    if checked_len(chains).is_none() {
        return f64::NAN;
    }
    let split = split_chains(chains);
    ess_of(&rank_normalize(&slices(&split)))
}

/// Tail effective sample size: the smaller of the effective sample sizes of
/// the indicators `x ≤ q₀.₀₅` and `x ≤ q₀.₉₅` (split chains), with the
/// quantiles `q` of all draws computed as R's type 7 (linear interpolation);
/// a measure of how well the 5 % and 95 % quantiles are estimated. Same
/// input conventions as [`rhat`].
pub fn ess_tail(chains: &[&[f64]]) -> f64 {
    if checked_len(chains).is_none() {
        return f64::NAN;
    }
    let mut sorted: Vec<f64> = chains.iter().flat_map(|c| c.iter().copied()).collect();
    sorted.sort_by(f64::total_cmp);
    [0.05, 0.95]
        .iter()
        .map(|&p| {
            let q = quantile_type7(&sorted, p);
            let ind: Vec<Vec<f64>> = chains
                .iter()
                .map(|c| c.iter().map(|&x| f64::from(u8::from(x <= q))).collect())
                .collect();
            ess_of(&split_chains(&slices(&ind)))
        })
        .fold(f64::INFINITY, f64::min)
}

/// The effective sample size of the raw split chains, without rank
/// normalisation (ArviZ's `method="mean"`, `posterior`'s `ess_basic`): the
/// ESS of the sample mean, meaningful when the variance is finite. Same
/// input conventions as [`rhat`].
pub fn ess_basic(chains: &[&[f64]]) -> f64 {
    if checked_len(chains).is_none() {
        return f64::NAN;
    }
    ess_of(&split_chains(chains))
}

/// Per-coordinate convergence diagnostics of vector-valued draws, from
/// [`summarize_draws`].
#[derive(Debug, Clone, PartialEq)]
pub struct ConvergenceSummary {
    /// The rank-normalised split-R̂ ([`rhat`]) of each coordinate: never
    /// NaN; 1 for a coordinate whose draws are all equal, +∞ when every
    /// split chain is constant but they differ.
    pub rhat: Vec<f64>,
    /// The bulk effective sample size ([`ess_bulk`]) of each coordinate:
    /// finite and positive.
    pub ess_bulk: Vec<f64>,
}

impl ConvergenceSummary {
    /// The largest R̂ over the coordinates (the paper's rule of thumb:
    /// below 1.01 for every coordinate).
    pub fn rhat_max(&self) -> f64 {
        self.rhat.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }

    /// The smallest bulk ESS over the coordinates (the paper's rule of
    /// thumb: at least 100 per chain, 400 for four chains, before trusting
    /// R̂ and the posterior summaries).
    pub fn ess_bulk_min(&self) -> f64 {
        self.ess_bulk.iter().copied().fold(f64::INFINITY, f64::min)
    }
}

/// R̂ and bulk ESS of every coordinate of vector-valued MCMC draws.
///
/// Each chain is a `D × N` matrix, one column per draw. Errors if there is
/// no chain, the chains differ in shape, `D = 0`, `N < 4`, or a draw is not
/// finite. The result never holds NaN (see [`ConvergenceSummary`]).
///
/// ```
/// use nalgebra::DMatrix;
/// use normflow::bayes::summarize_draws;
///
/// let e = |i: usize| ((i * i * 7919 + i * 104_729) % 10_007) as f64 / 10_007.0 - 0.5;
/// // Two chains of a 2-D quantity, 200 draws each.
/// let chain = |k: usize| DMatrix::from_fn(2, 200, |i, j| e(2 * j + i + 1000 * k));
/// let s = summarize_draws(&[chain(0), chain(1)])?;
/// assert_eq!(s.rhat.len(), 2);
/// assert!(s.rhat_max() < 1.01 && s.ess_bulk_min() > 300.0);
/// assert!(summarize_draws(&[chain(0), DMatrix::zeros(2, 100)]).is_err());
/// # Ok::<(), normflow::Error>(())
/// ```
pub fn summarize_draws(chains: &[DMatrix<f64>]) -> Result<ConvergenceSummary, Error> {
    const CONTEXT: &str = "summarize_draws";
    check::dim_at_least_one(CONTEXT, "chains", chains.len())?;
    let (d, n) = chains[0].shape();
    check::dim_at_least_one(CONTEXT, "chains[0] rows (dimension)", d)?;
    if n < MIN_DRAWS {
        return Err(Error::InvalidDimension {
            context: CONTEXT.into(),
            argument: "chains[0] columns (draws per chain)".into(),
            expected: format!("at least {MIN_DRAWS}"),
            got: n,
        });
    }
    for (k, c) in chains.iter().enumerate() {
        check::same_dim(CONTEXT, &format!("chains[{k}] rows"), d, c.nrows())?;
        check::same_dim(CONTEXT, &format!("chains[{k}] columns"), n, c.ncols())?;
        check::finite_mat(CONTEXT, &format!("chains[{k}]"), c)?;
    }
    let (rhat_v, ess_v) = (0..d)
        .map(|i| {
            let rows: Vec<Vec<f64>> = chains
                .iter()
                .map(|c| c.row(i).iter().copied().collect())
                .collect();
            let rows = slices(&rows);
            (rhat(&rows), ess_bulk(&rows))
        })
        .unzip();
    Ok(ConvergenceSummary {
        rhat: rhat_v,
        ess_bulk: ess_v,
    })
}

/// The common chain length if the chains are usable (at least one, equal
/// lengths of at least [`MIN_DRAWS`], finite draws).
fn checked_len(chains: &[&[f64]]) -> Option<usize> {
    let n = chains.first()?.len();
    let ok = n >= MIN_DRAWS
        && chains
            .iter()
            .all(|c| c.len() == n && c.iter().all(|x| x.is_finite()));
    ok.then_some(n)
}

fn slices(chains: &[Vec<f64>]) -> Vec<&[f64]> {
    chains.iter().map(Vec::as_slice).collect()
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Sample variance (denominator `len − 1`).
fn sample_var(x: &[f64]) -> f64 {
    let m = mean(x);
    x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() - 1) as f64
}

/// The median (the mean of the two middle values for an even count).
fn median(mut x: Vec<f64>) -> f64 {
    x.sort_by(f64::total_cmp);
    let k = x.len() / 2;
    if x.len() % 2 == 1 {
        x[k]
    } else {
        (x[k - 1] + x[k]) / 2.0
    }
}

/// The `p`-quantile of sorted values, R's type 7, in the form of SciPy's
/// `mquantiles(alphap = 1, betap = 1)`.
fn quantile_type7(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let aleph = n as f64 * p + (1.0 - p);
    let k = aleph.clamp(1.0, (n - 1) as f64).floor();
    let gamma = (aleph - k).clamp(0.0, 1.0);
    let k = k as usize;
    (1.0 - gamma) * sorted[k - 1] + gamma * sorted[k]
}

/// The classic potential scale reduction of at least two chains of equal
/// length `N`: `sqrt((N − 1)/N + B/(N·W))` with `B/N` the variance of the
/// chain means and `W` the mean within-chain variance; 1 when all draws
/// are equal, +∞ when only the chains' means differ.
fn plain_rhat(chains: &[Vec<f64>]) -> f64 {
    let n = chains[0].len() as f64;
    let means: Vec<f64> = chains.iter().map(|c| mean(c)).collect();
    let b = n * sample_var(&means);
    let w = chains.iter().map(|c| sample_var(c)).sum::<f64>() / chains.len() as f64;
    if w == 0.0 {
        return if b == 0.0 { 1.0 } else { f64::INFINITY };
    }
    ((b / w + n - 1.0) / n).sqrt()
}

/// The effective sample size of chains of equal length (at least 2), with
/// the multi-chain autocorrelation, Geyer's initial positive and monotone
/// sequences and the `1 / log10(M·N)` floor on `τ̂`.
fn ess_of(chains: &[Vec<f64>]) -> f64 {
    let n = chains[0].len();
    let nf = n as f64;
    let size = (chains.len() * n) as f64;
    let (lo, hi) = chains
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
    // NumPy's `finfo(float).resolution`, the threshold ArviZ uses. ArviZ
    // then answers M·N; here one: draws that never move (a chain stuck in a
    // funnel's neck, every proposal divergent) carry the information of a
    // single draw, and a diagnostic must not report them as perfect mixing.
    if hi - lo < 1e-15 {
        return 1.0;
    }
    let means: Vec<f64> = chains.iter().map(|c| mean(c)).collect();
    let centred: Vec<Vec<f64>> = chains
        .iter()
        .zip(&means)
        .map(|(c, m)| c.iter().map(|x| x - m).collect())
        .collect();
    // The autocovariance at `lag` (denominator N), averaged over the chains:
    // computed directly, only for the lags the truncation reaches.
    let acov = |lag: usize| {
        centred
            .iter()
            .map(|c| {
                c[..n - lag]
                    .iter()
                    .zip(&c[lag..])
                    .map(|(a, b)| a * b)
                    .sum::<f64>()
                    / nf
            })
            .sum::<f64>()
            / centred.len() as f64
    };
    let w = acov(0) * nf / (nf - 1.0);
    let mut var_plus = w * (nf - 1.0) / nf;
    if chains.len() > 1 {
        var_plus += sample_var(&means);
    }
    let rho = |lag: usize| 1.0 - (w - acov(lag)) / var_plus;

    let mut rho_t = vec![0.0; n];
    let mut even = 1.0;
    rho_t[0] = even;
    let mut odd = rho(1);
    rho_t[1] = odd;
    // Geyer's initial positive sequence: sum pairs while they are positive.
    let mut t = 1;
    while t + 3 < n && even + odd > 0.0 {
        even = rho(t + 1);
        odd = rho(t + 2);
        if even + odd >= 0.0 {
            rho_t[t + 1] = even;
            rho_t[t + 2] = odd;
        }
        t += 2;
    }
    // Index of the last pair kept, plus one: the pairs are 0..last.
    let last = t - 1;
    if even > 0.0 {
        rho_t[last] = even;
    }
    // Geyer's initial monotone sequence: pair sums may only decrease.
    let mut t = 1;
    while t + 3 <= last {
        let previous = rho_t[t - 1] + rho_t[t];
        if rho_t[t + 1] + rho_t[t + 2] > previous {
            rho_t[t + 1] = previous / 2.0;
            rho_t[t + 2] = previous / 2.0;
        }
        t += 2;
    }
    let tau = -1.0 + 2.0 * rho_t[..last].iter().sum::<f64>() + rho_t[last];
    size / tau.max(1.0 / size.log10())
}
