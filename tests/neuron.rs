//! `glassbox conv`, `examples` and `visualize`: the classroom's questions from the command line.
mod common;

use common::*;

#[test]
fn conv_shows_the_arithmetic_and_it_adds_up_to_the_networks_value() {
    let o = glassbox(&[
        "conv",
        path_str(&asset("assets/samples/chelsea.png")),
        "--layer",
        "_blocks.2._bn1",
        "--channel",
        "5",
        "--at",
        "10,10",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["conv"], "_blocks.2._depthwise_conv");
    assert_eq!(v["input_channels"], 1);
    let products: f64 = v["inputs"][0]["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap())
        .sum();
    let conv_out = v["conv_out"].as_f64().unwrap();
    assert!((products - conv_out).abs() < 1e-4, "{products} vs {conv_out}");
    assert!((conv_out - v["network_conv_out"].as_f64().unwrap()).abs() < 1e-4);
    let bn = &v["batch_norm"];
    let z = bn["gamma"].as_f64().unwrap() * (conv_out - bn["mean"].as_f64().unwrap())
        / (bn["var"].as_f64().unwrap() + bn["eps"].as_f64().unwrap()).sqrt()
        + bn["beta"].as_f64().unwrap();
    assert!(
        (z - v["result"].as_f64().unwrap()).abs() < 1e-3,
        "{z} vs {}",
        v["result"]
    );
    // A pooled layer is not a convolution's output: one clear line.
    assert_clean_error(
        &glassbox(&[
            "conv",
            path_str(&asset("assets/samples/chelsea.png")),
            "--model",
            "mnist",
            "--layer",
            "pool1",
            "--channel",
            "0",
            "--at",
            "1,1",
        ]),
        &["pool1", "conv1"],
    );
}

#[test]
fn examples_writes_the_top_images_strongest_first() {
    let dir = tmp();
    let o = glassbox(&[
        "examples",
        "--model",
        "mnist",
        "--layer",
        "relu2",
        "--channel",
        "4",
        "--dataset",
        "mnist",
        "--per-class",
        "20",
        "--out",
        path_str(dir.path()),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("the top 9 of 200 images"), "{text}");
    let acts: Vec<f64> = text
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(acts.len(), 9);
    assert!(acts.windows(2).all(|w| w[0] >= w[1]), "{acts:?}");
    for k in 1..=9 {
        assert_picture(&dir.path().join(format!("{k}.png")), 28, 28, 5);
    }
}

#[test]
fn examples_of_a_folder_name_each_image_by_its_path_inside_it_and_say_so_in_json() {
    // The lesson's folder of two classes: sub-folders `digit-3` and `digit-7`.
    let dir = tmp();
    let data = root().join("assets/lessons/two-digits");
    let o = glassbox(&[
        "examples",
        "--model",
        "mnist",
        "--layer",
        "relu2",
        "--channel",
        "4",
        "--data",
        path_str(&data),
        "--top",
        "5",
        "--json",
        "--out",
        path_str(dir.path()),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("one JSON object");
    assert_eq!(v["layer"], "relu2");
    assert_eq!(v["channel"], 4);
    let top = v["top"].as_array().unwrap();
    assert_eq!(top.len(), 5);
    for (k, t) in top.iter().enumerate() {
        assert_eq!(t["rank"], k + 1);
        let name = t["name"].as_str().unwrap();
        assert!(
            name.starts_with("digit-3/") || name.starts_with("digit-7/"),
            "{name} is not named by its path inside the folder"
        );
        assert!(data.join(name).is_file(), "{name}");
        assert!(std::path::Path::new(t["picture"].as_str().unwrap()).is_file());
    }
    let acts: Vec<f64> = top.iter().map(|t| t["activation"].as_f64().unwrap()).collect();
    assert!(acts.windows(2).all(|w| w[0] >= w[1]), "{acts:?}");
}

#[test]
fn visualize_grows_the_same_image_for_the_same_seed() {
    let dir = tmp();
    let run = |name: &str, seed: &str| {
        let out = dir.path().join(name);
        let o = glassbox(&[
            "visualize",
            "--model",
            "mnist",
            "--class",
            "3",
            "--steps",
            "30",
            "--seed",
            seed,
            "--out",
            path_str(&out),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("what class 3 wants to see"));
        std::fs::read(out).unwrap()
    };
    let a = run("a.png", "1");
    assert_eq!(a, run("b.png", "1"));
    assert_ne!(a, run("c.png", "2"));
    assert_usage_error(
        &glassbox(&["visualize", "--model", "mnist", "--layer", "conv1", "--out", "x.png"]),
        &["--channel"],
    );
}
