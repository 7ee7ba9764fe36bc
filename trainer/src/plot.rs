//! PNG plots of a run: the loss curve and, for 2-D data, ψ(x, 1) over the plane with the data overlaid.
//! Drawn directly into pixels (no font or plotting stack): the card and README give the numbers.

use std::path::Path;

use image::{Rgb, RgbImage};

const W: u32 = 720;
const H: u32 = 400;
const MARGIN: u32 = 30;

fn line(img: &mut RgbImage, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: Rgb<u8>) {
    let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
    let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
    let (mut x, mut y, mut err) = (x0, y0, dx + dy);
    loop {
        if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
            img.put_pixel(x as u32, y as u32, c);
        }
        if x == x1 && y == y1 {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x += sx;
        }
        if e2 <= dx {
            err += dx;
            y += sy;
        }
    }
}

/// Plots `series` (x, y) pairs: raw values in light grey, a moving average in black, a zero line in
/// red when the range crosses zero, and horizontal grid lines at the range's quarters.
pub fn loss_curve(points: &[(f64, f64)], path: &Path) -> Result<(), image::ImageError> {
    let mut img = RgbImage::from_pixel(W, H, Rgb([255, 255, 255]));
    let finite: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .collect();
    if finite.len() >= 2 {
        let (xmin, xmax) = (
            finite[0].0,
            finite[finite.len() - 1].0.max(finite[0].0 + 1.0),
        );
        // Robust y range: 1st–99th percentile so a spike at the start does not flatten the curve.
        let mut ys: Vec<f64> = finite.iter().map(|p| p.1).collect();
        ys.sort_by(f64::total_cmp);
        let (lo, hi) = (ys[ys.len() / 100], ys[(ys.len() * 99) / 100]);
        let pad = ((hi - lo) * 0.05).max(1e-9);
        let (ymin, ymax) = (lo - pad, hi + pad);
        let px =
            |x: f64| (MARGIN as f64 + (x - xmin) / (xmax - xmin) * (W - 2 * MARGIN) as f64) as i64;
        let py = |y: f64| {
            let y = y.clamp(ymin, ymax);
            (H as f64 - MARGIN as f64 - (y - ymin) / (ymax - ymin) * (H - 2 * MARGIN) as f64) as i64
        };
        for k in 0..=4 {
            let y = ymin + (ymax - ymin) * k as f64 / 4.0;
            line(
                &mut img,
                (MARGIN as i64, py(y)),
                ((W - MARGIN) as i64, py(y)),
                Rgb([235, 235, 235]),
            );
        }
        if ymin < 0.0 && ymax > 0.0 {
            line(
                &mut img,
                (MARGIN as i64, py(0.0)),
                ((W - MARGIN) as i64, py(0.0)),
                Rgb([220, 60, 60]),
            );
        }
        for w in finite.windows(2) {
            line(
                &mut img,
                (px(w[0].0), py(w[0].1)),
                (px(w[1].0), py(w[1].1)),
                Rgb([190, 190, 190]),
            );
        }
        let k = (finite.len() / 50).max(1);
        let smooth: Vec<(f64, f64)> = (0..finite.len())
            .map(|i| {
                let a = i.saturating_sub(k);
                let b = (i + k + 1).min(finite.len());
                (
                    finite[i].0,
                    finite[a..b].iter().map(|p| p.1).sum::<f64>() / (b - a) as f64,
                )
            })
            .collect();
        for w in smooth.windows(2) {
            line(
                &mut img,
                (px(w[0].0), py(w[0].1)),
                (px(w[1].0), py(w[1].1)),
                Rgb([20, 20, 20]),
            );
        }
    }
    let frame = Rgb([120, 120, 120]);
    let (l, r, t, b) = (
        MARGIN as i64,
        (W - MARGIN) as i64,
        MARGIN as i64,
        (H - MARGIN) as i64,
    );
    line(&mut img, (l, t), (r, t), frame);
    line(&mut img, (r, t), (r, b), frame);
    line(&mut img, (r, b), (l, b), frame);
    line(&mut img, (l, b), (l, t), frame);
    img.save(path)
}

/// A perceptually ordered colour map (dark blue → teal → yellow), `v` in [0, 1].
fn colormap(v: f64) -> Rgb<u8> {
    let stops = [
        (0.0, [68.0, 1.0, 84.0]),
        (0.33, [49.0, 104.0, 142.0]),
        (0.66, [53.0, 183.0, 121.0]),
        (1.0, [253.0, 231.0, 37.0]),
    ];
    let v = v.clamp(0.0, 1.0);
    let i = stops
        .iter()
        .rposition(|s| s.0 <= v)
        .unwrap_or(0)
        .min(stops.len() - 2);
    let (a, b) = (stops[i], stops[i + 1]);
    let f = (v - a.0) / (b.0 - a.0);
    Rgb([0, 1, 2].map(|c| (a.1[c] + f * (b.1[c] - a.1[c])) as u8))
}

/// Heat map of `values` (`res × res`, row 0 at the top) with `points` ((x, y) in the same square
/// `[lo, hi]²`) drawn as white dots. Colour is rank-normalised so structure shows at every scale.
pub fn heatmap(
    values: &[f64],
    res: usize,
    lo: (f64, f64),
    hi: (f64, f64),
    points: &[(f64, f64)],
    path: &Path,
) -> Result<(), image::ImageError> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let rank = |v: f64| {
        if sorted.is_empty() {
            return 0.0;
        }
        sorted.partition_point(|&s| s < v) as f64 / sorted.len() as f64
    };
    let mut img = RgbImage::new(res as u32, res as u32);
    for (i, v) in values.iter().enumerate() {
        img.put_pixel((i % res) as u32, (i / res) as u32, colormap(rank(*v)));
    }
    for &(x, y) in points {
        let px = ((x - lo.0) / (hi.0 - lo.0) * res as f64) as i64;
        let py = ((hi.1 - y) / (hi.1 - lo.1) * res as f64) as i64;
        if px >= 0 && py >= 0 && (px as usize) < res && (py as usize) < res {
            img.put_pixel(px as u32, py as u32, Rgb([255, 255, 255]));
        }
    }
    img.save(path)
}
