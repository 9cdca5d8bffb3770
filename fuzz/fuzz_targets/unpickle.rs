//! The restricted unpickler's virtual machine on raw pickle bytes (the `data.pkl` of a zip
//! checkpoint, or the pickles of a legacy one), with a persistent loader that hands back
//! what the pickle names: every opcode, the memo, the marks and the budget are reached
//! without a zip or a legacy header in the way. Then the same bytes as a whole legacy
//! `.pth` through the loader the app uses.
#![no_main]
use glassbox_engine::pickle::{PersistentLoad, Unpickler, Value};
use libfuzzer_sys::fuzz_target;

struct Echo;

impl PersistentLoad for Echo {
    fn load(&mut self, pid: Value) -> Result<Value, String> {
        Ok(pid)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unpickler::new(data);
    // A legacy file is several pickles in a row: run them while each one stops cleanly.
    for _ in 0..4 {
        let at = u.position();
        if u.load(&mut Echo).is_err() || u.position() <= at || u.position() >= data.len() {
            break;
        }
    }
    let _ = glassbox_engine::weights::from_bytes(data, std::path::Path::new("fuzz.pth"));
});
