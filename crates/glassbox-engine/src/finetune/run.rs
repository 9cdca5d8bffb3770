//! A run, phase by phase: the start (classes, split, the candidate), the plan and the
//! tensors (with the backbone's features once, for head-only runs and imprinting), the
//! epochs (with pause, a new learning rate, and the rollback of a diverging loss), and the
//! result on the validation images with its training record.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

use super::data::{augment, split, Data};
use super::head::{bias_key, features_of, fresh_head, head_logits, imprint, logits_of, normalise, with_head};
use super::plan::{changing, is_buffer, plan_memory, restore, snapshot, snapshot_size, TIMELINE_BYTES};
use super::reports::{ClassVal, EpochStats, Event, Hooks, Outcome, Plan, Summary, Timeline, ValSet};
use super::settings::{Config, Optimizer, Scope};
use crate::arch::Arch;
use crate::error::{Error, Result};
use crate::model::{Model, ModelSource};

/// Runs a fine-tuning (or imprinting, or training from scratch) of `base` on `data`.
pub fn run(base: &Model, data: &Data, cfg: &Config, hooks: &mut Hooks) -> Result<Outcome> {
    cfg.validate()?;
    let started = Instant::now();
    let start = Start::new(base, data, cfg)?;
    let plan = start.plan(data, cfg)?;
    hooks.report(Event::Plan(plan.clone()))?;
    let sets = Sets::new(&start, data, hooks)?;
    if cfg.add_classes {
        sets.imprint_new_classes(&start)?;
    }
    let trained = train(&start, &sets, cfg, &plan, hooks)?;
    finish(base, data, cfg, start, sets, plan, trained, started)
}

/// The classes, the split and the candidate: what a run starts from.
struct Start {
    /// The model's class of each data class: a label the model has (adding), else a new one.
    heads: Vec<i64>,
    /// The classes added to the model (adding classes).
    new_classes: Vec<String>,
    /// The base's class count.
    old_k: i64,
    train_idx: Vec<i64>,
    val_idx: Vec<i64>,
    scope: Scope,
    /// The base with its new head, or a new small CNN.
    cand: Model,
    /// Head-only training and imprinting: on the backbone's features, computed once.
    head_mode: bool,
}

impl Start {
    fn new(base: &Model, data: &Data, cfg: &Config) -> Result<Start> {
        let device = base.device();
        let arch = base.spec.arch;
        if data.classes.len() < 2 && !cfg.add_classes {
            return Err(Error::invalid(format!(
                "the data has one class (`{}`); a classifier needs at least two (or add it to the model's classes with --add-classes)",
                data.classes.first().cloned().unwrap_or_default()
            )));
        }
        let old_k = base.spec.classes;
        let mut labels: Vec<String>;
        let mut heads = Vec::new();
        let mut new_classes = Vec::new();
        if cfg.add_classes {
            labels = base.labels.clone();
            for name in &data.classes {
                match crate::evaluate::class_of(base, name) {
                    Some(i) => heads.push(i),
                    None => {
                        heads.push(labels.len() as i64);
                        labels.push(name.clone());
                        new_classes.push(name.clone());
                    }
                }
            }
            if new_classes.is_empty() {
                return Err(Error::invalid(format!(
                    "every class of the data is already one of the model's ({}); nothing to add. Leave out --add-classes to fine-tune on them",
                    data.classes.join(", ")
                )));
            }
        } else {
            labels = data.classes.clone();
            heads = (0..data.classes.len() as i64).collect();
        }
        let (train_idx, val_idx) = split(data, cfg.val_split, cfg.seed)?;
        if train_idx.is_empty() {
            return Err(Error::invalid(
                "no image is left for training after the validation split",
            ));
        }
        tch::manual_seed(cfg.seed);
        let k = labels.len() as i64;
        let feats_n = arch.features();
        let scope = if cfg.scratch && cfg.scope == Scope::Head {
            Scope::Full
        } else {
            cfg.scope.clone()
        };
        let cand = if cfg.scratch {
            let mut m = Model::new_random(Arch::TinyCnn, k, 1, device);
            m.labels = labels.clone();
            m.source = ModelSource::Created("new tiny-cnn".into());
            m
        } else if cfg.add_classes {
            let vars = base.vs.variables();
            let w = vars
                .get(arch.classifier_key())
                .expect("the classifier exists")
                .to_device(Device::Cpu);
            let b = vars
                .get(&bias_key(arch))
                .expect("the classifier has a bias")
                .to_device(Device::Cpu);
            let pad_w = Tensor::zeros([k - old_k, feats_n], (Kind::Float, Device::Cpu));
            let pad_b = Tensor::zeros([k - old_k], (Kind::Float, Device::Cpu));
            with_head(
                base,
                labels.clone(),
                &Tensor::cat(&[w, pad_w], 0),
                &Tensor::cat(&[b, pad_b], 0),
            )?
        } else {
            let (w, b) = fresh_head(k, feats_n);
            with_head(base, labels.clone(), &w, &b)?
        };
        let head_mode = scope == Scope::Head && !cfg.scratch;
        Ok(Start {
            heads,
            new_classes,
            old_k,
            train_idx,
            val_idx,
            scope,
            cand,
            head_mode,
        })
    }

