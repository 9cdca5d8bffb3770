//! The sample photos embedded in the binary: the app opens the first one on a first start,
//! lessons may name them.

/// (file name, PNG bytes).
pub const SAMPLES: &[(&str, &[u8])] = &[
    ("chelsea.png", include_bytes!("../../../assets/samples/chelsea.png")),
    ("coffee.png", include_bytes!("../../../assets/samples/coffee.png")),
];
