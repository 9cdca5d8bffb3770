//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn asset(rel: &str) -> PathBuf {
    root().join(rel)
}

/// Runs the real binary with the data folder of the checkout.
pub fn glassbox(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_glassbox"))
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

/// torchvision ResNet-18 (10 classes) with the synthetic weights of
/// scripts/attribution_refs.py: the same formula, tensor by tensor in sorted key order.
pub fn synthetic_resnet18() -> glassbox::engine::model::Model {
    use glassbox::engine::arch::Arch;
    use glassbox::engine::model::Model;
    let m = Model::new_random(Arch::ResNet(18), 10, 3, tch::Device::Cpu);
    let mut vars: Vec<(String, tch::Tensor)> = m.vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| {
        for (t, (name, mut var)) in vars.into_iter().enumerate() {
            let shape = var.size();
            let n: i64 = shape.iter().product();
            let v: Vec<f32> = (0..n)
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
                .collect();
            var.copy_(&tch::Tensor::from_slice(&v).view(shape.as_slice()));
        }
    });
    m
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_glassbox"))
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
