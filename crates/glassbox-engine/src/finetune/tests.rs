//! The run's tests: data, splits, plans, runs, rollback, controls.
use tch::{Device, Kind, Tensor};

use super::data::*;
use super::head::*;
use super::plan::*;
use super::settings::*;
use super::*;
use crate::arch::{Arch, ALL_ARCHS};

#[test]
fn features_times_the_head_are_the_logits_for_every_architecture() {
    tch::manual_seed(0);
    for &arch in ALL_ARCHS {
        if matches!(arch, Arch::Vgg(16) | Arch::ResNet(50) | Arch::ResNet(34)) {
            continue; // large; their families are covered by vgg11 and resnet18
        }
        let m = Model::new_random(arch, 7, arch.default_in_channels(), Device::Cpu);
        let s = m.preprocess.size as i64;
        let x = Tensor::randn([2, arch.default_in_channels(), s, s], (Kind::Float, Device::Cpu));
        let f = features(&m, &x).unwrap();
        assert_eq!(f.size(), [2, arch.features()], "{arch}");
        let logits = head_logits(&m, &f);
        let diff = (logits - m.logits(&x)).abs().max().double_value(&[]);
        assert!(diff < 1e-4, "{arch}: {diff}");
    }
}

#[test]
fn one_imprinted_class_is_the_normalised_mean_with_every_image_above_the_old_classes() {
    let f = Tensor::from_slice(&[3.0f32, 4.0, 0.0, 2.0]).view([2, 2]);
    let w = Tensor::from_slice(&[2.0f32, 0.0, 0.0, 4.0]).view([2, 2]);
    let b = Tensor::from_slice(&[1.0f32, 3.0]);
    let (iw, ib) = imprint(&[f], &w, &b);
    assert_eq!(iw.size(), [1, 2]);
    // Old logits: (3,4) -> (7, 19), (0,2) -> (1, 11); best 19 and 11.
    // unit features (0.6, 0.8) and (0, 1): mean (0.3, 0.9), direction / sqrt(0.9), scale 3.
    let n = (0.3f64 * 0.3 + 0.9 * 0.9).sqrt();
    let want = [0.3 / n * 3.0, 0.9 / n * 3.0];
    let got = Vec::<f32>::try_from(&iw.get(0)).unwrap();
    assert!(
        (got[0] as f64 - want[0]).abs() < 1e-5 && (got[1] as f64 - want[1]).abs() < 1e-5,
        "{got:?}"
    );
    let dot = |a: [f64; 2]| a[0] * want[0] + a[1] * want[1];
    // The bias puts the image that is worst off IMPRINT_MARGIN above its best old class.
    let b_want = (19.0 - dot([3.0, 4.0])).max(11.0 - dot([0.0, 2.0])) + IMPRINT_MARGIN;
    assert!(
        (ib.double_value(&[0]) - b_want).abs() < 1e-4,
        "{} vs {b_want}",
        ib.double_value(&[0])
    );
}

#[test]
fn imprinted_classes_share_a_mean_row_and_tell_their_images_apart() {
    // Two new classes whose images differ in the second feature only, on top of a large
    // shared first feature; one old class that answers to the third feature.
    let f = |rows: &[[f32; 3]]| Tensor::from_slice(&rows.concat()).view([rows.len() as i64, 3]);
    let a = f(&[[5.0, 1.0, 0.1], [5.2, 1.2, 0.0], [4.9, 0.9, 0.2]]);
    let c = f(&[[5.1, -1.0, 0.1], [4.8, -1.1, 0.0], [5.0, -0.8, 0.1]]);
    let w = Tensor::from_slice(&[0.0f32, 0.0, 3.0]).view([1, 3]);
    let b = Tensor::from_slice(&[0.5f32]);
    let (iw, ib) = imprint(&[a.shallow_clone(), c.shallow_clone()], &w, &b);
    // The rows' mean is the shared part: the normalised mean of the normalised features.
    let all = Tensor::cat(&[&a, &c], 0);
    let unit = &all / all.norm_scalaropt_dim(2, [1], true);
    let g = unit.mean_dim([0i64].as_slice(), false, Kind::Float);
    let wg = &g / g.norm() * 3.0;
    let mean = iw.mean_dim([0i64].as_slice(), false, Kind::Float);
    assert!((mean - &wg).abs().max().double_value(&[]) < 1e-4);
    // Each training image goes to its own class, IMPRINT_MARGIN or more above the old one.
    let logits = all.matmul(&Tensor::cat(&[&w, &iw], 0).tr()) + Tensor::cat(&[&b, &ib], 0);
    let pred = Vec::<i64>::try_from(&logits.argmax(1, false)).unwrap();
    assert_eq!(pred, [1, 1, 1, 2, 2, 2]);
    let old = Vec::<f32>::try_from(&logits.select(1, 0)).unwrap();
    let new = Vec::<f32>::try_from(&logits.narrow(1, 1, 2).amax([1i64].as_slice(), false)).unwrap();
    for (o, n) in old.iter().zip(&new) {
        assert!(n - o >= IMPRINT_MARGIN as f32 - 1e-4, "{n} vs old {o}");
    }
    // Something like the old class's input stays with the old class.
    let photo = Tensor::from_slice(&[0.2f32, 0.0, 4.0]).view([1, 3]);
    let l = photo.matmul(&Tensor::cat(&[&w, &iw], 0).tr()) + Tensor::cat(&[&b, &ib], 0);
    assert_eq!(l.argmax(1, false).int64_value(&[0]), 0, "{l}");
}

