//! A lesson file as the app reads it: the TOML, then every check `glassbox lesson check`
//! and the app's lesson player make (models, layers, targets, images, methods, views,
//! training data), with its relative paths inside an empty folder.
#![no_main]
use glassbox_engine::lesson::Lesson;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = std::env::temp_dir().join("glassbox-fuzz-lesson-empty");
    let Ok(lesson) = Lesson::parse(text, &dir, "fuzz.toml") else {
        return;
    };
    assert!(!lesson.steps.is_empty());
    for k in 0..lesson.steps.len() {
        let _ = lesson.model_at(k);
    }
    let _ = lesson.check(tch::Device::Cpu);
});
