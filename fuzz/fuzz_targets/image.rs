//! What a dropped or opened image goes through: decoding under the size limits (headers
//! that claim huge sizes, truncated data, every format the app opens), then the model's
//! view of it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(img) = glassbox_engine::preprocess::decode(data, std::path::Path::new("fuzz.img")) else {
        return;
    };
    let pixels = img.width() as u64 * img.height() as u64;
    assert!(pixels <= glassbox_engine::preprocess::max_image_pixels());
    let p = glassbox_engine::preprocess::Preprocess::efficientnet_lite(224);
    let prepared = p.prepare(&img);
    assert_eq!(prepared.tensor.size(), [1, 3, 224, 224]);
});