    /// The batch that fits, the memory it takes, and the run's figures.
    fn plan(&self, data: &Data, cfg: &Config) -> Result<Plan> {
        let (batch, estimate, budget, note) = plan_memory(
            &self.cand,
            cfg,
            &self.scope,
            data.labels.len(),
            crate::device::memory_for_batches(self.cand.device()),
        )?;
        Ok(Plan {
            mode: cfg.mode(),
            classes: data.classes.clone(),
            train_images: self.train_idx.len(),
            val_images: self.val_idx.len(),
            skipped: data.skipped.clone(),
            epochs: cfg.epochs,
            batch,
            steps_per_epoch: self.train_idx.len().div_ceil(batch as usize),
            estimate_bytes: estimate,
            budget_bytes: budget,
            note,
        })
    }
}

/// The training and validation images and classes, with their features in head mode.
struct Sets {
    train_x: Tensor,
    train_y: Tensor,
    val_x: Tensor,
    val_y: Tensor,
    train_f: Option<Tensor>,
    val_f: Option<Tensor>,
    /// The candidate's classifier (shared with its variables).
    head_w: Option<Tensor>,
    head_b: Option<Tensor>,
}

impl Sets {
    fn new(start: &Start, data: &Data, hooks: &mut Hooks) -> Result<Sets> {
        let tidx = Tensor::from_slice(&start.train_idx);
        let vidx = Tensor::from_slice(&start.val_idx);
        let heads_t = Tensor::from_slice(&start.heads);
        let y_all = heads_t.index_select(
            0,
            &Tensor::from_slice(&data.labels.iter().map(|&l| l as i64).collect::<Vec<_>>()),
        );
        let (train_x, train_y) = (data.images.index_select(0, &tidx), y_all.index_select(0, &tidx));
        let (val_x, val_y) = (data.images.index_select(0, &vidx), y_all.index_select(0, &vidx));
        let n_train = start.train_idx.len();
        let (train_f, val_f) = if start.head_mode {
            let total = n_train + val_x.size()[0] as usize;
            let tf = features_of(&start.cand, &train_x, &mut |d| {
                (hooks.event)(Event::Features { done: d, total })
            })?;
            let vf = features_of(&start.cand, &val_x, &mut |d| {
                (hooks.event)(Event::Features {
                    done: n_train + d,
                    total,
                })
            })?;
            (Some(tf), Some(vf))
        } else {
            (None, None)
        };
        let arch = start.cand.spec.arch;
        let vars = start.cand.vs.variables();
        Ok(Sets {
            train_x,
            train_y,
            val_x,
            val_y,
            train_f,
            val_f,
            head_w: vars.get(arch.classifier_key()).map(Tensor::shallow_clone),
            head_b: vars.get(&bias_key(arch)).map(Tensor::shallow_clone),
        })
    }

