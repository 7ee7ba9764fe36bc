//! Image records: reading MNIST-format IDX files (gzipped or not) and folders of PNG/JPEG images,
//! and writing PNG images and grids. Pixels are raw 0–255 values in `[C, H, W]` order; the model's
//! normalisation maps them to model space.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::io::write_atomic;
use crate::{Error, Result};

/// A set of same-sized images, `count × C × H × W` pixel values in 0–255, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSet {
    /// `[C, H, W]`.
    pub shape: [usize; 3],
    pub pixels: Vec<f64>,
    /// Source file of each image (folders), or empty (IDX files).
    pub names: Vec<String>,
}

impl ImageSet {
    pub fn count(&self) -> usize {
        self.pixels.len() / self.record_len().max(1)
    }
    pub fn record_len(&self) -> usize {
        self.shape.iter().product()
    }
}

fn format_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Whether `path` names an IDX file (`.idx`, `-idx3-ubyte`, optionally `.gz`).
pub fn is_idx_path(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let name = name.strip_suffix(".gz").unwrap_or(name);
    name.ends_with(".idx") || name.contains("idx3-ubyte") || name.contains("idx4-ubyte")
}

/// Reads an IDX file of unsigned bytes: `[n, H, W]` (grayscale) or `[n, H, W, C]` with C = 1 or 3.
/// Gzip compression is detected from the content, not the name.
pub fn read_idx(path: &Path) -> Result<ImageSet> {
    let raw = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| format_err(path, format!("not a valid gzip stream: {e}")))?;
        out
    } else {
        raw
    };
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(format_err(path, "not an IDX file (bad magic number)"));
    }
    if bytes[2] != 0x08 {
        return Err(format_err(
            path,
            format!(
                "IDX element type 0x{:02x} is not supported (only unsigned bytes, 0x08)",
                bytes[2]
            ),
        ));
    }
    let rank = bytes[3] as usize;
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(format_err(path, "truncated IDX header"));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            let b = &bytes[4 + 4 * i..8 + 4 * i];
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
        })
        .collect();
    let (n, shape, hwc) = match dims.as_slice() {
        [n, h, w] => (*n, [1, *h, *w], false),
        [n, h, w, c] if *c == 1 || *c == 3 => (*n, [*c, *h, *w], true),
        _ => {
            return Err(format_err(
                path,
                format!("IDX dimensions {dims:?} are not images ([n, H, W] or [n, H, W, C])"),
            ))
        }
    };
    let len = shape.iter().product::<usize>();
    if n == 0 || len == 0 {
        return Err(format_err(
            path,
            format!("IDX file holds no images (dimensions {dims:?})"),
        ));
    }
    let expected = header + n * len;
    if bytes.len() != expected {
        return Err(format_err(
            path,
            format!(
                "IDX dimensions {dims:?} need {expected} bytes, the file has {}",
                bytes.len()
            ),
        ));
    }
    let data = &bytes[header..];
    let pixels = if hwc {
        let [c, h, w] = shape;
        let mut out = vec![0.0; data.len()];
        for i in 0..n {
            for y in 0..h {
                for x in 0..w {
                    for ch in 0..c {
                        out[i * len + ch * h * w + y * w + x] =
                            data[i * len + (y * w + x) * c + ch] as f64;
                    }
                }
            }
        }
        out
    } else {
        data.iter().map(|&b| b as f64).collect()
    };
    Ok(ImageSet {
        shape,
        pixels,
        names: vec![],
    })
}

/// Writes images as an IDX file of unsigned bytes (`[n, H, W]` for one channel).
pub fn idx_bytes(set: &ImageSet) -> Vec<u8> {
    let [c, h, w] = set.shape;
    let dims: Vec<usize> = if c == 1 {
        vec![set.count(), h, w]
    } else {
        vec![set.count(), h, w, c]
    };
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in &dims {
        out.extend((*d as u32).to_be_bytes());
    }
    let len = set.record_len();
    for img in set.pixels.chunks(len) {
        for p in 0..h * w {
            for ch in 0..c {
                out.push(to_byte(img[ch * h * w + p]));
            }
        }
    }
    out
}

fn is_image_file(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref(),
        Some("png" | "jpg" | "jpeg")
    )
}

/// Reads every PNG/JPEG in `dir` (sorted by name; other files are ignored). All images must have
/// the same size; they are read as grayscale when every one is grayscale, else as RGB.
pub fn read_image_dir(dir: &Path) -> Result<ImageSet> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| Error::Read {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_image_file(p))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format_err(
            dir,
            "no .png, .jpg or .jpeg files in this folder",
        ));
    }
    read_image_files(&files)
}

