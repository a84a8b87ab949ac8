//! The built-in toy data sets (`normflow::data`): shapes, determinism,
//! bounding regions and per-set statistics derived from each recipe.

use std::f64::consts::PI;

use normflow::data::{
    Dataset, checkerboard, circles, eight_gaussians, pinwheel, two_moons, two_spirals,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn std(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

/// `|count − n p| ≤ 5` binomial standard deviations.
fn assert_binomial(count: usize, n: usize, p: f64, what: &str) {
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    let dev = (count as f64 - n as f64 * p).abs();
    assert!(
        dev <= 5.0 * sd,
        "{what}: {count} of {n}, expected {}",
        n as f64 * p
    );
}

/// Angle difference wrapped into `(−π, π]`.
fn wrap(a: f64) -> f64 {
    let b = a.rem_euclid(2.0 * PI);
    if b > PI { b - 2.0 * PI } else { b }
}

#[test]
fn shapes_and_edge_sizes() {
    for &d in Dataset::ALL {
        for n in [0usize, 1, 2, 3, 7, 100] {
            let x = d.generate(n, &mut rng(1));
            assert_eq!(x.shape(), (2, n), "{d} n = {n}");
            assert!(x.iter().all(|v| v.is_finite()), "{d} n = {n}");
        }
    }
    // The free functions with non-default parameters, too.
    let mut r = rng(2);
    assert_eq!(circles(0, 0.1, 0.3, &mut r).shape(), (2, 0));
    assert_eq!(circles(1, 0.1, 0.3, &mut r).shape(), (2, 1));
    assert_eq!(eight_gaussians(0, 4.0, 0.5, &mut r).shape(), (2, 0));
    assert_eq!(eight_gaussians(1, 4.0, 0.5, &mut r).shape(), (2, 1));
    assert_eq!(two_spirals(1, 0.0, &mut r).shape(), (2, 1));
    assert_eq!(checkerboard(1, &mut r).shape(), (2, 1));
    assert_eq!(pinwheel(1, &mut r).shape(), (2, 1));
    // n = 1 of circles is on the inner circle (⌊1/2⌋ = 0 outer points).
    let one = circles(1, 0.0, 0.3, &mut r);
    assert!((one.column(0).norm() - 0.3).abs() < 1e-12);
}

#[test]
fn deterministic_for_a_seed() {
    for &d in Dataset::ALL {
        let a = d.generate(257, &mut rng(42));
        let b = d.generate(257, &mut rng(42));
        let c = d.generate(257, &mut rng(43));
        assert_eq!(a, b, "{d}");
        assert_ne!(a, c, "{d}");
    }
}

#[test]
fn names_round_trip() {
    let names: Vec<&str> = Dataset::ALL.iter().map(|d| d.name()).collect();
    assert_eq!(
        names,
        [
            "moons",
            "circles",
            "checkerboard",
            "8gaussians",
            "pinwheel",
            "spirals",
            "torus"
        ]
    );
    for &d in Dataset::ALL {
        assert_eq!(Dataset::from_name(d.name()), Some(d));
        assert_eq!(d.to_string(), d.name());
        assert!(!d.description().is_empty() && !d.description().contains('\n'));
    }
    assert_eq!(Dataset::from_name("Moons"), None);
    assert_eq!(Dataset::from_name(""), None);
    assert_eq!(Dataset::ALL.len(), 7);
}

/// The documented bounding regions of the default sets (noise included:
/// Gaussian tails are bounded at 6 standard deviations).
#[test]
fn default_sets_in_their_bounding_regions() {
    let n = 5000;
    let mut r = rng(3);
    for &d in Dataset::ALL {
        let x = d.generate(n, &mut r);
        assert!(x.iter().all(|v| v.is_finite()), "{d}");
        for p in x.column_iter() {
            let (a, b) = (p[0], p[1]);
            let ok = match d {
                // x ∈ [−1, 2], y ∈ [−0.5, 1] widened by 6·0.05.
                Dataset::TwoMoons => (-1.3..=2.3).contains(&a) && (-0.8..=1.3).contains(&b),
                Dataset::Circles => p.norm() <= 1.0 + 6.0 * 0.05 * 2f64.sqrt(),
                Dataset::Checkerboard => (-2.0..2.0).contains(&a) && (-2.0..2.0).contains(&b),
                Dataset::EightGaussians => (p.norm() - 2.0).abs() <= 6.0 * 0.25 * 2f64.sqrt(),
                Dataset::Pinwheel => p.norm() <= 2.0 * (1.0 + 6.0 * 0.3) + 0.1,
                Dataset::TwoSpirals => p.norm() <= PI + 0.24 + 6.0 * 0.1 * 2f64.sqrt(),
                Dataset::Torus => (-PI..PI).contains(&a) && (-PI..PI).contains(&b),
            };
            assert!(ok, "{d}: point ({a}, {b}) outside its region");
        }
    }
}

#[test]
fn moons_unchanged_by_this_module() {
    // Dataset::TwoMoons is exactly two_moons(n, 0.05, ·).
    assert_eq!(
        Dataset::TwoMoons.generate(300, &mut rng(5)),
        two_moons(300, 0.05, &mut rng(5))
    );
}

#[test]
fn circles_radii_and_angles() {
    let factor = 0.4;
    // Noise-free: exactly n/2 outer points at angles 2πk/(n/2), rest inner.
    let n = 101;
    let x = circles(n, 0.0, factor, &mut rng(6));
    let (mut outer, mut inner) = (Vec::new(), Vec::new());
    for p in x.column_iter() {
        let r = p.norm();
        let t = p[1].atan2(p[0]).rem_euclid(2.0 * PI);
        if (r - 1.0).abs() < 1e-12 {
            outer.push(t);
        } else {
            assert!((r - factor).abs() < 1e-12, "radius {r}");
            inner.push(t);
        }
    }
    assert_eq!((outer.len(), inner.len()), (50, 51));
    for (angles, m) in [(&mut outer, 50), (&mut inner, 51)] {
        angles.sort_by(f64::total_cmp);
        for (k, t) in angles.iter().enumerate() {
            let want = 2.0 * PI * k as f64 / m as f64;
            assert!(wrap(t - want).abs() < 1e-9, "angle {t} vs {want}");
        }
    }
    // Shuffled: the first half is not all outer.
    let first_outer = x
        .columns(0, 50)
        .column_iter()
        .filter(|p| (p.norm() - 1.0).abs() < 1e-12)
        .count();
    assert!(first_outer > 10 && first_outer < 40, "{first_outer}");

    // Noisy: radii cluster at 1 and factor with spread ≈ noise.
    let noise = 0.03;
    let x = circles(4000, noise, factor, &mut rng(7));
    let (mut r_out, mut r_in) = (Vec::new(), Vec::new());
    for p in x.column_iter() {
        let r = p.norm();
        if r > (1.0 + factor) / 2.0 {
            r_out.push(r)
        } else {
            r_in.push(r)
        }
    }
    assert_eq!((r_out.len(), r_in.len()), (2000, 2000));
    assert!((mean(&r_out) - 1.0).abs() < 0.005, "{}", mean(&r_out));
    assert!((mean(&r_in) - factor).abs() < 0.005, "{}", mean(&r_in));
    assert!((std(&r_out) - noise).abs() < 0.005, "{}", std(&r_out));
    assert!((std(&r_in) - noise).abs() < 0.005, "{}", std(&r_in));
    // Coordinate noise is zero-mean.
    assert!(mean(&x.row(0).iter().copied().collect::<Vec<_>>()).abs() < 0.01);
}

#[test]
#[should_panic(expected = "factor")]
fn circles_rejects_factor_one() {
    circles(10, 0.0, 1.0, &mut rng(0));
}

#[test]
fn checkerboard_black_squares_only() {
    let n = 16000;
    let x = checkerboard(n, &mut rng(8));
    let mut counts = [[0usize; 4]; 4];
    for p in x.column_iter() {
        assert!((-2.0..2.0).contains(&p[0]) && (-2.0..2.0).contains(&p[1]));
        let (i, j) = (p[0].floor(), p[1].floor());
        assert_eq!(
            (i + j).rem_euclid(2.0),
            0.0,
            "({}, {}) on a white square",
            p[0],
            p[1]
        );
        counts[(i + 2.0) as usize][(j + 2.0) as usize] += 1;
    }
    // Each of the 8 black squares gets about n/8.
    for (i, row) in counts.iter().enumerate() {
        for (j, &c) in row.iter().enumerate() {
            if (i + j) % 2 == 0 {
                assert_binomial(c, n, 1.0 / 8.0, &format!("square ({i}, {j})"));
            } else {
                assert_eq!(c, 0);
            }
        }
    }
    // Uniform within squares: fractional parts have mean 1/2, var 1/12.
    let frac: Vec<f64> = x.iter().map(|v| v - v.floor()).collect();
    assert!((mean(&frac) - 0.5).abs() < 0.01);
    assert!((std(&frac) - (1.0f64 / 12.0).sqrt()).abs() < 0.01);
}

#[test]
fn eight_gaussians_balanced_clusters() {
    let (n, scale, noise) = (8000, 3.0, 0.2);
    let x = eight_gaussians(n, scale, noise, &mut rng(9));
    let mut members: Vec<Vec<(f64, f64)>> = vec![Vec::new(); 8];
    for p in x.column_iter() {
        let k = ((p[1].atan2(p[0]) / (PI / 4.0)).round() as i64).rem_euclid(8) as usize;
        members[k].push((p[0], p[1]));
    }
    for (k, m) in members.iter().enumerate() {
        assert_binomial(m.len(), n, 1.0 / 8.0, &format!("centre {k}"));
        let t = PI / 4.0 * k as f64;
        let dx: Vec<f64> = m.iter().map(|q| q.0 - scale * t.cos()).collect();
        let dy: Vec<f64> = m.iter().map(|q| q.1 - scale * t.sin()).collect();
        // Mean within 5 standard errors, spread ≈ noise.
        let se = noise / (m.len() as f64).sqrt();
        assert!(
            mean(&dx).abs() < 5.0 * se && mean(&dy).abs() < 5.0 * se,
            "centre {k}"
        );
        assert!((std(&dx) - noise).abs() < 0.02 && (std(&dy) - noise).abs() < 0.02);
    }
    // Noise-free: exactly on the 8 centres.
    let x = eight_gaussians(64, 2.0, 0.0, &mut rng(10));
    for p in x.column_iter() {
        let k = (p[1].atan2(p[0]) / (PI / 4.0)).round();
        let t = PI / 4.0 * k;
        assert!((p[0] - 2.0 * t.cos()).abs() < 1e-12 && (p[1] - 2.0 * t.sin()).abs() < 1e-12);
    }
}

#[test]
fn pinwheel_arms_follow_the_recipe() {
    // Invert the recipe: x = 2 R(−a) f with f ≈ (|x|/2, 0), so the polar
    // angle φ ≈ −a = −(2πk/5 + 0.25 exp(f1)); hence 2πk/5 ≈ −φ − 0.25 exp(|x|/2).
    let n = 5000;
    let x = pinwheel(n, &mut rng(11));
    let mut counts = [0usize; 5];
    let mut misses = 0;
    let mut radii = Vec::new();
    for p in x.column_iter() {
        let f1 = p.norm() / 2.0;
        radii.push(f1);
        let phi = p[1].atan2(p[0]);
        let psi = -phi - 0.25 * f1.exp();
        let k = (psi / (2.0 * PI / 5.0)).round();
        if wrap(psi - k * 2.0 * PI / 5.0).abs() < 0.3 {
            counts[(k as i64).rem_euclid(5) as usize] += 1;
        } else {
            misses += 1;
        }
    }
    // Only points with f1 near 0 (where the tangential noise dominates) miss.
    assert!(misses < n / 100, "{misses} misses");
    for (k, &c) in counts.iter().enumerate() {
        // Arms are assigned round-robin, so each has n/5 points; allow the misses.
        assert!(c <= n / 5 && c + misses >= n / 5, "arm {k}: {c}");
    }
    // |f| ≈ f1 ~ N(1, 0.3²) (plus the small tangential part).
    assert!((mean(&radii) - 1.0).abs() < 0.02, "{}", mean(&radii));
    assert!((std(&radii) - 0.3).abs() < 0.02, "{}", std(&radii));
}

#[test]
fn spirals_radius_grows_with_angle() {
    let n = 4000;
    // Without the Gaussian noise, recover t from each point: the point is
    // σ(−t cos t + v1/2, t sin t + v2/2)/3, so σ·3x − (¼, ¼) is within
    // √2/4 of (−t cos t, t sin t), whose radius is t and polar angle π − t.
    let x = two_spirals(n, 0.0, &mut rng(12));
    let mut t2 = Vec::new();
    let mut pos = 0;
    for (j, p) in x.column_iter().enumerate() {
        let sigma = if j % 2 == 0 { 1.0 } else { -1.0 };
        if sigma > 0.0 {
            pos += 1;
        }
        let (a, b) = (sigma * 3.0 * p[0] - 0.25, sigma * 3.0 * p[1] - 0.25);
        let r = a.hypot(b);
        // The radius is the angle, up to the jitter.
        assert!(r <= 3.0 * PI + 0.36, "radius {r}");
        let t = r; // estimate of t
        if t > 2.0 {
            // Far from the centre the jitter is a small angle: the polar
            // angle matches π − t (the radius grows with the turning angle).
            let phi = b.atan2(a);
            // |r − t| ≤ √2/4 < 0.36, and the jitter turns the direction
            // by at most asin(0.36 / (t − 0.36)).
            let tol = 0.36 + (0.36 / (t - 0.36)).asin();
            assert!(wrap(phi - (PI - t)).abs() < tol, "t ≈ {t}, angle {phi}");
        }
        t2.push((t / (3.0 * PI)).powi(2));
    }
    assert_eq!(pos, n / 2);
    // t = 3π√u: (t/3π)² is uniform on [0, 1], mean ½ (the estimate of t is
    // off by at most 0.36 either way, a bias well under 0.02 in the mean).
    assert!((mean(&t2) - 0.5).abs() < 0.03, "{}", mean(&t2));

    // The two spirals are point reflections of each other: the mean of each
    // is about opposite, and spiral + has a non-trivial mean (not symmetric
    // by itself).
    let (mut m_pos, mut m_neg) = ([0.0; 2], [0.0; 2]);
    for (j, p) in x.column_iter().enumerate() {
        let m = if j % 2 == 0 { &mut m_pos } else { &mut m_neg };
        m[0] += p[0] / (n / 2) as f64;
        m[1] += p[1] / (n / 2) as f64;
    }
    assert!((m_pos[0] + m_neg[0]).abs() < 0.1 && (m_pos[1] + m_neg[1]).abs() < 0.1);
}