    /// Imprinting: the new classes' weights from their training images' features, all at once.
    fn imprint_new_classes(&self, start: &Start) -> Result<()> {
        let (Some(tf), Some(w), Some(b)) = (&self.train_f, &self.head_w, &self.head_b) else {
            unreachable!("adding classes is head-only")
        };
        let old_w = w.narrow(0, 0, start.old_k);
        let old_b = b.narrow(0, 0, start.old_k);
        let ty = self.train_y.to_device(tf.device());
        tch::no_grad(|| -> Result<()> {
            let k = start.new_classes.len() as i64;
            let per_class: Vec<Tensor> = (0..k)
                .map(|j| tf.index_select(0, &ty.eq(start.old_k + j).nonzero().squeeze_dim(1)))
                .collect();
            for (f, name) in per_class.iter().zip(&start.new_classes) {
                if f.size()[0] == 0 {
                    return Err(Error::invalid(format!(
                        "new class `{name}` has no training image left (all went to validation): add images or lower the validation split"
                    )));
                }
            }
            let (iw, ib) = imprint(&per_class, &old_w, &old_b);
            w.narrow(0, start.old_k, k).copy_(&iw);
            b.narrow(0, start.old_k, k).copy_(&ib);
            Ok(())
        })
    }

    /// Validation loss, accuracy and predictions of `m`.
    fn validate(&self, m: &Model) -> Result<(Option<f64>, Option<f64>, Vec<i64>)> {
        let n = self.val_y.size()[0];
        if n == 0 {
            return Ok((None, None, Vec::new()));
        }
        let logits = match &self.val_f {
            Some(vf) => tch::no_grad(|| head_logits(m, vf)),
            None => logits_of(m, &self.val_x),
        };
        let (loss, correct, pred) = scores(&logits, &self.val_y.to_device(logits.device()));
        Ok((Some(loss), Some(correct as f64 / n as f64), pred))
    }
}

/// What the epochs made: their figures, the timeline, why they stopped early.
struct Trained {
    history: Vec<EpochStats>,
    timeline: Timeline,
    stop_note: Option<String>,
    lr_changes: Vec<String>,
}

/// The epochs: the weights of `scope` learn; the last good epoch is kept to roll back to.
fn train(start: &Start, sets: &Sets, cfg: &Config, plan: &Plan, hooks: &mut Hooks) -> Result<Trained> {
    let cand = &start.cand;
    let names = changing(cand, &start.scope)?;
    let trainable: HashSet<&String> = names.iter().collect();
    for (n, v) in cand.vs.variables() {
        if !is_buffer(&n) {
            let _ = v.set_requires_grad(trainable.contains(&n));
        }
    }
    // Training on images on the CPU: convolutions in channels-last memory format while the
    // run lasts (oneDNN's faster layout: about half the time of a whole-network run, in
    // BENCHMARKS.md), back to the standard layout after it, whatever its outcome. Not
    // measured on a GPU, so not used there.
    let images = sets.train_f.is_none() && cand.device() == Device::Cpu;
    if images {
        crate::layout::set_channels_last(cand, true);
    }
    let out = train_epochs(start, sets, cfg, plan, hooks, &names);
    if images {
        crate::layout::set_channels_last(cand, false);
    }
    out
}

