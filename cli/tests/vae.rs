//! Drives `normflow vae` with a small budget: the report, the three
//! pictures, and the refusal of a non-empty output folder.

mod common;
use common::{normflow, s, stderr, stdout, tmp};

use std::path::Path;

/// Width, height and RGB pixels of a PNG (as in `tests/cli.rs`).
fn decode_png(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .expect("a PNG header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("PNG pixels");
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected colour type {other:?}"),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let pixels = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, pixels)
}

/// Asserts that a PNG is a real picture of at least the given size: enough
/// distinct colours and a fraction of non-white pixels.
fn assert_picture(path: &Path, min_size: (u32, u32), min_colours: usize, min_ink: f64) {
    let (w, h, px) = decode_png(path);
    assert!(
        w >= min_size.0 && h >= min_size.1,
        "{}: {w}×{h}",
        path.display()
    );
    let colours: std::collections::HashSet<[u8; 3]> = px.iter().copied().collect();
    let ink = px.iter().filter(|p| **p != [255, 255, 255]).count() as f64 / px.len() as f64;
    assert!(
        colours.len() >= min_colours,
        "{}: only {} distinct colours",
        path.display(),
        colours.len()
    );
    assert!(
        ink >= min_ink,
        "{}: only {:.1} % of the pixels are not white",
        path.display(),
        100.0 * ink
    );
}

/// A number after `label` in the report, e.g. the `-21.5` of
/// `test ELBO: -21.5 ± 0.3`.
fn number_after(text: &str, label: &str) -> f64 {
    let rest = &text[text
        .find(label)
        .unwrap_or_else(|| panic!("`{label}` in:\n{text}"))
        + label.len()..];
    rest.split_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("a number after `{label}` in:\n{text}"))
}

#[test]
fn vae_reports_and_draws() {
    let d = tmp("run");
    let out = d.join("vae");
    let o = normflow(&["vae", "--out", s(&out), "--epochs", "2", "--latent", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let elbo = number_after(&text, "test ELBO:");
    let ll = number_after(&text, "test log-likelihood (IS, K = 1000):");
    // 64 binary pixels: any model scores below 0, and after two epochs far
    // above the −64·ln 2 ≈ −44.4 nats of a coin flip per pixel (measured
    // −24.6). The IS estimate with 1000 samples lies above the ELBO
    // (Burda et al. 2016, Theorem 1; here with the same samples, by Jensen).
    assert!(elbo < 0.0 && elbo > -44.4, "{text}");
    assert!(ll >= elbo, "{text}");
    // Both posteriors are trained and compared.
    assert!(text.contains("posterior: diagonal Gaussian ("), "{text}");
    assert!(text.contains("conditional `iaf("), "{text}");
    assert!(
        text.contains("IAF posterior − diagonal Gaussian: test ELBO"),
        "{text}"
    );
    for name in ["reconstructions.png", "samples.png", "elbo.png"] {
        assert!(out.join(name).is_file(), "{name} missing");
        assert!(text.contains(name), "{name} not reported");
    }
    // Grey tiles on white: few colours in a digit picture, but plenty of ink.
    assert_picture(&out.join("reconstructions.png"), (400, 200), 8, 0.1);
    assert_picture(&out.join("samples.png"), (400, 400), 8, 0.1);
    assert_picture(&out.join("elbo.png"), (700, 450), 20, 0.03);
}

#[test]
fn vae_refuses_a_non_empty_folder_and_bad_flags() {
    let d = tmp("refuse");
    let out = d.join("vae");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let o = normflow(&["vae", "--out", s(&out), "--epochs", "1"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with("error: ") && err.contains("is not empty") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!out.join("elbo.png").exists());
    // With --force it writes beside the existing file and keeps it.
    let o = normflow(&["vae", "--out", s(&out), "--epochs", "1", "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("elbo.png").is_file());
    assert_eq!(
        std::fs::read_to_string(out.join("keep.txt")).unwrap(),
        "mine"
    );
    // A file where the folder should be; zero epochs; a latent size of 0.
    let file = d.join("file");
    std::fs::write(&file, "x").unwrap();
    for (args, needle) in [
        (vec!["--out", s(&file)], "not a folder"),
        (vec!["--out", s(&d.join("a")), "--epochs", "0"], "--epochs"),
        (vec!["--out", s(&d.join("b")), "--latent", "0"], "--latent"),
    ] {
        let mut all = vec!["vae"];
        all.extend(args);
        let o = normflow(&all);
        assert_eq!(o.status.code(), Some(1), "{all:?}");
        assert!(stderr(&o).contains(needle), "{}", stderr(&o));
    }
}
