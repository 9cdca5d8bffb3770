//! PyTorch state dicts, zip and legacy, read without executing pickle code.
mod common;

use common::*;
use glassbox_engine::weights;

#[test]
fn zip_and_legacy_pth_give_the_same_tensors_as_safetensors() {
    let st = weights::load(&asset("tests/refs/statedict.safetensors")).unwrap();
    for f in ["statedict-zip.pth", "statedict-legacy.pth"] {
        let w = weights::load(&asset(&format!("tests/refs/{f}"))).unwrap();
        let names: Vec<&str> = w.names().collect();
        assert_eq!(
            names,
            [
                "conv.weight",
                "t.transposed",
                "t.offset_view",
                "t.base",
                "h.half",
                "h.bf16",
                "n.num_batches_tracked"
            ],
            "{f}: names in state-dict order"
        );
        for (name, t) in &w.tensors {
            let want = st.get(name).unwrap();
            assert_eq!(t.size(), want.size(), "{f} {name}");
            assert_eq!(t.kind(), want.kind(), "{f} {name}");
            assert!(t.equal(want), "{f} {name}: values differ");
        }
    }
}

#[test]
fn a_pickle_naming_a_forbidden_global_is_refused_and_nothing_runs() {
    let marker = std::path::Path::new("/tmp/glassbox-pwned");
    let _ = std::fs::remove_file(marker);
    for f in ["malicious-zip.pth", "malicious-legacy.pth"] {
        let p = asset(&format!("tests/refs/{f}"));
        let e = weights::load(&p).unwrap_err().to_string();
        assert!(e.contains("posix.system") && e.contains("refused"), "{f}: {e}");
        let dir = tmp();
        let out = dir.path().join("x.safetensors");
        let o = glassbox(&["import", path_str(&p), "--out", path_str(&out)]);
        assert_clean_error(&o, &["posix.system", f]);
        assert!(!out.exists(), "nothing is written for a refused file");
    }
    assert!(!marker.exists(), "the pickle's payload must never run");
}

#[test]
fn import_writes_safetensors_that_predict_the_same() {
    let dir = tmp();
    let out = dir.path().join("lite0-f32.safetensors");
    let pth = asset("data/cache/lite0/efficientnet-lite0-57934424.pth");
    let o = glassbox(&["import", path_str(&pth), "--out", path_str(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let img = asset("assets/samples/coffee.png");
    let p = glassbox(&["predict", "--json", "--model", path_str(&out), path_str(&img)]);
    assert!(p.status.success(), "{}", stderr(&p));
    let v: serde_json::Value = serde_json::from_str(stdout(&p).trim()).unwrap();
    assert_eq!(v["top"][0]["index"], 967);
    // Never overwrite silently, never write over the input.
    let again = glassbox(&["import", path_str(&pth), "--out", path_str(&out)]);
    assert_clean_error(&again, &["already exists", "--force"]);
    let over = glassbox(&["import", path_str(&out), "--out", path_str(&out), "--force"]);
    assert_clean_error(&over, &["is the input file"]);
}
