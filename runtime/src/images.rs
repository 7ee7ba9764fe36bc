//! Image records: reading MNIST-format IDX files (gzipped or not) and folders of PNG/JPEG images,
//! and writing PNG images and grids. Pixels are raw 0–255 values in `[C, H, W]` order; the model's
//! normalisation maps them to model space.

use std::io::{BufRead, Read};
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

/// A [`Error::Format`] naming `path` (the readers of image and record files share it).
pub(crate) fn format_err(path: &Path, reason: impl Into<String>) -> Error {
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
    let mut rows = IdxRows::open(path)?;
    let pixels = rows.next_rows(usize::MAX)?;
    Ok(ImageSet {
        shape: rows.shape,
        pixels,
        names: vec![],
    })
}

/// Reads `buf.len()` bytes unless the stream ends first; returns how many it read.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The images of an IDX file, decoded a chunk at a time (gzipped or not) into `[C, H, W]` pixels.
pub(crate) struct IdxRows {
    path: PathBuf,
    reader: Box<dyn Read>,
    gzipped: bool,
    dims: Vec<usize>,
    shape: [usize; 3],
    /// Pixels stored `[H, W, C]` (rank-4 files) rather than `[C, H, W]`.
    hwc: bool,
    header: usize,
    images: usize,
    images_read: usize,
}

impl IdxRows {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut buffered = std::io::BufReader::new(file);
        let gzipped = buffered
            .fill_buf()
            .map_err(|source| Error::Read {
                path: path.to_path_buf(),
                source,
            })?
            .starts_with(&[0x1f, 0x8b]);
        let reader: Box<dyn Read> = if gzipped {
            Box::new(flate2::bufread::GzDecoder::new(buffered))
        } else {
            Box::new(buffered)
        };
        let mut rows = Self {
            path: path.to_path_buf(),
            reader,
            gzipped,
            dims: vec![],
            shape: [1, 0, 0],
            hwc: false,
            header: 0,
            images: 0,
            images_read: 0,
        };
        let mut magic = [0u8; 4];
        if rows.read(&mut magic)? < 4 || magic[0] != 0 || magic[1] != 0 {
            return Err(format_err(path, "not an IDX file (bad magic number)"));
        }
        if magic[2] != 0x08 {
            return Err(format_err(
                path,
                format!(
                    "IDX element type 0x{:02x} is not supported (only unsigned bytes, 0x08)",
                    magic[2]
                ),
            ));
        }
        let rank = magic[3] as usize;
        let mut raw_dims = vec![0u8; 4 * rank];
        if rows.read(&mut raw_dims)? < raw_dims.len() {
            return Err(format_err(path, "truncated IDX header"));
        }
        let dims: Vec<usize> = raw_dims
            .chunks_exact(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
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
        if n == 0 || shape.iter().product::<usize>() == 0 {
            return Err(format_err(
                path,
                format!("IDX file holds no images (dimensions {dims:?})"),
            ));
        }
        let total = shape
            .iter()
            .try_fold(n, |acc, &d| acc.checked_mul(d))
            .and_then(|pixels| pixels.checked_add(4 + 4 * rank));
        if total.is_none() {
            return Err(format_err(
                path,
                format!("IDX dimensions {dims:?} are too large"),
            ));
        }
        rows.header = 4 + 4 * rank;
        rows.dims = dims;
        rows.shape = shape;
        rows.hwc = hwc;
        rows.images = n;
        Ok(rows)
    }

    /// `[C, H, W]` of every image.
    pub(crate) fn shape(&self) -> [usize; 3] {
        self.shape
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        read_full(&mut self.reader, buf).map_err(|source| {
            if self.gzipped {
                format_err(&self.path, format!("not a valid gzip stream: {source}"))
            } else {
                Error::Read {
                    path: self.path.clone(),
                    source,
                }
            }
        })
    }

    /// The file's size does not match its dimensions: `actual` bytes (decompressed) in all.
    fn size_err(&self, actual: usize) -> Error {
        let len: usize = self.shape.iter().product();
        let expected = self.header + self.images * len;
        format_err(
            &self.path,
            format!(
                "IDX dimensions {:?} need {expected} bytes, the file has {actual}",
                self.dims
            ),
        )
    }

    /// Up to `max_images` further images as pixel values; empty once all were read. Reading the
    /// last image also checks that nothing follows it.
    pub(crate) fn next_rows(&mut self, max_images: usize) -> Result<Vec<f64>> {
        let len: usize = self.shape.iter().product();
        let count = max_images.min(self.images - self.images_read);
        let want = count * len;
        let consumed = self.header + self.images_read * len;
        // Memory grows with the bytes that arrive, not with what the header claims.
        let mut data = Vec::new();
        let mut piece = vec![0u8; want.min(1 << 20)];
        while data.len() < want {
            let k = (want - data.len()).min(piece.len());
            let got = self.read(&mut piece[..k])?;
            data.extend_from_slice(&piece[..got]);
            if got < k {
                return Err(self.size_err(consumed + data.len()));
            }
        }
        let got = data.len();
        self.images_read += count;
        if count > 0 && self.images_read == self.images {
            // Counted, not kept; a stream that fails after the last image also holds more than
            // its dimensions say.
            let extra = std::io::copy(&mut self.reader, &mut std::io::sink()).unwrap_or(1);
            if extra > 0 {
                let extra = usize::try_from(extra).unwrap_or(usize::MAX);
                return Err(self.size_err(consumed.saturating_add(got).saturating_add(extra)));
            }
        }
        Ok(if self.hwc {
            let [c, h, w] = self.shape;
            let mut out = vec![0.0; data.len()];
            for (img, dst) in data.chunks_exact(len).zip(out.chunks_exact_mut(len)) {
                for p in 0..h * w {
                    for ch in 0..c {
                        dst[ch * h * w + p] = img[p * c + ch] as f64;
                    }
                }
            }
            out
        } else {
            data.iter().map(|&b| f64::from(b)).collect()
        })
    }
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

/// Whether `p` names a PNG or JPEG file (by extension).
pub(crate) fn is_image_file(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref(),
        Some("png" | "jpg" | "jpeg")
    )
}

/// The PNG/JPEG files in `dir`, sorted by name (other files are ignored); an error when there are none.
pub(crate) fn image_files_in(dir: &Path) -> Result<Vec<PathBuf>> {
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
    Ok(files)
}

/// Reads every PNG/JPEG in `dir` (sorted by name; other files are ignored). All images must have
/// the same size; they are read as grayscale when every one is grayscale, else as RGB.
pub fn read_image_dir(dir: &Path) -> Result<ImageSet> {
    read_image_files(&image_files_in(dir)?)
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
