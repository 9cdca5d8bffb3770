//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[cfg(feature = "gui")]
pub mod app;

/// The checkout's root (the tests belong to crates/glassbox-cli and crates/glassbox-bench).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `glassbox` binary under test (built with the tests of crates/glassbox-cli). These
/// helpers are compiled into glassbox-bench's test too, which builds no `glassbox` and never
/// calls this: hence `option_env!`.
pub fn glassbox_bin() -> &'static str {
    match option_env!("CARGO_BIN_EXE_glassbox") {
        Some(bin) => bin,
        None => panic!("the glassbox binary is built with the tests of glassbox-cli only"),
    }
}

pub fn asset(rel: &str) -> PathBuf {
    root().join(rel)
}

/// Runs the real binary with the data folder of the checkout.
pub fn glassbox(args: &[&str]) -> Output {
    Command::new(glassbox_bin())
        .args(args)
        .env("GLASSBOX_DATA", root().join("data"))
        .output()
        .expect("the glassbox binary runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failed run must print exactly one clear line on stderr: no panic, no backtrace.
pub fn assert_clean_error(o: &Output, must_contain: &[&str]) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success; stderr: {err}");
    assert_eq!(o.status.code(), Some(1), "exit code; stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line on stderr, got: {err}");
    assert!(err.starts_with("glassbox: error: "), "{err}");
    assert!(!err.contains("panicked") && !err.contains("internal error"), "{err}");
    for m in must_contain {
        assert!(err.contains(m), "stderr should mention `{m}`: {err}");
    }
}

/// A refused argument: clap's usage error (exit 2) naming the value, no panic.
pub fn assert_usage_error(o: &Output, must_contain: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "exit code; stderr: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked") && !err.contains("internal error"), "{err}");
    for m in must_contain {
        assert!(err.contains(m), "stderr should mention `{m}`: {err}");
    }
}

pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A model of `arch` with 10 classes whose every variable (weights, biases and batch-norm
/// buffers) is `value(name, shape, t)`, t being its rank in sorted key order: the synthetic
/// weights of the reference scripts, without a file to commit.
pub fn synthetic_model(
    arch: glassbox_engine::arch::Arch,
    in_channels: i64,
    value: impl Fn(&str, &[i64], usize) -> Vec<f32>,
) -> glassbox_engine::model::Model {
    let m = glassbox_engine::model::Model::new_random(arch, 10, in_channels, tch::Device::Cpu);
    let mut vars: Vec<(String, tch::Tensor)> = m.vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| {
        for (t, (name, mut var)) in vars.into_iter().enumerate() {
            let shape = var.size();
            let v = value(&name, &shape, t);
            var.copy_(&tch::Tensor::from_slice(&v).view(shape.as_slice()));
        }
    });
    m
}

/// torchvision ResNet-18 (10 classes) with the synthetic weights of
/// scripts/attribution_refs.py: the same formula, tensor by tensor in sorted key order.
pub fn synthetic_resnet18() -> glassbox_engine::model::Model {
    synthetic_model(glassbox_engine::arch::Arch::ResNet(18), 3, |name, shape, t| {
        let n: i64 = shape.iter().product();
        (0..n)
            .map(|i| {
                #[allow(clippy::approx_constant)] // the formula of scripts/attribution_refs.py, not 1/sqrt(2)
                let wave = (i as f64 * 0.7071 + t as f64 * 1.3 + 0.5).sin();
                let x = if name.ends_with("running_mean") {
                    0.0
                } else if name.ends_with("running_var") {
                    1.0
                } else if name.ends_with(".bias") {
                    0.01 * wave
                } else if shape.len() == 1 {
                    1.0 + 0.1 * wave
                } else {
                    let fan_in = (n / shape[0]) as f64;
                    3f64.sqrt() * (2.0 / fan_in).sqrt() * wave
                };
                x as f32
            })
            .collect()
    })
}

/// `n` values uniform in [-1, 1), the i-th from splitmix64 of `stream * 2^32 + i`: the
/// `wave` of scripts/arch_refs.py, bit for bit (integer arithmetic mod 2^64).
pub fn splitmix_wave(n: usize, stream: u64) -> impl Iterator<Item = f64> {
    (0..n as u64).map(move |i| {
        let mut z = (stream << 32).wrapping_add(i).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 * 2f64.powi(-52) - 1.0
    })
}

