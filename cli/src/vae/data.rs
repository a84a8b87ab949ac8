//! scikit-learn's 8×8 handwritten digits, embedded in the binary, binarised
//! and split into a training and a test set.
//!
//! The file `data/digits.csv` (1 797 images, exported once by
//! `scripts/export_digits.py`; source and licence in `data/README.md`) holds
//! a header row and one row per image: 64 pixel values (integers 0..=16, the
//! number of "on" pixels in a 4×4 block of the original 32×32 bitmap; row by
//! row from the top-left corner) and the digit.
//!
//! **Binarisation.** A pixel is 1 when its value is at least
//! [`THRESHOLD`] (8, i.e. at least half of its 4×4 block was inked), else 0.
//! A fixed threshold makes the data set deterministic: every run, seed and
//! posterior is trained and evaluated on exactly the same binary images, so
//! their ELBOs and log-likelihoods compare directly, and the reported
//! numbers are log-probabilities of fixed 64-bit images. (Stochastic
//! binarisation, `x ~ Bernoulli(v/16)`, would add noise that the model must
//! pay for in every number, and would tie the test set to a random draw.)
//!
//! **Split.** The first [`N_TRAIN`] rows (in the file's order) are the
//! training set, the last [`N_TEST`] the test set; no randomness is involved.

use nalgebra::DMatrix;

/// The exported data set, compiled into the binary.
const CSV: &str = include_str!("../../../data/digits.csv");

/// Pixels per image (8 × 8).
pub const PIXELS: usize = 64;
/// Side of an image in pixels.
pub const SIDE: usize = 8;
/// Number of images in the file.
pub const N_IMAGES: usize = 1797;
/// Images in the training set (the first rows of the file).
pub const N_TRAIN: usize = 1500;
/// Images in the test set (the last rows of the file).
pub const N_TEST: usize = N_IMAGES - N_TRAIN;
/// A pixel value `v ∈ 0..=16` becomes 1 when `v ≥ THRESHOLD`.
pub const THRESHOLD: u8 = 8;

/// The binarised digits: images as columns of 0/1 values.
#[derive(Debug, Clone)]
pub struct Digits {
    /// Training images, `64 × 1500`.
    pub train: DMatrix<f64>,
    /// Test images, `64 × 297`.
    pub test: DMatrix<f64>,
}

/// Parses the embedded file, binarises it and splits it.
///
/// The file is part of the binary and checked by the tests, so a failure
/// here is a build defect; it is still reported as an error, not a panic.
pub fn load() -> crate::Result<Digits> {
    let (pixels, _labels) = parse(CSV)?;
    let binary = pixels.map(|v| if v >= THRESHOLD { 1.0 } else { 0.0 });
    Ok(Digits {
        train: binary.columns(0, N_TRAIN).into_owned(),
        test: binary.columns(N_TRAIN, N_TEST).into_owned(),
    })
}

/// Parses the CSV text: a header row, then `N_IMAGES` rows of 64 pixel
/// values (0..=16) and a label (0..=9). Returns the pixels as a `64 × n`
/// matrix (one column per image) and the labels.
fn parse(text: &str) -> crate::Result<(DMatrix<u8>, Vec<u8>)> {
    let bad = |line: usize, what: String| format!("data/digits.csv, line {line}: {what}");
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h)) if h.starts_with("p0,") => {}
        _ => return Err(bad(1, "expected the header `p0,…,p63,label`".into())),
    }
    let mut pixels = Vec::with_capacity(N_IMAGES * PIXELS);
    let mut labels = Vec::with_capacity(N_IMAGES);
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != PIXELS + 1 {
            return Err(bad(
                i + 1,
                format!("expected {} fields, found {}", PIXELS + 1, fields.len()),
            ));
        }
        for (k, f) in fields.iter().enumerate() {
            let max = if k == PIXELS { 9 } else { 16 };
            let v: u8 =
                f.trim().parse().ok().filter(|v| *v <= max).ok_or_else(|| {
                    bad(i + 1, format!("field {}: `{f}` is not in 0..={max}", k + 1))
                })?;
            if k == PIXELS {
                labels.push(v);
            } else {
                pixels.push(v);
            }
        }
    }
    if labels.len() != N_IMAGES {
        return Err(format!(
            "data/digits.csv: expected {N_IMAGES} images, found {}",
            labels.len()
        ));
    }
    Ok((DMatrix::from_vec(PIXELS, N_IMAGES, pixels), labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_file_parses_and_splits() {
        let d = load().unwrap();
        assert_eq!(d.train.shape(), (PIXELS, N_TRAIN));
        assert_eq!(d.test.shape(), (PIXELS, N_TEST));
        assert!(
            d.train
                .iter()
                .chain(d.test.iter())
                .all(|v| *v == 0.0 || *v == 1.0)
        );
        // scikit-learn's first image is a 0 whose top row reads
        // 0,0,5,13,9,1,0,0: binarised at 8, pixels 3 and 4 are on.
        let (pixels, labels) = parse(CSV).unwrap();
        assert_eq!(labels[0], 0);
        assert_eq!(
            &pixels.column(0).as_slice()[..8],
            &[0, 0, 5, 13, 9, 1, 0, 0]
        );
        assert_eq!(
            &d.train.column(0).as_slice()[..8],
            &[0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
        );
        // `load_digits().target` has between 174 and 183 images per digit.
        let mut counts = [0usize; 10];
        for l in &labels {
            counts[*l as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (174..=183).contains(&c)),
            "{counts:?}"
        );
        // About a third of the pixels are ≥ 8 (0.3230 in numpy,
        // `(load_digits().data >= 8).mean()`).
        let on =
            pixels.iter().filter(|v| **v >= THRESHOLD).count() as f64 / (N_IMAGES * PIXELS) as f64;
        assert!((on - 0.3230).abs() < 1e-4, "{on}");
    }

    #[test]
    fn malformed_text_is_an_error() {
        assert!(parse("").unwrap_err().contains("header"));
        let short = "p0,p1\n1,2,3\n";
        assert!(parse(short).unwrap_err().contains("line 2"));
        let mut row: Vec<String> = (0..64).map(|_| "0".to_string()).collect();
        row.push("10".into());
        let text = format!("p0,p1\n{}\n", row.join(","));
        assert!(parse(&text).unwrap_err().contains("field 65"));
    }
}
