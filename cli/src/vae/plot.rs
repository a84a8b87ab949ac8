//! The pictures of `normflow vae`: image grids and the ELBO curve.

use std::path::Path;

use plotters::prelude::*;

use super::data::SIDE;
use super::train::EpochElbo;
use crate::plot::{DATA_COLOUR, SAMPLE_COLOUR, Size, draw_png, label_font, title_style};

/// Screen pixels per image pixel.
const SCALE: u32 = 5;
/// Gap between tiles, in screen pixels.
const GAP: u32 = 6;
/// Height of the title band.
const TITLE: u32 = 40;

/// A grid of 8×8 grey images: `rows[r]` is a row label (may be empty) and
/// the images of that row (64 values in `[0, 1]` each, row by row from the
/// top-left; 0 is white, 1 is black). Values outside `[0, 1]` are clamped
/// and NaN is drawn white.
pub fn tiles_png(path: &Path, rows: &[(String, Vec<Vec<f64>>)], title: &str) -> crate::Result<()> {
    let cols = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    if rows.is_empty() || cols == 0 {
        return Err(format!("{}: no images to draw", path.display()));
    }
    let labelled = rows.iter().any(|r| !r.0.is_empty());
    let left = if labelled { 150 } else { GAP * 2 };
    let tile = SIDE as u32 * SCALE;
    let width = (left + cols as u32 * (tile + GAP) + GAP).max(200);
    let height = (TITLE + rows.len() as u32 * (tile + GAP) + GAP).max(150);
    let size = Size { width, height };
    draw_png(path, size, |root| {
        let font = title_style(size);
        root.draw(&Text::new(title.to_string(), (GAP as i32 * 2, 10), font))?;
        for (r, (label, images)) in rows.iter().enumerate() {
            let y0 = (TITLE + r as u32 * (tile + GAP)) as i32;
            if !label.is_empty() {
                root.draw(&Text::new(
                    label.clone(),
                    (GAP as i32 * 2, y0 + tile as i32 / 2 - 8),
                    label_font(14.0),
                ))?;
            }
            for (c, img) in images.iter().enumerate() {
                let x0 = (left + c as u32 * (tile + GAP)) as i32;
                // A thin frame, so that an all-white image still shows.
                root.draw(&Rectangle::new(
                    [(x0 - 1, y0 - 1), (x0 + tile as i32, y0 + tile as i32)],
                    BLACK.mix(0.25),
                ))?;
                for (k, v) in img.iter().enumerate().take(SIDE * SIDE) {
                    let (row, col) = ((k / SIDE) as i32, (k % SIDE) as i32);
                    let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
                    let g = (255.0 * (1.0 - v)).round() as u8;
                    let (px, py) = (x0 + col * SCALE as i32, y0 + row * SCALE as i32);
                    root.draw(&Rectangle::new(
                        [(px, py), (px + SCALE as i32 - 1, py + SCALE as i32 - 1)],
                        RGBColor(g, g, g).filled(),
                    ))?;
                }
            }
        }
        Ok(())
    })
}

/// Training and test ELBO per epoch.
pub fn elbo_png(path: &Path, history: &[EpochElbo], size: Size, title: &str) -> crate::Result<()> {
    if history.is_empty() {
        return Err(format!("{}: no epochs to plot", path.display()));
    }
    let values: Vec<f64> = history
        .iter()
        .flat_map(|r| [r.train, r.test])
        .filter(|v| v.is_finite())
        .collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        let pad = ((hi - lo) * 0.08).max(1e-3);
        (lo - pad, hi + pad)
    } else {
        (0.0, 1.0)
    };
    let first = history[0].epoch as f64;
    let last = history[history.len() - 1].epoch as f64;
    let (e0, e1) = if last > first {
        (first, last)
    } else {
        (first - 0.5, first + 0.5)
    };
    draw_png(path, size, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, title_style(size))
            .margin(14)
            .x_label_area_size(42)
            .y_label_area_size(60)
            .build_cartesian_2d(e0..e1, lo..hi)?;
        chart
            .configure_mesh()
            .light_line_style(BLACK.mix(0.05))
            .bold_line_style(BLACK.mix(0.12))
            .x_desc("epoch")
            .y_desc("ELBO (nats per image)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .label_style(label_font(13.0))
            .axis_desc_style(label_font(15.0))
            .draw()?;
        for (name, colour, pick) in [
            (
                "training",
                DATA_COLOUR,
                (|r: &EpochElbo| r.train) as fn(&EpochElbo) -> f64,
            ),
            ("test", SAMPLE_COLOUR, |r: &EpochElbo| r.test),
        ] {
            let pts: Vec<(f64, f64)> = history
                .iter()
                .map(|r| (r.epoch as f64, pick(r)))
                .filter(|p| p.1.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(pts, colour.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font(label_font(14.0))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()?;
        Ok(())
    })
}