/// The value of every element of a tensor in scripts/arch_refs.py's `synthetic`: batch-norm
/// statistics that are not the identity, fan-in scaled (He) weights.
pub fn arch_values(name: &str, shape: &[i64], t: usize) -> Vec<f32> {
    let n: i64 = shape.iter().product();
    let fan_in = (n / shape[0]) as f64;
    splitmix_wave(n as usize, t as u64)
        .map(|w| {
            let x = if name.ends_with("running_mean") {
                0.1 * w
            } else if name.ends_with("running_var") {
                1.0 + 0.5 * w.abs()
            } else if name.ends_with(".bias") {
                0.1 * w
            } else if shape.len() == 1 {
                1.0 + 0.2 * w
            } else {
                3f64.sqrt() * (2.0 / fan_in).sqrt() * w
            };
            x as f32
        })
        .collect()
}

/// `arch` (10 classes) with the synthetic weights of scripts/arch_refs.py.
pub fn synthetic_arch(arch: glassbox_engine::arch::Arch) -> glassbox_engine::model::Model {
    synthetic_model(arch, arch.default_in_channels(), arch_values)
}

/// The input of scripts/arch_refs.py, [2, channels, size, size]: image 0 unit-variance noise
/// (the wave of stream 2^20), image 1 half that noise plus smooth stripes.
pub fn synthetic_input(size: i64, channels: i64) -> tch::Tensor {
    let per = (channels * size * size) as usize;
    let noise: Vec<f64> = splitmix_wave(2 * per, 1 << 20).map(|w| 3f64.sqrt() * w).collect();
    let mut x: Vec<f32> = noise[..per].iter().map(|&v| v as f32).collect();
    for c in 0..channels {
        for y in 0..size {
            for xx in 0..size {
                let j = ((c * size + y) * size + xx) as usize;
                let (c, y, xx) = (c as f64, y as f64, xx as f64);
                let stripes = 1.5 * (0.11 * xx + 0.7 * c).sin() * (0.07 * y + 0.3 * c).cos();
                x.push((0.5 * noise[per + j] + stripes) as f32);
            }
        }
    }
    tch::Tensor::from_slice(&x).view([2, channels, size, size])
}

/// Pearson correlation of two tensors, flattened.
pub fn pearson(a: &tch::Tensor, b: &tch::Tensor) -> f64 {
    use tch::Kind;
    let a = a.to_kind(Kind::Double).flatten(0, -1);
    let b = b.to_kind(Kind::Double).flatten(0, -1);
    assert_eq!(a.size(), b.size(), "shapes differ");
    let a = &a - a.mean(Kind::Double);
    let b = &b - b.mean(Kind::Double);
    let num = (&a * &b).sum(Kind::Double).double_value(&[]);
    let den = ((&a * &a).sum(Kind::Double).double_value(&[]) * (&b * &b).sum(Kind::Double).double_value(&[])).sqrt();
    num / den.max(1e-300)
}

/// A finished run of the binary with its peak resident memory and wall time.
pub struct Measured {
    pub output: Output,
    pub max_rss_mib: f64,
    pub seconds: f64,
}

/// Runs the real binary like [`glassbox`], measuring the process's peak resident memory
/// (wait4's rusage) and its wall time.
#[allow(clippy::zombie_processes)] // reaped by wait4, which std's Child cannot do with rusage
pub fn glassbox_measured(args: &[&str]) -> Measured {
    use std::io::Read;
    use std::process::Stdio;
    let start = std::time::Instant::now();
    let mut child = Command::new(glassbox_bin())
        .args(args)
        .env("GLASSBOX_DATA", root().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the glassbox binary runs");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be filled in by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child, whose pid we hold; std's Child is not waited on again.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert!(pid > 0, "wait4 failed");
    let seconds = start.elapsed().as_secs_f64();
    use std::os::unix::process::ExitStatusExt;
    let output = Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    };
    Measured {
        output,
        max_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        seconds,
    }
}

