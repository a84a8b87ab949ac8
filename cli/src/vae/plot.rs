//! The pictures of `normflow vae`: image grids and the ELBO curve.

use crate::output::Output;

use plotters::prelude::*;

use super::data::SIDE;
use super::train::EpochElbo;
use crate::plot::{
    Curve, DATA_COLOUR, SAMPLE_COLOUR, Size, curves_png, draw_png, label_font, title_style,
};

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
pub fn tiles_png(out: &Output, rows: &[(String, Vec<Vec<f64>>)], title: &str) -> crate::Result<()> {
    let cols = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    if rows.is_empty() || cols == 0 {
        return Err(format!("{}: no images to draw", out.path().display()));
    }
    let labelled = rows.iter().any(|r| !r.0.is_empty());
    let left = if labelled { 150 } else { GAP * 2 };
    let tile = SIDE as u32 * SCALE;
    let width = (left + cols as u32 * (tile + GAP) + GAP).max(200);
    let height = (TITLE + rows.len() as u32 * (tile + GAP) + GAP).max(150);
    let size = Size { width, height };
    draw_png(out, size, |root| {
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
pub fn elbo_png(out: &Output, history: &[EpochElbo], size: Size, title: &str) -> crate::Result<()> {
    let curve = |name, colour, pick: fn(&EpochElbo) -> f64| Curve {
        name,
        colour,
        points: history.iter().map(|r| (r.epoch as f64, pick(r))).collect(),
    };
    let curves = [
        curve("training", DATA_COLOUR, |r| r.train),
        curve("test", SAMPLE_COLOUR, |r| r.test),
    ];
    curves_png(
        out,
        size,
        title,
        "ELBO (nats per image)",
        &curves,
        false,
        SeriesLabelPosition::LowerRight,
    )
}