fn train_epochs(
    start: &Start,
    sets: &Sets,
    cfg: &Config,
    plan: &Plan,
    hooks: &mut Hooks,
    names: &[String],
) -> Result<Trained> {
    let cand = &start.cand;
    let every = ((cfg.epochs as i64 * snapshot_size(cand, names)) / TIMELINE_BYTES + 1).max(1) as usize;
    let mut run = Epochs {
        opt: match cfg.optimizer {
            Optimizer::Sgd => nn::Sgd {
                momentum: 0.9,
                ..Default::default()
            }
            .build(&cand.vs, cfg.lr)?,
            Optimizer::Adam => nn::Adam::default().build(&cand.vs, cfg.lr)?,
        },
        lr: cfg.lr,
        lr_changes: Vec::new(),
        first_loss: None,
        last_good: (0, snapshot(cand, names)),
        started: Instant::now(),
    };
    let (vl, va, _) = sets.validate(cand)?;
    let mut history = vec![EpochStats {
        epoch: 0,
        train_loss: None,
        train_accuracy: None,
        val_loss: vl,
        val_accuracy: va,
        lr: run.lr,
        seconds: 0.0,
    }];
    hooks.report(Event::Epoch(history[0].clone()))?;
    let mut timeline = Timeline::default();
    timeline.snapshots.push((0, snapshot(cand, names)));
    let mut stop_note = None;
    run.started = Instant::now();
    for epoch in 1..=cfg.epochs {
        let t0 = Instant::now();
        let (loss_sum, correct, seen) = match run.epoch(start, sets, cfg, plan, epoch, hooks)? {
            Ok(figures) => figures,
            Err(note) => {
                stop_note = Some(note);
                break;
            }
        };
        let (vl, va, _) = sets.validate(cand)?;
        if !vl.is_none_or(f64::is_finite) {
            restore(cand, &run.last_good.1)?;
            stop_note = Some(format!(
                "the validation loss became {} at epoch {epoch}; the model was rolled back to epoch {}, its last good one",
                vl.unwrap_or(f64::NAN),
                run.last_good.0
            ));
            break;
        }
        let stats = EpochStats {
            epoch,
            train_loss: Some(loss_sum / seen.max(1) as f64),
            train_accuracy: Some(correct as f64 / seen.max(1) as f64),
            val_loss: vl,
            val_accuracy: va,
            lr: run.lr,
            seconds: t0.elapsed().as_secs_f64(),
        };
        hooks.report(Event::Epoch(stats.clone()))?;
        history.push(stats);
        run.last_good = (epoch, snapshot(cand, names));
        if epoch % every == 0 || epoch == cfg.epochs {
            timeline.snapshots.push((epoch, snapshot(cand, names)));
        }
    }
    if stop_note.is_some() {
        // The timeline ends at the epoch the model was rolled back to.
        let good = run.last_good.0;
        timeline.snapshots.retain(|(e, _)| *e <= good);
        history.retain(|h| h.epoch <= good);
    }
    for (n, v) in cand.vs.variables() {
        if !is_buffer(&n) {
            let _ = v.set_requires_grad(true);
        }
    }
    Ok(Trained {
        history,
        timeline,
        stop_note,
        lr_changes: run.lr_changes,
    })
}

/// The optimiser and what the epochs carry from one step to the next.
struct Epochs {
    opt: nn::Optimizer,
    lr: f64,
    lr_changes: Vec<String>,
    /// The first step's loss: a loss 100 times larger is divergence.
    first_loss: Option<f64>,
    /// The last epoch that ended well, and the changing weights then.
    last_good: (usize, Vec<(String, Tensor)>),
    started: Instant,
}