/// A picture written by Glassbox: decodes, has the size given (0 = any), and shows real
/// content (more than `colours` distinct colours).
pub fn assert_picture(path: &Path, w: u32, h: u32, colours: usize) -> image::RgbImage {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    if w > 0 {
        assert_eq!((img.width(), img.height()), (w, h), "{}", path.display());
    }
    let n = distinct_colours(&img);
    assert!(n > colours, "{}: only {n} colours", path.display());
    img
}

pub fn distinct_colours(img: &image::RgbImage) -> usize {
    let mut c: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    c.sort_unstable();
    c.dedup();
    c.len()
}

/// An activation grid of `c` channels of h x w: the size Glassbox lays it out at (tiles of
/// about 64 pixels, 2 pixels apart, as square as possible) and exactly `c` painted tiles.
pub fn assert_grid(img: &image::RgbImage, c: usize, h: usize, w: usize) {
    let scale = (64 / h.max(w)).max(1);
    let cols = (c as f64).sqrt().ceil() as usize;
    let rows = c.div_ceil(cols);
    let (tw, th) = (w * scale + 2, h * scale + 2);
    assert_eq!(
        (img.width() as usize, img.height() as usize),
        (tw * cols, th * rows),
        "grid size"
    );
    let gap = image::Rgb([40u8, 40, 40]);
    let painted = (0..rows * cols)
        .filter(|k| {
            let (x, y) = ((k % cols) * tw, (k / cols) * th);
            // A tile is painted if any of its pixels is not the background.
            (0..th - 2).any(|dy| (0..tw - 2).any(|dx| *img.get_pixel((x + dx) as u32, (y + dy) as u32) != gap))
        })
        .count();
    assert_eq!(painted, c, "painted tiles");
}

/// Renders an HTML file in headless Chromium (Debian `chromium`, installed by `make setup`)
/// and returns the screenshot.
pub fn render_html(page: &Path, width: u32, height: u32) -> image::RgbImage {
    let dir = tempfile::tempdir().expect("temp dir");
    let shot = dir.path().join("page.png");
    let o = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            &format!("--user-data-dir={}", dir.path().join("profile").display()),
            &format!("--window-size={width},{height}"),
            &format!("--screenshot={}", shot.display()),
            &format!("file://{}", page.canonicalize().expect("the page exists").display()),
        ])
        .output()
        .expect("chromium runs (make setup installs Debian's chromium)");
    assert!(
        shot.exists(),
        "chromium wrote no screenshot: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    image::open(&shot).expect("a PNG screenshot").to_rgb8()
}

/// Checks that a page names nothing outside itself: every picture is a data URI.
pub fn assert_self_contained(html: &str) {
    for bad in [
        "src=\"http",
        "src='http",
        "href=\"http",
        "src=\"/",
        "src=\"file:",
        "url(http",
        "<script",
        "<link",
    ] {
        assert!(!html.contains(bad), "the page refers outside itself: {bad}");
    }
    for (i, _) in html.match_indices("src=\"") {
        assert!(
            html[i + 5..].starts_with("data:image/png;base64,"),
            "{}",
            &html[i..i + 40.min(html.len() - i)]
        );
    }
}

/// Accuracy counted by the test itself, by another path than the trainer's and `eval`'s
/// (`Split::normalised`): each digit's pixels (0 to 255) normalised with the mean and std
/// the model's own preprocessing metadata names, one forward per 500 digits, and the
/// argmax compared with the label here.
pub fn count_accuracy(m: &glassbox_engine::model::Model, split: &glassbox_engine::data::Split) -> f64 {
    use tch::Kind;
    let n = split.labels.size()[0];
    assert!(n > 0, "no images to count");
    let (mean, std) = (m.preprocess.mean[0], m.preprocess.std[0]);
    let mut correct = 0i64;
    for start in (0..n).step_by(500) {
        let len = 500.min(n - start);
        let imgs = split.images.narrow(0, start, len).to_kind(Kind::Float);
        let x = ((imgs - mean) / std).view([len, 1, 28, 28]);
        let logits = tch::no_grad(|| m.logits(&x));
        let labels = Vec::<i64>::try_from(&split.labels.narrow(0, start, len)).unwrap();
        for (i, want) in labels.iter().enumerate() {
            let row = Vec::<f32>::try_from(&logits.get(i as i64).to_kind(Kind::Float)).unwrap();
            let best = (0..row.len()).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
            correct += (best as i64 == *want) as i64;
        }
    }
    correct as f64 / n as f64
}

