//! The edit language of `glassbox edit` and the app's edit box: any text parses to an edit
//! or gives an error; an edit reads back as itself from its written form; applied to a real
//! model it changes it or gives an error, and undoing it puts every value back bit for bit.
#![no_main]
use glassbox_engine::edit::{Editor, Op};
use glassbox_engine::model::{Model, ModelSource};
use libfuzzer_sys::fuzz_target;
use tch::{Device, Kind, Tensor};

thread_local! {
    static MODEL: std::cell::RefCell<Model> = std::cell::RefCell::new(
        Model::open(ModelSource::Builtin("mnist".into()), None, Device::Cpu).expect("the builtin small CNN"),
    );
}

fn values(m: &Model) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> =
        m.vs.variables()
            .into_iter()
            .map(|(n, t)| (n, t.to_kind(Kind::Float).copy()))
            .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(op) = text.parse::<Op>() else {
        return;
    };
    let written = op.to_string();
    let again: Op = written
        .parse()
        .unwrap_or_else(|e| panic!("`{written}` (from `{text}`) does not read back: {e}"));
    assert_eq!(again, op, "`{written}` reads back as another edit");
    MODEL.with(|m| {
        let mut m = m.borrow_mut();
        let before = values(&m);
        let knocked = m.knockouts.clone();
        let mut ed = Editor::default();
        if ed.apply(&mut m, op).is_ok() {
            assert!(ed.undo(&mut m).expect("undo"), "one edit to undo");
        }
        let after = values(&m);
        assert_eq!(m.knockouts, knocked, "knock-outs back as they were");
        for ((n, a), (_, b)) in before.iter().zip(&after) {
            assert!(a.equal(b), "{n} differs after `{written}` and its undo");
        }
    });
});
