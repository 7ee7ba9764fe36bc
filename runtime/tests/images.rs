//! Image records: IDX reading (plain, gzipped, RGB), its errors, and PNG grids.

use vpfb_runtime::images::{
    grid_png, idx_bytes, read_idx, read_images, square_grid, write_image_dir, ImageSet,
};
use vpfb_testkit::scratch;

fn set(n: usize, shape: [usize; 3]) -> ImageSet {
    let len: usize = shape.iter().product();
    ImageSet {
        shape,
        pixels: (0..n * len).map(|i| (i * 31 % 256) as f64).collect(),
        names: vec![],
    }
}

#[test]
fn idx_round_trips_gray_and_rgb_plain_and_gzipped() {
    let dir = scratch("idx-roundtrip");
    for shape in [[1, 3, 5], [3, 2, 4]] {
        let s = set(4, shape);
        let plain = dir.join(format!("{}-idx", shape[0]));
        std::fs::write(&plain, idx_bytes(&s)).unwrap();
        assert_eq!(read_idx(&plain).unwrap(), s);
        let gz = dir.join(format!("{}-idx.gz", shape[0]));
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut e, &idx_bytes(&s)).unwrap();
        std::fs::write(&gz, e.finish().unwrap()).unwrap();
        assert_eq!(read_images(&gz).unwrap(), s);
    }
}

#[test]
fn idx_errors_name_the_problem() {
    let dir = scratch("idx-errors");
    let good = idx_bytes(&set(2, [1, 2, 2]));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("magic", b"PK\x03\x04rest".to_vec(), "bad magic number"),
        (
            "float",
            [&[0u8, 0, 0x0d, 3][..], &good[4..]].concat(),
            "element type 0x0d",
        ),
        (
            "truncated",
            good[..good.len() - 1].to_vec(),
            "need 24 bytes, the file has 23",
        ),
        ("header", good[..6].to_vec(), "truncated IDX header"),
        (
            "labels",
            vec![0, 0, 8, 1, 0, 0, 0, 2, 7, 9],
            "are not images",
        ),
        ("gzip", vec![0x1f, 0x8b, 1, 2, 3], "not a valid gzip stream"),
        // A header claiming 4 billion images is refused by what arrives, without allocating for them.
        (
            "huge",
            [
                &[0u8, 0, 8, 3, 255, 255, 255, 255, 0, 0, 0, 28, 0, 0, 0, 28][..],
                &[7; 10],
            ]
            .concat(),
            "need 3367254359296 bytes, the file has 26",
        ),
        (
            "overflow",
            [&[0u8, 0, 8, 3][..], &[255; 12]].concat(),
            "too large",
        ),
    ];
    for (name, bytes, needle) in cases {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        let err = read_idx(&p).unwrap_err().to_string();
        assert!(err.contains(needle), "{name}: {err}");
        assert!(
            err.contains(name),
            "{name}: error does not name the file: {err}"
        );
    }
}

#[test]
fn png_folder_round_trips_and_grids_have_their_layout() {
    let dir = scratch("png");
    let s = set(5, [3, 4, 6]);
    write_image_dir(&dir.join("rgb"), "x", &s.pixels, s.shape).unwrap();
    let back = read_images(&dir.join("rgb")).unwrap();
    assert_eq!((back.shape, &back.pixels), (s.shape, &s.pixels));
    assert_eq!(back.names[0], "x00000.png");
    assert_eq!(square_grid(5), (2, 3));
    assert_eq!(square_grid(64), (8, 8));
    assert_eq!(square_grid(1), (1, 1));
    // Out-of-range and NaN pixels are clamped, not a failure.
    let mut odd = s.pixels.clone();
    odd[0] = f64::NAN;
    odd[1] = -40.0;
    odd[2] = 900.0;
    let png = grid_png(&odd, s.shape, 2, 3, 1).unwrap();
    let img = image::load_from_memory(&png).unwrap();
    assert_eq!((img.width(), img.height()), (3 * 6 + 4, 2 * 4 + 3));
    assert!(grid_png(&odd, [2, 4, 6], 1, 1, 0)
        .unwrap_err()
        .to_string()
        .contains("2-channel"));
}