impl Epochs {
    /// One epoch's steps: Ok(loss sum, correct, seen), or Err(why the run stopped) after
    /// rolling the candidate back to its last good epoch.
    fn epoch(
        &mut self,
        start: &Start,
        sets: &Sets,
        cfg: &Config,
        plan: &Plan,
        epoch: usize,
        hooks: &mut Hooks,
    ) -> Result<std::result::Result<(f64, i64, i64), String>> {
        let cand = &start.cand;
        let device = cand.device();
        let batch = plan.batch;
        let n_train = start.train_idx.len() as i64;
        let from = match &start.scope {
            Scope::From(l) => Some(l.as_str()),
            _ => None,
        };
        let perm = Tensor::randperm(n_train, (Kind::Int64, Device::Cpu));
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0i64, 0i64);
        let steps = plan.steps_per_epoch;
        for step in 0..steps {
            hooks.wait_if_paused()?;
            if let Some(new) = hooks.control.take_lr() {
                self.lr = new;
                self.opt.set_lr(new);
                self.lr_changes
                    .push(format!("{new} from epoch {epoch} step {}", step + 1));
            }
            let s0 = step as i64 * batch;
            let len = batch.min(n_train - s0);
            let idx = perm.narrow(0, s0, len);
            let y = sets.train_y.index_select(0, &idx).to_device(device);
            let logits = match &sets.train_f {
                Some(tf) => head_logits(cand, &tf.index_select(0, &idx.to_device(tf.device()))),
                None => {
                    let x = normalise(cand, &sets.train_x.index_select(0, &idx));
                    let x = if cfg.augment {
                        augment(&x.to_device(Device::Cpu))?.to_device(device)
                    } else {
                        x
                    };
                    cand.forward_train(&crate::layout::in_layout(&x, device == Device::Cpu), from)
                }
            };
            let loss = logits.cross_entropy_for_logits(&y);
            let lv = loss.double_value(&[]);
            let first = *self.first_loss.get_or_insert(lv);
            if !lv.is_finite() || lv > 100.0 * first.max(1.0) {
                restore(cand, &self.last_good.1)?;
                return Ok(Err(format!(
                    "the loss {} at epoch {epoch}, step {} (learning rate {}); the run stopped and the model was rolled back to epoch {}, its last good one",
                    if lv.is_finite() { format!("diverged to {lv:.3e}") } else { format!("became {lv}") },
                    step + 1,
                    self.lr,
                    self.last_good.0
                )));
            }
            self.opt.zero_grad();
            loss.backward();
            if cfg.add_classes {
                // Only the new classes' weights learn: the old ones keep working as they were.
                for t in [&sets.head_w, &sets.head_b].into_iter().flatten() {
                    let g = t.grad();
                    if g.defined() {
                        let _ = g.narrow(0, 0, start.old_k).zero_();
                    }
                }
            }
            self.opt.step();
            loss_sum += lv * len as f64;
            correct += tch::no_grad(|| logits.argmax(-1, false).eq_tensor(&y).sum(Kind::Int64).int64_value(&[]));
            seen += len;
            hooks.report(Event::Step {
                epoch,
                step: step + 1,
                steps,
                loss: lv,
                lr: self.lr,
                elapsed: self.started.elapsed().as_secs_f64(),
            })?;
        }
        Ok(Ok((loss_sum, correct, seen)))
    }
}

/// The result on the validation images (per class, the confusion, the base beside it) and
/// the candidate with its training record.
#[allow(clippy::too_many_arguments)]
fn finish(
    base: &Model,
    data: &Data,
    cfg: &Config,
    start: Start,
    sets: Sets,
    plan: Plan,
    trained: Trained,
    started: Instant,
) -> Result<Outcome> {
    let (_, val_accuracy, pred) = sets.validate(&start.cand)?;
    let kd = data.classes.len();
    let heads = &start.heads;
    let col = |p: i64| heads.iter().position(|&h| h == p).unwrap_or(kd);
    let truth: Vec<usize> = start.val_idx.iter().map(|&i| data.labels[i as usize]).collect();
    let predicted: Vec<usize> = pred.iter().map(|&p| col(p)).collect();
    let mut confusion = vec![vec![0u64; kd + 1]; kd];
    for (t, p) in truth.iter().zip(&predicted) {
        confusion[*t][*p] += 1;
    }
    // A model from scratch has no base that reads the same images.
    let base_pred = if cfg.scratch {
        None
    } else {
        Some(base_predictions(base, &sets.val_x, &sets.val_f)?)
    };
    let per_class: Vec<ClassVal> = (0..kd)
        .map(|c| {
            let total: u64 = confusion[c].iter().sum();
            let base_class = crate::evaluate::class_of(base, &data.classes[c]);
            let base_accuracy = base_class
                .zip(base_pred.as_ref())
                .filter(|_| total > 0)
                .map(|(bc, bp)| {
                    let right = truth.iter().zip(bp).filter(|(t, p)| **t == c && **p == bc).count();
                    right as f64 / total as f64
                });
            ClassVal {
                label: data.classes[c].clone(),
                index: heads[c],
                correct: confusion[c][c],
                total,
                accuracy: if total > 0 {
                    confusion[c][c] as f64 / total as f64
                } else {
                    0.0
                },
                base_accuracy,
            }
        })
        .collect();
    let record = record(base, data, cfg, &start, &plan, &trained, val_accuracy, &per_class);
    let mut model = start.cand;
    model.metadata.retain(|k, _| !k.starts_with("glassbox.train."));
    model.metadata.extend(record.clone());
    Ok(Outcome {
        summary: Summary {
            mode: cfg.mode(),
            plan,
            imprinted: start.new_classes,
            epochs: trained.history,
            val_accuracy,
            per_class,
            confusion,
            note: trained.stop_note,
            record,
            seconds: started.elapsed().as_secs_f64(),
        },
        model,
        timeline: trained.timeline,
        val: ValSet {
            images: sets.val_x,
            truth,
            predicted,
            files: start.val_idx.iter().map(|&i| data.files[i as usize].clone()).collect(),
        },
    })
}