/// Reads the given PNG/JPEG files as one set (same size; grayscale when all are grayscale).
pub fn read_image_files(files: &[PathBuf]) -> Result<ImageSet> {
    let Some(first) = files.first() else {
        return Ok(ImageSet {
            shape: [1, 0, 0],
            pixels: vec![],
            names: vec![],
        });
    };
    let mut decoded = Vec::with_capacity(files.len());
    for f in files {
        let read_err = |source| Error::Read {
            path: f.clone(),
            source,
        };
        let img = image::ImageReader::open(f)
            .map_err(read_err)?
            .with_guessed_format()
            .map_err(read_err)?
            .decode()
            .map_err(|e| format_err(f, format!("cannot decode image: {e}")))?;
        decoded.push(img);
    }
    let gray = decoded.iter().all(|i| !i.color().has_color());
    let (w, h) = (decoded[0].width() as usize, decoded[0].height() as usize);
    let c = if gray { 1 } else { 3 };
    let mut pixels = Vec::with_capacity(files.len() * c * h * w);
    for (img, f) in decoded.iter().zip(files) {
        if (img.width() as usize, img.height() as usize) != (w, h) {
            return Err(format_err(
                f,
                format!(
                    "is {}×{}, but {} is {w}×{h}; all images must have one size",
                    img.width(),
                    img.height(),
                    first.display()
                ),
            ));
        }
        if gray {
            pixels.extend(img.to_luma8().as_raw().iter().map(|&b| b as f64));
        } else {
            let rgb = img.to_rgb8();
            let raw = rgb.as_raw();
            for ch in 0..3 {
                pixels.extend((0..h * w).map(|p| raw[p * 3 + ch] as f64));
            }
        }
    }
    Ok(ImageSet {
        shape: [c, h, w],
        pixels,
        names: files
            .iter()
            .map(|f| {
                f.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect(),
    })
}

/// Reads images from a folder, an IDX file or a single PNG/JPEG file, whichever `path` is.
pub fn read_images(path: &Path) -> Result<ImageSet> {
    if path.is_dir() {
        read_image_dir(path)
    } else if is_image_file(path) {
        read_image_files(&[path.to_path_buf()])
    } else {
        read_idx(path)
    }
}

fn to_byte(v: f64) -> u8 {
    if v.is_nan() {
        0
    } else {
        v.round().clamp(0.0, 255.0) as u8
    }
}

/// Encodes `rows × cols` tiles of `[C, H, W]` images (0–255, clamped) into one PNG with a
/// `gap`-pixel border of mid-grey between tiles. Missing tiles stay grey.
pub fn grid_png(
    images: &[f64],
    shape: [usize; 3],
    rows: usize,
    cols: usize,
    gap: usize,
) -> Result<Vec<u8>> {
    let [c, h, w] = shape;
    if !(c == 1 || c == 3) {
        return Err(Error::InvalidArgument(format!(
            "cannot draw {c}-channel images (1 or 3 channels)"
        )));
    }
    let len = c * h * w;
    if rows == 0 || cols == 0 || len == 0 {
        return Err(Error::InvalidArgument(format!(
            "empty grid {rows}×{cols} of {h}×{w} images"
        )));
    }
    let (gw, gh) = (cols * w + (cols + 1) * gap, rows * h + (rows + 1) * gap);
    let mut canvas = vec![128u8; gw * gh * c];
    for (i, img) in images.chunks(len).take(rows * cols).enumerate() {
        let (r, col) = (i / cols, i % cols);
        let (x0, y0) = (gap + col * (w + gap), gap + r * (h + gap));
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    canvas[((y0 + y) * gw + x0 + x) * c + ch] =
                        to_byte(img[ch * h * w + y * w + x]);
                }
            }
        }
    }
    let color = if c == 1 {
        image::ExtendedColorType::L8
    } else {
        image::ExtendedColorType::Rgb8
    };
    let mut out = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut out),
        &canvas,
        gw as u32,
        gh as u32,
        color,
    )
    .map_err(|e| Error::InvalidArgument(format!("PNG encoding failed: {e}")))?;
    Ok(out)
}

/// Writes images as one PNG grid (atomically).
pub fn write_grid(
    path: &Path,
    images: &[f64],
    shape: [usize; 3],
    rows: usize,
    cols: usize,
) -> Result<()> {
    let bytes =
        grid_png(images, shape, rows, cols, 2).map_err(|e| format_err(path, e.to_string()))?;
    write_atomic(path, &bytes)
}

/// Writes each image to `dir/{prefix}{i:05}.png` (creating `dir`); returns the paths.
pub fn write_image_dir(
    dir: &Path,
    prefix: &str,
    images: &[f64],
    shape: [usize; 3],
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let len: usize = shape.iter().product();
    let mut paths = Vec::new();
    for (i, img) in images.chunks(len).enumerate() {
        let path = dir.join(format!("{prefix}{i:05}.png"));
        let bytes = grid_png(img, shape, 1, 1, 0).map_err(|e| format_err(&path, e.to_string()))?;
        write_atomic(&path, &bytes)?;
        paths.push(path);
    }
    Ok(paths)
}

/// A near-square grid for `n` tiles: `(rows, cols)` with `cols = ⌈√n⌉`.
pub fn square_grid(n: usize) -> (usize, usize) {
    let cols = (n as f64).sqrt().ceil().max(1.0) as usize;
    (n.div_ceil(cols).max(1), cols)
}
