//! In-process timings for `make bench`: medians over repeated runs, load time, peak RSS.

use std::time::Instant;

use serde::Serialize;
use tch::{Device, Kind, Tensor};

use super::error::Result;
use super::model::Model;

#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    pub name: String,
    pub median_ms: f64,
    pub min_ms: f64,
    pub runs: usize,
}

/// Median and minimum of `runs` timed calls, after one warm-up call.
pub fn time(name: &str, runs: usize, device: Device, mut f: impl FnMut()) -> Timing {
    f();
    let mut ms: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            if let Device::Cuda(_) = device {
                tch::Cuda::synchronize(0);
            }
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    Timing {
        name: name.to_owned(),
        median_ms: ms[ms.len() / 2],
        min_ms: ms[0],
        runs: ms.len(),
    }
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`).
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub model: String,
    pub device: String,
    pub threads: i32,
    pub timings: Vec<Timing>,
    pub peak_rss_mib: Option<f64>,
}

/// The core figures: model load, forward, forward+backward to the input, at batch 1.
pub fn core(model_name: &str, runs: usize, device: Device) -> Result<Report> {
    let mut timings = Vec::new();
    let mut loaded = None;
    let load = time("model load", runs.min(5), device, || {
        loaded = Some(Model::open(model_name, None, device));
    });
    let m = loaded.expect("timed at least once")?;
    timings.push(load);
    let s = m.preprocess.size as i64;
    let x = Tensor::randn([1, m.spec.in_channels, s, s], (Kind::Float, device));
    timings.push(time("forward (batch 1)", runs, device, || {
        let _ = m.logits(&x);
    }));
    timings.push(time("forward+backward to the input (batch 1)", runs, device, || {
        let xi = x.detach().set_requires_grad(true);
        let logits = m.forward_hooked(&xi, false, &mut |_, _, t| t);
        let target = logits.get(0).max();
        let g = Tensor::run_backward(&[target], &[&xi], false, false);
        let _ = g[0].sum(Kind::Float).double_value(&[]);
    }));
    Ok(Report {
        model: m.source.clone(),
        device: format!("{device:?}"),
        threads: tch::get_num_threads(),
        timings,
        peak_rss_mib: peak_rss_mib(),
    })
}
