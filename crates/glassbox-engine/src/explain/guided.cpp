// The guided-backprop rule as a libtorch autograd function, for engine::explain.
//
// tch exposes neither tensor hooks nor custom autograd functions, so this one is written
// against libtorch's C++ API and called through a C entry point. Placed right after an
// activation (ReLU, ReLU6), it makes one ordinary backward apply the guided rule there:
// its forward is the identity; its backward passes only the positive part of the incoming
// gradient, and the activation's own backward then applies its pass-through mask.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdlib>
#include <cstring>
#include <exception>

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct PositiveGradient : public torch::autograd::Function<PositiveGradient> {
  static at::Tensor forward(AutogradContext*, const at::Tensor& x) { return x; }

  static variable_list backward(AutogradContext*, variable_list grad_outputs) {
    return {grad_outputs[0].clamp_min(0)};
  }
};

char* copy_message(const char* what) {
  char* out = static_cast<char*>(std::malloc(std::strlen(what) + 1));
  if (out != nullptr) std::strcpy(out, what);
  return out;
}

}  // namespace

// Returns a new tensor (owned by the caller, as tch's `Tensor::from_ptr` expects), or null
// with `*error` set to a malloc'ed message the caller frees with `glassbox_free_message`.
extern "C" at::Tensor* glassbox_positive_gradient(const at::Tensor* x, char** error) {
  *error = nullptr;
  try {
    return new at::Tensor(PositiveGradient::apply(*x));
  } catch (const std::exception& e) {
    *error = copy_message(e.what());
  } catch (...) {
    *error = copy_message("unknown C++ exception in the guided-backprop rule");
  }
  return nullptr;
}

extern "C" void glassbox_free_message(char* message) { std::free(message); }