/// The training record the candidate carries (`glassbox.train.*` metadata).
#[allow(clippy::too_many_arguments)]
fn record(
    base: &Model,
    data: &Data,
    cfg: &Config,
    start: &Start,
    plan: &Plan,
    trained: &Trained,
    val_accuracy: Option<f64>,
    per_class: &[ClassVal],
) -> BTreeMap<String, String> {
    let mut record = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        record.insert(format!("glassbox.train.{k}"), v);
    };
    put("mode", cfg.mode());
    put("data", data.source.clone());
    put("data_fingerprint", data.fingerprint.clone());
    put(
        "classes",
        serde_json::to_string(&data.classes).expect("strings serialise"),
    );
    put("epochs", trained.history.last().map_or(0, |h| h.epoch).to_string());
    put("optimizer", cfg.optimizer.name().into());
    put("lr", cfg.lr.to_string());
    put("batch", plan.batch.to_string());
    put("seed", cfg.seed.to_string());
    put("val_split", cfg.val_split.to_string());
    put("augment", (cfg.augment && !start.head_mode).to_string());
    put("train_images", start.train_idx.len().to_string());
    put("val_images", start.val_idx.len().to_string());
    put(
        "base",
        if cfg.scratch {
            "none (from scratch)".into()
        } else {
            base.source.to_string()
        },
    );
    if let Some(a) = val_accuracy {
        put("val_accuracy", format!("{a:.4}"));
    }
    if val_accuracy.is_some() {
        let pc: Vec<(&str, f64)> = per_class.iter().map(|c| (c.label.as_str(), c.accuracy)).collect();
        put("per_class", serde_json::to_string(&pc).expect("numbers serialise"));
    }
    if !trained.lr_changes.is_empty() {
        put(
            "lr_changes",
            serde_json::to_string(&trained.lr_changes).expect("strings serialise"),
        );
    }
    if let Some(n) = &trained.stop_note {
        put("stopped", n.clone());
    }
    record
}

/// Loss, accuracy and predicted classes of `logits` against `y`.
fn scores(logits: &Tensor, y: &Tensor) -> (f64, i64, Vec<i64>) {
    let loss = logits.cross_entropy_for_logits(y).double_value(&[]);
    let pred = logits.argmax(-1, false);
    let correct = pred.eq_tensor(y).sum(Kind::Int64).int64_value(&[]);
    (
        loss,
        correct,
        Vec::<i64>::try_from(&pred.to_device(Device::Cpu)).unwrap_or_default(),
    )
}

/// The starting model's predicted class of each validation image.
fn base_predictions(base: &Model, val_x: &Tensor, val_f: &Option<Tensor>) -> Result<Vec<i64>> {
    let n = val_x.size()[0];
    if n == 0 {
        return Ok(Vec::new());
    }
    let logits = match val_f {
        // Same backbone: the base's head on the cached features.
        Some(f) => tch::no_grad(|| head_logits(base, f)),
        None => logits_of(base, val_x),
    };
    Vec::<i64>::try_from(&logits.argmax(-1, false).to_device(Device::Cpu)).map_err(Error::from)
}
