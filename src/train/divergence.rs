//! What fitting says when the loss runs away: the warning about a finite
//! divergence, and the numbers of its messages and of the non-finite
//! rollback's (in `rollback.rs`).

use super::EpochRecord;

/// A warning when `record`'s training NLL is more than `10 · max(1, |best|)`
/// above the best epoch of `history` (orders of magnitude: the fit diverged).
pub(crate) fn divergence_warning(history: &[EpochRecord], record: &EpochRecord) -> Option<String> {
    let best = history
        .iter()
        .min_by(|a, b| a.train_nll.total_cmp(&b.train_nll))?;
    let margin = 10.0 * best.train_nll.abs().max(1.0);
    (record.train_nll > best.train_nll + margin).then(|| {
        format!(
            "the training NLL rose from {} (epoch {}) to {} (epoch {}): the fit diverged; try a smaller learning rate",
            fmt_nll(best.train_nll),
            best.epoch,
            fmt_nll(record.train_nll),
            record.epoch
        )
    })
}

/// A loss for a message: 4 significant digits, in scientific notation when
/// very large or very small; a non-finite one in words.
pub(crate) fn fmt_nll(x: f64) -> String {
    if !x.is_finite() {
        return describe(x).to_string();
    }
    let a = x.abs();
    if a != 0.0 && !(1e-3..1e4).contains(&a) {
        let s = format!("{x:.3e}");
        match s.split_once('e') {
            Some((m, e)) if m.contains('.') => {
                format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.'))
            }
            _ => s,
        }
    } else {
        // Decimals for 4 significant digits (a < 10⁴, so at most 3 before
        // the point).
        let decimals = if a == 0.0 {
            0
        } else {
            (3 - a.log10().floor() as i32).max(0) as usize
        };
        let s = format!("{x:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}

/// A non-finite value in words (no "NaN" in messages).
pub(crate) fn describe(x: f64) -> &'static str {
    if x.is_nan() {
        "not a number"
    } else if x > 0.0 {
        "+infinity"
    } else if x < 0.0 {
        "−infinity"
    } else {
        "finite"
    }
}

#[cfg(test)]
mod tests {
    use super::fmt_nll;

    #[test]
    fn losses_read_with_four_significant_digits() {
        assert_eq!(fmt_nll(1.0), "1");
        assert_eq!(fmt_nll(1.23456), "1.235");
        assert_eq!(fmt_nll(-12.5), "-12.5");
        assert_eq!(fmt_nll(998_000.99), "9.98e5");
        assert_eq!(fmt_nll(4e52), "4e52");
        assert_eq!(fmt_nll(0.0), "0");
        assert_eq!(fmt_nll(f64::NAN), "not a number");
    }
}
