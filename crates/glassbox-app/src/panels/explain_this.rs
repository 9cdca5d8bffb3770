//! "Explain this": beside every view's heading and every method, a button that opens a
//! short paragraph on what it shows and its formula.

use egui::{RichText, Ui};

use crate::command::Command;
use crate::state::Topic;
use glassbox_engine::explain::Method;
#[cfg(test)]
use glassbox_engine::explain::METHODS;

/// Title, paragraph and formula of a topic.
pub fn text(t: Topic) -> (String, &'static str, &'static str) {
    match t {
        Topic::Method(m) => (format!("{} (a saliency method)", m.name()), method_text(m).0, method_text(m).1),
        Topic::Input => (
            "Input".into(),
            "A network sees a fixed-size grid of numbers, not a photo. Your image is resized so its shorter side fits, cut to a square in the middle, and each channel is shifted and scaled by the mean and spread the model was trained with. What you see here is exactly the square it sees.",
            "x[c, i, j] = (pixel[c, i, j] − mean[c]) / std[c]",
        ),
        Topic::Draw => (
            "Draw a digit".into(),
            "Your strokes are the input: a 28×28 picture of white ink on black, as the MNIST digits were written. After each stroke the network runs again, so you can watch which strokes turn a 1 into a 7, and how every layer's channels light up.",
            "x[i, j] = (ink[i, j] · 255 − 127.5) / 127.5",
        ),
        Topic::Prediction => (
            "Prediction".into(),
            "The last layer gives one number per class, the logit. Softmax turns the logits into probabilities that add up to 1: a class's probability grows exponentially with its logit, so a lead of 2 in logit is about 7 times more likely.",
            "p(c) = exp(z_c) / Σ_k exp(z_k)",
        ),
        Topic::Explanation => (
            "Explanation (saliency maps)".into(),
            "A saliency map says which parts of the image the chosen class's score depends on. Methods disagree, because they ask different questions: how the score changes for a tiny change of each pixel (gradients), what each pixel contributes against a baseline (Integrated Gradients), which regions of a layer the class uses (Grad-CAM), or what happens when a part is hidden (occlusion). The deletion and insertion curves check a map: deleting the pixels it ranks first should make the score fall fast. The sanity check randomises the weights from the top layer down: a map that does not change is not explaining the model.",
            "S(x)[i, j] = attribution of pixel (i, j) to the score y_c(x)",
        ),
        Topic::Activations => (
            "Activations".into(),
            "Each layer turns its input into channels: one picture per filter, bright where the filter's pattern is found. Early layers find edges and colours, later layers larger parts. Click a channel to see it over the image and the kernel that made it; click a pixel of it for its receptive field, the input pixels it depends on.",
            "A^k = act(BN(W^k * x + b^k)),  (W * x)[i, j] = Σ_c Σ_u Σ_v W[c, u, v] · x[c, i+u, j+v]",
        ),
        Topic::Filters => (
            "Filters".into(),
            "A convolution slides small kernels over its input; each kernel is a pattern of weights, and the channel it makes is bright where the input matches the pattern. Red weights add, blue weights subtract. The first layer's kernels look at colours directly, so they are drawn in colour.",
            "y[k, i, j] = b_k + Σ_c Σ_u Σ_v W[k, c, u, v] · x[c, i+u, j+v]",
        ),
        Topic::Layers => (
            "Layers".into(),
            "The network is a chain of layers, named as in PyTorch. Each layer's output has a shape channels × height × width: the height and width shrink as the channels grow, trading where for what.",
            "x_{l+1} = f_l(x_l)",
        ),
        Topic::Edits => (
            "Edits".into(),
            "You can change the weights by hand: paint a kernel, scale a layer, knock out a channel (its output is set to zero everywhere). Every edit is logged and undoable; comparing the edited model with the original, per class, shows what a part of the network was for.",
            "W' = edit(W);  knocked out: A^k ← 0",
        ),
        Topic::Retrain => (
            "Retrain".into(),
            "Training nudges every trainable weight against the gradient of the loss, a little per batch. The loss (cross-entropy) is small when the model gives the right class a high probability. Validation images, held out from training, tell you whether it learns the classes or memorises the images. Adding a class by imprinting needs no training at all: the new classes' weights come from their images' features, a part they share (far from the old classes' photos) and a part that tells them apart.",
            "L = −log p(y | x);  W ← W − η ∂L/∂W;  imprinting: w_j = s · m / ‖m‖ + v_j,  m = mean(f/‖f‖),  v_j ∝ inv(S) (μ_j − μ)",
        ),
        Topic::Model => (
            "Model".into(),
            "The architecture is the wiring; the weights are what training learned. Classes, input size and preprocessing come with the weights file; the parameter count says how many numbers were learned.",
            "parameters = Σ over layers of the sizes of W and b",
        ),
    }
}

