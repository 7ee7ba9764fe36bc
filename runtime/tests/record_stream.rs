//! Chunked reading: every chunking of a CSV, NPY or IDX file gives the whole-file reader's records
//! in order, and an error in a later chunk still names its line, row or byte count.

use std::path::Path;

use vpfb_runtime::images::{idx_bytes, read_idx, ImageSet};
use vpfb_runtime::io::{npy_bytes, read_csv, read_npy, Cells, Records};
use vpfb_runtime::RecordStream;
use vpfb_testkit::scratch;

/// The stream's records, read `rows` at a time, joined; also checks every chunk's size.
fn in_chunks(mut stream: RecordStream, rows: usize) -> Records {
    let cols = stream.cols();
    let mut values = vec![];
    while let Some(chunk) = stream.next_chunk(rows).unwrap() {
        assert_eq!(chunk.cols, cols);
        assert!((1..=rows).contains(&chunk.rows()), "{} rows", chunk.rows());
        values.extend(chunk.values);
    }
    Records { cols, values }
}

/// `n` images of `shape` with distinct pixel values.
fn images(n: usize, shape: [usize; 3]) -> ImageSet {
    let len = shape.iter().product::<usize>();
    ImageSet {
        shape,
        pixels: (0..n * len).map(|i| (i * 7 % 256) as f64).collect(),
        names: vec![],
    }
}

/// Metadata of an image model taking `shape` (identity normalisation).
fn image_meta(shape: [usize; 3]) -> vpfb_runtime::ModelMeta {
    vpfb_runtime::ModelMeta::new(
        shape.to_vec(),
        vpfb_runtime::Normalization::Identity,
        serde_json::Value::Null,
    )
}

fn chunked_error(path: &Path, rows: usize) -> String {
    let mut stream = RecordStream::open_table(path, Cells::Finite).unwrap();
    loop {
        match stream.next_chunk(rows) {
            Ok(Some(_)) => {}
            Ok(None) => panic!("{}: no error in any chunk", path.display()),
            Err(e) => return e.to_string(),
        }
    }
}

#[test]
fn csv_and_npy_chunks_join_to_the_whole_file() {
    let dir = scratch("stream-tables");
    let csv = dir.join("t.csv");
    let mut text = String::from("a,b,c\n\n");
    for i in 0..11 {
        text.push_str(&format!("{i},{}.5,-{}\n", i * 2, i * 3));
        if i % 4 == 1 {
            text.push_str("   \n");
        }
    }
    std::fs::write(&csv, &text).unwrap();
    let whole = read_csv(&csv).unwrap();
    assert_eq!((whole.rows(), whole.cols), (11, 3));
    let npy = dir.join("t.npy");
    std::fs::write(&npy, npy_bytes(11, 3, &whole.values)).unwrap();
    assert_eq!(read_npy(&npy).unwrap(), whole);
    for rows in [1, 2, 4, 11, 50] {
        for path in [&csv, &npy] {
            let stream = RecordStream::open_table(path, Cells::Finite).unwrap();
            assert_eq!(stream.cols(), 3);
            assert_eq!(
                in_chunks(stream, rows),
                whole,
                "{} by {rows}",
                path.display()
            );
        }
    }
}

#[test]
fn errors_in_later_chunks_name_the_line_or_row() {
    let dir = scratch("stream-errors");
    let csv = dir.join("bad.csv");
    std::fs::write(&csv, "x,y\n1,2\n3,4\n\n5,6\n7\n").unwrap();
    let err = chunked_error(&csv, 2);
    assert!(err.contains("line 6 has 1 columns, expected 2"), "{err}");
    let npy = dir.join("bad.npy");
    let mut values: Vec<f64> = (0..10).map(f64::from).collect();
    values[7] = f64::INFINITY;
    std::fs::write(&npy, npy_bytes(5, 2, &values)).unwrap();
    let err = chunked_error(&npy, 1);
    assert!(
        err.contains("row 4, column 2: not a finite number"),
        "{err}"
    );
}

#[test]
fn idx_chunks_join_to_the_whole_file_and_size_errors_survive_chunking() {
    let dir = scratch("stream-idx");
    let set = images(7, [3, 2, 3]);
    let bytes = idx_bytes(&set);
    let path = dir.join("rgb.idx.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &bytes).unwrap();
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    assert_eq!(read_idx(&path).unwrap(), set);

    let meta = image_meta([3, 2, 3]);
    for rows in [1, 3, 7, 100] {
        let stream = RecordStream::open_for_model(&path, &meta, Cells::Finite).unwrap();
        let got = in_chunks(stream, rows);
        assert_eq!(got.values, set.pixels, "by {rows}");
    }

    for (name, bytes, needle) in [
        (
            "short.idx",
            bytes[..bytes.len() - 5].to_vec(),
            "need 146 bytes, the file has 141",
        ),
        (
            "long.idx",
            [&bytes[..], &[1, 2][..]].concat(),
            "need 146 bytes, the file has 148",
        ),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        let mut stream = RecordStream::open_for_model(&p, &meta, Cells::Finite).unwrap();
        let err = loop {
            match stream.next_chunk(2) {
                Ok(Some(_)) => {}
                Ok(None) => panic!("{name}: read without an error"),
                Err(e) => break e.to_string(),
            }
        };
        assert!(err.contains(needle) && err.contains(name), "{name}: {err}");
    }
}

#[test]
fn image_folders_are_read_a_chunk_of_files_at_a_time() {
    let dir = scratch("stream-png");
    let gray = images(5, [1, 3, 4]);
    let folder = dir.join("gray");
    vpfb_runtime::images::write_image_dir(&folder, "g", &gray.pixels, gray.shape).unwrap();
    let meta = |c: usize| image_meta([c, 3, 4]);
    for rows in [1, 2, 5] {
        let stream = RecordStream::open_for_model(&folder, &meta(1), Cells::Finite).unwrap();
        assert_eq!(in_chunks(stream, rows).values, gray.pixels, "by {rows}");
        // A colour model sees each gray image repeated in its three channels.
        let stream = RecordStream::open_for_model(&folder, &meta(3), Cells::Finite).unwrap();
        let rgb = in_chunks(stream, rows).values;
        for (img, src) in rgb.chunks(36).zip(gray.pixels.chunks(12)) {
            assert_eq!([&img[..12], &img[12..24], &img[24..]], [src; 3]);
        }
    }
    let taller = image_meta([1, 4, 4]);
    let wrong = RecordStream::open_for_model(&folder, &taller, Cells::Finite)
        .and_then(|mut s| s.next_chunk(2))
        .expect_err("3×4 images for a 4×4 model")
        .to_string();
    assert!(wrong.contains("the model takes [1, 4, 4]"), "{wrong}");
}
