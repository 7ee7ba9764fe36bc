//! Which values of a record inpainting fills: chosen columns of a table record, or a region of an
//! image — a named one or the non-black pixels of a mask image.

use std::path::Path;
use std::str::FromStr;

use crate::{Error, Result};

/// A named region of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    RightHalf,
    LeftHalf,
    TopHalf,
    BottomHalf,
    /// The middle half in both directions.
    Center,
}

impl Region {
    /// The names [`Region::from_str`] accepts.
    pub const NAMES: [&'static str; 5] = [
        "right-half",
        "left-half",
        "top-half",
        "bottom-half",
        "center",
    ];

    fn contains(self, y: usize, x: usize, h: usize, w: usize) -> bool {
        match self {
            Self::RightHalf => x >= w / 2,
            Self::LeftHalf => x < w / 2,
            Self::TopHalf => y < h / 2,
            Self::BottomHalf => y >= h / 2,
            Self::Center => (h / 4..h - h / 4).contains(&y) && (w / 4..w - w / 4).contains(&x),
        }
    }

    /// The unknown flags of one `[C, H, W]` image: the region, in every channel.
    pub fn mask(self, shape: [usize; 3]) -> Vec<bool> {
        let [_, h, w] = shape;
        let plane: Vec<bool> = (0..h * w)
            .map(|p| self.contains(p / w, p % w, h, w))
            .collect();
        every_channel(&plane, shape[0])
    }
}

impl FromStr for Region {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "right-half" => Ok(Self::RightHalf),
            "left-half" => Ok(Self::LeftHalf),
            "top-half" => Ok(Self::TopHalf),
            "bottom-half" => Ok(Self::BottomHalf),
            "center" => Ok(Self::Center),
            other => Err(Error::InvalidArgument(format!(
                "`{other}` is not a region ({})",
                Region::NAMES.join(", ")
            ))),
        }
    }
}

fn every_channel(plane: &[bool], channels: usize) -> Vec<bool> {
    (0..channels).flat_map(|_| plane.iter().copied()).collect()
}

/// The unknown flags of one `[C, H, W]` image from a mask image of the same height and width: a
/// pixel is unknown when any of the mask's channels is non-zero, in every channel of the record.
pub fn mask_from_image(path: &Path, shape: [usize; 3]) -> Result<Vec<bool>> {
    let [_, h, w] = shape;
    let set = crate::images::read_images(path)?;
    if set.shape[1..] != shape[1..] || set.count() != 1 {
        return Err(Error::Format {
            path: path.into(),
            reason: format!(
                "a mask must be one {w}×{h} image (the model's size); this holds {} of {}×{}",
                set.count(),
                set.shape[2],
                set.shape[1]
            ),
        });
    }
    let plane: Vec<bool> = (0..h * w)
        .map(|p| (0..set.shape[0]).any(|ch| set.pixels[ch * h * w + p] > 0.0))
        .collect();
    Ok(every_channel(&plane, shape[0]))
}

/// The unknown flags of a `record_len`-value record whose `columns` (0-based) are unknown.
pub fn mask_from_columns(columns: &[usize], record_len: usize) -> Result<Vec<bool>> {
    let mut unknown = vec![false; record_len];
    for &c in columns {
        if c >= record_len {
            return Err(Error::InvalidArgument(format!(
                "column {c} is out of range (records have columns 0..{})",
                record_len.saturating_sub(1)
            )));
        }
        unknown[c] = true;
    }
    Ok(unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_cover_the_named_part_of_every_channel() {
        let m = Region::RightHalf.mask([2, 2, 4]);
        let plane = [false, false, true, true, false, false, true, true];
        assert_eq!(m, [plane, plane].concat());
        let c = Region::Center.mask([1, 4, 4]);
        assert_eq!(c.iter().filter(|&&u| u).count(), 4);
        assert!(c[5] && c[6] && c[9] && c[10]);
        assert_eq!("top-half".parse::<Region>().unwrap(), Region::TopHalf);
        assert!("middle".parse::<Region>().is_err());
    }

    #[test]
    fn columns_out_of_range_are_refused() {
        assert_eq!(mask_from_columns(&[1], 3).unwrap(), [false, true, false]);
        assert!(mask_from_columns(&[3], 3).is_err());
    }
}