#[test]
fn the_split_is_stratified_and_seeded() {
    let data = Data {
        classes: vec!["a".into(), "b".into()],
        images: Tensor::zeros([10, 1, 2, 2], (Kind::Uint8, Device::Cpu)),
        labels: vec![0, 0, 0, 0, 0, 0, 1, 1, 1, 1],
        files: vec![None; 10],
        skipped: vec![],
        fingerprint: String::new(),
        source: String::new(),
    };
    let (t, v) = split(&data, 0.3, 1).unwrap();
    assert_eq!((t.len(), v.len()), (7, 3));
    assert_eq!(v.iter().filter(|&&i| i >= 6).count(), 1);
    assert_eq!(split(&data, 0.3, 1).unwrap(), (t.clone(), v.clone()));
    let one = Data {
        labels: vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        ..data
    };
    let e = split(&one, 0.2, 1).unwrap_err().to_string();
    assert!(e.contains("class `b` has 1 image"), "{e}");
    assert_eq!(split(&one, 0.0, 1).unwrap().1.len(), 0);
}

#[test]
fn a_batch_that_does_not_fit_is_reduced_or_refused_with_the_estimate() {
    let m = Model::new_random(Arch::TinyCnn, 10, 1, Device::Cpu);
    let cfg = Config {
        batch: 256,
        ..Default::default()
    };
    let (b, need, _, note) = plan_memory(&m, &cfg, &Scope::Full, 1000, 1 << 40).unwrap();
    assert_eq!((b, note), (256, None));
    // A budget for about 10 images: the batch shrinks and says why.
    let per_image = m.activation_bytes() * 3;
    let fixed = need - 256 * per_image;
    let (b, _, _, note) = plan_memory(&m, &cfg, &Scope::Full, 1000, fixed + 10 * per_image).unwrap();
    assert_eq!(b, 10);
    assert!(note.unwrap().contains("batch reduced from 256 to 10"));
    // Not even one image fits: refused, with the estimate.
    let e = plan_memory(&m, &cfg, &Scope::Full, 1000, fixed / 2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("even for one image") && e.contains("GiB"), "{e}");
    // Head-only: the cached features must fit.
    let e = plan_memory(&m, &cfg, &Scope::Head, 10_000_000, 1 << 30)
        .unwrap_err()
        .to_string();
    assert!(e.contains("features of 10000000 images"), "{e}");
}

#[test]
fn settings_no_run_could_use_are_refused() {
    let bad = |c: Config, want: &str| {
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    };
    bad(
        Config {
            lr: f64::NAN,
            ..Default::default()
        },
        "learning rate",
    );
    bad(
        Config {
            lr: -1.0,
            ..Default::default()
        },
        "learning rate",
    );
    bad(
        Config {
            val_split: 0.95,
            ..Default::default()
        },
        "validation split",
    );
    bad(
        Config {
            add_classes: true,
            scope: Scope::Full,
            ..Default::default()
        },
        "cannot train the network",
    );
    bad(
        Config {
            epochs: 0,
            ..Default::default()
        },
        "at least one epoch",
    );
    assert!(Config {
        add_classes: true,
        epochs: 0,
        ..Default::default()
    }
    .validate()
    .is_ok());
}
