//! Draw samples from a model and print them as CSV (raw units): the flow from seeded noise to data.
//!
//!     cargo run --release -p vpfb-runtime --example sample -- models/moons.onnx 500 > samples.csv

use vpfb_runtime::{FlowOptions, Model, Result, Solver};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or("models/moons.onnx".into());
    let n: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(100);
    let model = Model::load(&path)?;
    // Dormand–Prince with tolerances 1e-3: few evaluations for smooth flows.
    let options = FlowOptions {
        solver: Solver::Dopri5 {
            rtol: 1e-3,
            atol: 1e-3,
        },
        seed: 0,
    };
    let samples = model.sample(n, &options)?;
    let header: Vec<String> = (0..samples.records.cols).map(|j| format!("x{j}")).collect();
    println!("{}", header.join(","));
    for record in samples.records.iter() {
        let cells: Vec<String> = record.iter().map(|v| v.to_string()).collect();
        println!("{}", cells.join(","));
    }
    eprintln!(
        "{n} samples from {path} ({} evaluations)",
        samples.stats.nfe
    );
    Ok(())
}
