//! The weights loader every command and the app use (`weights::from_bytes`: the content
//! decides between safetensors, zip `.pth` and legacy `.pth`): headers, metadata, dtypes,
//! shapes, offsets and the restricted unpickler behind them. Every input gives weights or an
//! error; what it accepts holds tensors whose sizes agree with their shapes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(w) = glassbox_engine::weights::from_bytes(data, std::path::Path::new("fuzz.safetensors")) {
        for (name, t) in &w.tensors {
            let shape = t.size();
            assert!(shape.iter().all(|d| *d >= 0), "{name}: negative size {shape:?}");
            assert_eq!(t.numel() as i64, shape.iter().product::<i64>(), "{name}");
        }
    }
});