/// A filters or kernel picture (the layout of `render::filter_grid`) shows these kernels
/// [out, in, k, k]: its size is the layout's, and every clearly non-zero value (a fifth of
/// its tile's largest or more) has its sign in its cell: an RGB tile (3 input channels)
/// above mid-grey in the channel where the weight is positive and below it where negative;
/// a diverging tile or a 1x1 convolution's mixing matrix redder than blue where positive,
/// bluer than red where negative. `average`: the per-output mean over input channels.
pub fn assert_filters_show(img: &image::RgbImage, w: &tch::Tensor, max_tiles: i64, average: bool) {
    let w = w.to_kind(tch::Kind::Float).to_device(tch::Device::Cpu);
    let s = w.size();
    assert_eq!(s.len(), 4, "kernels [out, in, k, k]");
    let (out, cin, kh, kw) = (s[0], s[1], s[2], s[3]);
    let v = Vec::<f32>::try_from(&w.contiguous().flatten(0, -1)).unwrap();
    let at = |o: i64, i: i64, y: i64, x: i64| v[(((o * cin + i) * kh + y) * kw + x) as usize] as f64;
    let px = |x: i64, y: i64| img.get_pixel(x as u32, y as u32).0;
    let mut checked = 0;
    // Checks a clear value's sign in a diverging cell; whether the value was clear.
    let diverging = |p: [u8; 3], val: f64, m: f64, what: &str| -> usize {
        if val == 0.0 || val.abs() < 0.2 * m {
            return 0;
        }
        let (r, b) = (p[0] as i32, p[2] as i32);
        assert!(
            if val > 0.0 { r > b } else { b > r },
            "{what}: value {val} drawn as {p:?}"
        );
        1
    };
    if kh == 1 && kw == 1 && cin > 1 {
        let scale = (512 / out.max(cin)).clamp(1, 16);
        let scale_y = scale.max(16 / out).max(1);
        assert_eq!(
            (img.width() as i64, img.height() as i64),
            (cin * scale, out * scale_y),
            "mixing matrix size"
        );
        let m = v.iter().fold(0f64, |a, &x| a.max((x as f64).abs()));
        for o in 0..out {
            for i in 0..cin {
                let p = px(i * scale + scale / 2, o * scale_y + scale_y / 2);
                checked += diverging(p, at(o, i, 0, 0), m, &format!("output {o}, input {i}"));
            }
        }
        assert!(checked > 0, "no value checked");
        return;
    }
    let scale = (48 / kh.max(kw)).max(4);
    let (tw, th, gap) = (kw * scale, kh * scale, 2);
    let rgb = cin == 3;
    let tiles: Vec<(i64, Option<i64>)> = if rgb || average || cin == 1 {
        (0..out.min(max_tiles)).map(|o| (o, None)).collect()
    } else {
        let o = out.min((max_tiles / cin).max(1));
        (0..o)
            .flat_map(|o| (0..cin.min(max_tiles)).map(move |i| (o, Some(i))))
            .collect()
    };
    let cols = if rgb || average || cin == 1 {
        (tiles.len() as f64).sqrt().ceil() as i64
    } else {
        cin.min(max_tiles)
    };
    let rows = (tiles.len() as i64 + cols - 1) / cols;
    assert_eq!(
        (img.width() as i64, img.height() as i64),
        ((tw + gap) * cols, (th + gap) * rows),
        "filter grid size"
    );
    for (k, &(o, i)) in tiles.iter().enumerate() {
        let (ox, oy) = ((k as i64 % cols) * (tw + gap), (k as i64 / cols) * (th + gap));
        let cell = |y: i64, x: i64| px(ox + x * scale + scale / 2, oy + y * scale + scale / 2);
        if rgb {
            let m = (0..3)
                .flat_map(|c| (0..kh).flat_map(move |y| (0..kw).map(move |x| (c, y, x))))
                .fold(0f64, |a, (c, y, x)| a.max(at(o, c, y, x).abs()));
            for c in 0..3 {
                for y in 0..kh {
                    for x in 0..kw {
                        let val = at(o, c, y, x);
                        if val != 0.0 && val.abs() >= 0.2 * m {
                            let p = cell(y, x)[c as usize] as f64;
                            assert!(
                                (p > 127.5) == (val > 0.0),
                                "filter {o}, channel {c}, ({y}, {x}): value {val} drawn as {p}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
        } else {
            let val = |y: i64, x: i64| match i {
                Some(i) => at(o, i, y, x),
                None => (0..cin).map(|i| at(o, i, y, x)).sum::<f64>() / cin as f64,
            };
            let m = (0..kh)
                .flat_map(|y| (0..kw).map(move |x| (y, x)))
                .fold(0f64, |a, (y, x)| a.max(val(y, x).abs()));
            for y in 0..kh {
                for x in 0..kw {
                    checked += diverging(cell(y, x), val(y, x), m, &format!("filter {o} input {i:?} ({y}, {x})"));
                }
            }
        }
    }
    assert!(checked > 0, "no value checked");
}

/// A faithfulness chart (charts.rs, 900x500 PNG) shows both curves, in their colours: the
/// deletion curve (red) lower on its right than on its left, the insertion curve (green)
/// higher (the map's top pixels carry the class).
pub fn assert_faithfulness_chart(img: &image::RgbImage) {
    assert_eq!((img.width(), img.height()), (900, 500), "chart size");
    let mean_y = |colour: [u8; 3], from: u32, to: u32| {
        let ys: Vec<f64> = img
            .enumerate_pixels()
            .filter(|(x, _, p)| p.0 == colour && (from..to).contains(x))
            .map(|(_, y, _)| y as f64)
            .collect();
        assert!(
            ys.len() > 30,
            "too few pixels of the curve {colour:?} in x {from}..{to}: {}",
            ys.len()
        );
        ys.iter().sum::<f64>() / ys.len() as f64
    };
    let (deletion, insertion) = ([200, 60, 50], [40, 120, 60]);
    // Image y grows downwards: a falling curve has a larger y on the right.
    assert!(
        mean_y(deletion, 0, 300) < mean_y(deletion, 600, 900),
        "the deletion curve falls"
    );
    assert!(
        mean_y(insertion, 0, 300) > mean_y(insertion, 600, 900),
        "the insertion curve rises"
    );
}

/// Pearson correlation of two equally long lists.
pub fn correlation(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut num, mut da, mut db) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        num += (x - ma) * (y - mb);
        da += (x - ma) * (x - ma);
        db += (y - mb) * (y - mb);
    }
    num / (da * db).sqrt().max(1e-300)
}

/// The mean absolute difference per pixel and channel of two pictures of one size, and
/// for each pixel its own.
pub fn difference(a: &image::RgbImage, b: &image::RgbImage) -> (f64, Vec<f64>) {
    assert_eq!(a.dimensions(), b.dimensions(), "sizes differ");
    let per: Vec<f64> = a
        .pixels()
        .zip(b.pixels())
        .map(|(p, q)| (0..3).map(|c| (p.0[c] as f64 - q.0[c] as f64).abs()).sum::<f64>() / 3.0)
        .collect();
    (per.iter().sum::<f64>() / per.len() as f64, per)
}

/// Luminance of each pixel.
pub fn luminance(img: &image::RgbImage) -> Vec<f64> {
    img.pixels()
        .map(|p| 0.299 * p.0[0] as f64 + 0.587 * p.0[1] as f64 + 0.114 * p.0[2] as f64)
        .collect()
}

/// Every variable of a model (weights and batch-norm statistics), copied: a snapshot to
/// compare with after an edit or a training run.
pub fn variables(m: &glassbox_engine::model::Model) -> std::collections::BTreeMap<String, tch::Tensor> {
    m.vs.variables()
        .into_iter()
        .map(|(k, t)| (k, t.detach().copy()))
        .collect()
}
