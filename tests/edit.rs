//! Editing a model from the command line: `glassbox edit` (a contract other checks use),
//! `diff` and `eval`.
mod common;

use common::*;
use glassbox_engine::data::{self, DatasetName};
use glassbox_engine::edit::{Editor, Op};
use glassbox_engine::model::Model;
use tch::{Device, Kind, Tensor};

fn digits() -> Tensor {
    let d = data::load(DatasetName::Mnist, &root().join("data")).expect("run `make setup` for the data sets");
    data::Split::normalised(&d.test.images.narrow(0, 0, 64))
}

#[test]
fn edit_writes_a_new_model_with_its_log_and_leaves_the_original() {
    let dir = tmp();
    let src = dir.path().join("mnist.safetensors");
    std::fs::copy(asset("assets/mnist-tiny-cnn.safetensors"), &src).unwrap();
    let before = std::fs::read(&src).unwrap();
    let out = dir.path().join("edited.safetensors");
    let ops = [
        "set conv1.weight[0,0,1,1]=3",
        "scale fc2.weight[3] 0.5",
        "preset conv1.weight[1,0] edge",
        "knockout relu2:5",
    ];
    let mut args = vec!["edit", "--model", path_str(&src)];
    for op in &ops {
        args.extend(["--op", op]);
    }
    args.extend(["--out", path_str(&out)]);
    let o = glassbox(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&src).unwrap(), before, "the original is never modified");
    // The file holds what the same edits give in memory, its log and its knock-out.
    let edited = Model::open(out.as_path(), None, Device::Cpu).unwrap();
    let mut m = Model::open(src.as_path(), None, Device::Cpu).unwrap();
    let mut ed = Editor::default();
    for op in &ops {
        ed.apply(&mut m, op.parse::<Op>().unwrap()).unwrap();
    }
    let x = digits();
    assert!(
        edited.logits(&x).equal(&m.logits(&x)),
        "the saved model is the edited one"
    );
    assert_eq!(glassbox_engine::edit::saved_log(&edited), ops);
    assert!(edited.knockouts.contains(&("relu2".to_string(), 5)));
    let (_, traced) = edited.trace(&x);
    let relu2 = traced.iter().find(|t| t.name == "relu2").unwrap();
    assert_eq!(relu2.output.select(1, 5).abs().sum(Kind::Float).double_value(&[]), 0.0);
    // Undo of everything is the original, bit for bit.
    ed.reset(&mut m).unwrap();
    let original = Model::open(src.as_path(), None, Device::Cpu).unwrap();
    assert!(m.logits(&x).equal(&original.logits(&x)));
    // Overwriting needs --force; the input is never the output.
    assert_clean_error(&glassbox(&args), &["already exists", "--force"]);
    let o = glassbox(&[
        "edit",
        "--model",
        path_str(&src),
        "--op",
        "zero fc2.weight[0]",
        "--out",
        path_str(&src),
        "--force",
    ]);
    assert_clean_error(&o, &["is the input file"]);
    // Edits of an edited file add to its log.
    let again = dir.path().join("again.safetensors");
    let o = glassbox(&[
        "edit",
        "--model",
        path_str(&out),
        "--op",
        "restore relu2:5",
        "--out",
        path_str(&again),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m2 = Model::open(again.as_path(), None, Device::Cpu).unwrap();
    assert_eq!(glassbox_engine::edit::saved_log(&m2).len(), 5);
    assert!(m2.knockouts.is_empty());
}

#[test]
fn a_bad_op_gets_one_line_with_the_form_or_the_shape() {
    let dir = tmp();
    let out = dir.path().join("x.safetensors");
    let run = |op: &str| glassbox(&["edit", "--model", "mnist", "--op", op, "--out", path_str(&out)]);
    assert_clean_error(
        &run("zap conv1.weight"),
        &["not an edit", "set NAME[i,...]=V", "knockout LAYER:C"],
    );
    assert_clean_error(&run("zero conv1.weight[20]"), &["index 20", "[16, 1, 3, 3]"]);
    assert_clean_error(&run("zero conv9.weight"), &["`conv9.weight` is not a parameter"]);
    assert_clean_error(&run("preset fc1.weight[0,0] blur"), &["presets are 3x3"]);
    assert_clean_error(&run("knockout relu2:32"), &["0 to 31"]);
    assert!(!out.exists(), "nothing is written for a refused edit");
}

#[test]
fn diff_names_the_changed_tensors_and_both_logs() {
    let dir = tmp();
    let out = dir.path().join("e.safetensors");
    let o = glassbox(&[
        "edit",
        "--model",
        "mnist",
        "--op",
        "add fc1.bias[7] 0.5",
        "--out",
        path_str(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = glassbox(&["diff", "mnist", path_str(&out), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let changed = v["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["name"], "fc1.bias");
    assert_eq!(changed[0]["values"], 1);
    assert!((changed[0]["max_abs"].as_f64().unwrap() - 0.5).abs() < 1e-6);
    assert_eq!(v["edits_b"], serde_json::json!(["add fc1.bias[7] 0.5"]));
    assert_eq!(v["edits_a"], serde_json::json!([]));
    let o = glassbox(&["diff", "mnist", "efficientnet-lite0"]);
    assert_clean_error(&o, &["differ in architecture"]);
}

#[test]
fn eval_reports_accuracy_per_class_and_confusion_and_compares() {
    let dir = tmp();
    let out = dir.path().join("knocked.safetensors");
    let o = glassbox(&[
        "edit",
        "--model",
        "mnist",
        "--op",
        "scale fc2.weight[1] 0",
        "--out",
        path_str(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = glassbox(&[
        "eval",
        "--model",
        "mnist",
        "--dataset",
        "mnist",
        "--json",
        "--compare",
        path_str(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let acc = v["accuracy"].as_f64().unwrap();
    // The same as counted here on the test split, by another path (count_accuracy).
    let d = data::load(DatasetName::Mnist, &root().join("data")).unwrap();
    let m = Model::open("mnist", None, Device::Cpu).unwrap();
    assert!((acc - count_accuracy(&m, &d.test)).abs() < 1e-9);
    let confusion = v["confusion"].as_array().unwrap();
    assert_eq!(confusion.len(), 10);
    let total: u64 = confusion
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|x| x.as_u64().unwrap())
        .sum();
    assert_eq!(total, 10_000);
    assert_eq!(v["per_class"].as_array().unwrap().len(), 10);
    // The digit 1 lost its logit's weights: it is the most damaged class, the others barely move.
    let change = v["compare"]["per_class_change"].as_array().unwrap();
    assert_eq!(change[0]["index"], 1);
    assert!(change[0]["change"].as_f64().unwrap() < -0.5, "{}", change[0]);
}

#[test]
fn eval_reads_a_folder_with_one_sub_folder_per_class() {
    let dir = tmp();
    let d = data::load(DatasetName::Mnist, &root().join("data")).unwrap();
    let n = 40;
    for i in 0..n {
        let label = d.test.labels.int64_value(&[i]);
        let px = Vec::<u8>::try_from(&d.test.images.get(i).flatten(0, -1)).unwrap();
        let sub = dir.path().join(label.to_string());
        std::fs::create_dir_all(&sub).unwrap();
        image::GrayImage::from_raw(28, 28, px)
            .unwrap()
            .save(sub.join(format!("{i}.png")))
            .unwrap();
    }
    let o = glassbox(&["eval", "--model", "mnist", "--data", path_str(dir.path()), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let m = Model::open("mnist", None, Device::Cpu).unwrap();
    let want = count_accuracy(&m, &d.test.head(n));
    assert_eq!(v["images"], n);
    assert!(
        (v["accuracy"].as_f64().unwrap() - want).abs() < 1e-9,
        "{} vs {want}",
        v["accuracy"]
    );
    // A folder named neither by label nor by index is refused, naming it.
    std::fs::create_dir_all(dir.path().join("giraffe")).unwrap();
    let o = glassbox(&["eval", "--model", "mnist", "--data", path_str(dir.path())]);
    assert_clean_error(&o, &["giraffe", "neither a label"]);
}

#[test]
fn every_op_through_the_command_line() {
    let dir = tmp();
    let out = dir.path().join("all.safetensors");
    let ops = [
        "set conv1.weight[0,0,1,1]=0.25",
        "add conv1.weight[1] 0.1",
        "scale conv2.weight[3] -1",
        "zero bn1.bias[2]",
        "noise conv2.weight[4,1] 0.05 11",
        "randomize fc1.bias 5",
        "randomize conv2.weight[2] 6",
        "preset conv1.weight[5,0] blur",
        "knockout relu1:6",
        "knockout pool2:1",
        "restore relu1:6",
    ];
    let mut args = vec!["edit", "--model", "mnist"];
    for op in &ops {
        args.extend(["--op", op]);
    }
    args.extend(["--out", path_str(&out)]);
    let o = glassbox(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = Model::open(out.as_path(), None, Device::Cpu).unwrap();
    assert_eq!(glassbox_engine::edit::saved_log(&m), ops);
    let kernel = m.vs.variables()["conv1.weight"].get(5).get(0);
    assert!(kernel.allclose(
        &Tensor::full([3, 3], 1.0 / 9.0, (Kind::Float, Device::Cpu)),
        1e-6,
        1e-6,
        false
    ));
    assert_eq!(
        m.knockouts.iter().cloned().collect::<Vec<_>>(),
        [("pool2".to_string(), 1)]
    );
    let o = glassbox(&[
        "predict",
        "--model",
        path_str(&out),
        path_str(&asset("assets/samples/coffee.png")),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `glassbox export --format torchscript`: libtorch's own `CModule::load` runs the file with
/// the edited model's logits, knock-out included, and its extra file names the labels and
/// the preprocessing.
#[test]
fn a_torchscript_export_runs_in_libtorch_with_the_knockout() {
    let dir = tmp();
    let edited = dir.path().join("knocked.safetensors");
    let o = glassbox(&[
        "edit",
        "-m",
        "mnist",
        "--op",
        "knockout conv2:3",
        "--op",
        "scale fc2.weight[4] 2",
        "--out",
        edited.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pt = dir.path().join("knocked.pt");
    let o = glassbox(&[
        "export",
        "-m",
        edited.to_str().unwrap(),
        "--format",
        "torchscript",
        "--out",
        pt.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["max_logit_diff"].as_f64().unwrap() <= 1e-4, "{v}");

    let m = Model::open(
        glassbox_engine::model::ModelSource::File(edited.clone()),
        None,
        Device::Cpu,
    )
    .unwrap();
    let x = digits();
    let want = m.logits(&x);
    let module = tch::CModule::load(&pt).unwrap();
    let got = module.forward_ts(&[x.shallow_clone()]).unwrap();
    let diff = (&got - &want).abs().max().double_value(&[]);
    assert!(diff <= 1e-4, "TorchScript against Glassbox on 64 digits: {diff}");
    // The knock-out is in the module: without it the logits move.
    let mut plain = Model::open(glassbox_engine::model::ModelSource::File(edited), None, Device::Cpu).unwrap();
    plain.knockouts.clear();
    let moved = (&got - plain.logits(&x)).abs().max().double_value(&[]);
    assert!(moved > 1e-3, "the knock-out changes nothing? {moved}");

    let side = glassbox_engine::export::read_sidecar(&pt).unwrap();
    assert_eq!(side.labels, m.labels);
    assert_eq!(side.preprocess, m.preprocess);
    assert_eq!(side.knockouts, ["conv2:3"]);
    assert_eq!(side.edits.len(), 2, "{:?}", side.edits);
}

/// `--format safetensors`: PyTorch's key names, batch norms' `num_batches_tracked` included
/// (strict `load_state_dict` needs them; scripts/export_refs.py loads one into torchvision),
/// and the file reopens in Glassbox with the same logits.
#[test]
fn a_safetensors_export_keeps_pytorch_keys_and_reopens() {
    let dir = tmp();
    let out = dir.path().join("mnist.safetensors");
    let o = glassbox(&[
        "export",
        "-m",
        "mnist",
        "--format",
        "safetensors",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(&out).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    for want in ["conv1.weight", "bn1.running_var", "bn1.num_batches_tracked", "fc2.bias"] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
    let a = Model::open(glassbox_engine::model::ModelSource::from("mnist"), None, Device::Cpu).unwrap();
    let b = Model::open(
        glassbox_engine::model::ModelSource::File(out.clone()),
        None,
        Device::Cpu,
    )
    .unwrap();
    let x = digits();
    assert_eq!((a.logits(&x) - b.logits(&x)).abs().max().double_value(&[]), 0.0);
    // Writing over the file needs --force; over a missing folder, a clear error.
    let o = glassbox(&[
        "export",
        "-m",
        "mnist",
        "--format",
        "safetensors",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success() && stderr(&o).contains("--force"), "{}", stderr(&o));
    let nowhere = dir.path().join("no-such-folder/m.pt");
    let o = glassbox(&[
        "export",
        "-m",
        "mnist",
        "--format",
        "torchscript",
        "--out",
        nowhere.to_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("no-such-folder"),
        "{}",
        stderr(&o)
    );
}

/// `glassbox compare A B IMAGE`: each side's top-k is what `predict` gives for that model,
/// the weight table names the tensor edited, the pictures are written, the accuracies are
/// what `eval` gives; a model with added classes compares on what it shares with its
/// original and lists what only it has; a model against itself has the same map.
#[test]
fn compare_agrees_with_predict_and_eval_and_handles_added_classes() {
    let dir = tmp();
    let edited = dir.path().join("edited.safetensors");
    let o = glassbox(&[
        "edit",
        "-m",
        "mnist",
        "--op",
        "scale conv2.weight[3] 3",
        "--op",
        "knockout conv1:2",
        "--out",
        edited.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let seven = asset("assets/lessons/a-seven.png");
    let out = dir.path().join("pictures");
    let json = |args: &[&str]| -> serde_json::Value {
        let o = glassbox(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        serde_json::from_str(&stdout(&o)).unwrap()
    };
    let c = json(&[
        "compare",
        "mnist",
        edited.to_str().unwrap(),
        seven.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--dataset",
        "mnist",
        "--json",
    ]);
    let img = &c["images"][0];
    for (side, model) in [("top_a", "mnist"), ("top_b", edited.to_str().unwrap())] {
        let p = json(&["predict", "-m", model, seven.to_str().unwrap(), "--top", "5", "--json"]);
        for (x, y) in img[side].as_array().unwrap().iter().zip(p["top"].as_array().unwrap()) {
            assert_eq!(x["label"], y["label"], "{side}");
            let d = x["probability"].as_f64().unwrap() - y["probability"].as_f64().unwrap();
            assert!(d.abs() < 1e-6, "{side}: {x} vs {y}");
        }
    }
    let changed = c["weights"]["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0]["name"], "conv2.weight");
    assert_eq!(
        changed[0]["values"].as_i64().unwrap(),
        16 * 3 * 3,
        "one output channel of 16 inputs, 3x3"
    );
    let pictures = img["pictures"].as_array().unwrap();
    assert_eq!(pictures.len(), 3);
    for p in pictures {
        let i = image::open(p.as_str().unwrap()).unwrap();
        assert_eq!((i.width(), i.height()), (28, 28));
    }
    let (m1, m2) = (
        img["one_minus_pearson"].as_f64().unwrap(),
        img["spearman"].as_f64().unwrap(),
    );
    assert!((0.0..=2.0).contains(&m1) && (-1.0..=1.0).contains(&m2), "{img}");
    let e = json(&["eval", "-m", edited.to_str().unwrap(), "--dataset", "mnist", "--json"]);
    assert_eq!(c["data"]["accuracy_b"], e["accuracy"]);
    assert_eq!(c["data"]["per_class"].as_array().unwrap().len(), 10);

    let plus = dir.path().join("plus.safetensors");
    let o = glassbox(&[
        "finetune",
        "-m",
        "mnist",
        "--data",
        asset("assets/lessons/two-digits").to_str().unwrap(),
        "--add-classes",
        "--epochs",
        "0",
        "--out",
        plus.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c = json(&[
        "compare",
        "mnist",
        plus.to_str().unwrap(),
        seven.to_str().unwrap(),
        "--json",
    ]);
    let w = &c["weights"];
    assert_eq!(w["classes_only_b"], serde_json::json!(["digit-3", "digit-7"]));
    assert_eq!(w["shared_classes"], 10);
    assert!(
        w["changed"].as_array().unwrap().is_empty(),
        "imprinting keeps the old rows: {w}"
    );
    assert!(w["different_shape"].as_array().unwrap().is_empty(), "{w}");
    let changes = c["images"][0]["changes"].as_array().unwrap();
    assert!(changes
        .iter()
        .any(|ch| ch["a"].is_null() && ch["label"].as_str().unwrap().starts_with("digit-")));

    let same = json(&[
        "compare",
        "mnist",
        "mnist",
        seven.to_str().unwrap(),
        "--method",
        "gradient",
        "--json",
    ]);
    assert!(same["images"][0]["one_minus_pearson"].as_f64().unwrap().abs() < 1e-9);
    assert!(same["weights"]["changed"].as_array().unwrap().is_empty());
}
