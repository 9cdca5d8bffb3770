//! The settings the app remembers between sessions, as eframe stores them (RON text a user
//! may have edited or a crash may have cut): read and checked, they come back in range, and
//! reading what they write gives them again.
#![no_main]
use glassbox_app::Settings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(s) = Settings::from_stored(text) else {
        return;
    };
    assert!((0.0..=1.0).contains(&s.opacity), "opacity {}", s.opacity);
    assert!((1..=glassbox_app::MAX_TOP_K).contains(&s.top_k), "top_k {}", s.top_k);
    assert!(
        (1..=glassbox_app::MAX_SLOTS).contains(&s.methods.len()),
        "{:?}",
        s.methods
    );
    assert!(s.recent_models.len() <= glassbox_app::MAX_RECENT_MODELS);
    assert!(s.recent_models.iter().all(|p| p.as_os_str().len() <= 4096));
    let again = ron::to_string(&s).expect("settings write");
    assert_eq!(Settings::from_stored(&again).as_ref(), Ok(&s), "{again}");
});