fn method_text(m: Method) -> (&'static str, &'static str) {
    match m {
        Method::Gradient => (
            "How much the class score would change if one pixel changed a tiny bit: the derivative of the score with respect to the input. Noisy, but it is the model's own local sensitivity.",
            "S = ∂y_c / ∂x",
        ),
        Method::InputXGradient => (
            "The gradient times the pixel value: each pixel's contribution to a first-order (linear) approximation of the score.",
            "S = x ⊙ ∂y_c / ∂x",
        ),
        Method::SmoothGrad => (
            "The gradient averaged over copies of the image with a little noise added, which keeps what is stable and removes speckle.",
            "S = (1/n) Σ_k ∂y_c / ∂x (x + ε_k),  ε_k ~ N(0, σ²)",
        ),
        Method::IntegratedGradients => (
            "Gradients summed along a straight path from a baseline (a black image, say) to the image. The contributions add up exactly to the difference of the scores of the image and the baseline (completeness).",
            "S = (x − x') ⊙ ∫₀¹ ∂y_c/∂x (x' + α(x − x')) dα;  Σ S = y_c(x) − y_c(x')",
        ),
        Method::GradCam => (
            "Takes a layer's channels, weights each by how much the class score grows with it on average (its mean gradient), adds them up and keeps the positive part: the regions of that layer the class relies on, at the layer's resolution.",
            "α_k = (1/Z) Σ_ij ∂y_c/∂A^k_ij;  S = ReLU(Σ_k α_k A^k)",
        ),
        Method::GradCamPlusPlus => (
            "Grad-CAM with a per-pixel weighting of the gradients that gives several instances of a class their share of the map.",
            "α_k^ij = (∂²y)/(2∂²y + Σ_ab A^k_ab ∂³y);  w_k = Σ_ij α_k^ij ReLU(∂y_c/∂A^k_ij);  S = ReLU(Σ_k w_k A^k)",
        ),
        Method::ScoreCam => (
            "No gradients: each channel of the layer, upsampled and normalised, is used as a mask on the image, and weighted by the class score the masked image keeps.",
            "w_k = softmax_k(y_c(x ⊙ norm(up(A^k))));  S = ReLU(Σ_k w_k A^k)",
        ),
        Method::GuidedBackprop => (
            "The gradient passed back through the ReLUs only where both the activation and the gradient are positive: sharp edges the class likes, but known to depend little on the upper layers (see the sanity check).",
            "∂ through ReLU: g_in = g_out · [a > 0] · [g_out > 0]",
        ),
        Method::GuidedGradCam => (
            "Guided backprop multiplied by the Grad-CAM map upsampled to the input: fine detail, limited to the regions the class uses.",
            "S = GuidedBackprop ⊙ up(Grad-CAM)",
        ),
        Method::Occlusion => (
            "Hides one window of the image at a time (fills it with a value) and measures how much the class score drops. Slow but easy to trust: it asks the model directly.",
            "S[window] = y_c(x) − y_c(x with window hidden)",
        ),
        Method::LrpEpsilonPlusFlat => (
            "Layer-wise relevance propagation: the class gets relevance 1 at the output, and each layer hands its relevance down to its inputs in proportion to what each contributed, so it is neither created nor lost on the way (biases keep a little). Convolutions count only positive contributions (z+), dense layers all of them (epsilon), the first layer spreads evenly over its window (flat). Batch norm is merged into the convolution before it; activations pass relevance on.",
            "R_j = Σ_k x_j w⁺_jk / (Σ_i x_i w⁺_ik + b⁺_k) · R_k;  R_out = one-hot(c)",
        ),
        Method::LrpEpsilonGammaBox => (
            "Layer-wise relevance propagation with the gamma rule on convolutions: positive contributions weigh 1.25 times their share, which makes the map less noisy than plain gradients; the first layer uses z-box, which knows that a pixel can only lie between black and white.",
            "R_j = Σ_k x_j (w_jk + γ w⁺_jk) / Σ_i x_i (w_ik + γ w⁺_ik) · R_k,  γ = 0.25",
        ),
        Method::LrpAlpha2Beta1 => (
            "Layer-wise relevance propagation with the alpha-beta rule: at each convolution, evidence for the class counts twice and evidence against it once, so the map shows what speaks for the class and, in the diverging colours, what speaks against it.",
            "R_j = Σ_k (2 · (x_j w_jk)⁺ / Σ_i (x_i w_ik)⁺ − (x_j w_jk)⁻ / Σ_i (x_i w_ik)⁻) · R_k",
        ),
    }
}

/// The small "?" beside a heading or method.
pub fn button(ui: &mut Ui, topic: Topic, out: &mut Vec<Command>) {
    let name = match topic {
        Topic::Method(m) => format!("Explain {}", m.name()),
        other => format!("Explain {}", text(other).0),
    };
    if ui
        .small_button("?")
        .on_hover_text(format!("{name}: what it shows, and its formula"))
        .clicked()
    {
        out.push(Command::ExplainThis(Some(topic)));
    }
}

/// The first line of a collapsible view: "What is this?" and its button.
pub fn what_is_this(ui: &mut Ui, topic: Topic, out: &mut Vec<Command>) {
    ui.horizontal(|ui| {
        ui.weak("What is this?");
        button(ui, topic, out);
    });
}

/// The open explanation, docked at the bottom of the window (readable from the back of a
/// classroom, and never over the view it explains).
pub fn panel(ui: &mut Ui, topic: Option<Topic>, out: &mut Vec<Command>) {
    let Some(t) = topic else { return };
    let (title, paragraph, formula) = text(t);
    egui::Panel::bottom("explain-this").show(ui, |ui| {
        ui.horizontal(|ui| {
            ui.label(RichText::new(format!("Explain this: {title}")).strong().size(18.0));
            if ui.button("Close explanation").clicked() {
                out.push(Command::ExplainThis(None));
            }
        });
        ui.label(paragraph);
        ui.label(RichText::new(formula).monospace().size(15.0));
        ui.add_space(4.0);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_view_and_method_has_a_paragraph_and_a_formula() {
        let topics = Topic::all();
        assert_eq!(topics.len(), 10 + METHODS.len());
        for t in topics {
            let (title, p, f) = text(t);
            assert!(!title.is_empty() && p.len() > 80 && !f.is_empty(), "{t:?}");
        }
    }
}
